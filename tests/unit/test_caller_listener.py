import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from harness.call.caller import FRAME_SAMPLES, _AgentListener, _ChannelWriter, _Timeline

RATE = 48000


def tone(amplitude: float) -> np.ndarray:
    t = np.arange(FRAME_SAMPLES) / RATE
    return (amplitude * 32767 * np.sin(2 * np.pi * 220 * t)).astype(np.int16)


def feed(listener: _AgentListener, t0: float, pattern: list[bool]) -> None:
    for i, loud in enumerate(pattern):
        listener.feed(tone(0.3 if loud else 0.0), t0 + (i + 1) * 0.01)


def test_onsets_and_offsets_follow_the_audio() -> None:
    tl = _Timeline()
    lis = _AgentListener(tl, hangover_s=0.3)
    # 0.5 s silence, 1 s speech, 0.1 s pause (bridged), 0.5 s speech, 1 s silence, 0.2 s speech
    pattern = [False] * 50 + [True] * 100 + [False] * 10 + [True] * 50 + [False] * 100
    pattern += [True] * 20
    feed(lis, tl.t0, pattern)
    assert len(lis.speech) == 2
    (on1, off1), (on2, _) = lis.speech
    assert abs((on1 - tl.t0) - 0.50) < 1e-6
    assert abs((off1 - tl.t0) - 2.10) < 1e-6
    assert abs((on2 - tl.t0) - 3.10) < 1e-6
    assert lis.onset_after(tl.t0 + 1.0) == on2
    assert abs(lis.speech_between(tl.t0, tl.t0 + 10) - (1.6 + 0.2)) < 1e-6


def test_speaking_uses_agent_state_when_present() -> None:
    tl = _Timeline()
    lis = _AgentListener(tl, hangover_s=0.5)
    feed(lis, tl.t0, [True] * 10)
    end = tl.t0 + 0.1
    lis.state = "listening"
    assert lis.speaking(end + 0.2)
    assert not lis.speaking(end + 0.6)
    lis.state = "thinking"  # a tool call in flight: the reply has not come yet
    assert lis.speaking(end + 5)


def test_transcripts_are_assigned_by_window_and_speaker() -> None:
    tl = _Timeline()
    lis = _AgentListener(tl)
    lis.identity = "agent-1"
    t = tl.t0
    lis.on_text("SG_1", "TR_agent", "agent-1", "Hello and", t + 1)
    lis.on_text("SG_1", "TR_agent", "agent-1", "Hello and welcome.", t + 1)
    lis.on_text("SG_2", "TR_caller", "caller", "i would", t + 3)
    lis.on_text("SG_2", "TR_caller", "caller", "i would like", t + 3)
    lis.on_text("SG_3", "TR_agent", "agent-1", "What day?", t + 4)
    assert lis.text_between(t, t + 2, of_agent=True) == "Hello and welcome."
    assert lis.text_between(t + 2, t + 5, of_agent=True) == "What day?"
    assert lis.text_between(t + 2, t + 5, of_agent=False) == "i would like"


@given(st.lists(st.floats(0, 0.05), min_size=1, max_size=60))
def test_channel_writer_keeps_frames_contiguous_under_jitter(jitters: list[float]) -> None:
    w = _ChannelWriter()
    for i, j in enumerate(jitters):
        w.place(np.full(FRAME_SAMPLES, i + 1, dtype=np.int16), round((i * 0.01 + j) * RATE))
    out = w.render(len(jitters) * FRAME_SAMPLES + RATE)
    values = out[out != 0]
    # every frame is present, once, in order, with no overlap
    assert list(dict.fromkeys(values.tolist())) == list(range(1, len(jitters) + 1))
    assert len(values) == len(jitters) * FRAME_SAMPLES
