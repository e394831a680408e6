"""The caller's turns of a call, as an incident replays them.

With the synthetic caller's side-file they are its scripted turns (the text it spoke, else
what the agent heard) with its measured timing; for a production trace they are the
agent's ``user_turn`` spans (the transcript ``lk.pii.user_transcript`` and the span's start
and end). A turn without the caller's own timing takes its user_turn span's. The agent's
speech around each turn is :meth:`Instance.agent_speech`; the greeting (the agent speaking
first) is kept apart, as the turn before the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.trace.instance import Instance, Turn, Word

__all__ = ["CallerTurn", "CallerTurns", "read_turns"]

_NS = 1_000_000_000

CallerKind = Literal["say", "silence", "greeting"]


@dataclass(frozen=True)
class CallerTurn:
    """One turn of the call: what the caller said and when, and the agent's reply to it.

    Times are epoch seconds (None: unknown). A greeting has no caller side: only the
    agent's reply."""

    index: int
    """The Instance turn's index (findings name turns by it)."""
    kind: CallerKind
    text: str | None
    start: float | None
    end: float | None
    words: tuple[Word, ...]
    barge_in_ms: float | None
    """Measured by the synthetic caller, when it barged in."""
    agent_said: str | None
    agent_onset: float | None
    agent_offset: float | None


@dataclass(frozen=True)
class CallerTurns:
    """The call's caller turns in order, and the agent's greeting if it spoke first."""

    turns: tuple[CallerTurn, ...]
    greeting: CallerTurn | None
    from_side_file: bool
    """Whether a caller side-file drove the turns (else the user_turn spans did)."""


def _caller_turn(instance: Instance, t: Turn) -> CallerTurn:
    speech = instance.agent_speech(t)
    if t.kind == "greeting":
        return CallerTurn(
            t.index, "greeting", None, None, None, (), None,
            t.agent_said, speech.onset, speech.offset,
        )  # fmt: skip
    text = t.caller_said if t.caller_said and t.caller_said.strip() else t.agent_heard
    start, end = t.caller_start, t.caller_end
    if start is None and t.user_turn is not None:
        start, end = t.user_turn.start_ns / _NS, t.user_turn.end_ns / _NS
    return CallerTurn(
        index=t.index,
        kind="silence" if t.kind == "silence" else "say",
        text=text,
        start=start,
        end=end,
        words=t.words,
        barge_in_ms=t.barge_in_ms,
        agent_said=t.agent_said,
        agent_onset=speech.onset,
        agent_offset=speech.offset,
    )


def read_turns(instance: Instance) -> CallerTurns:
    """The caller's turns of ``instance`` and its greeting (the last one, if several)."""
    greeting = None
    turns = []
    for t in instance.turns:
        ct = _caller_turn(instance, t)
        if ct.kind == "greeting":
            greeting = ct
        else:
            turns.append(ct)
    return CallerTurns(tuple(turns), greeting, instance.turns_from_caller)
