"""A CallPlan is a scenario rendered to audio: what the caller sends, turn by turn."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

import numpy as np

from harness.audio.clip import Clip
from harness.scenario import Expect, Scenario, Timeouts
from harness.voices.base import TTSCacheMiss

CALL_RATE = 48000
# Samples quieter than this (linear, ~ -40 dBFS) count as silence when finding speech bounds.
SPEECH_FLOOR = 0.01


class Synthesizer(Protocol):
    def synthesize(self, text: str) -> Clip: ...


@dataclass(frozen=True)
class PlannedTurn:
    """One caller turn. ``index`` counts from 1; the agent's greeting is turn 0."""

    index: int
    kind: Literal["say", "silence"]
    text: str | None
    expect: Expect | None
    audio: Clip | None = field(default=None, repr=False)
    silence_s: float = 0.0

    @property
    def speech_bounds(self) -> tuple[float, float]:
        """Seconds from the clip's start to its first and last audible sample."""
        if self.audio is None:
            return (0.0, 0.0)
        loud = np.flatnonzero(np.abs(self.audio.samples) > SPEECH_FLOOR)
        if loud.size == 0:
            return (0.0, 0.0)
        return (loud[0] / self.audio.rate, (loud[-1] + 1) / self.audio.rate)


@dataclass(frozen=True)
class CallPlan:
    scenario_id: str
    agent_name: str
    turns: tuple[PlannedTurn, ...]
    timeouts: Timeouts
    greeting: Expect | None = None
    agent_speaks_first: bool = True


def render_plan(scenario: Scenario, voice: Synthesizer | None = None) -> CallPlan:
    """Synthesise every ``say`` turn with ``voice`` (default: the default offline voice)."""
    if voice is None:
        from harness.voices import default_voice

        voice = default_voice()
    turns = []
    for i, turn in enumerate(scenario.turns, start=1):
        if turn.say is not None:
            try:
                clip = voice.synthesize(turn.say).resample(CALL_RATE)
            except TTSCacheMiss as miss:  # infrastructure: the suite was not rendered
                raise miss.for_turn(i) from None
            except Exception as exc:
                raise scenario.error(
                    f"cannot render this turn's audio: {exc}", "turns", i - 1, "say"
                ) from exc
            turns.append(PlannedTurn(i, "say", turn.say, turn.expect, audio=clip))
        else:
            assert turn.silence_ms is not None
            turns.append(
                PlannedTurn(i, "silence", None, turn.expect, silence_s=turn.silence_ms / 1000)
            )
    return CallPlan(
        scenario_id=scenario.id,
        agent_name=scenario.agent,
        turns=tuple(turns),
        timeouts=scenario.timeouts,
        greeting=scenario.greeting,
        agent_speaks_first=scenario.agent_speaks_first,
    )
