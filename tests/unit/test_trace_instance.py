"""Instance: the span forest and its views (turns, tool calls, actions, workflow, layers)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from harness.trace import conventions as c
from harness.trace.instance import (
    LAYER_UNKNOWN,
    WORD_DURATION,
    WORD_EVENT,
    WORD_TEXT,
    AgentSpeech,
    Instance,
    Span,
    SpanEvent,
    Word,
    number,
)

T0 = 1_763_750_000.0  # epoch seconds of the call's start
CID = "c-test"
TRACE = "0af7651916cd43dd8448eb211c80319c"
_ids = iter(range(1, 1_000_000))


def ns(seconds: float) -> int:
    return round((T0 + seconds) * 1e9)


def mk(
    name: str,
    start: float,
    end: float,
    parent: Span | None = None,
    *,
    layer: str | None = "conversational",
    trace: str = TRACE,
    status: str = "unset",
    **attrs: object,
) -> Span:
    attributes = {c.CONVERSATION_ID: CID, **{k.replace("__", "."): v for k, v in attrs.items()}}
    if layer:
        attributes[c.AGENT_LAYER] = layer
    return Span(
        trace_id=trace,
        span_id=f"{next(_ids):016x}",
        parent_span_id=parent.span_id if parent else None,
        name=name,
        start_ns=ns(start),
        end_ns=ns(end),
        attributes=attributes,
        status=status,  # type: ignore[arg-type]
        resource={c.SERVICE_NAME: f"svc-{layer}"},
    )


def call_spans() -> dict[str, Span]:
    """A greeting, two caller turns with replies (one with a tool), one turn unanswered."""
    s: dict[str, Span] = {}
    s["session"] = mk("agent_session", 0.5, 40)
    s["greet"] = mk("agent_turn", 0.6, 3.0, s["session"], lk__pii__response__text="Hello!")
    s["greet_llm"] = mk("llm_node", 0.6, 1.0, s["greet"], lk__response__ttft=0.2)
    s["greet_tts"] = mk("tts_node", 0.7, 3.0, s["greet"], lk__response__ttfb=0.1)
    s["u1"] = mk(
        "user_turn",
        4.2,
        6.5,
        s["session"],
        lk__pii__user_transcript="book a cleaning",
        lk__end_of_turn_delay=0.6,
        lk__transcription_delay=0.3,
    )
    s["a1"] = mk(
        "agent_turn",
        6.2,
        10.0,
        s["session"],
        lk__pii__response__text="Tuesday at ten?",
        lk__e2e_latency=0.75,
        lk__interrupted=False,
    )
    s["a1_llm"] = mk("llm_node", 6.2, 6.9, s["a1"], lk__response__ttft=0.33)
    s["a1_tool"] = mk(
        "function_tool",
        6.9,
        7.1,
        s["a1"],
        lk__function_tool__name="check_availability",
        lk__pii__function_tool__arguments='{"day": "tuesday"}',
        lk__pii__function_tool__output='["10:00"]',
        lk__function_tool__is_error=False,
    )
    s["a1_llm2"] = mk("llm_node", 7.1, 7.5, s["a1"], lk__response__ttft=0.25)
    s["a1_tts"] = mk("tts_node", 7.5, 10.0, s["a1"], lk__response__ttfb=0.18)
    # the caller's third turn: heard, but the agent never answered
    s["u2"] = mk("user_turn", 15.1, 16.8, s["session"], lk__pii__user_transcript="are you there")
    # a barge-in: the agent's reply is interrupted by the caller's fourth turn
    s["u3"] = mk("user_turn", 20.1, 21.9, s["session"], lk__pii__user_transcript="yes")
    s["a3"] = mk(
        "agent_turn",
        21.8,
        23.0,
        s["session"],
        lk__pii__response__text="Great, I",
        lk__interrupted=True,
        lk__e2e_latency=0.9,
    )
    s["u4"] = mk("user_turn", 22.6, 24.0, s["session"], lk__pii__user_transcript="wait")
    s["a4"] = mk("agent_turn", 24.3, 26.0, s["session"], lk__pii__response__text="Sure.")
    return s


def caller_doc() -> dict:
    def turn(i, kind, text, cs, ce, onset=None, latency=None, heard=None):
        return {
            "index": i,
            "kind": kind,
            "text": text,
            "caller_start": T0 + cs,
            "caller_end": T0 + ce,
            "agent_onset": None if onset is None else T0 + onset,
            "agent_offset": None,
            "response_latency_ms": latency,
            "agent_speech_ms": None,
            "agent_said": None,
            "agent_heard": heard,
        }

    return {
        "conversation_id": CID,
        "scenario_id": "booking",
        "recording": "recording.wav",
        "started_at": T0,
        "ended_at": T0 + 30,
        "turns": [
            turn(0, "greeting", None, 0.0, 0.0, onset=1.0),
            turn(1, "say", "I'd like to book a cleaning", 4.0, 5.8, onset=6.5, latency=700.0),
            turn(2, "silence", None, 11.0, 14.0),
            turn(3, "say", "are you there", 15.0, 16.2, heard="are you there"),
            turn(4, "say", "yes", 20.0, 21.2),
            turn(5, "say", "wait", 22.5, 23.4),
        ],
        "error": None,
    }


def test_turns_follow_the_caller_script_and_read_the_agent_spans():
    spans = call_spans()
    inst = Instance(CID, tuple(spans.values()), caller=caller_doc())
    turns = inst.turns
    assert [t.index for t in turns] == [0, 1, 2, 3, 4, 5]
    assert [t.kind for t in turns] == ["greeting", "say", "silence", "say", "say", "say"]

    greet = turns[0]
    assert greet.user_turn is None
    assert greet.agent_said == "Hello!"
    assert greet.ttft_ms == 200.0 and greet.ttfb_ms == 100.0

    t1 = turns[1]
    assert t1.caller_said == "I'd like to book a cleaning"
    assert t1.agent_heard == "book a cleaning"
    assert t1.agent_said == "Tuesday at ten?"
    assert t1.user_turn == spans["u1"]
    assert t1.end_of_turn_delay_ms == 600.0
    assert t1.transcription_delay_ms == 300.0
    assert t1.ttft_ms == 330.0  # the first llm_node of the turn
    assert t1.ttfb_ms == 180.0
    assert t1.e2e_latency_ms == 750.0
    assert t1.response_latency_ms == 700.0
    assert t1.interrupted is False
    assert [tc.name for tc in t1.tool_calls] == ["check_availability"]
    assert t1.tool_calls[0].arguments == {"day": "tuesday"}

    silence = turns[2]
    assert silence.user_turn is None and silence.agent_turns == ()
    assert silence.replied is False and silence.interrupted is None

    unanswered = turns[3]
    assert unanswered.user_turn == spans["u2"]
    assert unanswered.agent_said is None and unanswered.agent_turns == ()
    assert unanswered.e2e_latency_ms is None and unanswered.ttft_ms is None
    assert unanswered.replied is False

    barged = turns[4]
    assert barged.interrupted is True and barged.agent_said == "Great, I"
    assert turns[5].agent_said == "Sure." and turns[5].user_turn == spans["u4"]
    assert inst.unmatched_user_turns == ()


def test_turns_cope_with_missing_spans():
    spans = call_spans()
    # the agent's user_turn for the first caller turn and the whole greeting never arrived
    kept = [v for k, v in spans.items() if k not in ("u1", "greet", "greet_llm", "greet_tts")]
    inst = Instance(CID, tuple(kept), caller=caller_doc())
    t0, t1 = inst.turns[0], inst.turns[1]
    assert t0.agent_said is None and t0.ttft_ms is None and t0.replied is True  # caller onset
    assert t1.user_turn is None
    assert t1.agent_heard is None  # nothing heard, and the caller had no transcript for it
    assert t1.agent_said == "Tuesday at ten?"  # the reply is still there
    assert t1.end_of_turn_delay_ms is None  # only on the missing user_turn and not on a1
    assert inst.turns[3].agent_heard == "are you there"


def test_agent_heard_falls_back_to_the_callers_transcript():
    spans = call_spans()
    kept = [v for k, v in spans.items() if k != "u2"]
    inst = Instance(CID, tuple(kept), caller=caller_doc())
    assert inst.turns[3].user_turn is None
    assert inst.turns[3].agent_heard == "are you there"  # from the caller side-file


def test_a_user_turn_nobody_said_is_reported_unmatched():
    spans = call_spans()
    noise = mk("user_turn", 12.0, 12.8, spans["session"], lk__pii__user_transcript="uh")
    inst = Instance(CID, (*spans.values(), noise), caller=caller_doc())
    assert inst.unmatched_user_turns == (noise,)
    assert inst.turns[2].user_turn is None  # the silence turn does not claim it


def test_turns_fall_back_to_order_when_clocks_disagree():
    spans = call_spans()
    doc = caller_doc()
    for t in doc["turns"]:  # the caller's clock is an hour off
        t["caller_start"] += 3600
        t["caller_end"] += 3600
    inst = Instance(CID, tuple(spans.values()), caller=doc)
    says = [t for t in inst.turns if t.kind == "say"]
    assert [t.user_turn for t in says] == [spans[k] for k in ("u1", "u2", "u3", "u4")]


def test_turns_without_a_caller_come_from_the_spans():
    spans = call_spans()
    inst = Instance(CID, tuple(spans.values()))
    turns = inst.turns
    assert [t.kind for t in turns] == ["greeting", "say", "say", "say", "say"]
    assert [t.index for t in turns] == [0, 1, 2, 3, 4]
    assert turns[0].agent_said == "Hello!"
    assert turns[1].agent_heard == "book a cleaning" and turns[1].e2e_latency_ms == 750.0
    assert turns[2].agent_said is None
    assert turns[3].interrupted is True
    assert turns[1].caller_said is None and turns[1].response_latency_ms is None


def test_an_empty_instance_has_empty_views():
    inst = Instance(CID)
    assert inst.turns == () and inst.tool_calls == () and inst.actions == ()
    assert inst.workflow == () and inst.layers == {} and inst.roots == ()


def test_forest_navigation():
    spans = call_spans()
    inst = Instance(CID, tuple(spans.values()))
    assert inst.roots == (spans["session"],)
    assert inst.parent(spans["a1_tool"]) == spans["a1"]
    assert inst.children(spans["a1"]) == (
        spans["a1_llm"],
        spans["a1_tool"],
        spans["a1_llm2"],
        spans["a1_tts"],
    )
    assert inst.ancestors(spans["a1_tool"]) == (spans["a1"], spans["session"])
    assert spans["a1_tts"] in inst.descendants(spans["session"])
    assert len(inst.descendants(spans["session"])) == len(spans) - 1
    assert inst.span(spans["u1"].span_id) == spans["u1"]
    assert inst.find("user_turn") == (spans["u1"], spans["u2"], spans["u3"], spans["u4"])


def test_instance_deduplicates_and_orders_spans():
    spans = list(call_spans().values())
    shuffled = list(reversed(spans)) + spans[:3]
    a, b = Instance(CID, tuple(spans)), Instance(CID, tuple(shuffled))
    assert a == b
    assert len(b.spans) == len(spans)
    assert [s.start_ns for s in b.spans] == sorted(s.start_ns for s in spans)


def test_duplicates_that_differ_resolve_the_same_whatever_the_order():
    s = mk("agent_turn", 1, 2)
    richer = replace(s, end_ns=s.end_ns + 5, attributes={**s.attributes, "x": 1})
    assert Instance(CID, (s, richer)).spans == Instance(CID, (richer, s)).spans == (richer,)


def test_tool_calls_parse_arguments_and_keep_bad_json_raw():
    session = mk("agent_session", 0, 10)
    good = mk(
        "function_tool",
        1,
        2,
        session,
        lk__function_tool__name="book",
        lk__function_tool__id="call_9",
        lk__pii__function_tool__arguments='{"slot": 3}',
        lk__pii__function_tool__output="ok",
        lk__function_tool__is_error=True,
    )
    bad = mk(
        "function_tool",
        3,
        4,
        session,
        status="error",
        lk__function_tool__name="cancel",
        lk__pii__function_tool__arguments="{not json",
    )
    calls = Instance(CID, (session, good, bad)).tool_calls
    assert calls[0].name == "book" and calls[0].arguments == {"slot": 3}
    assert calls[0].output == "ok" and calls[0].is_error is True and calls[0].call_id == "call_9"
    assert calls[1].arguments == "{not json" and calls[1].output is None
    assert calls[1].is_error is True  # no is_error attribute: the span status decides


def test_actions_and_layers():
    req = mk("POST /bookings", 1, 2, layer="background")
    act = mk(
        "action create_booking",
        1.1,
        1.9,
        req,
        layer="background",
        status="ok",
        action__name="create_booking",
        action__mutating=True,
        action__approval="approved",
    )
    stray = mk("something", 0, 1, layer=None)
    inst = Instance(CID, (req, act, stray))
    assert len(inst.actions) == 1
    a = inst.actions[0]
    assert (a.name, a.mutating, a.approval, a.status) == ("create_booking", True, "approved", "ok")
    assert a.service == "svc-background" and a.layer == "background"
    assert inst.layers["background"] == (req, act)
    assert inst.layers[LAYER_UNKNOWN] == (stray,)


def test_workflow_steps_are_the_roots_children():
    other_trace = "5b8efff798038103d269b633813fc60c"
    root = mk("after_call", 50, 53, layer="workflow", trace=other_trace)
    steps = [
        mk("summarize", 50.1, 51, root, layer="workflow", trace=other_trace, status="ok"),
        mk("crm_update", 51, 52, root, layer="workflow", trace=other_trace, status="error"),
    ]
    deep = mk("llm_call", 50.2, 50.9, steps[0], layer="workflow", trace=other_trace)
    inst = Instance(CID, (root, *steps, deep))
    assert inst.workflow_roots == (root,)
    assert [(w.name, w.status) for w in inst.workflow] == [
        ("summarize", "ok"),
        ("crm_update", "error"),
    ]
    assert inst.workflow[0].duration_ms == 900.0
    assert inst.layer_finished("workflow") and not inst.layer_finished("background")
    crashed = Instance(CID, tuple(steps))  # the steps ended, the root never did
    assert [s.name for s in crashed.workflow_roots] == ["summarize", "crm_update"]
    assert crashed.layer_finished("workflow") is False
    lone = mk("after_call", 60, 61, layer="workflow", trace=other_trace)
    assert [w.name for w in Instance(CID, (lone,)).workflow] == ["after_call"]


def test_with_caller_marked_incomplete_and_recording_path(tmp_path: Path):
    inst = Instance(CID, tuple(call_spans().values()))
    with_caller = inst.with_caller(caller_doc())
    assert (
        with_caller.recording == "recording.wav" and with_caller.caller["scenario_id"] == "booking"
    )
    assert with_caller.recording_path == Path("recording.wav")
    loaded_like = Instance(CID, (), recording="recording.wav", source=tmp_path)
    assert loaded_like.recording_path == tmp_path / "recording.wav"
    assert loaded_like == Instance(CID, (), recording="recording.wav")  # source is not compared
    bad = inst.marked_incomplete("after-call workflow did not complete within 15s")
    assert bad.complete is False and bad.incomplete_reason.startswith("after-call workflow")
    assert "incomplete" in repr(bad) and inst.complete is True


def test_descendants_terminate_when_parent_links_loop() -> None:
    from harness.trace.instance import Instance, Span

    a = Span("t" * 32, "a" * 16, "b" * 16, "a", 1, 2, {"conversation.id": "c"})
    b = Span("t" * 32, "b" * 16, "a" * 16, "b", 1, 2, {"conversation.id": "c"})
    inst = Instance("c", (a, b))
    assert [s.name for s in inst.descendants(a)] == ["b"]
    assert [s.name for s in inst.ancestors(a)] == ["b"]


# --- small views: numbers, words, the agent's speech, the call's identity ---------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3.0), (2.5, 2.5), (-1, -1.0), (True, None), (False, None), ("3", None), (None, None),
     (float("nan"), None), (float("inf"), None), (float("-inf"), None), ([1], None)],
)  # fmt: skip
def test_number_reads_only_finite_numbers(value, expected):
    assert number(value) == expected


def test_words_come_from_the_side_file_else_from_the_recognizer():
    spans = call_spans()
    heard = [
        SpanEvent(WORD_EVENT, ns(4.3), {WORD_TEXT: "book", WORD_DURATION: 0.4}),
        SpanEvent(WORD_EVENT, ns(4.8), {WORD_TEXT: "a", WORD_DURATION: -0.1}),  # negative
        SpanEvent(WORD_EVENT, ns(5.0), {WORD_TEXT: 7, WORD_DURATION: 0.2}),  # not text
        SpanEvent("partial", ns(5.1), {WORD_TEXT: "x", WORD_DURATION: 0.2}),  # another event
        SpanEvent(WORD_EVENT, ns(5.4), {WORD_TEXT: "cleaning", WORD_DURATION: 0.5}),
    ]
    spans["u1"] = replace(spans["u1"], events=tuple(heard))
    inst = Instance(CID, tuple(spans.values()))
    t1 = inst.turns[1]
    assert (
        t1.heard_words
        == t1.words
        == (
            Word("book", T0 + 4.3, pytest.approx(T0 + 4.7)),
            Word("cleaning", T0 + 5.4, pytest.approx(T0 + 5.9)),
        )
    )
    assert t1.caller_words == () and inst.turns[0].words == ()  # the greeting: no user_turn

    doc = caller_doc()
    doc["turns"][1]["words"] = [
        {"text": "cleaning", "start": T0 + 4.0, "end": T0 + 4.5},
        {"text": "bad", "start": T0 + 5.0, "end": T0 + 4.0},  # ends before it starts
        {"text": "x", "start": "4", "end": T0 + 4.0},  # not a number
        "garbage",
    ]
    doc["turns"][1]["barge_in_ms"] = 250
    inst = Instance(CID, tuple(spans.values()), caller=doc)
    t1 = inst.turns[1]
    assert t1.words == t1.caller_words == (Word("cleaning", T0 + 4.0, T0 + 4.5),)
    assert len(t1.heard_words) == 2  # still there, just not preferred
    assert t1.barge_in_ms == 250.0 and inst.turns[3].barge_in_ms is None


def test_agent_speech_is_measured_by_the_caller_else_read_from_the_spans():
    spans = call_spans()
    production = Instance(CID, tuple(spans.values()))
    greet, t1, unanswered = production.turns[0], production.turns[1], production.turns[2]
    # the greeting's tts_node starts at 0.7 s and its first byte came 0.1 s later
    assert production.agent_speech(greet) == AgentSpeech(pytest.approx(T0 + 0.8), T0 + 3.0)
    # a1's first tts-like descendant is its tts_node at 7.5 s (+0.18 s): not its llm_node
    assert production.agent_speech(t1) == AgentSpeech(pytest.approx(T0 + 7.68), T0 + 10.0)
    assert production.agent_speech(unanswered) == AgentSpeech(None, None)  # no reply

    speaking = mk(c.SPAN_AGENT_SPEAKING, 6.4, 9.0, spans["a1"])
    inst = Instance(CID, (*spans.values(), speaking))
    assert inst.agent_speech(inst.turns[1]) == AgentSpeech(T0 + 6.4, T0 + 10.0)

    bare = mk("agent_turn", 30.0, 29.0)  # quarantined to a zero duration
    only = Instance(CID, (mk("user_turn", 28.0, 29.0), bare))
    assert only.agent_speech(only.turns[0]) == AgentSpeech(T0 + 30.0, T0 + 30.0)

    synthetic = Instance(CID, tuple(spans.values()), caller=caller_doc())
    t1 = synthetic.turns[1]
    assert synthetic.agent_speech(t1) == AgentSpeech(T0 + 6.5, None)  # what the caller heard


def test_trace_id_agent_name_session_start_and_caller_start():
    other = "5b8efff798038103d269b633813fc60c"
    spans = call_spans()
    inst = Instance(CID, tuple(spans.values()))
    assert inst.trace_id == TRACE  # the agent_session's
    no_session = [v for k, v in spans.items() if k != "session"]
    workflow = [mk("after_call", 50, 53, layer="workflow", trace=other) for _ in range(9)]
    assert Instance(CID, (*no_session, *workflow)).trace_id == TRACE  # the conversational's
    assert Instance(CID, tuple(workflow)).trace_id == other  # no conversational span at all
    assert Instance(CID).trace_id is None

    assert inst.agent_name is None
    named = mk("job_entrypoint", 0.2, 40)
    named = replace(named, attributes={**named.attributes, c.LK_AGENT_NAME: "  clinic "})
    blank = mk("x", 0.1, 1)
    blank = replace(blank, attributes={**blank.attributes, c.LK_AGENT_NAME: "   "})
    assert Instance(CID, (blank, named, *spans.values())).agent_name == "clinic"

    assert inst.session_start == T0 + 0.5  # agent_session, not the earlier-starting others
    early = mk("user_turn", 0.1, 0.3)
    assert Instance(CID, (early, *spans.values())).session_start == T0 + 0.5
    assert Instance(CID, (early,)).session_start == T0 + 0.1
    assert Instance(CID).session_start is None

    assert inst.caller_started_at is None and inst.turns_from_caller is False
    synthetic = Instance(CID, tuple(spans.values()), caller=caller_doc())
    assert synthetic.caller_started_at == T0 and synthetic.turns_from_caller is True
    odd = Instance(CID, (), caller={"started_at": float("nan"), "turns": "none"})
    assert odd.caller_started_at is None and odd.turns_from_caller is False
