"""The fixture's caller turns: redacted text, timing, and the recorded audio each replays.

- **say**: the turn's transcript with its personal data replaced by synthetic values of
  the same kind; ``[unintelligible]`` when only audio is left; a turn with neither is left
  out.
- **voice**: the caller's own audio cut from the recording, with redacted words silenced
  (or toned) where word timings locate them; without usable audio (silent at the turn's
  time, or redacted words no timing locates) the offline voice :data:`OFFLINE_VOICE`, with
  the caller's estimated conditions. Without a recording the fixture's voice is the
  offline one.
- **timing**: ``pause_before_ms`` from the end of the agent's previous speech, or
  ``barge_in_ms`` when the caller started while the agent spoke; for recorded turns the
  lead kept before the speech is taken off both, so the words land when they did.
- **comments**: above each turn what the agent said before it; inside it why its voice
  is what it is, what was redacted, and the failed check on the agent's reply
  (:func:`mark_findings`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from harness.incident.classify import Finding
from harness.incident.estimate import ConditionsEstimate, Recording, estimate_conditions, fill
from harness.incident.fixture import FixtureTurn
from harness.incident.recording import (
    LEAD_PAD_S,
    cut_turns,
    has_caller_audio,
    word_ranges,
)
from harness.incident.redact import Redacted, Redactor
from harness.incident.turns import CallerTurn, CallerTurns

__all__ = ["OFFLINE_VOICE", "BuiltTurns", "TurnClip", "build_turns", "mark_findings", "timing"]

OFFLINE_VOICE = "espeak:en-us"
"""The voice of caller turns that have no usable recorded audio."""

MAX_BARGE_IN_MS = 60_000
MAX_PAUSE_MS = 120_000
MAX_SILENCE_MS = 600_000
_OVERLAP_S = 0.05
"""A caller who starts this close to the end of the agent's speech waited for it."""


@dataclass(frozen=True, eq=False)
class TurnClip:
    """One recorded turn to write: ``name`` in the incident's audio folder."""

    name: str
    samples: np.ndarray


@dataclass(frozen=True)
class BuiltTurns:
    """The fixture's turns and the audio they replay."""

    turns: tuple[FixtureTurn, ...]
    clips: tuple[TurnClip, ...]
    audio_paths: tuple[Path, ...]
    position_of: Mapping[int, int]
    """Instance turn index -> 1-based position in the fixture."""
    estimate: ConditionsEstimate | None


def _ms(seconds: float) -> int:
    return round(seconds * 100) * 10


def timing(turn: CallerTurn, prev: CallerTurn | None, recorded: bool) -> tuple[int, int | None]:
    """``pause_before_ms`` and ``barge_in_ms`` for a turn, from its predecessor."""
    if turn.start is None or prev is None:
        return 0, None
    lead = LEAD_PAD_S if recorded else 0.0
    if turn.kind == "say":
        if turn.barge_in_ms is not None and turn.barge_in_ms >= 0:
            return 0, min(MAX_BARGE_IN_MS, max(0, _ms(turn.barge_in_ms / 1000 - lead)))
        on, off = prev.agent_onset, prev.agent_offset
        if on is not None and off is not None and on <= turn.start < off - _OVERLAP_S:
            return 0, min(MAX_BARGE_IN_MS, max(0, _ms(turn.start - on - lead)))
    refs = [x for x in (prev.agent_offset, prev.end if prev.kind != "greeting" else None) if x]
    if not refs:
        return 0, None
    gap = turn.start - max(refs) - lead
    return min(MAX_PAUSE_MS, max(0, _ms(gap))), None


def _relpath(target: Path, start: Path) -> str:
    return Path(os.path.relpath(target.resolve(), start.resolve())).as_posix()


def build_turns(
    read: CallerTurns,
    rec: Recording | None,
    redactor: Redactor,
    fill_kind: str,
    out_dir: Path,
    turn_audio_dir: Path,
    warnings: list[str],
) -> BuiltTurns:
    """The fixture's turns, and the recorded audio each one replays (see the module)."""
    turns: list[FixtureTurn] = []
    clips: list[TurnClip] = []
    audio_paths: list[Path] = []
    position_of: dict[int, int] = {}
    cuts = cut_turns(rec, read.turns) if rec is not None else {}
    estimate = None
    if rec is not None:
        estimate = estimate_conditions([cut.samples for cut in cuts.values()], rec.rate)
    tts_conditions = estimate.conditions() if estimate is not None else None
    greeting = read.greeting
    prev = greeting
    for t in read.turns:
        notes: list[str] = []
        trailing: list[str] = []
        if prev is not None and prev.agent_said:
            who = "agent (greeting)" if prev is greeting else "agent"
            said = redactor.redact(prev.agent_said, speaker="agent").text
            notes.append(f"{who}: {json.dumps(said, ensure_ascii=False)}")
        if t.kind == "silence":
            length = 0 if t.start is None or t.end is None else _ms(max(0.0, t.end - t.start))
            pause, _ = timing(t, prev, recorded=False)
            turns.append(
                FixtureTurn(
                    silence_ms=min(MAX_SILENCE_MS, length),
                    pause_before_ms=pause,
                    notes=tuple(notes),
                )
            )
            position_of[t.index] = len(turns)
            prev = t
            continue
        raw = (t.text or "").strip()
        red = redactor.redact(raw, style="synthetic") if raw else Redacted("")
        say = red.text.strip()
        cut = cuts.get(t.index)
        samples = cut.samples if cut is not None else None
        if cut is not None and rec is not None:
            if not has_caller_audio(cut.samples, rec.rate):
                trailing.append("no caller audio at this turn's time in the recording")
                warnings.append(
                    f"turn {len(turns) + 1}: no caller audio in the recording at its "
                    "time (check caller_channel and recording_start); it uses the offline voice"
                )
                samples = None
            elif red.changed:
                ranges = word_ranges(t.words, red, redactor, cut.start, rec.rate)
                if ranges is None:
                    trailing.append(
                        "recorded audio dropped: it holds redacted words that no word "
                        "timings locate"
                    )
                    samples = None
                else:
                    samples = fill(cut.samples, ranges, rec.rate, fill_kind)
                    trailing.append(f"redacted words replaced by {fill_kind} in the audio")
        if not say:
            if samples is None:
                warnings.append(
                    f"caller turn {t.index} has no transcript and no audio; it is left out"
                )
                continue
            say = "[unintelligible]"
        position = len(turns) + 1
        voice: Any = None
        conditions: Any = None
        if samples is not None:
            name = f"turn-{position}.wav"
            path = turn_audio_dir / name
            clips.append(TurnClip(name, samples))
            audio_paths.append(path)
            voice = {"engine": "recorded", "turns": [_relpath(path, out_dir)]}
        elif rec is not None:
            voice, conditions = OFFLINE_VOICE, tts_conditions
        if red.changed:
            kinds = ", ".join(f"{k} x{n}" for k, n in sorted(red.kinds.items()))
            trailing.insert(0, f"redacted: {kinds} (spoken as synthetic values)")
        pause, barge = timing(t, prev, recorded=samples is not None)
        turns.append(
            FixtureTurn(
                say=say,
                pause_before_ms=pause,
                barge_in_ms=barge,
                voice=voice,
                conditions=conditions,
                notes=tuple(notes),
                trailing=tuple(trailing),
            )
        )
        position_of[t.index] = position
        prev = t
    return BuiltTurns(tuple(turns), tuple(clips), tuple(audio_paths), position_of, estimate)


def mark_findings(
    built: BuiltTurns, findings: Sequence[Finding], greeting: CallerTurn | None
) -> BuiltTurns:
    """A comment on the turn whose reply failed a check (the first turn for the greeting)."""
    turns = list(built.turns)
    for f in findings:
        if f.turn is None:
            continue
        if greeting is not None and f.turn == greeting.index:
            ft = turns[0]
            turns[0] = replace(ft, notes=(*ft.notes, f"production (greeting): {f.describe()}"))
            continue
        pos = built.position_of.get(f.turn)
        if pos is not None:
            ft = turns[pos - 1]
            line = f"production: {f.describe()} on the reply"
            turns[pos - 1] = replace(ft, trailing=(*ft.trailing, line))
    return replace(built, turns=tuple(turns))
