"""The one-glance gate table."""

from __future__ import annotations

from collections.abc import Sequence

from harness.core.text import text_table
from harness.gates.verdict import Verdict, format_value

__all__ = ["render_table"]

_HEADER = ("gate", "layer/span", "p50", "p90", "p95", "p99", "value", "n", "threshold", "verdict")


def _threshold(v: Verdict) -> str:
    g = v.gate
    sign = ">" if g.direction == "above" else "<"
    parts = []
    if g.warn is not None:
        parts.append(f"warn {sign}{format_value(g.warn, v.unit)}")
    if g.fail is not None:
        parts.append(f"fail {sign}{format_value(g.fail, v.unit)}")
    if g.baseline is not None:
        parts.append(f"baseline +{g.baseline.max_regression:.0%}")
    return ", ".join(parts)


def _where(v: Verdict) -> str:
    g = v.gate
    return " ".join(x for x in (g.layer, g.span) if x) or "all"


def _ci(v: Verdict) -> str:
    if v.ci is None:
        return ""
    return f" [{format_value(v.ci[0], v.unit)}, {format_value(v.ci[1], v.unit)}]"


def _status(v: Verdict) -> str:
    if v.data_errors:
        return "DATA ERROR"
    return "NO TRACE" if v.no_trace else v.status.upper()


def _row(v: Verdict) -> tuple[str, ...]:
    q = dict(v.quantiles)
    # percentiles of 0/1 values say nothing: leave them blank
    pct = (lambda k: "-") if v.unit == "bool" else (lambda k: format_value(q.get(k), v.unit))
    status = _status(v)
    return (
        v.gate.name,
        _where(v),
        pct("p50"),
        pct("p90"),
        pct("p95"),
        pct("p99"),
        f"{v.gate.statistic} {format_value(v.value, v.unit)}" + _ci(v),
        str(v.n),
        _threshold(v),
        status,
    )


def render_table(verdicts: Sequence[Verdict], *, details: bool = True) -> str:
    """The gate table: gate, layer/span, p50, p90, p95, p99, the gated value with its 95 %
    confidence interval, n, threshold, verdict; then (with ``details``) one line per gate
    that did not pass, and a count."""
    rows = [_row(v) for v in verdicts]
    lines = text_table(_HEADER, rows)
    if details:
        for v in verdicts:
            if v.status != "pass":
                lines.append(f"  {_status(v)} {v.gate.name}: {v.detail}")
    counts = {
        s: sum(1 for v in verdicts if v.status == s)
        for s in ("pass", "warn", "fail", "insufficient")
    }
    no_trace = sum(1 for v in verdicts if v.no_trace)
    data = sum(1 for v in verdicts if v.data_errors)
    lines.append(
        f"{len(verdicts)} gates: {counts['pass']} passed, {counts['warn']} warned, "
        f"{counts['fail']} failed"
        + (f" ({data} on data that cannot be true)" if data else "")
        + f", {counts['insufficient']} with insufficient samples"
        + (f" ({no_trace} for want of a trace)" if no_trace else "")
    )
    return "\n".join(lines)
