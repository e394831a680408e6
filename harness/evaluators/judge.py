"""LLM-as-judge: a rubric, a user-supplied completion function, a parsed score.

The harness ships no model and makes no network call: ``complete`` is any callable from a
prompt to the model's reply (an API client, a local model, a fake in tests).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from harness.evaluators.base import BaseEvaluator, EvaluatorError, MetricInfo, Score
from harness.trace import conventions as c

if TYPE_CHECKING:
    from harness.trace.instance import Instance

__all__ = ["DEFAULT_TEMPLATE", "LLMJudge", "parse_judgement", "transcript"]

DEFAULT_TEMPLATE = """You are grading one phone call between a caller and a voice agent.

Rubric:
{rubric}

Give a score from {low} to {high}. Reply with one JSON object and nothing else:
{{"score": <number from {low} to {high}>, "reason": "<one sentence>"}}

The call:
{transcript}
"""

_JSON_OBJECT = re.compile(r"\{[^{}]*\}", re.S)
_SCORE_LINE = re.compile(r"\bscore\s*[:=]\s*(-?\d+(?:\.\d+)?)", re.I)


def transcript(instance: Instance) -> str:
    """The call as text, one line per event: ``Caller:`` (what the caller said), ``Agent
    heard:`` (the agent's transcript, when it differs), ``Agent:``, and ``Tool:`` lines."""
    lines = []
    for t in instance.turns:
        if t.caller_said:
            lines.append(f"Caller: {t.caller_said}")
        if t.agent_heard and t.agent_heard != t.caller_said:
            lines.append(f"Agent heard: {t.agent_heard}")
        for tc in t.tool_calls:
            status = "error" if tc.is_error else "ok"
            lines.append(f"Tool: {tc.name}({json.dumps(tc.arguments, default=str)}) -> {status}")
        if t.agent_said:
            lines.append(f"Agent: {t.agent_said}")
    return "\n".join(lines) if lines else "(the call is empty)"


def parse_judgement(reply: str) -> tuple[float, str] | None:
    """``(score, reason)`` from a judge's reply, or None.

    Tried in order: a JSON object with a numeric ``score`` (and optional ``reason``)
    anywhere in the reply; then a line like ``Score: 4`` (the reason is the reply's text).
    """
    if not isinstance(reply, str):
        return None
    for m in _JSON_OBJECT.finditer(reply):
        try:
            obj = json.loads(m.group(0))
        except ValueError:
            continue
        if not isinstance(obj, dict):
            continue
        score = obj.get("score")
        if isinstance(score, str):
            try:
                score = float(score)
            except ValueError:
                continue
        if isinstance(score, (int, float)) and not isinstance(score, bool) and math.isfinite(score):
            return float(score), str(obj.get("reason") or "")
    m = _SCORE_LINE.search(reply)
    if m:
        return float(m.group(1)), reply.strip()
    return None


class LLMJudge(BaseEvaluator):
    """Scores a call against ``rubric`` with ``complete(prompt) -> reply``.

    The prompt is ``template`` (default :data:`DEFAULT_TEMPLATE`) filled with ``rubric``,
    the scale and :func:`transcript`. The reply is read by :func:`parse_judgement`.

    - ``<name>`` (default ``judge``; unit ``points``; per call): the score, which must lie in
      ``scale`` (default 1..5); with ``normalize=True`` it is mapped to 0..1
      (``(s − low)/(high − low)``, unit ``ratio``). ``detail`` is the judge's reason.

    A reply without a readable score, or a score outside the scale, raises
    :class:`EvaluatorError` (the judge failed, not the agent). An empty call is still
    judged: the transcript says it is empty.
    """

    def __init__(
        self,
        complete: Callable[[str], str],
        rubric: str,
        *,
        name: str = "judge",
        scale: tuple[float, float] = (1, 5),
        normalize: bool = False,
        template: str = DEFAULT_TEMPLATE,
    ) -> None:
        if not callable(complete):
            raise TypeError(f"complete={complete!r}: expected a callable prompt -> reply")
        if not rubric or not rubric.strip():
            raise ValueError("rubric is empty: say what a good call looks like")
        low, high = float(scale[0]), float(scale[1])
        if not low < high:
            raise ValueError(f"scale={scale!r}: expected (low, high) with low < high")
        for key in ("{rubric}", "{transcript}"):
            if key not in template:
                raise ValueError(f"template must contain {key}")
        self.complete = complete
        self.rubric = rubric
        self.name = name
        self.scale = (low, high)
        self.normalize = normalize
        self.template = template
        unit = "ratio" if normalize else "points"
        self.metrics = (
            MetricInfo(name, unit, f"LLM judge score against the rubric ({low:g}..{high:g})"),
        )

    def prompt(self, instance: Instance) -> str:
        low, high = self.scale
        return self.template.format(
            rubric=self.rubric.strip(),
            low=f"{low:g}",
            high=f"{high:g}",
            transcript=transcript(instance),
        )

    def evaluate(self, instance: Instance) -> list[Score]:
        reply = self.complete(self.prompt(instance))
        parsed = parse_judgement(reply)
        if parsed is None:
            raise EvaluatorError(
                f"no score in the judge's reply: {str(reply)[:200]!r}", evaluator=self.name
            )
        score, reason = parsed
        low, high = self.scale
        if not low <= score <= high:
            raise EvaluatorError(
                f"score {score:g} outside the scale {low:g}..{high:g}", evaluator=self.name
            )
        if self.normalize:
            return [
                Score(
                    self.name,
                    (score - low) / (high - low),
                    "ratio",
                    layer=c.LAYER_CONVERSATIONAL,
                    detail=reason,
                )
            ]
        return [Score(self.name, score, "points", layer=c.LAYER_CONVERSATIONAL, detail=reason)]
