"""Scoring the call: which checks failed, and the incident's classification.

The built-in evaluators (``task_completion`` told the expected end state, when given) and
the incident's own signals (:class:`~harness.incident.classify.IncidentSignals`) score the
call; Scores computed elsewhere can be passed instead, and then only the signals are
added. One evaluator that breaks is a warning, not a failed import.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from harness.core.errors import HarnessError
from harness.evaluators.base import Score
from harness.incident.classify import (
    Classification,
    Finding,
    IncidentSignals,
    RuleTable,
    classify,
    find_failures,
)
from harness.incident.errors import IncidentError
from harness.incident.estimate import Recording
from harness.trace.instance import Instance

__all__ = ["Assessment", "judge", "score_call"]


@dataclass(frozen=True)
class Assessment:
    """The call's failed checks, in table order, and what they make of it."""

    findings: tuple[Finding, ...]
    classification: Classification


def score_call(
    instance: Instance, expected: Any, rec: Recording | None, warnings: list[str]
) -> list[Score]:
    """Every evaluator's Scores on the call; the audio evaluators hear the recording when
    the instance has none and it is stereo with the caller on the left (as they expect)."""
    from harness.evaluators import default_evaluators

    target = instance
    if (
        rec is not None
        and instance.recording_path is None
        and rec.channels == 2
        and rec.caller_channel == 0
    ):
        target = replace(instance, recording=str(rec.path.resolve()))
    params = {"task_completion": {"expected": expected}} if expected is not None else None
    try:
        evaluators = [*default_evaluators(params), IncidentSignals()]
    except HarnessError as e:
        raise IncidentError(f"cannot build the evaluators: {e}") from None
    scores = []
    for ev in evaluators:
        name = getattr(ev, "name", type(ev).__name__)
        try:
            scores.extend(ev.evaluate(target))
        except Exception as e:  # one broken evaluator must not sink the import
            warnings.append(f"evaluator {name!r} could not run: {type(e).__name__}: {e}")
    return scores


def judge(
    instance: Instance,
    scores: Sequence[Score] | None,
    expected: Any,
    rec: Recording | None,
    table: RuleTable,
    warnings: list[str],
) -> Assessment:
    """The failed checks and the classification of the call (``scores``: computed
    elsewhere, the incident's signals added; None: everything scored here)."""
    if scores is None:
        all_scores = score_call(instance, expected, rec, warnings)
    else:
        all_scores = [*scores, *IncidentSignals().evaluate(instance)]
    findings = find_failures(all_scores, table)
    if not findings:
        warnings.append("no evaluator failed on this call; it was imported as reported")
    return Assessment(tuple(findings), classify(findings, table))
