"""The evaluators that catch the failure-mode library's rows: each on hand-built Instances
(and recordings) with the fault, and with a healthy call on which it must not fire."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.evaluators import (
    ClaimsBacked,
    Duplicates,
    FallbackReplies,
    LoopDetection,
    SpeechIntegrity,
    ToolArgsGrounding,
    TurnTaking,
    Workflow,
    default_evaluators,
    evaluate,
    known_metrics,
)
from harness.gates import ScoreStore, default_gates, evaluate_gates
from harness.session.config import SessionConfig
from harness.session.engine import CallSession
from harness.trace import conventions as c
from harness.trace.instance import Instance
from tests.fixtures.instances.build import T0, Builder, clinic_10_turns
from tests.support.recording import RATE, tone, write_stereo


def by_name(scores) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in scores:
        out.setdefault(s.name, []).append(s)
    return out


# --- recordings -------------------------------------------------------------------------------


def turn(index: int, start: float | None, said: str, kind: str = "say") -> dict:
    return {
        "index": index,
        "kind": kind,
        "text": "hello" if kind == "say" else None,
        "caller_start": None if start is None else T0 + start,
        "caller_end": None,
        "agent_said": said,
        "agent_heard": "hello",
    }


def call(recording: Path, turns: list[dict], spans: Builder | None = None) -> Instance:
    b = spans or Builder("conv-audio")
    caller = {"conversation_id": "conv-audio", "started_at": T0, "turns": turns}
    return b.instance(caller, recording=str(recording))


TWELVE = "one two three four five six seven eight nine ten eleven twelve"


def test_speech_cut_at_the_agents_own_rate(tmp_path):
    # a slow voice: 4 s for 12 words (333 ms a word); one turn cut to 2.2 s (183 ms a word,
    # above the absolute floor of 150 ms), one at 0.7 of its length (healthy enough)
    right = [
        (1.0, tone(4.0)),
        (11.0, tone(4.0)),
        (21.0, tone(2.2)),
        (31.0, tone(2.8)),
        (41.0, tone(4.0)),
    ]
    turns = [turn(k, None if k == 0 else 10.0 * k, TWELVE) for k in range(5)]
    got = by_name(
        SpeechIntegrity().evaluate(call(write_stereo(tmp_path / "a.wav", [], right, 50), turns))
    )
    assert [s.value for s in got["speech_cut"]] == [0, 0, 1, 0, 0]
    assert "needs 200" in got["speech_cut"][2].detail
    # must not fire: the same call, every turn whole
    whole = [(1.0 + 10 * k, tone(4.0)) for k in range(5)]
    got = by_name(
        SpeechIntegrity().evaluate(call(write_stereo(tmp_path / "b.wav", [], whole, 50), turns))
    )
    assert [s.value for s in got["speech_cut"]] == [0] * 5


def test_speech_cut_falls_back_to_the_floor_with_few_turns(tmp_path):
    right = [(1.0, tone(1.0)), (11.0, tone(3.0))]  # 83 ms a word, then 250
    turns = [turn(0, None, TWELVE), turn(1, 10.0, TWELVE)]
    got = by_name(
        SpeechIntegrity().evaluate(call(write_stereo(tmp_path / "a.wav", [], right, 20), turns))
    )
    assert [s.value for s in got["speech_cut"]] == [1, 0]
    assert "fewer than 3 turns" in got["speech_cut"][0].detail


def test_speech_gap_inside_a_reply_not_between_speakers(tmp_path):
    right = [(1.0, tone(1.0)), (3.8, tone(1.0)), (11.0, tone(1.0)), (13.0, tone(1.0))]
    left = [(12.2, tone(0.6))]  # the caller speaks in the second reply's pause
    turns = [turn(0, None, "a b c"), turn(1, 10.0, "a b c")]
    got = by_name(
        SpeechIntegrity().evaluate(call(write_stereo(tmp_path / "a.wav", left, right, 15), turns))
    )
    gaps = [s.value for s in got["speech_gap_longest"]]
    assert gaps[0] == pytest.approx(1800, abs=20)
    assert gaps[1] < 500  # not the agent's silence: the caller took the floor (and bridged it)
    # must not fire: a pause of 5 s or more is two utterances, not a gap
    far = [(1.0, tone(1.0)), (8.5, tone(1.0))]
    got = by_name(
        SpeechIntegrity().evaluate(call(write_stereo(tmp_path / "b.wav", [], far, 10), turns[:1]))
    )
    assert got["speech_gap_longest"][0].value == 0


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(gap_ms=st.integers(50, 4500))
def test_speech_gap_measures_the_silence_it_is_given(tmp_path, gap_ms):
    right = [(0.5, tone(1.0)), (1.5 + gap_ms / 1000, tone(1.0))]
    inst = call(write_stereo(tmp_path / "g.wav", [], right, 8), [turn(0, None, "a b c")])
    (gap,) = by_name(SpeechIntegrity().evaluate(inst))["speech_gap_longest"]
    assert gap.value == pytest.approx(gap_ms, abs=20)


def _glitched(seconds: float, per_s: float, kind: str) -> np.ndarray:
    sig = tone(seconds)
    n = round(per_s * seconds)
    width = RATE // 50
    for k in range(n):
        a = int((k + 0.5) * len(sig) / n)
        if kind == "zero":
            sig[a : a + width] = 0
        else:
            sig[a : a + width] = np.clip(sig[a : a + width] * 8, -1, 1)
    return sig


@pytest.mark.parametrize("kind", ["zero", "clip"])
def test_glitchy_speech(tmp_path, kind):
    turns = [turn(0, None, "a b c")]
    bad = call(write_stereo(tmp_path / "a.wav", [], [(0.5, _glitched(2.0, 5, kind))], 3), turns)
    got = by_name(SpeechIntegrity().evaluate(bad))
    assert got["speech_glitches"][0].value == pytest.approx(10, abs=1)
    assert got["glitchy_speech"][0].value == 1
    # must not fire: whole speech, or glitches at half the rate that makes a turn glitchy
    for sig in (tone(2.0), _glitched(2.0, 2, kind)):
        ok = call(write_stereo(tmp_path / "b.wav", [], [(0.5, sig)], 3), turns)
        assert by_name(SpeechIntegrity().evaluate(ok))["glitchy_speech"][0].value == 0


def test_no_recording_no_speech_or_turn_taking_scores(tmp_path):
    inst = call(tmp_path / "missing.wav", [turn(0, None, "a b c")])
    assert SpeechIntegrity().evaluate(inst) == [] and TurnTaking().evaluate(inst) == []


# --- turn-taking ------------------------------------------------------------------------------


def said(index: int, start: float, end: float) -> dict:
    return turn(index, start, "") | {"caller_end": T0 + end}


def test_the_agent_talking_over_the_caller(tmp_path):
    # the caller speaks 0.5-3.0 s; the agent starts at 1.5 s, inside the caller's sentence
    path = write_stereo(tmp_path / "a.wav", [(0.5, tone(2.5))], [(1.5, tone(2.0))], 5)
    got = by_name(TurnTaking().evaluate(call(path, [turn(0, None, ""), said(1, 0.5, 3.0)])))
    assert [s.value for s in got["talked_over"]] == [1]
    assert got["talkover_ms"][0].value == pytest.approx(1500, abs=20)
    # a production call (no side-file): the caller's speech itself bounds its turn
    production = Builder("conv-prod").instance(None, recording=str(path))
    assert [s.value for s in by_name(TurnTaking().evaluate(production))["talked_over"]] == [1]


def test_the_agent_answering_into_a_hesitation_talks_over_the_rest(tmp_path):
    # "i would like to, um ... book a cleaning": the caller pauses 0.7 s mid-sentence; an
    # eager agent answers into the pause and keeps talking when the caller goes on
    left = [(0.5, tone(1.0)), (2.2, tone(1.2))]
    path = write_stereo(tmp_path / "a.wav", left, [(1.9, tone(2.0))], 5)
    got = by_name(TurnTaking().evaluate(call(path, [turn(0, None, ""), said(1, 0.5, 3.4)])))
    assert [s.value for s in got["talked_over"]] == [1] and got["talked_over"][0].turn == 1
    # must not fire: the patient agent waits for the end of the sentence
    patient = write_stereo(tmp_path / "b.wav", left, [(4.4, tone(1.0))], 6)
    got = by_name(TurnTaking().evaluate(call(patient, [turn(0, None, ""), said(1, 0.5, 3.4)])))
    assert [s.value for s in got["talked_over"]] == [0]


def test_a_caller_barging_in_or_a_polite_agent_is_no_talk_over(tmp_path):
    barge = write_stereo(tmp_path / "a.wav", [(2.0, tone(1.0))], [(1.0, tone(3.0))], 5)
    polite = write_stereo(tmp_path / "b.wav", [(0.5, tone(1.0))], [(2.5, tone(1.0))], 5)
    for path, caller in ((barge, said(1, 2.0, 3.0)), (polite, said(1, 0.5, 1.5))):
        got = by_name(TurnTaking().evaluate(call(path, [turn(0, None, ""), caller])))
        assert [s.value for s in got["talked_over"]] == [0]
        assert got["talkover_ms"][0].value == 0


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(caller_s=st.floats(0.3, 3.0), wait_ms=st.integers(20, 3000))
def test_an_agent_that_waits_for_the_caller_never_talks_over(tmp_path, caller_s, wait_ms):
    left = [(0.5, tone(caller_s))]
    right = [(0.5 + caller_s + wait_ms / 1000, tone(1.0))]
    turns = [turn(0, None, ""), said(1, 0.5, 0.5 + caller_s)]
    inst = call(write_stereo(tmp_path / "h.wav", left, right, caller_s + 5), turns)
    assert by_name(TurnTaking().evaluate(inst))["talked_over"][0].value == 0


# --- dialog: tool arguments, claims, fallbacks ------------------------------------------------


def dialog_call(
    heard: list[str],
    replies: list[str],
    tools: dict[int, tuple[str, dict, str]] | None = None,
    actions: list[dict] | None = None,
) -> Instance:
    """A production-style call: a greeting, then per caller turn a user_turn (what the agent
    heard) and an agent_turn (its reply), with a tool call under it when ``tools`` says."""
    b = Builder("conv-dialog")
    session = b.span(c.SPAN_AGENT_SESSION, T0, T0 + 100)
    b.span(c.SPAN_AGENT_TURN, T0 + 0.5, T0 + 3, parent=session, lk__pii__response__text="Hi.")
    for k, (h, r) in enumerate(zip(heard, replies, strict=True), start=1):
        t = T0 + 10 * k
        b.span(c.SPAN_USER_TURN, t, t + 2, parent=session, lk__pii__user_transcript=h)
        a = b.span(c.SPAN_AGENT_TURN, t + 3, t + 8, parent=session, lk__pii__response__text=r)
        if tools and k in tools:
            name, args, output = tools[k]
            b.span(
                c.SPAN_FUNCTION_TOOL,
                t + 3.1,
                t + 3.5,
                parent=a,
                lk__function_tool__name=name,
                lk__pii__function_tool__arguments=json.dumps(args),
                lk__pii__function_tool__output=output,
                lk__function_tool__is_error=False,
            )
    for i, act in enumerate(actions or ()):
        b.span(
            f"action {act['name']}",
            T0 + 50 + i,
            T0 + 50.5 + i,
            layer=act.get("layer", c.LAYER_BACKGROUND),
            service="clinic-backend",
            status=act.get("status", c.STATUS_UNSET),
            action__name=act["name"],
            action__mutating=act.get("mutating", True),
            action__approval=act.get("approval", "approved"),
            **({"action__key": act["key"]} if "key" in act else {}),
        )
    return b.instance()


AVAIL = json.dumps({"day": "tuesday", "open": True, "times": ["09:00", "11:00", "14:00"]})
BOOKED = json.dumps({"confirmation_id": "1001"})
HEARD = [
    "i would like to book a cleaning",
    "next tuesday please",
    "nine o'clock",
    "my name is john miller",
]
REPLIES = ["What day?", "We have nine, eleven and two.", "Your name?", "You're all set."]


def booking_tools(day: str = "tuesday") -> dict[int, tuple[str, dict, str]]:
    return {
        2: ("check_availability", {"day": "tuesday"}, AVAIL),
        4: (
            "request_booking",
            {"name": "John Miller", "day": day, "time": "09:00", "service": "cleaning"},
            BOOKED,
        ),
    }


def test_tool_arguments_from_the_caller_and_the_tools_are_grounded():
    got = ToolArgsGrounding().evaluate(dialog_call(HEARD, REPLIES, booking_tools()))
    assert [s.value for s in got] == [1, 1]  # "09:00" from what it heard, or from the output


def test_a_day_nobody_said_is_not_grounded():
    got = ToolArgsGrounding().evaluate(dialog_call(HEARD, REPLIES, booking_tools("saturday")))
    assert [s.value for s in got] == [1, 0]
    assert "day='saturday'" in got[1].detail and "request_booking" in got[1].detail
    # what the agent misheard is grounded: the recogniser's error, not the dialog's
    misheard = [h.replace("tuesday", "thursday") for h in HEARD]
    tools = {2: ("check_availability", {"day": "thursday"}, AVAIL)}
    assert ToolArgsGrounding().evaluate(dialog_call(misheard, REPLIES, tools))[0].value == 1


def test_grounding_ignores_free_text_and_values_heard_later():
    tools = {1: ("end_call", {"reason": "caller_goodbye"}, "{}")}
    assert ToolArgsGrounding().evaluate(dialog_call(["goodbye"], ["Bye."], tools)) == []
    # the day is said only in turn 3, after the tool call of turn 1
    early = {1: ("check_availability", {"day": "friday"}, AVAIL)}
    got = ToolArgsGrounding().evaluate(
        dialog_call(["hello", "x", "friday"], ["a", "b", "c"], early)
    )
    assert got[0].value == 0
    # the fixture's agent books "Maria" for a caller it heard as "marie": not grounded
    fixture = {
        s.detail.split(":")[0]: s.value for s in ToolArgsGrounding().evaluate(clinic_10_turns())
    }
    assert fixture == {"check_availability": 1.0, "request_booking": 0.0}


def test_a_confirmation_without_any_action_is_unbacked():
    claim = ["Done.", "You're all set. Your confirmation number is 1 0 0 1."]
    # a deployment that records its actions (the session has seen one): the claim is judged
    phantom = dialog_call(["book it", "thanks"], claim).with_caller({"actions_expected": True})
    (s,) = ClaimsBacked().evaluate(phantom)
    assert s.value == 1 and "no layer performed" in s.detail
    # must not fire: an agent that records no actions at all (a zero-code agent) is not judged
    assert ClaimsBacked().evaluate(dialog_call(["book it", "thanks"], claim)) == []
    denied = dialog_call(
        ["book it", "thanks"], claim, actions=[{"name": "create_booking", "approval": "denied"}]
    )
    assert ClaimsBacked().evaluate(denied)[0].value == 1
    # must not fire: the booking was made, or nothing was claimed
    made = dialog_call(["book it", "thanks"], claim, actions=[{"name": "create_booking"}])
    assert ClaimsBacked().evaluate(made)[0].value == 0
    quiet = dialog_call(["hours?"], ["We open at eight. Would you like to book an appointment?"])
    quiet = quiet.with_caller({"actions_expected": True})
    assert ClaimsBacked().evaluate(quiet)[0].value == 0
    assert ClaimsBacked().evaluate(Instance("conv-none")) == []


def test_fallback_replies():
    replies = ["Sorry, I can't help with that right now.", "Sorry, I didn't catch that.", "Sure."]
    got = by_name(FallbackReplies().evaluate(dialog_call(["a", "b", "c"], replies)))
    assert [s.value for s in got["fallback_reply"]] == [0, 1, 0, 0]  # the greeting first
    assert got["fallback_rate"][0].value == pytest.approx(0.25)
    # must not fire: asking to repeat is a clarifying question
    ok = by_name(FallbackReplies().evaluate(dialog_call(["a"], ["Could you say that again?"])))
    assert ok["fallback_rate"][0].value == 0


def test_a_stuck_dialog_repeats_itself_to_different_turns():
    same = "Just to confirm, you would like Thursday, is that right?"
    stuck = by_name(
        LoopDetection().evaluate(dialog_call(["thursday", "yes", "yes please"], [same] * 3))
    )
    assert stuck["stuck_repeats"][0].value == 2 and stuck["dialog_stuck"][0].value == 1
    # must not fire: the same question twice gets the same answer twice
    hours = "We are open Monday to Friday from eight AM to five PM."
    asked = by_name(LoopDetection().evaluate(dialog_call(["opening hours"] * 2, [hours] * 2)))
    assert asked["loop_detected"][0].value == 1  # a repeat, but asked for
    assert asked["stuck_repeats"][0].value == 0 and asked["dialog_stuck"][0].value == 0


# --- duplicates and the workflow --------------------------------------------------------------


def test_a_mutating_action_repeated_after_success():
    key = "c-1:tuesday:09:00:cleaning"
    twice = dialog_call(
        ["x"],
        ["y"],
        actions=[
            {"name": "create_booking", "key": key},
            {"name": "create_booking", "key": key, "status": c.STATUS_ERROR},
        ],
    )
    got = {x.layer: x for x in Duplicates().evaluate(twice) if x.name == "duplicate_actions"}
    s = got[c.LAYER_BACKGROUND]
    assert s.value == 1 and key in s.detail
    assert got[c.LAYER_CONVERSATIONAL].value == 0  # a layer that ran scores 0
    # must not fire: a retry after a failure, two different bookings, actions without a key
    for acts in (
        [
            {"name": "create_booking", "key": key, "status": c.STATUS_ERROR},
            {"name": "create_booking", "key": key},
        ],
        [{"name": "create_booking", "key": key}, {"name": "create_booking", "key": "other"}],
        [{"name": "create_booking"}, {"name": "create_booking"}],
    ):
        got = [x.value for x in Duplicates().evaluate(dialog_call(["x"], ["y"], actions=acts))]
        assert sum(got) == 0


def workflow_call(runs: int, crash: bool = False, expected: bool | None = None) -> Instance:
    b = Builder("conv-wf")
    b.span(c.SPAN_AGENT_SESSION, T0, T0 + 30)
    for r in range(runs):
        root = b.span(
            "after_call",
            T0 + 40 + 5 * r,
            T0 + 42 + 5 * r,
            layer=c.LAYER_WORKFLOW,
            service="clinic-workflow",
            trace_id=f"{0xAF + r:032x}",
        )
        b.span(
            "summarize", T0 + 40.1 + 5 * r, T0 + 40.5 + 5 * r, parent=root, layer=c.LAYER_WORKFLOW
        )
        if crash and r == runs - 1:
            b.spans.remove(root)  # it never arrived: the process died midway
        else:
            b.span(
                "send_confirmation",
                T0 + 40.6 + 5 * r,
                T0 + 41 + 5 * r,
                parent=root,
                layer=c.LAYER_WORKFLOW,
                status=c.STATUS_OK,
            )
    caller = None if expected is None else {"turns": [], "workflow_expected": expected}
    return b.instance(caller)


def test_an_after_call_run_twice_sends_its_steps_twice():
    got = by_name(Duplicates().evaluate(workflow_call(2)))
    assert got["workflow_runs"][0].value == 2
    assert got["duplicate_workflow_steps"][0].value == 2  # summarize and send_confirmation
    once = by_name(Duplicates().evaluate(workflow_call(1)))
    assert once["workflow_runs"][0].value == 1 and once["duplicate_workflow_steps"][0].value == 0


def test_a_workflow_whose_root_never_came_did_not_complete():
    (s,) = Workflow().evaluate(workflow_call(1, crash=True))
    assert s.value == 0 and "never arrived" in s.detail
    done = by_name(Workflow().evaluate(workflow_call(1)))
    assert done["workflow_completed"][0].value == 1


def test_a_call_that_expected_a_workflow_and_got_none_failed_it():
    (s,) = Workflow().evaluate(workflow_call(0, expected=True))
    assert s.value == 0 and "no workflow spans" in s.detail
    # must not fire: a call not expecting one
    assert Workflow().evaluate(workflow_call(0, expected=False)) == []
    assert Workflow().evaluate(workflow_call(0)) == []


def test_the_session_learns_that_the_deployment_has_a_workflow():
    class Plan:
        workflow_timeout_s = None

    class Expecting:
        workflow_timeout_s = 15.0

    session = CallSession(SessionConfig())
    assert session.expects_workflow(Plan()) is False
    assert session.expects_workflow(Expecting()) is True
    session._workflow_seen = True  # as _collect sets it once a call had workflow spans
    assert session.expects_workflow(Plan()) is True
    assert CallSession(SessionConfig(expect_workflow=True)).expects_workflow(Plan()) is True
    told = CallSession(SessionConfig(expect_workflow=False))
    told._workflow_seen = True
    assert told.expects_workflow(Plan()) is False


# --- registry and default gates ---------------------------------------------------------------


def test_every_new_metric_is_known_and_gated_by_default():
    known = set(known_metrics())
    gated = {g.metric for g in default_gates()}
    new = {
        "speech_cut",
        "speech_gap_longest",
        "glitchy_speech",
        "talked_over",
        "tool_args_grounded",
        "unbacked_claims",
        "fallback_reply",
        "duplicate_actions",
        "duplicate_workflow_steps",
        "dialog_stuck",
        "workflow_completed",
        "unapproved_mutations",
    }
    assert new <= known and new <= gated
    names = {type(e).__name__ for e in default_evaluators()}
    assert {"SpeechIntegrity", "TurnTaking", "ToolArgsGrounding", "ClaimsBacked"} <= names


def test_the_healthy_fixture_fails_no_new_default_gate():
    store = ScoreStore()
    for _ in range(12):
        store.add(evaluate(clinic_10_turns()))
    verdicts = {v.name: v for v in evaluate_gates(default_gates(), store)}
    for name in ("unbacked_claims", "duplicate_actions", "fallback_rate", "stuck_dialog"):
        assert verdicts[name].status == "pass", verdicts[name].detail
    assert verdicts["unapproved_mutations_background"].status == "pass"
    assert verdicts["workflow_completion"].status == "pass"
    # the baseline gates say nothing without a baseline
    assert "e2e_latency_p50_baseline" not in verdicts
    with_base = {v.name for v in evaluate_gates(default_gates(), store, store)}
    assert {"e2e_latency_p50_baseline", "e2e_latency_p90_baseline"} <= with_base
