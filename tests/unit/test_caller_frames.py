"""The caller hears the agent in frames of any size (LiveKit hands them over 100 ms at a
time): speech is still found 10 ms at a time, exactly as from 10 ms frames."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.call.caller import FRAME_SAMPLES, RECEIVE_MS, _AgentListener, _Timeline
from harness.plan.callplan import CALL_RATE


def blocks(pattern: list[bool]) -> np.ndarray:
    t = np.arange(FRAME_SAMPLES) / CALL_RATE
    loud = (0.3 * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)
    quiet = np.zeros(FRAME_SAMPLES, np.int16)
    return np.concatenate([loud if p else quiet for p in pattern])


def speech_of(pcm: np.ndarray, chunk: int, t0: float) -> list[list[float]]:
    lis = _AgentListener(_Timeline(), hangover_s=0.3)
    for i in range(0, len(pcm), chunk):
        part = pcm[i : i + chunk]
        lis.feed(part, t0 + (i + len(part)) / CALL_RATE)
    return lis.speech


@given(
    st.lists(st.booleans(), min_size=1, max_size=120),
    st.sampled_from([1, 2, 4, 5, 10]),
)
def test_large_frames_find_the_same_speech_as_10_ms_frames(pattern, k):
    pcm = blocks(pattern)
    ten = speech_of(pcm, FRAME_SAMPLES, 100.0)
    big = speech_of(pcm, k * FRAME_SAMPLES, 100.0)
    assert len(big) == len(ten)
    for (a_on, a_off), (b_on, b_off) in zip(ten, big, strict=True):
        assert b_on == pytest.approx(a_on, abs=1e-9) and b_off == pytest.approx(a_off, abs=1e-9)


def test_a_frame_that_is_not_a_whole_number_of_blocks():
    pcm = blocks([False, True, True])[: -FRAME_SAMPLES // 2]  # 25 ms, the last 5 ms loud
    lis = _AgentListener(_Timeline())
    lis.feed(pcm, 10.025)
    assert lis.speech == [[pytest.approx(10.01), pytest.approx(10.025)]]
    lis.feed(pcm[:0], 10.03)  # nothing: nothing changes
    assert len(lis.speech) == 1


def test_the_receive_frame_is_a_whole_number_of_10_ms_blocks():
    assert RECEIVE_MS % 10 == 0 and RECEIVE_MS >= 10
