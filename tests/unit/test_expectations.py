from harness.call.caller import CallResult, TurnRecord
from harness.call.expectations import ToolCall, check_expectations
from harness.plan.callplan import CallPlan, PlannedTurn
from harness.scenario.model import Expect, Timeouts, ToolExpectation


def turn(i, start, said, kind="say"):
    if start is None:  # the greeting has no caller speech
        return TurnRecord(i, kind, None, None, None, 1.0, 3.0, None, 2000.0, said, "")
    return TurnRecord(i, kind, "x", start, start + 1, start + 2, start + 3, 900.0, 1000.0, said, "")


def make(expects):
    plan = CallPlan(
        "s",
        "clinic",
        tuple(PlannedTurn(i + 1, "say", "x", e) for i, e in enumerate(expects)),
        Timeouts(),
        greeting=Expect(reply_contains=["bright smile"]),
    )
    result = CallResult(
        "c",
        "s",
        "r",
        0.0,
        100.0,
        (
            turn(0, None, "Hello, Bright Smile Dental.", "greeting"),
            turn(1, 10.0, "What day would you like?"),
            turn(2, 20.0, "We have nine or eleven."),
        ),
    )
    return plan, result


def test_all_hold() -> None:
    plan, result = make(
        [
            Expect(reply_contains=["what day"]),
            Expect(
                reply_matches=r"(?i)nine|eleven",
                tool_called=ToolExpectation(name="check_availability", args={"day": "Tuesday"}),
            ),
        ]
    )
    calls = [ToolCall("check_availability", {"day": "tuesday"}, 21.0)]
    assert check_expectations(plan, result, calls) == []


def test_each_broken_expectation_is_named() -> None:
    plan, result = make(
        [
            Expect(reply_contains=["what time"]),
            Expect(tool_called=ToolExpectation(name="check_availability", args={"day": "monday"})),
        ]
    )
    calls = [
        ToolCall("check_availability", {"day": "tuesday"}, 21.0),
        ToolCall("request_booking", {}, 11.0),
    ]
    failures = check_expectations(plan, result, calls)
    assert failures == [
        "turn 1: agent reply 'What day would you like?' does not contain 'what time'",
        "turn 2: tool 'check_availability' was called with {'day': 'tuesday'}, "
        "expected {'day': 'monday'}",
    ]


def test_tool_outside_the_turn_window_does_not_count() -> None:
    plan, result = make([Expect(), Expect(tool_called=ToolExpectation(name="request_booking"))])
    failures = check_expectations(plan, result, [ToolCall("request_booking", {}, 11.0)])
    assert failures == [
        "turn 2: tool 'request_booking' was not called (tools called in this turn: none)"
    ]
    assert "no trace was collected" in check_expectations(plan, result, None)[0]


def test_score_expectations_loop_latency_and_end_state() -> None:
    from harness.call.expectations import check_score_expectations
    from harness.evaluators import Score
    from harness.scenario.model import CallExpect

    plan, result = make([Expect(), Expect()])
    plan = CallPlan(
        plan.scenario_id,
        plan.agent_name,
        plan.turns,
        plan.timeouts,
        expect=CallExpect(
            no_loop=True,
            max_response_latency_ms=800,
            end_state={"tool_called": "request_booking"},
        ),
    )
    scores = [
        Score("loop_detected", 1.0, "bool", detail="turn 4 repeats turn 3"),
        Score("task_completed", 0.0, "bool", detail="missing: tool request_booking()"),
    ]
    assert check_score_expectations(plan, result, scores) == [
        "the agent repeated itself: turn 4 repeats turn 3",
        "turn 1: response latency 900 ms exceeds 800 ms",
        "turn 2: response latency 900 ms exceeds 800 ms",
        "end state not reached: missing: tool request_booking()",
    ]
    ok = [Score("loop_detected", 0.0, "bool"), Score("task_completed", 1.0, "bool")]
    assert check_score_expectations(plan, result, ok)[2:] == []


def test_a_failed_call_names_the_callers_own_audio_gaps() -> None:
    from dataclasses import replace

    from harness.session.engine import overload_notes

    _, result = make([Expect(), Expect()])
    assert overload_notes(result) == ()
    turns = list(result.turns)
    turns[1] = replace(turns[1], caller_underrun_ms=320.4)
    notes = overload_notes(replace(result, turns=tuple(turns)))
    assert notes == (
        "note: the caller's audio had 320 ms of gaps at turn 1, because this host was "
        "overloaded (lower --concurrency)",
    )
