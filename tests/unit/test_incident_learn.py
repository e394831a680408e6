"""Teaching the redactor the whole call before anything is redacted."""

from __future__ import annotations

from harness.incident.learn import NoRedaction, learn_call, learn_payload, make_redactor
from harness.incident.redact import RedactionConfig, Redactor
from harness.incident.turns import read_turns
from harness.trace import conventions as c
from tests.fixtures.incidents.build import T0
from tests.fixtures.instances.build import Builder


def call(**session_attrs) -> Builder:
    b = Builder("conv-learn")
    session = b.span(c.SPAN_AGENT_SESSION, T0, T0 + 20, **session_attrs)
    b.span(c.SPAN_USER_TURN, T0 + 1, T0 + 2, parent=session, lk__pii__user_transcript="hello")
    a = b.span(
        c.SPAN_AGENT_TURN, T0 + 3, T0 + 5, parent=session,
        lk__pii__response__text="May I have your name, please?",
    )  # fmt: skip
    b.span(
        c.SPAN_FUNCTION_TOOL, T0 + 3.1, T0 + 3.3, parent=a,
        lk__function_tool__name="lookup",
        lk__pii__function_tool__arguments='{"phone": "415 555 0199"}',
        lk__pii__function_tool__output='{"patient": "Hannah Schmidt"}',
    )  # fmt: skip
    b.span(c.SPAN_USER_TURN, T0 + 6, T0 + 7, parent=session, lk__pii__user_transcript="ok")
    return b


def learned(b: Builder) -> Redactor:
    instance = b.instance()
    redactor = make_redactor(RedactionConfig())
    learn_call(redactor, read_turns(instance), instance)
    return redactor


def test_values_only_a_tool_holds_are_learned_for_everywhere():
    redactor = learned(call())
    assert redactor.redact("is that hannah schmidt?").text == "is that <NAME>?"
    assert "0199" not in redactor.redact("call me on 415 555 0199").text


def test_status_messages_and_user_data_attributes_teach_too():
    b = call()
    b.span("crm", T0 + 8, T0 + 9, status=c.STATUS_ERROR, status_message="no record for Dr Okafor")
    b.span("stt", T0 + 8, T0 + 9, lk__pii__user_input="my name is Priya Raman")
    redactor = learned(b)
    assert redactor.redact("okafor again").text == "<NAME> again"
    assert redactor.redact("priya").text == "<NAME>"


def test_the_prompt_teaches_nothing():
    """The whole chat context is the agent's instructions, not this call's data: a name in
    it must not be learned (it would redact the clinic's own words everywhere)."""
    redactor = learned(call(lk__pii__chat_ctx="You work for Dr Whitfield at the clinic."))
    assert redactor.redact("whitfield").text == "whitfield"


def test_payloads_are_json_or_text():
    redactor = Redactor()
    learn_payload(redactor, '{"name": "Zoe Quill"}')
    learn_payload(redactor, "booked for Mr. Abernathy")  # not JSON: read as text
    learn_payload(redactor, {"email": "z.quill@example.org"})
    out = redactor.redact("zoe quill, abernathy, z.quill@example.org").text
    assert "quill" not in out.lower() and "abernathy" not in out.lower()


def test_no_redaction_finds_nothing_whatever_it_learned():
    redactor = make_redactor(RedactionConfig(), enabled=False)
    assert isinstance(redactor, NoRedaction)
    instance = call().instance()
    learn_call(redactor, read_turns(instance), instance)
    text = "Hannah Schmidt, 415 555 0199"
    assert redactor.redact(text).text == text and not redactor.counts
