"""The recording on the trace's clock, and the caller's turns cut out of it.

Its first sample's time comes from ``recording_start=`` (epoch seconds), else the caller
side-file's ``started_at``, else the session's start (:attr:`Instance.session_start`)
refined by lining the caller's voice activity up with the ``user_turn`` spans
(:func:`~harness.incident.estimate.align_offset`, within 60 s).

Each caller turn is cut between its bounds, :data:`LEAD_PAD_S` before its start and
:data:`TAIL_PAD_S` after its end, never overlapping the turn before it and ending 50 ms
before the next turn starts. Redacted words are located in a cut by their word timings
(:func:`word_ranges`).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.incident.estimate import Recording, align_offset, read_recording
from harness.incident.redact import Redacted, Redactor
from harness.incident.turns import CallerTurn
from harness.trace import conventions as c
from harness.trace.instance import Instance, Word, number

__all__ = [
    "LEAD_PAD_S",
    "TAIL_PAD_S",
    "Cut",
    "Placement",
    "cut_turns",
    "has_caller_audio",
    "place_recording",
    "word_ranges",
]

LEAD_PAD_S = 0.15
"""Audio kept before the caller's speech start in a cut turn."""
TAIL_PAD_S = 0.25
"""Audio kept after the caller's speech end in a cut turn."""
NEXT_GAP_S = 0.05
"""A cut ends at least this long before the next turn starts."""
MIN_TURN_AUDIO_S = 0.1
"""A cut shorter than this holds no usable caller audio."""
SILENT_DBFS = -60.0
"""A cut whose peak is below this holds no caller audio."""
WORD_PAD_S = 0.03
"""Audio redacted on each side of a located word."""

_NS = 1_000_000_000


@dataclass(frozen=True)
class Placement:
    """The recording with its start on the trace's clock, and how it got there."""

    recording: Recording
    alignment: str
    """``", aligned by +1.30 s to the user_turn spans"`` when it was lined up, else ``""``."""


@dataclass(frozen=True, eq=False)
class Cut:
    """One caller turn's audio: int16 samples from ``start`` (epoch seconds) on."""

    start: float
    samples: np.ndarray


def _user_speech(instance: Instance) -> list[tuple[float, float]]:
    """Where the agent heard the caller (epoch seconds): each user_turn span, less the
    end-of-turn delay the agent waited after the speech ended."""
    return [
        (u.start_ns / _NS, u.end_ns / _NS - (number(u.get(c.LK_END_OF_TURN_DELAY)) or 0.0))
        for u in instance.find(c.SPAN_USER_TURN)
    ]


def place_recording(
    instance: Instance,
    recording: Path | None,
    caller_channel: int | None,
    recording_start: float | None,
    warnings: list[str],
) -> Placement | None:
    """The call's recording (``recording``, else the instance's own) placed on the trace's
    clock; None without one. Raises :class:`IncidentError` for an unreadable file."""
    path = Path(recording) if recording is not None else instance.recording_path
    if path is None:
        return None
    if recording is None and not path.is_file():
        warnings.append("the instance names a recording that is not there; turns use TTS")
        return None
    rec = read_recording(path, caller_channel)
    if rec.channels == 1:
        warnings.append("mono recording: the cut turns may contain the agent's voice as well")
    start = recording_start if recording_start is not None else instance.caller_started_at
    if start is not None:
        return Placement(rec.with_start(start), "")
    anchor = instance.session_start
    rec = rec.with_start(anchor if anchor is not None else 0.0)
    shift = align_offset(rec, _user_speech(instance))
    return Placement(
        rec.with_start(rec.start + shift), f", aligned by {shift:+.2f} s to the user_turn spans"
    )


def cut_bounds(turns: Sequence[CallerTurn]) -> dict[int, tuple[float, float]]:
    """Each spoken turn's cut (epoch seconds), by turn index; turns that leave no room are
    left out."""
    out: dict[int, tuple[float, float]] = {}
    prev_end = -math.inf
    for i, t in enumerate(turns):
        if t.kind != "say" or t.start is None:
            continue
        end = t.end if t.end is not None else t.start
        a = max(t.start - LEAD_PAD_S, prev_end)
        b = end + TAIL_PAD_S
        nxt = next((u.start for u in turns[i + 1 :] if u.start is not None), None)
        if nxt is not None:
            b = min(b, nxt - NEXT_GAP_S)
        if b > a:
            out[t.index] = (a, b)
            prev_end = b
    return out


def cut_turns(rec: Recording, turns: Sequence[CallerTurn]) -> dict[int, Cut]:
    """Each spoken turn's caller audio, by turn index (see :func:`cut_bounds`)."""
    return {i: Cut(a, rec.cut(a, b)) for i, (a, b) in cut_bounds(turns).items()}


def has_caller_audio(samples: np.ndarray, rate: int) -> bool:
    """Whether a cut is long enough and loud enough to be the caller speaking."""
    if len(samples) < MIN_TURN_AUDIO_S * rate or len(samples) == 0:
        return False
    peak = float(np.max(np.abs(samples.astype(np.int32)))) / 32768.0
    return peak != 0.0 and 20 * math.log10(peak) >= SILENT_DBFS


def word_ranges(
    words: Sequence[Word], redacted: Redacted, redactor: Redactor, cut_start: float, rate: int
) -> list[tuple[int, int]] | None:
    """The sample ranges of a cut that hold the redacted words, or None when the word
    timings cannot locate them (no timings, or the words do not hold what the transcript's
    redaction found, kind for kind)."""
    if not words:
        return None
    joined, offsets = "", []
    for w in words:
        if joined:
            joined += " "
        offsets.append((len(joined), len(joined) + len(w.text), w.start, w.end))
        joined += w.text
    found = redactor.find(joined)
    if Counter(m.kind for m in found) != redacted.kinds:
        return None
    ranges = []
    for m in found:
        times = [(s, e) for a, b, s, e in offsets if a < m.end and b > m.start]
        if not times:
            return None
        t0 = min(s for s, _ in times) - WORD_PAD_S
        t1 = max(e for _, e in times) + WORD_PAD_S
        ranges.append((round((t0 - cut_start) * rate), round((t1 - cut_start) * rate)))
    return ranges
