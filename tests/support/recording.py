"""The stereo recording of a call: the caller on the left as sent, the agent on the right."""

from __future__ import annotations

import wave

import numpy as np


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
