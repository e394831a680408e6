"""What the agent said and did, held against what it heard and what the other layers did:
tool arguments nobody gave, confirmations of actions that never happened, and replies that
help nobody."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

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
    from harness.trace.instance import Action, Instance

__all__ = [
    "CLAIM_PATTERNS",
    "FALLBACK_PATTERNS",
    "ClaimsBacked",
    "FallbackReplies",
    "ToolArgsGrounding",
]


def _values(args: Any, ignore: frozenset[str], prefix: str = "") -> Iterable[tuple[str, str]]:
    """``(path, text)`` of every string value in a tool call's arguments, depth first."""
    if isinstance(args, dict):
        for k, v in args.items():
            if str(k) in ignore:
                continue
            yield from _values(v, ignore, f"{prefix}.{k}" if prefix else str(k))
    elif isinstance(args, list):
        for i, v in enumerate(args):
            yield from _values(v, ignore, f"{prefix}[{i}]")
    elif isinstance(args, str):
        yield prefix, args


def _contains(evidence: list[str], joined: str, value: str) -> bool:
    want = value.split()
    if not want:
        return True
    n = len(want)
    if any(evidence[i : i + n] == want for i in range(len(evidence) - n + 1)):
        return True
    return value.replace(" ", "") in joined


class ToolArgsGrounding(BaseEvaluator):
    """Whether each tool call's arguments come from the conversation.

    For each ``function_tool`` call of the conversational agent, every string value of its
    arguments (nested ones too) is *checked*, except arguments named in ``ignore``
    (default: ``reason``, free text the agent writes itself) and values that
    :func:`~harness.evaluators.text.normalize` to fewer than ``min_chars`` (2) characters.
    The *evidence* is what the agent heard from the caller (:attr:`Turn.agent_heard`) in
    every turn up to and including the tool call's own, and the output of every tool call
    that ended before this one started. A value is grounded when its normalised words
    appear in the normalised evidence as a contiguous sequence, or its letters without
    spaces appear in the evidence without spaces (``checkup`` for "check up"). Numbers are
    compared as words, so ``"09:00"`` is grounded by "nine o'clock" or by an earlier
    output that lists ``09:00``.

    - ``tool_args_grounded`` (bool, per tool call with at least one checked value): 1 when
      every checked value is grounded; ``detail`` names the others. A misheard word the
      agent then used is grounded (it heard it): that is the recogniser's error, which the
      word error rate measures; a value nobody said is the dialog's.

    A call without tool calls, or whose tool calls have no checked value, gets no Score.
    Values the agent derives legitimately ("tomorrow" -> a weekday) are not grounded by this
    definition: gate the rate, not single calls.
    """

    name = "tool_args"
    metrics = (
        MetricInfo(
            "tool_args_grounded",
            UNIT_BOOL,
            "every argument of a tool call was heard from the caller or read from a tool",
            c.SPAN_FUNCTION_TOOL,
            c.LAYER_CONVERSATIONAL,
        ),
    )

    def __init__(self, ignore: Iterable[str] = ("reason",), min_chars: int = 2) -> None:
        self.ignore = frozenset(ignore)
        self.min_chars = min_chars

    def evaluate(self, instance: Instance) -> list[Score]:
        calls = instance.tool_calls
        if not calls:
            return []
        turn_of = span_turns(instance)
        heard_by_turn = [(t.index, normalize(t.agent_heard or "")) for t in instance.turns]
        out = []
        for tc in calls:
            checked = [
                (path, norm)
                for path, text in _values(tc.arguments, self.ignore)
                if len(norm := normalize(text)) >= self.min_chars
            ]
            if not checked:
                continue
            turn = turn_of.get(tc.span.key)
            heard = [h for i, h in heard_by_turn if turn is None or i <= turn]
            outputs = [
                normalize(o.output or "")
                for o in calls
                if o is not tc and o.span.end_ns <= tc.span.start_ns and not o.is_error
            ]
            evidence = " ".join([*heard, *outputs]).split()
            joined = "".join(evidence)
            missing = [
                f"{path}={value!r}"
                for path, value in checked
                if not _contains(evidence, joined, value)
            ]
            out.append(
                Score(
                    "tool_args_grounded",
                    0.0 if missing else 1.0,
                    UNIT_BOOL,
                    span=tc.span.name,
                    layer=tc.span.layer,
                    turn=turn,
                    detail=(
                        f"{tc.name}: not heard from the caller nor read from a tool: "
                        + ", ".join(missing)
                        if missing
                        else tc.name
                    ),
                )
            )
        return out


CLAIM_PATTERNS: tuple[str, ...] = (
    r"\byou(?:'re| are) all set\b",
    r"\b(?:is|are|has been|have been|was|were|now) (?:now |all )?"
    r"(?:booked|confirmed|scheduled|reserved|cancelled|canceled|rescheduled)\b",
    r"\bi(?:'ve| have) (?:booked|confirmed|scheduled|reserved|cancelled|canceled)\b",
    r"\bconfirmation (?:number|code)\b",
)
"""Phrases (regular expressions over normalised text) that claim a completed action."""


def _completed(a: Action) -> bool:
    return a.mutating is True and a.approval != c.APPROVAL_DENIED and a.status != c.STATUS_ERROR


class ClaimsBacked(BaseEvaluator):
    """Whether the agent's confirmations are backed by an action, across layers.

    An agent utterance (as in :class:`~harness.evaluators.LoopDetection`) *claims* a
    completed action when its normalised text matches one of ``patterns`` (default
    :data:`CLAIM_PATTERNS`: "you're all set", "is booked", "has been confirmed", "I have
    booked", "confirmation number", ...). A claim is *backed* when the call has at least
    one completed mutating action in any layer: a span with ``action.mutating = true``
    whose ``action.approval`` is not ``denied`` and whose status is not error (the
    background agent's ``create_booking``, for the reference deployment).

    - ``unbacked_claims`` (count, per call): the claims of a call without any completed
      mutating action; ``detail`` quotes the first. 0 when every claim is backed, or there
      is none.

    A call without spans (no trace: the actions cannot be seen) or in which the agent
    never spoke gets no Score, and so does a call of a deployment that records no actions
    at all: no ``action.*`` span in the call, and the caller side-file does not say
    ``actions_expected`` (the harness sets it once a call of the session has shown one). An
    agent without action spans (most zero-code agents) is not judged on what it cannot show.
    One completed action backs every claim of the call, so a second, invented confirmation
    after a real one is not seen.
    """

    name = "claims"
    metrics = (
        MetricInfo(
            "unbacked_claims",
            UNIT_COUNT,
            "the agent confirmed an action no layer performed",
            layer=c.LAYER_CONVERSATIONAL,
        ),
    )

    def __init__(self, patterns: Iterable[str] = CLAIM_PATTERNS) -> None:
        self.patterns = tuple(patterns)
        self._pattern = re.compile("|".join(f"(?:{p})" for p in self.patterns))

    def evaluate(self, instance: Instance) -> list[Score]:
        if not instance.spans:
            return []
        expected = (instance.caller or {}).get("actions_expected") is True
        if not instance.actions and not expected:
            return []
        utterances = agent_utterances(instance)
        if not utterances:
            return []
        claims = [u for u in utterances if self._pattern.search(normalize(u.text))]
        done = [a for a in instance.actions if _completed(a)]
        unbacked = claims if not done else []
        detail = ""
        if unbacked:
            detail = (
                f"turn {unbacked[0].turn}: {unbacked[0].text!r}, and no layer performed a "
                "mutating action"
            )
        elif claims:
            detail = f"{len(claims)} claims, backed by {', '.join(a.name for a in done)}"
        return [
            Score(
                "unbacked_claims",
                float(len(unbacked)),
                UNIT_COUNT,
                layer=c.LAYER_CONVERSATIONAL,
                detail=detail,
            )
        ]


FALLBACK_PATTERNS: tuple[str, ...] = (
    r"\bi (?:can't|cannot|can not|am unable to|'m unable to|am not able to|'m not able to) "
    r"(?:help|assist|do that)\b",
    r"\bi(?:'m| am) (?:not sure|afraid) i can(?:'t|not)? help\b",
    r"\bi don't know how to (?:help|do that)\b",
    r"\b(?:that's|that is) (?:not something|beyond what) i can\b",
)
"""Phrases (regular expressions over normalised text) of an unhelpful fallback reply."""


class FallbackReplies(BaseEvaluator):
    """How often the agent answered with an unhelpful fallback.

    An agent utterance (as in :class:`~harness.evaluators.LoopDetection`) is a fallback when
    its normalised text matches one of ``patterns`` (default :data:`FALLBACK_PATTERNS`:
    "I can't help with that", "I'm unable to assist", "I can't do that", "I don't know how
    to help", ...). Asking the caller to repeat is a clarifying question, not a fallback.

    - ``fallback_reply`` (bool, per utterance): 1 for a fallback; ``detail`` quotes it.
    - ``fallback_rate`` (ratio, per call): fallbacks / utterances.

    An agent that never spoke gets no Score.
    """

    name = "fallbacks"
    metrics = (
        MetricInfo(
            "fallback_reply",
            UNIT_BOOL,
            "one agent utterance was an unhelpful fallback",
            layer=c.LAYER_CONVERSATIONAL,
        ),
        MetricInfo(
            "fallback_rate",
            UNIT_RATIO,
            "share of a call's agent utterances that were fallbacks",
            layer=c.LAYER_CONVERSATIONAL,
        ),
    )

    def __init__(self, patterns: Iterable[str] = FALLBACK_PATTERNS) -> None:
        self.patterns = tuple(patterns)
        self._pattern = re.compile("|".join(f"(?:{p})" for p in self.patterns))

    def evaluate(self, instance: Instance) -> list[Score]:
        utterances = agent_utterances(instance)
        if not utterances:
            return []
        out = []
        for u in utterances:
            hit = bool(self._pattern.search(normalize(u.text)))
            out.append(
                Score(
                    "fallback_reply",
                    1.0 if hit else 0.0,
                    UNIT_BOOL,
                    layer=c.LAYER_CONVERSATIONAL,
                    turn=u.turn,
                    detail=repr(u.text) if hit else "",
                )
            )
        n = sum(1 for s in out if s.value)
        out.append(
            Score(
                "fallback_rate",
                n / len(out),
                UNIT_RATIO,
                layer=c.LAYER_CONVERSATIONAL,
                detail=f"{n} of {len(out)} agent utterances were fallbacks",
            )
        )
        return out
