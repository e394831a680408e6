"""Reading the caller's turns of a call: from the user_turn spans, or from a side-file."""

from __future__ import annotations

from harness.incident.turns import read_turns
from harness.trace import conventions as c
from harness.trace.instance import Word
from tests.fixtures.incidents.build import LOOP_DIALOG, T0, clinic_loop
from tests.fixtures.instances.build import Builder, clinic_10_turns


def test_a_production_trace_gives_one_turn_per_user_turn_and_a_greeting():
    instance, speech = clinic_loop()
    read = read_turns(instance)
    assert read.from_side_file is False
    assert [t.text for t in read.turns] == [said for said, *_ in LOOP_DIALOG]
    assert {t.kind for t in read.turns} == {"say"}
    assert read.greeting is not None and read.greeting.kind == "greeting"
    assert read.greeting.agent_said.startswith("Hello, thank you for calling")
    assert read.greeting.text is None and read.greeting.start is None  # nobody spoke
    first = read.turns[0]
    ut = instance.find(c.SPAN_USER_TURN)[0]
    assert (first.start, first.end) == (ut.start_ns / 1e9, ut.end_ns / 1e9)
    assert first.agent_said == "Of course. Which day would suit you?"
    # the agent's speech: its tts_node's start plus the first byte, up to the turn's end
    assert first.agent_onset is not None and first.agent_offset > first.agent_onset
    assert read.turns[4].words[-1].text == "4567"  # the recognizer's timings
    assert read.turns[0].words == ()
    assert read.turns[0].start < speech[0].start + 0.1


def test_a_side_file_gives_its_scripted_turns_timing_and_words():
    instance = clinic_10_turns()
    caller = dict(instance.caller)
    turns = [dict(t) for t in caller["turns"]]
    say = next(i for i, t in enumerate(turns) if t["kind"] == "say")
    turns[say]["words"] = [{"text": "hi", "start": turns[say]["caller_start"], "end": 1e12}]
    turns[say]["barge_in_ms"] = 120
    read = read_turns(instance.with_caller({**caller, "turns": turns}))
    assert read.from_side_file is True
    said = read.turns[say - 1]  # the side-file's greeting is kept apart
    assert said.text == (turns[say].get("spoken_text") or turns[say]["text"])
    assert said.start == turns[say]["caller_start"] and said.end == turns[say]["caller_end"]
    assert said.words == (Word("hi", turns[say]["caller_start"], 1e12),)
    assert said.barge_in_ms == 120
    assert said.agent_onset == turns[say]["agent_onset"]  # measured, not read from spans
    kinds = [t.kind for t in read.turns]
    assert "greeting" not in kinds and set(kinds) <= {"say", "silence"}


def test_a_blank_script_line_falls_back_to_what_the_agent_heard():
    instance = clinic_10_turns()
    caller = dict(instance.caller)
    turns = [dict(t) for t in caller["turns"]]
    say = next(i for i, t in enumerate(turns) if t["kind"] == "say")
    turns[say].update(text="   ", spoken_text="  ")
    read = read_turns(instance.with_caller({**caller, "turns": turns}))
    assert read.turns[say - 1].text == instance.turns[say].agent_heard


def test_a_turn_never_invents_timing():
    b = Builder("conv-x")
    b.span(c.SPAN_AGENT_TURN, T0, T0 + 2, lk__pii__response__text="Hello?")
    read = read_turns(b.instance())
    assert read.turns == () and read.greeting is not None  # no user_turn: nobody to replay
    b.span(c.SPAN_USER_TURN, T0 + 3, T0 + 4, lk__pii__user_transcript="hi")
    read = read_turns(b.instance())
    (turn,) = read.turns
    assert (turn.start, turn.end) == (T0 + 3, T0 + 4)
    assert turn.agent_onset is None and turn.agent_offset is None  # no reply, no speech
    assert turn.barge_in_ms is None
