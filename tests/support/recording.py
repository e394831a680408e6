"""The stereo recording of a call: the caller on the left as sent, the agent on the right;
checked on a real call, or built from tones for the evaluators that read it."""

from __future__ import annotations

import wave
from collections.abc import Sequence
from pathlib import Path

import numpy as np

RATE = 16_000


def tone(seconds: float, amplitude: float = 0.3, freq: float = 220.0) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    return amplitude * np.sin(2 * np.pi * freq * t)


def write_stereo(
    path: Path,
    left: Sequence[tuple[float, np.ndarray]],
    right: Sequence[tuple[float, np.ndarray]],
    length: float,
) -> Path:
    """A 16-bit stereo WAV of ``length`` seconds with each ``(at, signal)`` placed."""
    n = int(length * RATE)
    chans = np.zeros((n, 2))
    for ch, parts in ((0, left), (1, right)):
        for at, sig in parts:
            i = round(at * RATE)
            chans[i : i + len(sig), ch] = sig[: n - i]
    pcm = np.clip(np.round(chans * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(pcm.tobytes())
    return path


def assert_caller_left_agent_right(outcome) -> None:
    """Each side is loud on its own channel while it speaks, and the other channel is
    quiet then; one call on an idle host has no gaps in the caller's audio."""
    with wave.open(str(outcome.artifacts / "recording.wav")) as w:
        assert (w.getnchannels(), w.getframerate()) == (2, 48000)
        pcm = np.frombuffer(w.readframes(w.getnframes()), np.int16).reshape(-1, 2) / 32768
    res = outcome.result
    t0 = res.started_at

    def rms(ch: int, a: float, b: float) -> float:
        seg = pcm[int((a - t0) * 48000) : int((b - t0) * 48000), ch]
        return float(np.sqrt(np.mean(seg**2))) if len(seg) else 0.0

    for turn in res.turns:
        assert turn.caller_underrun_ms == 0.0, turn
        if turn.kind == "say":
            assert rms(0, turn.caller_start, turn.caller_end) > 0.01, turn
            assert rms(1, turn.caller_start + 0.2, turn.caller_end - 0.2) < 0.003, turn
        if turn.agent_onset:
            assert rms(1, turn.agent_onset, turn.agent_offset) > 0.01, turn
            assert rms(0, turn.agent_onset + 0.1, turn.agent_offset) < 0.003, turn
