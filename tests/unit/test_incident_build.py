"""Building the fixture's caller turns: redacted text, timing, and the audio each replays."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.incident.build import OFFLINE_VOICE, build_turns, mark_findings, timing
from harness.incident.classify import Check, Finding
from harness.incident.estimate import Recording
from harness.incident.redact import RedactionConfig, Redactor
from harness.incident.turns import CallerTurn, CallerTurns
from harness.trace.instance import Word

RATE = 16_000


def turn(
    index: int,
    text: str | None,
    start: float | None,
    end: float | None,
    *,
    kind: str = "say",
    words: tuple[Word, ...] = (),
    barge: float | None = None,
    said: str | None = None,
    onset: float | None = None,
    offset: float | None = None,
) -> CallerTurn:
    return CallerTurn(index, kind, text, start, end, words, barge, said, onset, offset)  # type: ignore[arg-type]


def recording(speech: list[tuple[float, float]], seconds: float = 20.0) -> Recording:
    """A stereo recording from epoch 0 with a 440 Hz caller on the left where ``speech``."""
    samples = np.zeros((int(seconds * RATE), 2), dtype=np.int16)
    for a, b in speech:
        i, j = int(a * RATE), int(b * RATE)
        samples[i:j, 0] = (3000 * np.sin(2 * np.pi * 440 * np.arange(j - i) / RATE)).astype(
            np.int16
        )
    return Recording(Path("call.wav"), RATE, samples, 0, 0.0)


def build(read: CallerTurns, rec: Recording | None, warnings: list[str] | None = None):
    out = Path("/fixtures/scenarios/incidents")
    audio = Path("/fixtures/audio_fixtures/incidents/INC-1")
    redactor = Redactor(RedactionConfig())
    return build_turns(
        read, rec, redactor, "silence", out, audio, [] if warnings is None else warnings
    )


# --- timing -----------------------------------------------------------------------------------


def test_the_pause_is_counted_from_the_end_of_the_agents_speech():
    prev = turn(1, "hi", 1.0, 2.0, said="Hello.", onset=2.5, offset=4.0)
    assert timing(turn(2, "ok", 4.88, 5.5), prev, recorded=False) == (880, None)
    assert timing(turn(2, "ok", 4.88, 5.5), prev, recorded=True) == (730, None)  # lead kept
    assert timing(turn(2, "ok", 4.88, 5.5), None, recorded=False) == (0, None)  # the first


def test_a_caller_who_starts_while_the_agent_speaks_barges_in():
    prev = turn(1, "hi", 1.0, 2.0, said="Let me check.", onset=2.5, offset=6.0)
    assert timing(turn(2, "wait", 3.7, 4.0), prev, recorded=False) == (0, 1200)
    assert timing(turn(2, "wait", 3.7, 4.0), prev, recorded=True) == (0, 1050)
    measured = turn(2, "wait", 3.7, 4.0, barge=900.0)  # the synthetic caller's own figure
    assert timing(measured, prev, recorded=False) == (0, 900)
    # within 50 ms of the end the caller waited: a pause, not a barge-in
    assert timing(turn(2, "ok", 5.96, 6.5), prev, recorded=False) == (0, None)


@given(
    start=st.floats(0, 1e6), onset=st.floats(0, 1e6), speech=st.floats(0, 1e4),
    prev_end=st.floats(0, 1e6), recorded=st.booleans(), barge=st.none() | st.floats(-1e4, 1e9),
)  # fmt: skip
def test_timing_is_never_negative_nor_unbounded(start, onset, speech, prev_end, recorded, barge):
    prev = turn(1, "hi", prev_end - 1, prev_end, said="x", onset=onset, offset=onset + speech)
    pause, barge_in = timing(turn(2, "x", start, start + 1, barge=barge), prev, recorded)
    assert 0 <= pause <= 120_000 and pause % 10 == 0
    assert barge_in is None or (0 <= barge_in <= 60_000 and pause == 0)


# --- turns ------------------------------------------------------------------------------------


def test_without_a_recording_turns_are_redacted_text_and_silences():
    greeting = turn(0, None, None, None, kind="greeting", said="Hello, Mr. Patel.")
    read = CallerTurns(
        (
            turn(1, "my number is 415 555 0199", 1.0, 2.0, said="Thank you, Maria."),
            turn(2, None, 3.0, 5.5, kind="silence"),
            turn(3, "   ", 6.0, 7.0),  # nothing said, nothing recorded
            turn(4, "bye", 8.0, 9.0),
        ),
        greeting,
        False,
    )
    warnings: list[str] = []
    built = build(read, None, warnings)
    assert [t.say for t in built.turns] == ["my number is 555-0100", None, "bye"]
    assert built.turns[1].silence_ms == 2500
    assert all(t.voice is None for t in built.turns) and built.clips == ()
    assert built.turns[0].notes == ('agent (greeting): "Hello, Mr. <NAME>."',)
    assert built.turns[0].trailing == ("redacted: PHONE x1 (spoken as synthetic values)",)
    assert built.turns[1].notes == ('agent: "Thank you, <NAME>."',)
    assert warnings == ["caller turn 3 has no transcript and no audio; it is left out"]
    assert built.position_of == {1: 1, 2: 2, 4: 3} and built.estimate is None


def test_recorded_turns_keep_their_audio_with_redacted_words_silenced():
    phone = "my number is 555 123 4567"
    words = tuple(Word(w, 4.0 + 0.4 * i, 4.0 + 0.4 * i + 0.35) for i, w in enumerate(phone.split()))
    read = CallerTurns(
        (turn(1, "hi there", 1.0, 2.0), turn(2, phone, 4.0, 6.4, words=words)), None, False
    )
    built = build(read, recording([(1.0, 2.0), (4.0, 6.4)]))
    assert [t.voice["engine"] for t in built.turns] == ["recorded", "recorded"]
    assert built.turns[0].voice["turns"] == ["../../audio_fixtures/incidents/INC-1/turn-1.wav"]
    assert [c.name for c in built.clips] == ["turn-1.wav", "turn-2.wav"]
    assert built.audio_paths[1] == Path("/fixtures/audio_fixtures/incidents/INC-1/turn-2.wav")
    clip = built.clips[1].samples  # cut from 3.85 s
    number = slice(int((5.2 - 3.85) * RATE), int((6.35 - 3.85) * RATE))
    assert not np.any(clip[number]) and np.any(clip[: int((5.1 - 3.85) * RATE)])
    assert "redacted words replaced by silence in the audio" in built.turns[1].trailing
    assert built.estimate is not None
    # no agent speech in between: from the caller's previous end, less the lead kept
    assert built.turns[1].pause_before_ms == 1850


def test_audio_holding_redacted_words_no_timing_locates_is_never_kept():
    read = CallerTurns((turn(1, "my number is 555 123 4567", 1.0, 3.0),), None, False)
    built = build(read, recording([(1.0, 3.0)]))
    assert built.clips == ()
    (only,) = built.turns
    assert only.voice == OFFLINE_VOICE and only.say == "my number is 555-0100"
    assert "no word timings locate" in " ".join(only.trailing)


def test_a_turn_with_no_caller_audio_at_its_time_uses_the_offline_voice():
    read = CallerTurns((turn(1, "hello", 1.0, 2.0), turn(2, "anyone", 5.0, 6.0)), None, False)
    warnings: list[str] = []
    built = build(read, recording([(1.0, 2.0)]), warnings)
    assert built.turns[0].voice["engine"] == "recorded" and built.turns[1].voice == OFFLINE_VOICE
    assert warnings[0].startswith("turn 2: no caller audio in the recording at its time")


def test_findings_are_marked_on_the_reply_that_failed():
    greeting = turn(0, None, None, None, kind="greeting", said="Hello")
    read = CallerTurns((turn(1, "a", 1.0, 2.0), turn(5, "b", 3.0, 4.0)), greeting, False)
    built = build(read, None)
    check = Check("loop", "loop_detected", ">=", 1, "loops")
    findings = [
        Finding(check, 1.0, "count", 0, None, ""),  # the greeting
        Finding(check, 1.0, "count", 5, None, ""),
        Finding(check, 1.0, "count", 9, None, ""),  # a turn that was left out: nowhere
        Finding(check, 1.0, "count", None, None, ""),  # the whole call: nowhere
    ]
    marked = mark_findings(built, findings, greeting)
    described = "loops: loop_detected = 1 (turn {}) (>= 1)"
    assert marked.turns[0].notes[-1] == f"production (greeting): {described.format(0)}"
    assert marked.turns[1].trailing == (f"production: {described.format(5)} on the reply",)
    assert marked.turns[0].trailing == built.turns[0].trailing
    assert built.turns[1].trailing == ()  # the built turns are not changed in place


@pytest.mark.parametrize("fill_kind", ["silence", "tone"])
def test_the_fill_is_the_configured_one(fill_kind):
    phone = "call 555 123 4567"
    words = tuple(Word(w, 1.0 + 0.5 * i, 1.4 + 0.5 * i) for i, w in enumerate(phone.split()))
    read = CallerTurns((turn(1, phone, 1.0, 3.0, words=words),), None, False)
    built = build_turns(
        read, recording([(1.0, 3.0)]), Redactor(), fill_kind, Path("/o"), Path("/a/INC"), []
    )
    assert f"redacted words replaced by {fill_kind} in the audio" in built.turns[0].trailing
