"""Calendar-aligned budget periods in the policy's time zone: the day, the week (from
Monday) and the month a moment falls in, as an id and the seconds left in it."""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo


def period(kind: str, now_s: float, zone: ZoneInfo) -> tuple[str, float]:
    """(id, seconds to its end) of the `day`, `week` or `month` holding `now_s`."""
    ident, end = bounds(kind, int(now_s // 60), zone)  # (periods change on whole minutes)
    return ident, end - now_s


@lru_cache(maxsize=64)
def bounds(kind: str, minute: int, zone: ZoneInfo) -> tuple[str, float]:
    """The period's id and end (a timestamp), for any moment of that minute."""
    local = datetime.fromtimestamp(minute * 60, zone)
    day = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        start, end = day, day + timedelta(days=1)
    elif kind == "week":
        start = day - timedelta(days=day.weekday())
        end = start + timedelta(days=7)
    else:
        start = day.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    # wall-clock arithmetic: re-localise so a DST change inside the period counts right
    end = end.replace(tzinfo=None).replace(tzinfo=zone)
    return f"{kind[0]}{start.date().isoformat()}", end.timestamp()
