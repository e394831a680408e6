from harness.caller import CallResult, TurnRecord
from harness.expectations import ToolCall, check_expectations
from harness.plan import CallPlan, PlannedTurn
from harness.scenario import Expect, Timeouts, ToolExpectation


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
