"""The recording on the trace's clock, and the caller's turns cut out of it."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.incident.recording import (
    LEAD_PAD_S,
    NEXT_GAP_S,
    TAIL_PAD_S,
    cut_bounds,
    cut_turns,
    has_caller_audio,
    place_recording,
    word_ranges,
)
from harness.incident.redact import Redactor
from harness.incident.turns import CallerTurn, read_turns
from harness.trace.instance import Word
from tests.fixtures.incidents.build import RATE, T0, clinic_loop, stereo_recording


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    instance, speech = clinic_loop()
    path = tmp_path_factory.mktemp("rec") / "call.wav"
    return instance, speech, stereo_recording(path, speech, instance, start=T0 - 1.3)


def test_the_start_given_wins_then_the_side_file_then_alignment(loop):
    instance, _, path = loop
    warnings: list[str] = []
    given_start = place_recording(instance, path, None, T0 - 1.3, warnings)
    assert given_start is not None
    assert given_start.recording.start == T0 - 1.3 and given_start.alignment == ""
    side = instance.with_caller({"started_at": T0 - 2.0, "turns": []})
    from_side = place_recording(side, path, None, None, warnings)
    assert from_side.recording.start == T0 - 2.0 and from_side.alignment == ""
    aligned = place_recording(instance, path, None, None, warnings)
    # anchored at the session's start (T0), then shifted to line the caller's voice up
    # with the user_turn spans (which start 80 ms into the speech): about 1.3 s earlier
    assert aligned.recording.start == pytest.approx(T0 - 1.3, abs=0.1)
    shift = aligned.recording.start - T0
    assert aligned.alignment == f", aligned by {shift:+.2f} s to the user_turn spans"
    assert warnings == []


def test_no_recording_and_a_missing_one_the_instance_names(tmp_path):
    instance, _ = clinic_loop()
    warnings: list[str] = []
    assert place_recording(instance, None, None, None, warnings) is None and warnings == []
    named = instance.with_caller({"turns": []}, recording=tmp_path / "gone.wav")
    assert place_recording(named, None, None, None, warnings) is None
    assert warnings == ["the instance names a recording that is not there; turns use TTS"]


def test_cuts_hold_the_callers_speech(loop):
    instance, speech, path = loop
    placed = place_recording(instance, path, None, T0 - 1.3, [])
    read = read_turns(instance)
    cuts = cut_turns(placed.recording, read.turns)
    assert sorted(cuts) == [t.index for t in read.turns]
    for t, s in zip(read.turns, speech, strict=True):
        cut = cuts[t.index]
        assert cut.start == pytest.approx(t.start - LEAD_PAD_S)
        assert has_caller_audio(cut.samples, RATE)
        assert s.start >= cut.start  # the speech starts inside the cut


def turn(index: int, start: float | None, end: float | None, kind: str = "say") -> CallerTurn:
    return CallerTurn(index, kind, "x", start, end, (), None, None, None, None)  # type: ignore[arg-type]


@given(
    st.lists(
        st.tuples(
            st.none() | st.floats(0, 100), st.floats(0, 10), st.sampled_from(["say", "silence"])
        ),
        max_size=8,
    )
)
def test_cuts_never_overlap_and_stop_before_the_next_turn(raw):
    turns = [turn(i, s, None if s is None else s + d, kind) for i, (s, d, kind) in enumerate(raw)]
    bounds = cut_bounds(turns)
    spans = [bounds[t.index] for t in turns if t.index in bounds]
    for (_, b), (a2, _) in pairwise(spans):
        assert b <= a2  # in order, never overlapping
    for i, t in enumerate(turns):
        if t.index not in bounds:
            continue
        a, b = bounds[t.index]
        assert t.kind == "say" and t.start is not None and a < b
        assert a >= t.start - LEAD_PAD_S - 1e-9 and b <= t.end + TAIL_PAD_S + 1e-9
        nxt = next((u.start for u in turns[i + 1 :] if u.start is not None), None)
        if nxt is not None:
            assert b <= nxt - NEXT_GAP_S + 1e-9


def test_silence_turns_and_untimed_turns_are_not_cut():
    turns = [turn(0, 10.0, 11.0, "silence"), turn(1, None, None), turn(2, 20.0, 21.0)]
    assert cut_bounds(turns) == {2: (20.0 - LEAD_PAD_S, 21.0 + TAIL_PAD_S)}


def test_redacted_words_are_located_by_their_timings():
    redactor = Redactor()
    text = "my number is 555 123 4567 thanks"
    words = [Word(w, 100.0 + i, 100.0 + i + 0.5) for i, w in enumerate(text.split())]
    red = redactor.redact(text)
    ranges = word_ranges(words, red, redactor, cut_start=99.0, rate=1000)
    assert ranges == [(round((103.0 - 0.03 - 99.0) * 1000), round((105.5 + 0.03 - 99.0) * 1000))]


def test_words_that_disagree_with_the_transcript_locate_nothing():
    """Never silence a guess: when the words do not hold what the transcript's redaction
    found, the audio cannot be trusted to be redacted."""
    redactor = Redactor()
    red = redactor.redact("my number is 555 123 4567")
    misheard = [Word(w, 1.0 + i, 1.5 + i) for i, w in enumerate("my number is five".split())]
    assert word_ranges(misheard, red, redactor, 0.0, 1000) is None
    assert word_ranges([], red, redactor, 0.0, 1000) is None


def test_silent_short_and_quiet_cuts_hold_no_caller_audio():
    assert not has_caller_audio(np.zeros(RATE, dtype=np.int16), RATE)
    assert not has_caller_audio(np.full(RATE // 20, 8000, dtype=np.int16), RATE)  # 50 ms
    assert not has_caller_audio(np.full(RATE, 10, dtype=np.int16), RATE)  # below -60 dBFS
    assert not has_caller_audio(np.zeros(0, dtype=np.int16), RATE)
    assert has_caller_audio(np.full(RATE, 1000, dtype=np.int16), RATE)
