"""The load test's table: one row per concurrency level, then the knee and what the harness
itself cost."""

from __future__ import annotations

from collections.abc import Sequence

from harness.core.text import text_table
from harness.load.knee import Knee, step_breaks
from harness.load.steps import HarnessCost, StepResult

__all__ = ["calls_per_core", "cost_line", "render_table"]

_HEADER = (
    "concurrency",
    "calls",
    "pass",
    "fail",
    "error",
    "p50",
    "p90",
    "p99",
    "gates failed",
    "caller CPU s/call-min",
    "loop lag p99",
    "underruns",
    "host PSI",
    "step",
)


def _ms(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.0f} ms" if v < 10_000 else f"{v / 1000:.1f} s"


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.0f} %"


def calls_per_core(cost: HarnessCost) -> float | None:
    """How many real-time calls one core carries on the caller side, at this cost."""
    per_min = cost.cpu_per_call_minute
    return 60 / per_min if per_min else None


def cost_line(cost: HarnessCost) -> str:
    per_min = cost.cpu_per_call_minute
    if per_min is None:
        return "harness cost: no call was measured"
    per_core = calls_per_core(cost)
    cores = f" ({per_core:.0f} real-time calls per core)" if per_core else ""
    return (
        f"harness cost: the caller side spent {per_min:.2f} CPU s per call-minute{cores} "
        f"over {cost.call_minutes:.1f} call-minutes"
    )


def _verdict(s: StepResult, reference: float | None, factor: float, knee: Knee | None) -> str:
    breaks = bool(step_breaks(s, reference, factor))
    limited = "HARNESS-LIMITED" if s.harness_limited else ""
    if knee is not None and s.concurrency == knee.concurrency:
        return "KNEE" + (f" ({limited})" if limited else "")
    if breaks:
        return "breaks" + (f" ({limited})" if limited else "")
    return limited or "holds"


def render_table(
    steps: Sequence[StepResult], knee: Knee | None, factor: float, knee_text: str = ""
) -> str:
    reference = steps[0].p90_ms if steps else None
    rows = []
    for s in steps:
        failed = [g.name for g in s.failed_gates]
        gates = (
            "-"
            if not failed
            else ", ".join(failed[:2]) + (f" +{len(failed) - 2}" if len(failed) > 2 else "")
        )
        per_min = s.cost.cpu_per_call_minute
        rows.append(
            (
                str(s.concurrency),
                str(s.calls),
                str(s.passed),
                str(s.failed),
                str(s.errors),
                _ms(s.p50_ms),
                _ms(s.p90_ms),
                _ms(s.p99_ms),
                gates,
                "-" if per_min is None else f"{per_min:.2f}",
                "-" if s.cost.loop_lag_p99_ms is None else f"{s.cost.loop_lag_p99_ms:.0f} ms",
                f"{s.cost.underrun_ms:.0f} ms",
                _pct(s.cost.host_pressure),
                _verdict(s, reference, factor, knee),
            )
        )
    lines = text_table(_HEADER, rows)
    for s in steps:
        for note in s.timing:
            lines.append(f"  {s.concurrency} concurrent: timing: {note}")
        if s.harness_limited:
            lines.append(
                f"  {s.concurrency} concurrent: harness-limited: {'; '.join(s.harness_limited)}"
            )
    if knee_text:
        lines.append(knee_text)
    return "\n".join(lines)
