"""Conversation-level evaluators: tool-call success, interruptions, loops, clarifying
questions."""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING

from harness.evaluators._common import agent_utterances, span_turns
from harness.evaluators.base import (
    UNIT_BOOL,
    UNIT_COUNT,
    UNIT_RATIO,
    BaseEvaluator,
    MetricInfo,
    Score,
)
from harness.evaluators.text import normalize
from harness.trace import conventions as c

if TYPE_CHECKING:
    from harness.trace.instance import Instance


class ToolSuccess(BaseEvaluator):
    """Tool-call success of the conversational agent's ``function_tool`` spans.

    - ``tool_success`` (bool, per tool call): 1 unless the call failed, i.e. unless
      ``lk.function_tool.is_error`` is true (or, when that attribute is absent, the span's
      status is error). ``detail`` names the tool and, on failure, its output.
    - ``tool_success_rate`` (ratio, per call): successful calls / all calls.

    A call without tool calls gets no Score (no evidence either way).
    """

    name = "tool_success"
    metrics = (
        MetricInfo("tool_success", UNIT_BOOL, "one tool call succeeded", c.SPAN_FUNCTION_TOOL),
        MetricInfo(
            "tool_success_rate", UNIT_RATIO, "share of the call's tool calls that succeeded"
        ),
    )

    def evaluate(self, instance: Instance) -> list[Score]:
        calls = instance.tool_calls
        if not calls:
            return []
        turn_of = span_turns(instance)
        out = []
        for tc in calls:
            detail = tc.name if not tc.is_error else f"{tc.name} failed: {tc.output or ''}"
            out.append(
                Score(
                    "tool_success",
                    0.0 if tc.is_error else 1.0,
                    UNIT_BOOL,
                    span=tc.span.name,
                    layer=tc.span.layer,
                    turn=turn_of.get(tc.span.key),
                    detail=detail.strip(),
                )
            )
        ok = sum(1 for tc in calls if not tc.is_error)
        out.append(
            Score(
                "tool_success_rate",
                ok / len(calls),
                UNIT_RATIO,
                layer=c.LAYER_CONVERSATIONAL,
                detail=f"{ok} of {len(calls)} tool calls succeeded",
            )
        )
        return out


class Interruptions(BaseEvaluator):
    """How often the agent's speech was interrupted (``lk.interrupted`` on ``agent_turn``).

    - ``interrupted`` (bool, per agent_turn span that carries a boolean ``lk.interrupted``):
      1 when the speech was interrupted; ``detail`` gives ``lk.interruption.source``.
    - ``interruption_rate`` (ratio, per call): interrupted / agent turns considered.

    agent_turn spans without the attribute are left out; no agent_turn with it, no Score.
    """

    name = "interruptions"
    metrics = (
        MetricInfo("interrupted", UNIT_BOOL, "one agent speech was interrupted", c.SPAN_AGENT_TURN),
        MetricInfo("interruption_rate", UNIT_RATIO, "share of the call's agent turns interrupted"),
    )

    def evaluate(self, instance: Instance) -> list[Score]:
        turn_of = span_turns(instance)
        out = []
        for s in instance.find(c.SPAN_AGENT_TURN):
            flag = s.attributes.get(c.LK_INTERRUPTED)
            if not isinstance(flag, bool):
                continue
            source = s.attributes.get(c.LK_INTERRUPTION_SOURCE)
            out.append(
                Score(
                    "interrupted",
                    1.0 if flag else 0.0,
                    UNIT_BOOL,
                    span=s.name,
                    layer=s.layer,
                    turn=turn_of.get(s.key),
                    detail=f"source: {source}" if flag and source else "",
                )
            )
        if out:
            hits = sum(1 for sc in out if sc.value)
            out.append(
                Score(
                    "interruption_rate",
                    hits / len(out),
                    UNIT_RATIO,
                    layer=c.LAYER_CONVERSATIONAL,
                    detail=f"{hits} of {len(out)} agent turns interrupted",
                )
            )
        return out


def similarity(a: str, b: str) -> float:
    """``difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()`` of two texts after
    :func:`normalize`: 1.0 for the same words, 0.0 for nothing in common."""
    return _ratio(normalize(a), normalize(b))


def _ratio(a: str, b: str) -> float:
    m = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return m.ratio()


class LoopDetection(BaseEvaluator):
    """The agent repeating itself.

    The agent's utterances are each agent_turn's ``lk.pii.response.text`` (else each turn's
    ``agent_said``), normalised (:func:`~harness.evaluators.text.normalize`); utterances of
    fewer than ``min_words`` words (3) are ignored, so "okay." said twice is no loop. An
    utterance *repeats* when its :func:`similarity` with any earlier utterance is at least
    ``threshold`` (0.95): a near-verbatim repeat. Templated answers that carry different
    facts stay below it (two availability answers for different days score about 0.88).

    - ``repeated_utterances`` (count, per call): utterances that repeat an earlier one.
    - ``loop_detected`` (bool, per call): ``repeated_utterances >= min_repeats`` (1);
      ``detail`` quotes the first repeated pair.
    - ``stuck_repeats`` (count, per call): repeats the caller did not ask for: what the
      agent heard in the repeat's turn (:attr:`Turn.agent_heard`, normalised) is less than
      ``threshold`` similar to what it heard in the turn it repeats. The same question
      asked twice gets the same answer twice, which is no loop; a dialog that answers
      different things the same way is stuck.
    - ``dialog_stuck`` (bool, per call): ``stuck_repeats >= 1``.

    An agent that never spoke gets no Score.
    """

    name = "loops"
    metrics = (
        MetricInfo("repeated_utterances", UNIT_COUNT, "agent utterances repeating an earlier one"),
        MetricInfo("loop_detected", UNIT_BOOL, "the agent repeated itself"),
        MetricInfo(
            "stuck_repeats", UNIT_COUNT, "agent repeats while the caller said something else"
        ),
        MetricInfo("dialog_stuck", UNIT_BOOL, "the agent repeated a reply to a different turn"),
    )

    def __init__(self, threshold: float = 0.95, min_words: int = 3, min_repeats: int = 1) -> None:
        if not 0.0 < threshold <= 1.0:
            raise ValueError(f"threshold={threshold!r}: must be in (0, 1]")
        if min_repeats < 1:
            raise ValueError(f"min_repeats={min_repeats!r}: must be at least 1")
        self.threshold = threshold
        self.min_words = min_words
        self.min_repeats = min_repeats

    def evaluate(self, instance: Instance) -> list[Score]:
        utterances = agent_utterances(instance)
        if not utterances:
            return []
        texts = [
            (u, n) for u in utterances if len((n := normalize(u.text)).split()) >= self.min_words
        ]
        heard = {t.index: normalize(t.agent_heard or "") for t in instance.turns}
        repeats = 0
        stuck: list[str] = []
        first_pair: tuple[int, int, str, float] | None = None
        for j in range(len(texts)):
            uj, nj = texts[j]
            for i in range(j):
                ui, ni = texts[i]
                m = difflib.SequenceMatcher(None, ni, nj, autojunk=False)
                if m.real_quick_ratio() < self.threshold or m.quick_ratio() < self.threshold:
                    continue
                r = m.ratio()
                if r >= self.threshold:
                    repeats += 1
                    if first_pair is None:
                        first_pair = (ui.turn, uj.turn, nj, r)
                    hi, hj = heard.get(ui.turn, ""), heard.get(uj.turn, "")
                    if ui.turn != uj.turn and _ratio(hi, hj) < self.threshold:
                        stuck.append(f"turn {uj.turn} (heard {hj!r}) repeats turn {ui.turn}")
                    break
        detail = ""
        if first_pair is not None:
            ti, tj, text, r = first_pair
            detail = f"turn {tj} repeats turn {ti} (similarity {r:.2f}): {text!r}"
        return [
            Score(
                "repeated_utterances",
                float(repeats),
                UNIT_COUNT,
                layer=c.LAYER_CONVERSATIONAL,
                detail=detail,
            ),
            Score(
                "loop_detected",
                1.0 if repeats >= self.min_repeats else 0.0,
                UNIT_BOOL,
                layer=c.LAYER_CONVERSATIONAL,
                detail=detail,
            ),
            Score(
                "stuck_repeats",
                float(len(stuck)),
                UNIT_COUNT,
                layer=c.LAYER_CONVERSATIONAL,
                detail="; ".join(stuck[:3]),
            ),
            Score(
                "dialog_stuck",
                1.0 if stuck else 0.0,
                UNIT_BOOL,
                layer=c.LAYER_CONVERSATIONAL,
                detail="; ".join(stuck[:3]),
            ),
        ]


CLARIFYING_PHRASES: tuple[str, ...] = (
    r"\bcould you (please )?repeat\b",
    r"\bcan you (please )?repeat\b",
    r"\brepeat that\b",
    r"\bsay that again\b",
    r"\b(didn't|did not|couldn't|could not) (quite )?(catch|hear|understand|get)\b",
    r"\bnot sure i (understood|understand|follow)\b",
    r"\bdid you (mean|say)\b",
    r"\bdo you mean\b",
    r"\b(could|can) you (please )?(clarify|rephrase|spell)\b",
    r"\bpardon\b",
    r"\bsorry what\b",
    r"\bwhat was that\b",
    r"\bcome again\b",
)
"""Phrases (regular expressions over normalised text) that make an agent utterance a
clarifying question."""


class ClarifyingQuestions(BaseEvaluator):
    """How many times the agent had to ask the caller to clarify.

    An agent utterance (as in :class:`LoopDetection`, without the word minimum) is a
    clarifying question when its normalised text matches one of ``phrases`` (default
    :data:`CLARIFYING_PHRASES`: "could you repeat", "say that again", "didn't catch",
    "did you mean", "can you clarify", "pardon", ...).

    - ``clarifying_questions`` (count, per call): such utterances; ``detail`` names the turns.

    An agent that never spoke gets no Score.
    """

    name = "clarifications"
    metrics = (
        MetricInfo("clarifying_questions", UNIT_COUNT, "clarifying questions the agent asked"),
    )

    def __init__(self, phrases: Iterable[str] = CLARIFYING_PHRASES) -> None:
        self.phrases = tuple(phrases)
        self._pattern = (
            re.compile("|".join(f"(?:{p})" for p in self.phrases)) if self.phrases else None
        )

    def evaluate(self, instance: Instance) -> list[Score]:
        utterances = agent_utterances(instance)
        if not utterances:
            return []
        turns = []
        if self._pattern is not None:
            for u in utterances:
                if self._pattern.search(normalize(u.text)):
                    turns.append(u.turn)
        return [
            Score(
                "clarifying_questions",
                float(len(turns)),
                UNIT_COUNT,
                layer=c.LAYER_CONVERSATIONAL,
                detail=f"in turns {turns}" if turns else "",
            )
        ]
