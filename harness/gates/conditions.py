"""Per-call conditions: what makes one production call an incident candidate.

Gates judge many calls; these judge one. A call fails a condition when one of its Scores
(from the same evaluators as CI) says so, or when its Instance is incomplete (a layer never
finished). The table is the whole definition:

=======================  =============================  =====================================
Score                    fails when                     reason
=======================  =============================  =====================================
``tool_success``         any value is 0                 a tool call failed
``workflow_completed``   any value is 0                 the after-call workflow did not finish
``task_completed``       any value is 0                 the expected end state was not reached
``loop_detected``        any value is 1                 the agent repeated itself
``truncated_speech``     any value is 1                 the agent's audio stopped early
``unapproved_mutations`` any value is above 0           a mutating action had no approval
=======================  =============================  =====================================
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from harness.evaluators.base import Score

__all__ = ["CALL_CONDITIONS", "CallCondition", "call_failures"]


@dataclass(frozen=True)
class CallCondition:
    metric: str
    fails_when: Literal["zero", "one", "positive"]
    reason: str

    def failed_by(self, score: Score) -> bool:
        if score.name != self.metric:
            return False
        if self.fails_when == "zero":
            return score.value == 0.0
        if self.fails_when == "one":
            return score.value == 1.0
        return score.value > 0.0


CALL_CONDITIONS: tuple[CallCondition, ...] = (
    CallCondition("tool_success", "zero", "a tool call failed"),
    CallCondition("workflow_completed", "zero", "the after-call workflow did not finish"),
    CallCondition("task_completed", "zero", "the expected end state was not reached"),
    CallCondition("loop_detected", "one", "the agent repeated itself"),
    CallCondition("truncated_speech", "one", "the agent's audio stopped early"),
    CallCondition("unapproved_mutations", "positive", "a mutating action had no approval"),
)


def call_failures(
    scores: Iterable[Score],
    incomplete_reason: str | None = None,
    conditions: Iterable[CallCondition] = CALL_CONDITIONS,
) -> tuple[str, ...]:
    """Why one call fails its per-call conditions, each reason once, in table order; empty
    for a call that passes. Each reason names the span or layer and the Score's detail."""
    scores = list(scores)
    out: list[str] = []
    for cond in conditions:
        hits = [s for s in scores if cond.failed_by(s)]
        if hits:
            s = hits[0]
            where = s.span or s.layer
            detail = f": {s.detail}" if s.detail else ""
            out.append(f"{cond.reason} ({cond.metric}{' on ' + where if where else ''}){detail}")
    if incomplete_reason:
        out.append(f"incomplete trace: {incomplete_reason}")
    return tuple(out)
