"""Built-in evaluators on hand-built Instances: a realistic call, an empty call, an agent
that never spoke, and missing spans."""

from __future__ import annotations

import json
import math
import wave
from pathlib import Path

import numpy as np
import pytest

from harness import evaluators as ev
from harness.evaluators import (
    AudioHealth,
    ClarifyingQuestions,
    Cost,
    EndState,
    EvaluatorError,
    Interruptions,
    Latency,
    LLMJudge,
    LoopDetection,
    Risk,
    Score,
    TaskCompletion,
    ToolSuccess,
    WordErrorRate,
    Workflow,
)
from harness.evaluators.conversation import similarity
from harness.evaluators.judge import parse_judgement
from harness.evaluators.text import normalize, number_to_words, ordinal_to_words
from harness.trace import conventions as c
from harness.trace.instance import Instance
from harness.trace.otlp import load_instance
from tests.fixtures.instances.build import CLINIC_DIR, T0, Builder, clinic_10_turns
from tests.support.recording import RATE, tone, write_stereo

EXPECTED = {
    "tool_called": {"name": "request_booking", "args": {"day": "Monday", "time": "11:00"}},
    "action_done": "write_booking",
}
PRICES = {
    "currency": "USD",
    "llm": {"clinic-rules": {"input_per_million": 1.0, "output_per_million": 4.0}},
    "tts_per_million_chars": 15.0,
}


def by_name(scores: list[Score]) -> dict[str, list[Score]]:
    out: dict[str, list[Score]] = {}
    for s in scores:
        out.setdefault(s.name, []).append(s)
    return out


def all_builtins() -> list:
    return ev.default_evaluators(
        {
            "task_completion": {"expected": EXPECTED},
            "cost": {"prices": PRICES},
        }
    )


@pytest.fixture(scope="module")
def clinic() -> Instance:
    return load_instance(CLINIC_DIR)


def empty_call() -> Instance:
    return Instance("conv-empty")


def silent_agent_call() -> Instance:
    """The caller spoke three turns; the agent heard them but never answered."""
    b = Builder("conv-silent")
    session = b.span(c.SPAN_AGENT_SESSION, T0, T0 + 30)
    turns = []
    for k, text in enumerate(["Hello?", "Is anyone there?", "Hello, can you hear me?"], start=1):
        start = T0 + 8 * k
        b.span(
            c.SPAN_USER_TURN,
            start + 0.1,
            start + 1.5,
            parent=session,
            lk__pii__user_transcript=text.lower().strip("?"),
            lk__end_of_turn_delay=0.4,
        )
        turns.append(
            {
                "index": k,
                "kind": "say",
                "text": text,
                "caller_start": start,
                "caller_end": start + 1.2,
                "agent_onset": None,
                "agent_offset": None,
                "response_latency_ms": None,
                "agent_speech_ms": 0.0,
                "agent_said": "",
                "agent_heard": "",
            }
        )
    return b.instance({"conversation_id": "conv-silent", "started_at": T0, "turns": turns})


def caller_only_call() -> Instance:
    """The trace never arrived: only the caller's side-file (missing spans)."""
    inst = clinic_10_turns()
    return Instance(
        "conv-clinic-10", (), caller=inst.caller, complete=False, incomplete_reason="no spans"
    )


# --- the fixture and the registry ----------------------------------------------------------------


def test_committed_fixture_matches_its_builder(clinic):
    assert clinic == clinic_10_turns()
    assert len(clinic.turns) == 11


def test_every_builtin_copes_with_empty_silent_and_missing_span_calls():
    for inst in (empty_call(), silent_agent_call(), caller_only_call()):
        scores = ev.evaluate(inst, all_builtins())
        assert all(isinstance(s, Score) and math.isfinite(s.value) for s in scores)
    empty = by_name(ev.evaluate(empty_call(), all_builtins()))
    # an empty call only fails the task; nothing else can be measured
    assert set(empty) == {"task_completed"}
    assert empty["task_completed"][0].value == 0.0


def test_registry_lists_builtins_and_builds_with_parameters():
    names = ev.available()
    for name in (
        "latency",
        "wer",
        "task_completion",
        "tool_success",
        "interruptions",
        "loops",
        "clarifications",
        "workflow",
        "risk",
        "cost",
        "audio",
        "llm_judge",
    ):
        assert name in names
    tc = ev.get_evaluator("task_completion", expected={"tool_called": "request_booking"})
    assert isinstance(tc, TaskCompletion)
    with pytest.raises(EvaluatorError, match="unknown evaluator"):
        ev.get_evaluator("no_such_thing")
    with pytest.raises(EvaluatorError, match="bad parameters"):
        ev.get_evaluator("loops", threshold=2.0)
    # the judge needs a callable and a rubric, so it is not in the defaults
    assert not any(isinstance(e, LLMJudge) for e in ev.default_evaluators())


def test_decorator_registers_a_plain_function(clinic):
    @ev.evaluator("test_turn_count")
    def turn_count(instance):
        yield Score("test_turn_count", len(instance.turns), "count")

    try:
        assert "test_turn_count" in ev.available()
        scores = ev.evaluate(clinic, [ev.get_evaluator("test_turn_count")])
        assert scores == [Score("test_turn_count", 11.0, "count")]
        assert turn_count(clinic)[0].value == 11.0
        with pytest.raises(ValueError, match="already registered"):
            ev.register("test_turn_count", turn_count)
        with pytest.raises(ValueError, match="built-in"):
            ev.register("latency", turn_count)
    finally:
        ev.unregister("test_turn_count")
    assert "test_turn_count" not in ev.available()


def test_entry_points_plug_in_and_broken_ones_are_named(monkeypatch):
    from importlib import metadata

    good = metadata.EntryPoint(
        "team_latency", "harness.evaluators.latency:Latency", ev.ENTRY_POINT_GROUP
    )
    fn = metadata.EntryPoint(
        "team_fn", "tests.unit.test_evaluators:plugin_function", ev.ENTRY_POINT_GROUP
    )
    bad = metadata.EntryPoint("team_broken", "no_such_module_xyz:thing", ev.ENTRY_POINT_GROUP)

    def fake(group=None, **_):
        assert group == ev.ENTRY_POINT_GROUP
        return [good, fn]

    monkeypatch.setattr(metadata, "entry_points", fake)
    ev.reload_entry_points()
    try:
        assert {"team_latency", "team_fn"} <= set(ev.available())
        assert isinstance(ev.get_evaluator("team_latency"), Latency)
        scores = ev.evaluate(empty_call(), [ev.get_evaluator("team_fn")])
        assert scores == [Score("plugin", 1.0, "bool")]
        monkeypatch.setattr(metadata, "entry_points", lambda group=None, **_: [bad])
        ev.reload_entry_points()
        with pytest.raises(EvaluatorError, match=r"team_broken.*failed to load"):
            ev.available()
    finally:
        ev.reload_entry_points()


def plugin_function(instance):
    return [Score("plugin", True, "bool")]


def test_evaluate_wraps_a_raising_evaluator():
    class Broken:
        name = "broken"

        def evaluate(self, instance):
            raise KeyError("oops")

    with pytest.raises(EvaluatorError, match="'broken': raised KeyError"):
        ev.evaluate(empty_call(), [Broken()])


def test_score_rejects_non_finite_and_converts_bools():
    with pytest.raises(ValueError, match="finite"):
        Score("x", math.nan, "ms")
    assert Score("x", True, "bool").value == 1.0
    s = Score("x", 3, "count", span="llm_node", turn=2, detail="d")
    assert Score.from_dict(s.to_dict()) == s


# --- latency -------------------------------------------------------------------------------------


def test_latency_on_the_realistic_call(clinic):
    got = by_name(Latency().evaluate(clinic))
    assert len(got["e2e_latency"]) == 10  # the greeting has no e2e latency
    assert len(got["llm_ttft"]) == 11 and len(got["tts_ttfb"]) == 11
    first = next(s for s in got["e2e_latency"] if s.turn == 1)
    assert first.value == pytest.approx(940.0) and first.unit == "ms" and first.span == "agent_turn"
    greeting_ttft = next(s for s in got["llm_ttft"] if s.turn == 0)
    assert greeting_ttft.value == pytest.approx(210.0) and greeting_ttft.layer == "conversational"
    assert [s.turn for s in got["response_latency"]] == list(range(1, 11))
    assert got["response_latency"][0].value == pytest.approx(940.0)
    assert got["end_of_turn_delay"][0].value == pytest.approx(330.0)
    assert got["end_of_turn_delay"][0].span == "user_turn"
    assert got["transcription_delay"][-1].value == pytest.approx(230.0)


def test_latency_skips_missing_and_malformed_attributes():
    b = Builder()
    a = b.span(c.SPAN_AGENT_TURN, T0, T0 + 1, lk__e2e_latency="fast")  # not a number
    b.span(c.SPAN_LLM_NODE, T0, T0 + 1, parent=a, lk__response__ttft=math.nan)
    b.span(c.SPAN_TTS_NODE, T0, T0 + 1, parent=a)  # no ttfb at all
    b.span(c.SPAN_LLM_NODE, T0 + 2, T0 + 3, lk__response__ttft=0.5)  # outside every turn
    got = by_name(Latency().evaluate(b.instance()))
    assert set(got) == {"llm_ttft"}
    assert got["llm_ttft"][0].value == pytest.approx(500.0)


def test_latency_of_empty_silent_and_caller_only_calls():
    assert Latency().evaluate(empty_call()) == []
    silent = by_name(Latency().evaluate(silent_agent_call()))
    assert set(silent) == {"end_of_turn_delay"}  # it heard, never answered
    caller_only = by_name(Latency().evaluate(caller_only_call()))
    assert set(caller_only) == {"response_latency"}
    assert len(caller_only["response_latency"]) == 10


# --- WER -----------------------------------------------------------------------------------------


def test_normalisation():
    assert normalize("The 11 o'clock one, please!") == "the eleven o'clock one please"
    assert normalize("On the 3rd at 10:30") == "on the third at ten thirty"
    assert normalize("Twenty-One") == "twenty one"
    assert (
        normalize("1,250 and 2.5%") == "one thousand two hundred fifty and two point five percent"
    )
    assert normalize("call 0420") == "call zero four two zero"
    assert normalize("12345") == "one two three four five"
    assert normalize("“Quoted” — 'text'") == "quoted text"
    assert normalize(None) == ""
    assert number_to_words(0) == "zero"
    assert number_to_words(105) == "one hundred five"
    assert number_to_words(9999) == "nine thousand nine hundred ninety nine"
    assert ordinal_to_words(1) == "first"
    assert ordinal_to_words(22) == "twenty second"
    assert ordinal_to_words(40) == "fortieth"
    assert ordinal_to_words(112) == "one hundred twelfth"
    with pytest.raises(ValueError):
        number_to_words(10_000)


def test_wer_on_the_realistic_call(clinic):
    got = by_name(WordErrorRate().evaluate(clinic))
    per_turn = {s.turn: s.value for s in got["turn_wer"]}
    assert len(per_turn) == 10
    assert per_turn[4] == 0.0  # "11 o'clock" heard as "eleven o'clock": numbers as words
    assert per_turn[5] == pytest.approx(1 / 3)  # "maria" heard as "marie"
    assert got["wer"][0].value == pytest.approx(1 / 46)
    assert got["wer"][0].unit == "ratio"


def test_wer_empty_hypothesis_counts_only_when_transcripts_are_observable():
    inst = clinic_10_turns()
    turns = [dict(t) for t in inst.caller["turns"]]
    caller = {**inst.caller, "turns": turns}
    spans = tuple(s for s in inst.spans if s.name != c.SPAN_USER_TURN)
    # the agent heard turn 3 as nothing, other turns normally
    turns[3]["agent_heard"] = ""
    got = by_name(WordErrorRate().evaluate(Instance("conv-clinic-10", spans, caller=caller)))
    assert {s.turn: s.value for s in got["turn_wer"]}[3] == 1.0
    # no transcript anywhere: unknown, not 100 % wrong
    for t in turns:
        t["agent_heard"] = ""
    assert WordErrorRate().evaluate(Instance("conv-clinic-10", spans, caller=caller)) == []


def test_wer_of_empty_silent_and_production_calls():
    assert WordErrorRate().evaluate(empty_call()) == []
    silent = by_name(WordErrorRate().evaluate(silent_agent_call()))
    assert [s.value for s in silent["turn_wer"]] == [0.0, 0.0, 0.0]
    production = Instance("p", clinic_10_turns().spans)  # no caller: no reference text
    assert WordErrorRate().evaluate(production) == []


# --- task completion -----------------------------------------------------------------------------


def test_task_completed_and_turns_to_completion(clinic):
    got = by_name(TaskCompletion(EXPECTED).evaluate(clinic))
    assert got["task_completed"][0].value == 1.0
    assert got["turns_to_completion"][0].value == 8.0
    assert got["turns_to_completion"][0].turn == 8


def test_task_not_completed_names_what_is_missing(clinic):
    wrong_day = {"tool_called": {"name": "request_booking", "args": {"day": "tuesday"}}}
    got = TaskCompletion(wrong_day).evaluate(clinic)
    assert [(s.name, s.value) for s in got] == [("task_completed", 0.0)]
    assert "request_booking" in got[0].detail and "tuesday" in got[0].detail
    approved_only = TaskCompletion({"action_done": {"name": "write_booking", "approved": True}})
    assert approved_only.evaluate(clinic)[0].value == 1.0
    missing = TaskCompletion({"action_done": ["write_booking", "send_sms"]}).evaluate(clinic)
    assert missing[0].value == 0.0 and "send_sms" in missing[0].detail


def test_failed_tool_call_does_not_complete_the_task():
    b = Builder()
    a = b.span(c.SPAN_AGENT_TURN, T0, T0 + 2)
    b.span(
        c.SPAN_FUNCTION_TOOL,
        T0 + 0.1,
        T0 + 0.2,
        parent=a,
        lk__function_tool__name="request_booking",
        lk__pii__function_tool__arguments='{"day": "monday"}',
        lk__function_tool__is_error=True,
    )
    got = TaskCompletion({"tool_called": "request_booking"}).evaluate(b.instance())
    assert got[0].value == 0.0


def test_task_completion_parameters():
    from harness.scenario.model import ToolExpectation

    state = EndState.parse(ToolExpectation(name="check_availability", args={"day": "monday"}))
    assert state.tools[0].name == "check_availability"
    assert TaskCompletion().evaluate(clinic_10_turns()) == []  # no expected state, no score
    with pytest.raises(ValueError, match="unknown key"):
        EndState.parse({"tool_call": "x"})
    # numbers compare numerically, text case-insensitively
    from harness.evaluators.task import args_match

    assert args_match({"n": 3, "day": "MONDAY"}, {"n": "3", "day": "monday", "extra": 1})
    assert not args_match({"n": 3}, {"n": "4"})
    assert not args_match({"n": 3}, "not a mapping")


# --- tool success, interruptions, loops, clarifications ------------------------------------------


def test_tool_success(clinic):
    got = by_name(ToolSuccess().evaluate(clinic))
    assert [s.value for s in got["tool_success"]] == [1.0, 1.0]
    assert got["tool_success_rate"][0].value == 1.0
    b = Builder()
    a = b.span(c.SPAN_AGENT_TURN, T0, T0 + 2)
    b.span(c.SPAN_FUNCTION_TOOL, T0 + 0.1, T0 + 0.2, parent=a, lk__function_tool__name="ok_tool")
    b.span(
        c.SPAN_FUNCTION_TOOL,
        T0 + 0.3,
        T0 + 0.4,
        parent=a,
        lk__function_tool__name="bad_tool",
        status=c.STATUS_ERROR,
        lk__pii__function_tool__output="timeout",
    )
    got = by_name(ToolSuccess().evaluate(b.instance()))
    assert [s.value for s in got["tool_success"]] == [1.0, 0.0]
    assert "bad_tool failed: timeout" in got["tool_success"][1].detail
    assert got["tool_success_rate"][0].value == 0.5
    for inst in (empty_call(), silent_agent_call(), caller_only_call()):
        assert ToolSuccess().evaluate(inst) == []


def test_interruptions():
    b = Builder()
    b.span(c.SPAN_AGENT_TURN, T0, T0 + 1, lk__interrupted=False)
    b.span(
        c.SPAN_AGENT_TURN,
        T0 + 2,
        T0 + 3,
        lk__interrupted=True,
        lk__interruption__source="audio_activity",
    )
    b.span(c.SPAN_AGENT_TURN, T0 + 4, T0 + 5, lk__interrupted=False)
    b.span(c.SPAN_AGENT_TURN, T0 + 6, T0 + 7)  # no attribute: left out
    got = by_name(Interruptions().evaluate(b.instance()))
    assert [s.value for s in got["interrupted"]] == [0.0, 1.0, 0.0]
    assert got["interrupted"][1].detail == "source: audio_activity"
    assert got["interruption_rate"][0].value == pytest.approx(1 / 3)
    for inst in (empty_call(), silent_agent_call(), caller_only_call()):
        assert Interruptions().evaluate(inst) == []


def _agent_says(*texts: str) -> Instance:
    b = Builder()
    for k, text in enumerate(texts):
        b.span(c.SPAN_AGENT_TURN, T0 + 5 * k, T0 + 5 * k + 2, lk__pii__response__text=text)
    return b.instance()


def test_loop_detection():
    loop = _agent_says(
        "Shall I book Monday at 11 for a cleaning?",
        "Sorry, I didn't get that.",
        "Shall I book Monday at eleven for a cleaning?",
    )
    got = by_name(LoopDetection().evaluate(loop))
    assert got["repeated_utterances"][0].value == 1.0
    assert got["loop_detected"][0].value == 1.0
    assert "turn" in got["loop_detected"][0].detail
    assert similarity("Shall I book Monday at 11?", "shall i book monday at eleven") == 1.0
    fine = by_name(LoopDetection().evaluate(_agent_says("Okay.", "Okay.", "Which day suits you?")))
    assert fine["loop_detected"][0].value == 0.0  # "okay" is too short to be a loop
    strict = LoopDetection(min_repeats=2).evaluate(loop)
    assert by_name(strict)["loop_detected"][0].value == 0.0
    assert by_name(LoopDetection().evaluate(clinic_10_turns()))["loop_detected"][0].value == 0.0
    for inst in (empty_call(), silent_agent_call()):
        assert LoopDetection().evaluate(inst) == []
    # missing spans: utterances come from the caller's transcript of the agent
    assert by_name(LoopDetection().evaluate(caller_only_call()))["loop_detected"][0].value == 0.0


def test_clarifying_questions():
    inst = _agent_says(
        "Which day would suit you?",
        "Sorry, could you repeat that?",
        "I didn't catch the time. Did you say eleven?",
        "Booked.",
    )
    got = ClarifyingQuestions().evaluate(inst)
    assert [(s.name, s.value) for s in got] == [("clarifying_questions", 2.0)]
    assert ClarifyingQuestions().evaluate(clinic_10_turns())[0].value == 0.0
    assert ClarifyingQuestions().evaluate(silent_agent_call()) == []
    assert ClarifyingQuestions().evaluate(empty_call()) == []


# --- workflow and risk ---------------------------------------------------------------------------


def test_workflow(clinic):
    got = by_name(Workflow().evaluate(clinic))
    assert got["workflow_completed"][0].value == 1.0
    assert got["workflow_duration"][0].value == pytest.approx(1600.0)
    assert got["workflow_completed"][0].layer == "workflow"
    assert "summarise" in got["workflow_completed"][0].detail

    b = Builder()
    root = b.span("after_call", T0, T0 + 2, layer=c.LAYER_WORKFLOW)
    b.span("summarise", T0, T0 + 1, parent=root, layer=c.LAYER_WORKFLOW)
    b.span(
        "write_outbox",
        T0 + 1,
        T0 + 2,
        parent=root,
        layer=c.LAYER_WORKFLOW,
        status=c.STATUS_ERROR,
        status_message="database is locked",
    )
    got = Workflow().evaluate(b.instance())
    assert [(s.name, s.value) for s in got] == [("workflow_completed", 0.0)]
    assert "write_outbox: database is locked" in got[0].detail

    assert Workflow().evaluate(empty_call()) == []
    required = Workflow(required=True).evaluate(caller_only_call())
    assert required[0].value == 0.0 and "no spans" in required[0].detail


def test_risk_per_layer(clinic):
    got = Risk().evaluate(clinic)
    assert [(s.name, s.layer, s.value) for s in got] == [
        ("mutating_actions", "background", 1.0),
        ("unapproved_mutations", "background", 0.0),
        ("unapproved_mutations", "conversational", 0.0),  # ran, mutated nothing
        ("unapproved_mutations", "workflow", 0.0),
    ]
    b = Builder()
    for name, approval in (
        ("write_a", "approved"),
        ("write_b", "skipped"),
        ("write_c", None),
        ("write_d", "denied"),
    ):
        attrs = {"action__name": name, "action__mutating": True}
        if approval:
            attrs["action__approval"] = approval
        b.span(f"action {name}", T0, T0 + 1, layer=c.LAYER_BACKGROUND, **attrs)
    b.span(
        "action read",
        T0,
        T0 + 1,
        layer=c.LAYER_CONVERSATIONAL,
        action__name="read",
        action__mutating=False,
    )
    got = {(s.name, s.layer): s for s in Risk().evaluate(b.instance())}
    assert got["mutating_actions", "background"].value == 4.0
    assert (
        got["unapproved_mutations", "background"].value == 2.0
    )  # skipped and missing; denied is fine
    assert "write_b" in got["unapproved_mutations", "background"].detail
    assert got["mutating_actions", "conversational"].value == 0.0
    for inst in (empty_call(), caller_only_call()):
        assert Risk().evaluate(inst) == []
    # a layer that ran without acting scores 0: a gate per layer has its sample
    assert [(s.name, s.layer, s.value) for s in Risk().evaluate(silent_agent_call())] == [
        ("unapproved_mutations", "conversational", 0.0)
    ]


# --- cost ----------------------------------------------------------------------------------------


def test_cost_with_a_price_table(clinic):
    got = by_name(Cost(PRICES).evaluate(clinic))
    assert got["llm_input_tokens"][0].value == 11 * 420
    assert got["llm_output_tokens"][0].value == 11 * 18
    chars = sum(len(s.attributes[c.LK_PII_TTS_INPUT_TEXT]) for s in clinic.find(c.SPAN_TTS_NODE))
    assert got["tts_characters"][0].value == chars
    expected = (11 * 420 * 1.0 + 11 * 18 * 4.0 + chars * 15.0) / 1e6
    assert got["cost"][0].value == pytest.approx(expected)
    assert got["cost"][0].unit == "usd"


def test_cost_left_out_when_anything_is_unpriced(clinic):
    no_tts = {**PRICES, "tts_per_million_chars": None}
    got = by_name(Cost(no_tts).evaluate(clinic))
    assert "cost" not in got and "TTS characters" in got["llm_input_tokens"][0].detail
    other_model = {"llm": {"gpt-x": {"input_per_million": 1.0}}, "tts_per_million_chars": 1.0}
    assert "cost" not in by_name(Cost(other_model).evaluate(clinic))
    wildcard = {"llm": {"*": {"input_per_million": 1.0}}, "tts_per_million_chars": 0.0}
    assert by_name(Cost(wildcard).evaluate(clinic))["cost"][0].value == pytest.approx(
        11 * 420 / 1e6
    )
    assert "cost" not in by_name(Cost().evaluate(clinic))
    with pytest.raises(ValueError, match="price table"):
        Cost({"currency": "USD", "llm_price": 3})


def test_cost_counts_tokens_once_and_reads_tts_metrics():
    b = Builder()
    node = b.span(
        c.SPAN_LLM_NODE,
        T0,
        T0 + 1,
        gen_ai__usage__input_tokens=100,
        gen_ai__usage__output_tokens=10,
    )
    b.span(
        "llm_request",
        T0,
        T0 + 1,
        parent=node,
        gen_ai__usage__input_tokens=100,
        gen_ai__usage__output_tokens=10,
    )
    tts = b.span(c.SPAN_TTS_NODE, T0 + 1, T0 + 2)  # text redacted
    b.span(
        "tts_request",
        T0 + 1,
        T0 + 2,
        parent=tts,
        lk__tts_metrics=json.dumps({"characters_count": 42}),
    )
    got = by_name(
        Cost(
            {
                "llm": {"*": {"input_per_million": 1e6, "output_per_million": 1e6}},
                "tts_per_million_chars": 1e6,
            }
        ).evaluate(b.instance())
    )
    assert got["llm_input_tokens"][0].value == 100  # not 200
    assert got["tts_characters"][0].value == 42
    assert got["cost"][0].value == pytest.approx(100 + 10 + 42)
    for inst in (empty_call(), silent_agent_call(), caller_only_call()):
        assert Cost(PRICES).evaluate(inst) == []


# --- audio ---------------------------------------------------------------------------------------


def _audio_call(recording: Path, turns: list[dict], interrupted: bool | None = None) -> Instance:
    b = Builder("conv-audio")
    if interrupted is not None:
        b.span(
            c.SPAN_AGENT_TURN,
            T0 + 1.5,
            T0 + 2.0,
            lk__interrupted=interrupted,
            lk__pii__response__text=turns[0]["agent_said"],
        )
    caller = {"conversation_id": "conv-audio", "started_at": T0, "turns": turns}
    return b.instance(caller, recording=str(recording))


def _turn(index: int, start: float | None, said: str, kind: str = "say") -> dict:
    return {
        "index": index,
        "kind": kind,
        "text": "hello" if kind == "say" else None,
        "caller_start": None if start is None else T0 + start,
        "caller_end": None,
        "agent_said": said,
        "agent_heard": "hello",
    }


def test_audio_dead_air_and_clipping(tmp_path):
    path = write_stereo(
        tmp_path / "call.wav",
        left=[(0.5, tone(1.0))],
        right=[(2.0, tone(1.5)), (8.0, np.sign(tone(1.0)) * 1.0)],  # a clipped square wave
        length=10.0,
    )
    got = by_name(AudioHealth().evaluate(_audio_call(path, [_turn(1, 0.5, "")])))
    # silence on both channels from 3.5 s to 8.0 s
    assert got["dead_air_longest"][0].value == pytest.approx(4500, abs=20)
    assert got["dead_air_count"][0].value == 1.0
    # 1 s of the agent's 2.5 s of speech is a full-scale square wave
    assert got["clipping_ratio"][0].value == pytest.approx(0.4, abs=0.02)
    clean = write_stereo(tmp_path / "clean.wav", [(0.5, tone(1.0))], [(1.7, tone(1.5, 0.5))], 4.0)
    got = by_name(AudioHealth().evaluate(_audio_call(clean, [_turn(1, 0.5, "")])))
    assert got["clipping_ratio"][0].value == 0.0
    assert got["dead_air_count"][0].value == 0.0
    assert got["dead_air_longest"][0].value < 300


def test_audio_truncated_speech(tmp_path):
    ten_words = "Your appointment is booked for Monday at eleven in the morning."
    path = write_stereo(
        tmp_path / "call.wav",
        left=[(1.0, tone(1.0)), (6.0, tone(1.0))],
        right=[(2.5, tone(0.6)), (7.5, tone(3.5))],  # 0.6 s for ten words: cut off
        length=12.0,
    )
    turns = [_turn(1, 1.0, ten_words), _turn(2, 6.0, ten_words)]
    got = by_name(AudioHealth().evaluate(_audio_call(path, turns)))
    assert [(s.turn, s.value) for s in got["truncated_speech"]] == [(1, 1.0), (2, 0.0)]
    assert got["truncated_turns"][0].value == 1.0
    assert "600 ms of agent audio for 11 words" in got["truncated_speech"][0].detail
    # an interrupted turn was cut short on purpose: not checked
    got = by_name(AudioHealth().evaluate(_audio_call(path, turns, interrupted=True)))
    assert [s.turn for s in got["truncated_speech"]] == [2]


def test_audio_without_a_usable_recording(tmp_path):
    assert AudioHealth().evaluate(empty_call()) == []
    missing = _audio_call(tmp_path / "nope.wav", [_turn(1, 0.5, "")])
    assert AudioHealth().evaluate(missing) == []
    mono = tmp_path / "mono.wav"
    with wave.open(str(mono), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(b"\x00\x00" * RATE)
    assert AudioHealth().evaluate(_audio_call(mono, [_turn(1, 0.5, "")])) == []
    silent = write_stereo(tmp_path / "silent.wav", [], [], 2.0)
    assert AudioHealth().evaluate(_audio_call(silent, [_turn(1, 0.5, "")])) == []


def test_audio_agent_never_spoke(tmp_path):
    path = write_stereo(tmp_path / "call.wav", [(0.5, tone(1.0)), (9.0, tone(1.0))], [], 11.0)
    got = by_name(AudioHealth().evaluate(_audio_call(path, [_turn(1, 0.5, ""), _turn(2, 9.0, "")])))
    assert got["dead_air_longest"][0].value == pytest.approx(7500, abs=20)
    assert "clipping_ratio" not in got and "truncated_speech" not in got


# --- LLM judge -----------------------------------------------------------------------------------


def test_judge_with_a_fake_model(clinic):
    prompts = []

    def complete(prompt: str) -> str:
        prompts.append(prompt)
        return 'Here you go: {"score": 4, "reason": "booked, but asked twice"}'

    judge = LLMJudge(complete, "The agent books the appointment politely.", name="politeness")
    got = judge.evaluate(clinic)
    assert got == [
        Score("politeness", 4.0, "points", layer="conversational", detail="booked, but asked twice")
    ]
    assert "The agent books the appointment politely." in prompts[0]
    assert "Caller: Hi, I'd like to book a cleaning." in prompts[0]
    assert "Tool: request_booking(" in prompts[0]
    norm = LLMJudge(complete, "rubric", normalize=True).evaluate(clinic)
    assert norm[0].value == pytest.approx(0.75) and norm[0].unit == "ratio"
    assert "(the call is empty)" in LLMJudge(complete, "r").prompt(empty_call())


def test_judge_parsing_and_failures(clinic):
    assert parse_judgement("Score: 3\nThe agent was fine.") == (
        3.0,
        "Score: 3\nThe agent was fine.",
    )
    assert parse_judgement('{"score": "2.5"}') == (2.5, "")
    assert parse_judgement("no number here") is None
    with pytest.raises(EvaluatorError, match="no score"):
        LLMJudge(lambda p: "I cannot grade this.", "rubric").evaluate(clinic)
    with pytest.raises(EvaluatorError, match="outside the scale"):
        LLMJudge(lambda p: '{"score": 9}', "rubric").evaluate(clinic)
    with pytest.raises(ValueError, match="rubric"):
        LLMJudge(lambda p: "", "  ")


def test_templated_answers_with_different_facts_are_not_a_loop() -> None:
    from harness.evaluators.conversation import similarity

    a = "On Tuesday we have openings at nine AM, eleven AM and two PM. Which time works for you?"
    b = (
        "On Thursday we have openings at nine thirty AM, eleven AM and three thirty PM. "
        "Which time works for you?"
    )
    loop = "Just to confirm, you would like Thursday, is that right?"
    assert similarity(a, b) < 0.95 <= similarity(loop, loop + " ")
