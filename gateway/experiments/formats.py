"""An experiment report as a text table, Markdown or JSON."""

from __future__ import annotations

from typing import Any

import orjson

COLUMNS = (
    ("arm", "arm", "{}"), ("version", "version", "{}"), ("requests", "requests", "{}"),
    ("n", "n", "{}"), ("mean", "mean", "{:.4g}"), ("ci_low", "95% low", "{:.4g}"),
    ("ci_high", "95% high", "{:.4g}"), ("lift", "lift", "{:+.1%}"), ("p_value", "p", "{:.3g}"),
    ("cost_per_request_usd", "$/request", "{:.6f}"), ("latency_p50_ms", "p50 ms", "{:.0f}"),
    ("latency_p95_ms", "p95 ms", "{:.0f}"), ("output_tokens_mean", "out tokens", "{:.0f}"),
    ("error_rate", "errors", "{:.1%}"),
)  # fmt: skip


def cells(row: dict[str, Any]) -> list[str]:
    out = []
    for key, _, fmt in COLUMNS:
        value = row.get(key)
        out.append("-" if value is None else fmt.format(value))
    return out


def header_lines(report: dict[str, Any]) -> list[str]:
    lines = [
        f"experiment {report['experiment']} (prompt {report['prompt']}): metric "
        f"{report['metric']} ({report['metric_type']}, {report['direction']}), control "
        f"{report['control']}, test {report['test']}",
    ]
    if report["metric_type"] == "category":
        for row in report["arms"]:
            shares = ", ".join(f"{c} {s:.0%}" for c, s in (row.get("distribution") or {}).items()
                               if s is not None)  # fmt: skip
            lines.append(f"  arm {row['arm']}: {shares or 'no feedback'}")
    return lines


def table(report: dict[str, Any]) -> str:
    grid = [[title for _, title, _ in COLUMNS]] + [cells(r) for r in report["arms"]]
    widths = [max(len(row[i]) for row in grid) for i in range(len(COLUMNS))]
    lines = [*header_lines(report), ""]
    lines += ["  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in grid]
    lines += ["", f"verdict: {report['verdict']}"]
    lines += [f"note: {w}" for w in report["warnings"]]
    return "\n".join(lines)


def markdown(report: dict[str, Any]) -> str:
    lines = [f"### Experiment `{report['experiment']}`", ""]
    lines += [line.strip() for line in header_lines(report)] + [""]
    lines.append("| " + " | ".join(title for _, title, _ in COLUMNS) + " |")
    lines.append("|" + "---:|" * len(COLUMNS))
    lines += ["| " + " | ".join(cells(r)) + " |" for r in report["arms"]]
    lines += ["", f"**Verdict:** {report['verdict']}"]
    lines += [f"> {w}" for w in report["warnings"]]
    return "\n".join(lines)


def as_json(report: dict[str, Any]) -> str:
    return orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY).decode()
