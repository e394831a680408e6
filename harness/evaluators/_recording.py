"""Reading a call's stereo recording (left: caller as sent, right: agent as received) in
10 ms frames, and placing the caller's turns on it: what the audio evaluators share."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

import numpy as np

from harness.evaluators.audio import read_stereo
from harness.trace.instance import number

if TYPE_CHECKING:
    from harness.trace.instance import Instance, Turn

FRAME_MS = 10
SILENT_DBFS = -200.0
"""The level given to a frame of digital silence (instead of minus infinity)."""


def frame_dbfs(samples: np.ndarray, frame: int) -> np.ndarray:
    """RMS level in dBFS of each whole ``frame`` of 16-bit samples (1-D)."""
    n = len(samples) // frame
    if n == 0:
        return np.zeros(0)
    x = samples[: n * frame].astype(np.float64).reshape(n, frame) / 32768.0
    power = np.mean(x * x, axis=1)
    with np.errstate(divide="ignore"):
        db = 10.0 * np.log10(power)
    return np.where(power > 0, db, SILENT_DBFS)


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``(start, end)`` (end exclusive) of each run of True in ``mask``."""
    if mask.size == 0:
        return []
    padded = np.concatenate(([False], mask.astype(bool), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b)) for a, b in zip(edges[0::2], edges[1::2], strict=True)]


def bridged(spans: list[tuple[int, int]], gap: int) -> list[tuple[int, int]]:
    """Runs joined where fewer than ``gap`` frames separate them."""
    out: list[tuple[int, int]] = []
    for a, b in spans:
        if out and a - out[-1][1] < gap:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
    return out


@dataclass(frozen=True)
class TurnWindow:
    """Where one turn lies on the recording, in frames: from its start (the caller's
    ``caller_start``; the recording's start for the greeting) to the next turn's start (or
    the recording's end)."""

    turn: Turn
    start: int
    end: int


class Recording:
    """One call's recording in 10 ms frames. :meth:`of` gives None when the instance has no
    usable recording (missing, not 16-bit stereo WAV)."""

    def __init__(self, rate: int, pcm: np.ndarray, started_at: float | None) -> None:
        self.rate = rate
        self.pcm = pcm
        self.frame = max(1, rate * FRAME_MS // 1000)
        self.started_at = started_at

    @classmethod
    def of(cls, instance: Instance) -> Recording | None:
        path = instance.recording_path
        if path is None:
            return None
        audio = read_stereo(path)
        if audio is None:
            return None
        rate, pcm = audio
        return cls(rate, pcm, number((instance.caller or {}).get("started_at")))

    @property
    def frames(self) -> int:
        return len(self.pcm) // self.frame

    @cached_property
    def caller_db(self) -> np.ndarray:
        return frame_dbfs(self.pcm[:, 0], self.frame)

    @cached_property
    def agent_db(self) -> np.ndarray:
        return frame_dbfs(self.pcm[:, 1], self.frame)

    def windows(self, instance: Instance) -> list[TurnWindow]:
        """Each turn that can be placed on the recording (needs ``started_at`` in the
        caller side-file), in order."""
        if self.started_at is None:
            return []
        turns = instance.turns
        starts: list[float | None] = [
            t.caller_start if t.caller_start is not None else (self.started_at if k == 0 else None)
            for k, t in enumerate(turns)
        ]
        end_s = self.started_at + self.frames * FRAME_MS / 1000
        out = []
        for k, t in enumerate(turns):
            begin = starts[k]
            if begin is None:
                continue
            end = next((s for s in starts[k + 1 :] if s is not None), end_s)
            lo = max(0, round((begin - self.started_at) * 1000 / FRAME_MS))
            hi = min(self.frames, round((end - self.started_at) * 1000 / FRAME_MS))
            if hi > lo:
                out.append(TurnWindow(t, lo, hi))
        return out
