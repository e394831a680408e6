"""A CallPlan is a scenario rendered to audio: what the caller sends, turn by turn.

Rendering picks each turn's voice, speaks its behaviours (a hesitation, a
self-correction), applies its audio conditions with a per-turn seed, and resamples to the
call's 48 kHz. The same scenario and seed always give the same samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

import numpy as np

from harness.audio.clip import Clip
from harness.core.errors import ScenarioError
from harness.scenario.model import CallExpect, Expect, Scenario, Timeouts, Turn
from harness.voices.base import TTSCacheMiss

CALL_RATE = 48000
# Samples quieter than this (linear, ~ -40 dBFS) count as silence when finding speech bounds.
SPEECH_FLOOR = 0.01
CORRECTION_PHRASE = "no, sorry"


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
    pause_before_s: float = 0.0
    barge_in_ms: int | None = None
    spoken_text: str | None = None  # what is really said, fillers and corrections included
    conditions: tuple[dict[str, Any], ...] = ()
    voice: str | None = None

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
    agent_name: str | None  # None: the scenario has no `agent`; see resolve_agent_name
    turns: tuple[PlannedTurn, ...]
    timeouts: Timeouts
    greeting: Expect | None = None
    agent_speaks_first: bool = True
    seed: int = 0
    expect: CallExpect | None = None

    @property
    def workflow_timeout_s(self) -> float | None:
        """How long after hang-up the after-call workflow may take, if it is expected."""
        steps = self.expect.after_call if self.expect else []
        return max((s.within for s in steps), default=None)

    def with_agent(self, agent_name: str) -> CallPlan:
        return replace(self, agent_name=agent_name)


def _voice(spec: Any, scenario: Scenario, *loc: str | int) -> Synthesizer:
    from harness.voices import default_voice, voice_from_spec

    if spec is None:
        return default_voice()
    base = scenario.path.parent if scenario.path else None
    try:
        return voice_from_spec(spec, base_dir=base, field=None)
    except ScenarioError as exc:
        raise scenario.error(exc.reason, *loc) from None


def _chain(spec: Any, scenario: Scenario, *loc: str | int):
    from harness.audio import parse_conditions

    try:
        return parse_conditions(spec, field="conditions")
    except ScenarioError as exc:
        sub = getattr(exc, "loc", ())
        raise scenario.error(exc.reason, *loc, *sub) from None


def _speak(voice: Synthesizer, turn: Turn) -> tuple[Clip, str]:
    """The turn's speech with its behaviours, and the words really spoken."""
    assert turn.say is not None
    parts: list[Clip | float] = []
    words: list[str] = []
    if turn.self_correct:
        parts += [voice.synthesize(turn.self_correct), 0.25, voice.synthesize(CORRECTION_PHRASE)]
        parts.append(0.3)
        words += [turn.self_correct, CORRECTION_PHRASE]
    if turn.hesitate:
        said = turn.say.split()
        cut = turn.hesitate.after_word or max(1, len(said) // 2)
        head, tail = " ".join(said[:cut]), " ".join(said[cut:])
        parts += [voice.synthesize(head), voice.synthesize(turn.hesitate.filler)]
        parts.append(turn.hesitate.pause_ms / 1000)
        words += [head, turn.hesitate.filler]
        if tail:
            parts.append(voice.synthesize(tail))
            words.append(tail)
    else:
        parts.append(voice.synthesize(turn.say))
        words.append(turn.say)
    rate = next(p.rate for p in parts if isinstance(p, Clip))
    clips = [p if isinstance(p, Clip) else Clip.silence(p, rate) for p in parts]
    return clips[0].concat(*clips[1:]), " ".join(words)


def render_plan(
    scenario: Scenario,
    voice: Synthesizer | None = None,
    *,
    conditions: Any = None,
    seed: int | None = None,
) -> CallPlan:
    """Render every ``say`` turn. ``voice`` and ``conditions`` override the scenario's own
    (for sweeps such as one scenario under several presets); ``seed`` its seed."""
    seed = scenario.seed if seed is None else seed
    call_voice = voice or _voice(scenario.voice, scenario, "voice")
    override = _chain(conditions, scenario, "conditions") if conditions is not None else None
    call_chain = (
        override if override is not None else _chain(scenario.conditions, scenario, "conditions")
    )
    turns = []
    for i, turn in enumerate(scenario.turns, start=1):
        loc = ("turns", i - 1)
        common = dict(
            expect=turn.expect,
            pause_before_s=turn.pause_before_ms / 1000,
            barge_in_ms=turn.barge_in_ms,
        )
        if turn.say is None:
            assert turn.silence_ms is not None
            turns.append(
                PlannedTurn(i, "silence", None, silence_s=turn.silence_ms / 1000, **common)
            )
            continue
        turn_voice = _voice(turn.voice, scenario, *loc, "voice") if turn.voice else call_voice
        chain = call_chain
        if turn.conditions is not None and override is None:
            chain = _chain(turn.conditions, scenario, *loc, "conditions")
        try:
            clip, spoken = _speak(turn_voice, turn)
            clip = chain.apply(clip, seed * 1000 + i).resample(CALL_RATE)
        except TTSCacheMiss as miss:  # infrastructure: the suite was not rendered
            raise miss.for_turn(i) from None
        except ScenarioError:
            raise
        except Exception as exc:
            raise scenario.error(f"cannot render this turn's audio: {exc}", *loc, "say") from exc
        turns.append(
            PlannedTurn(
                i,
                "say",
                turn.say,
                audio=clip,
                spoken_text=spoken,
                conditions=tuple(chain.describe()),
                voice=str(getattr(turn_voice, "key", "")) or None,
                **common,
            )
        )
    return CallPlan(
        scenario_id=scenario.id,
        agent_name=scenario.agent,
        turns=tuple(turns),
        timeouts=scenario.timeouts,
        greeting=scenario.greeting,
        agent_speaks_first=scenario.agent_speaks_first,
        seed=seed,
        expect=scenario.expect,
    )
