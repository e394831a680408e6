"""The knee of a load test: the first step where the agent's deployment breaks.

A step *breaks* when one of its gates fails, when its p90 response latency exceeds
``factor`` times the first step's, or when some of its calls could not be placed (the
agent never joined: a worker that turns jobs away under load). The knee is the first
step that breaks. When the rig itself was the bottleneck at that step
(:func:`harness.load.steps.rig_limits_hit`), the knee is the harness's, not the agent's:
the agent held at least the step before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.load.steps import StepResult

__all__ = ["Knee", "find_knee", "knee_line", "step_breaks"]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f} ms"


def step_breaks(step: StepResult, reference_p90: float | None, factor: float) -> list[str]:
    """Why ``step`` breaks (empty: it holds). ``reference_p90``: the first step's p90."""
    out = []
    for g in step.failed_gates:
        from harness.gates.verdict import format_value

        what = "data that cannot be true" if g.status == "data_error" else "failed"
        out.append(f"gate {g.name} {what} ({format_value(g.value, g.unit)}, n={g.n})")
    if (
        reference_p90 is not None
        and reference_p90 > 0
        and step.p90_ms is not None
        and step.p90_ms > factor * reference_p90
    ):
        out.append(
            f"p90 response latency {_ms(step.p90_ms)} is {step.p90_ms / reference_p90:.1f}x "
            f"step 1's {_ms(reference_p90)} (> {factor:g}x)"
        )
    if step.errors:
        first = f": {step.first_error}" if step.first_error else ""
        out.append(f"{step.errors} of {step.calls} calls could not be placed{first}")
    return out


@dataclass(frozen=True)
class Knee:
    concurrency: int
    index: int
    """The step's position in the ramp (0-based)."""
    reasons: tuple[str, ...]
    harness_limited: tuple[str, ...] = ()
    """Non-empty: the rig was the bottleneck at the knee (why)."""
    held: int | None = None
    """The concurrency of the step before the knee, which held; None when the first
    step broke."""

    @property
    def blame(self) -> Literal["agent", "harness"]:
        return "harness" if self.harness_limited else "agent"

    def to_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "index": self.index,
            "reasons": list(self.reasons),
            "harness_limited": list(self.harness_limited),
            "held": self.held,
            "blame": self.blame,
        }

    @classmethod
    def from_dict(cls, d: Any) -> Knee | None:
        if not isinstance(d, Mapping) or not isinstance(d.get("concurrency"), int):
            return None
        held = d.get("held")
        return cls(
            d["concurrency"],
            int(d.get("index") or 0),
            tuple(str(x) for x in d.get("reasons") or ()),
            tuple(str(x) for x in d.get("harness_limited") or ()),
            held if isinstance(held, int) else None,
        )


def find_knee(steps: Sequence[StepResult], factor: float) -> Knee | None:
    """The first step that breaks (see :func:`step_breaks`), or None."""
    if not steps:
        return None
    reference = steps[0].p90_ms
    for i, step in enumerate(steps):
        reasons = step_breaks(step, reference, factor)
        if reasons:
            return Knee(
                step.concurrency,
                i,
                tuple(reasons),
                tuple(step.harness_limited),
                steps[i - 1].concurrency if i > 0 else None,
            )
    return None


def knee_line(knee: Knee | None, steps: Sequence[StepResult], factor: float) -> str:
    """One line for the terminal and the report."""
    if not steps:
        return "knee: no step ran"
    limited = [s.concurrency for s in steps if s.harness_limited]
    if knee is None:
        top = steps[-1].concurrency
        note = ""
        if limited:
            note = (
                f"; but the rig was the bottleneck at {', '.join(map(str, limited))} "
                "concurrent calls, so those steps measured the harness as much as the agent"
            )
        return (
            f"knee: none up to {top} concurrent calls (every gate held, p90 within "
            f"{factor:g}x step 1's){note}"
        )
    why = "; ".join(knee.reasons)
    if knee.blame == "harness":
        held = f"the agent held at least {knee.held}" if knee.held else "no step held"
        limits = "; ".join(knee.harness_limited)
        return (
            f"knee: {knee.concurrency} concurrent calls, HARNESS-LIMITED ({limits}): "
            f"the rig, not the agent, was the bottleneck; {held}. It broke on: {why}. "
            "Spread the callers over more cores or machines (pytest -n, harness merge)"
        )
    held = f" (the agent held {knee.held})" if knee.held else " (the first step already broke)"
    earlier = [c for c in limited if c < knee.concurrency]
    note = (
        f"; the rig was already limited at {', '.join(map(str, earlier))} concurrent calls"
        if earlier
        else ""
    )
    at = steps[knee.index] if knee.index < len(steps) else None
    if at is not None and at.timing:
        note += f"; timing at the knee, {'; '.join(at.timing)}"
    return f"knee: {knee.concurrency} concurrent calls{held}: {why}{note}"
