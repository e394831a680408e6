"""The clinic's dialog policy: given a chat context, which reply or tool call comes out."""

from __future__ import annotations

import json

import pytest
from livekit.agents import llm

from examples.clinic import bookings, dialog
from examples.clinic.dialog import Reply, ToolCall


class Conversation:
    """Builds chat contexts the way the session does, running tools like the framework."""

    def __init__(self) -> None:
        self.ctx = llm.ChatContext.empty()
        self.ctx.add_message(role="system", content="You are the receptionist.")
        self.tool_calls: list[ToolCall] = []
        self._n = 0

    def agent_turn(self, *, fail_tools: bool = False) -> Reply:
        """Decide, execute tool calls until a reply comes out, record the reply."""
        for _ in range(4):
            decision = dialog.decide(self.ctx)
            if isinstance(decision, Reply):
                self.ctx.add_message(role="assistant", content=decision.text)
                return decision
            self.tool_calls.append(decision)
            self._run_tool(decision, fail=fail_tools)
        raise AssertionError("the policy kept calling tools")

    def _run_tool(self, call: ToolCall, *, fail: bool) -> None:
        self._n += 1
        call_id = f"call_{self._n}"
        self.ctx.insert(
            llm.FunctionCall(call_id=call_id, name=call.name, arguments=json.dumps(call.arguments))
        )
        if fail:
            output, is_error = "service unavailable", True
        elif call.name == "check_availability":
            output, is_error = json.dumps(bookings.check_availability(**call.arguments)), False
        elif call.name == "request_booking":
            output, is_error = json.dumps({"confirmation_id": "1001", **call.arguments}), False
        else:
            output, is_error = json.dumps({"ended": True}), False
        self.ctx.insert(
            llm.FunctionCallOutput(
                call_id=call_id, name=call.name, output=output, is_error=is_error
            )
        )

    def caller(self, text: str, **kw: bool) -> Reply:
        self.ctx.add_message(role="user", content=text)
        return self.agent_turn(**kw)

    def silence(self) -> Reply:
        """What the agent does when the session reports the caller as away."""
        probe = self.ctx.copy()
        probe.add_message(role="system", content=dialog.CALLER_SILENT)
        decision = dialog.decide(probe)
        if isinstance(decision, ToolCall):
            self.tool_calls.append(decision)
            self._run_tool(decision, fail=False)
            return self.agent_turn()
        self.ctx.add_message(role="assistant", content=decision.text)
        return decision


@pytest.fixture
def call() -> Conversation:
    c = Conversation()
    greeting = c.agent_turn()
    assert "Bright Smile Dental" in greeting.text
    return c


def test_empty_context_gives_the_greeting():
    decision = dialog.decide(llm.ChatContext.empty())
    assert decision == Reply(dialog.GREETING)


def test_opening_hours(call):
    reply = call.caller("what are your opening hours")
    assert "Monday to Friday from eight AM to five PM" in reply.text
    assert reply.asks == dialog.ASK_BOOK
    assert call.tool_calls == []


def test_opening_hours_for_one_day(call):
    reply = call.caller("are you open on saturday")
    assert reply.text.startswith("On Saturday we are open from nine AM to one PM.")


def test_full_booking_uses_both_tools_and_confirms(call):
    assert "what day" in call.caller("i would like to book a cleaning appointment").text.lower()
    reply = call.caller("next tuesday please")
    assert call.tool_calls[-1] == ToolCall("check_availability", {"day": "tuesday"})
    assert "nine AM, eleven AM and two PM" in reply.text
    assert "your name" in call.caller("nine o'clock please").text
    reply = call.caller("my name is john miller")
    assert call.tool_calls[-1] == ToolCall(
        "request_booking",
        {"name": "John Miller", "day": "tuesday", "time": "09:00", "service": "cleaning"},
    )
    assert "Tuesday at nine AM" in reply.text
    assert "confirmation number is 1 0 0 1" in reply.text
    reply = call.caller("thank you goodbye")
    assert call.tool_calls[-1] == ToolCall("end_call", {"reason": "caller_goodbye"})
    assert reply.text == dialog.GOODBYE


def test_the_next_decision_after_a_caller_turn_is_a_tool_call():
    ctx = llm.ChatContext.empty()
    ctx.add_message(role="assistant", content=dialog.GREETING)
    ctx.add_message(role="user", content="can i book a cleaning on wednesday")
    assert dialog.decide(ctx) == ToolCall("check_availability", {"day": "wednesday"})


def test_service_is_asked_when_missing(call):
    reply = call.caller("i would like to book an appointment")
    assert reply.asks == dialog.ASK_SERVICE
    assert "cleanings, checkups, fillings" in reply.text
    assert call.caller("a checkup please").asks == dialog.ASK_DAY


def test_i_dont_know_gets_concrete_days_then_a_suggested_time(call):
    call.caller("i need a filling")
    reply = call.caller("i don't know")
    assert "Tuesday, Wednesday and Thursday" in reply.text
    assert reply.asks == dialog.ASK_DAY
    call.caller("wednesday please")
    reply = call.caller("i'm not sure")
    assert reply.text == "How about ten AM?"
    assert "Wednesday at ten AM" in call.caller("yes").text


def test_self_correction_takes_the_last_day(call):
    call.caller("i would like to book a cleaning")
    call.caller("tuesday no wait thursday")
    assert call.tool_calls[-1] == ToolCall("check_availability", {"day": "thursday"})


def test_changing_the_day_checks_again(call):
    call.caller("i would like to book a cleaning")
    call.caller("monday")
    reply = call.caller("actually friday is better")
    assert [c.arguments for c in call.tool_calls] == [{"day": "monday"}, {"day": "friday"}]
    assert "eight thirty AM" in reply.text


def test_unavailable_time_lists_the_openings(call):
    call.caller("book a cleaning for monday at eleven")
    reply = call.ctx.items[-1]
    assert "eleven AM is not available on Monday" in reply.text_content
    assert "nine AM, ten thirty AM and three PM" in reply.text_content


def test_closed_day_offers_other_days(call):
    call.caller("i need a checkup on sunday")
    reply = call.ctx.items[-1].text_content
    assert "no openings on Sunday" in reply


def test_name_given_early_is_not_asked_again(call):
    call.caller("hi this is sarah parker i would like to book a cleaning on tuesday at two")
    assert call.tool_calls[-1].name == "request_booking"
    assert call.tool_calls[-1].arguments["name"] == "Sarah Parker"
    assert call.tool_calls[-1].arguments["time"] == "14:00"


def test_tool_failure_is_apologised_for(call):
    call.caller("i would like to book a cleaning")
    reply = call.caller("tuesday", fail_tools=True)
    assert reply.text.startswith("Sorry, I could not check the schedule")


def test_silence_prompts_once_then_ends_the_call(call):
    assert call.silence().text == dialog.STILL_THERE
    reply = call.silence()
    assert call.tool_calls[-1] == ToolCall("end_call", {"reason": "silence"})
    assert reply.text == dialog.GOODBYE_SILENT
    assert "Goodbye" in reply.text


def test_speaking_after_a_silence_prompt_resets_the_count(call):
    call.caller("i would like to book a cleaning")
    assert call.silence().text == dialog.STILL_THERE
    reply = call.caller("yes i'm still here")
    assert "What day would you like" in reply.text
    assert call.silence().text == dialog.STILL_THERE


def test_no_after_anything_else_ends_the_call(call):
    call.caller("what are your opening hours")
    assert call.caller("no").asks == dialog.ASK_ANYTHING_ELSE
    call.caller("no thank you")
    assert call.tool_calls[-1] == ToolCall("end_call", {"reason": "caller_done"})


def test_the_same_context_always_gives_the_same_decision(call):
    call.caller("i would like to book a whitening on friday")
    first = [dialog.decide(call.ctx) for _ in range(3)]
    assert first[0] == first[1] == first[2]


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("tuesday no wait thursday", "day", "thursday"),
        ("sorry i mean friday", "day", "friday"),
        ("nine thirty", "time", (9, 30, None)),
        ("two pm please", "time", (2, 0, "pm")),
        ("ten in the morning", "time", (10, 0, "am")),
        ("the first one please", "time", "first"),
        ("a check up", "service", "checkup"),
        ("i don't know", "unsure", True),
        ("no wait make that monday", "no", False),
        ("thanks have a nice day", "goodbye", True),
        ("it's for a cleaning", "name_tokens", ()),
    ],
)
def test_parse(text, field, value):
    assert getattr(dialog.parse(text), field) == value


def _booking_then_correction():
    from livekit.agents import llm

    from examples.clinic import dialog

    c = llm.ChatContext()
    c.add_message(role="assistant", content=dialog.GREETING)
    c.add_message(role="user", content="i would like to book a cleaning appointment")
    c.add_message(role="assistant", content="Sure, a cleaning. What day would you like to come in?")
    c.add_message(role="user", content="next tuesday please")
    c.items.append(
        llm.FunctionCall(name="check_availability", arguments='{"day": "tuesday"}', call_id="1")
    )
    c.items.append(
        llm.FunctionCallOutput(
            name="check_availability",
            output='{"day": "tuesday", "open": true, "times": ["09:00", "11:00", "14:00"]}',
            call_id="1",
            is_error=False,
        )
    )
    c.add_message(role="assistant", content="On Tuesday we have openings at nine AM.")
    c.add_message(role="user", content="no sorry thursday please")
    return c


def test_date_loop_bug_keeps_confirming_a_corrected_day_and_the_fix_moves_on():
    from examples.clinic import dialog

    c = _booking_then_correction()
    assert dialog.decide(c) == dialog.ToolCall("check_availability", {"day": "thursday"})
    buggy = dialog.decide(c, frozenset({"date_loop"}))
    assert isinstance(buggy, dialog.Reply) and buggy.text.startswith("Just to confirm")
    for said in ("yes", "eleven o'clock please", "my name is john miller"):
        c.add_message(role="assistant", content=buggy.text)
        c.add_message(role="user", content=said)
        assert dialog.decide(c, frozenset({"date_loop"})) == buggy  # the loop never ends
    c.add_message(role="user", content="thank you goodbye")
    assert dialog.decide(c, frozenset({"date_loop"})) == dialog.ToolCall(
        "end_call", {"reason": "caller_goodbye"}
    )
