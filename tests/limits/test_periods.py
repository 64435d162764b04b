"""Budget periods are calendar-aligned in the policy's time zone (pure)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from gateway.limits.periods import period

PARIS = ZoneInfo("Europe/Paris")


def at(text: str, zone: ZoneInfo) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=zone).timestamp()


def test_day_week_month_ids_and_what_is_left() -> None:
    now = at("2026-12-09 18:00:00", PARIS)  # a Wednesday
    assert period("day", now, PARIS) == ("d2026-12-09", 6 * 3600)
    week_id, left = period("week", now, PARIS)
    assert week_id == "w2026-12-07" and left == (4 * 24 + 6) * 3600  # from Monday
    month_id, left = period("month", now, PARIS)
    assert month_id == "m2026-12-01" and left == (22 * 24 + 6) * 3600


def test_the_zone_decides_which_day_it_is() -> None:
    now = at("2026-12-09 23:30:00", ZoneInfo("UTC"))
    assert period("day", now, ZoneInfo("UTC"))[0] == "d2026-12-09"
    assert period("day", now, PARIS)[0] == "d2026-12-10"  # already tomorrow in Paris


def test_a_dst_change_inside_the_period_counts_wall_clock_days() -> None:
    now = at("2026-03-29 00:30:00", PARIS)  # clocks go forward at 02:00 that night
    day_id, left = period("day", now, PARIS)
    assert day_id == "d2026-03-29" and left == 22.5 * 3600  # a 23-hour day
    month_id, left = period("month", now, PARIS)
    assert month_id == "m2026-03-01" and left == (2 * 24 + 22.5) * 3600
