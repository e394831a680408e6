"""Helpers shared by the built-in evaluators: which turn a span belongs to, the agent's
utterances, and reading numbers out of span attributes without trusting them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.trace import conventions as c

if TYPE_CHECKING:
    from harness.trace.instance import Instance, Span, Turn

_NS = 1_000_000_000


def span_turns(instance: Instance) -> dict[tuple[str, str], int]:
    """Span key -> turn index, for each turn's user_turn, agent_turns and everything under
    its agent_turns (llm_node, tts_node, function_tool, ...), and for its tool calls."""
    out: dict[tuple[str, str], int] = {}
    for t in instance.turns:
        if t.user_turn is not None:
            out[t.user_turn.key] = t.index
        for a in t.agent_turns:
            out[a.key] = t.index
            for d in instance.descendants(a):
                out.setdefault(d.key, t.index)
        for tc in t.tool_calls:
            out.setdefault(tc.span.key, t.index)
    return out


@dataclass(frozen=True)
class Utterance:
    """One thing the agent said: the text of one agent_turn span, or (without spans) the
    caller's transcript of the agent in one turn."""

    turn: int
    text: str
    span: Span | None


def agent_utterances(instance: Instance) -> list[Utterance]:
    """The agent's non-empty utterances in order: each agent_turn's ``lk.pii.response.text``
    where the trace has it, else the turn's ``agent_said`` from the caller side-file."""
    out: list[Utterance] = []
    for t in instance.turns:
        from_spans = [
            Utterance(t.index, text, a)
            for a in t.agent_turns
            if isinstance(text := a.attributes.get(c.LK_PII_RESPONSE_TEXT), str) and text.strip()
        ]
        if from_spans:
            out.extend(from_spans)
        elif t.agent_said and t.agent_said.strip():
            out.append(Utterance(t.index, t.agent_said, None))
    return out


def turn_start_ns(turn: Turn) -> int | None:
    """When a turn began: the caller's speech start, else its user_turn span, else its first
    agent_turn span."""
    if turn.caller_start is not None:
        return round(turn.caller_start * _NS)
    if turn.user_turn is not None:
        return turn.user_turn.start_ns
    if turn.agent_turns:
        return min(a.start_ns for a in turn.agent_turns)
    return None


def is_caller_turn(turn: Turn) -> bool:
    """A turn the caller took (said something or stayed silent), not the greeting."""
    return turn.kind != "greeting"
