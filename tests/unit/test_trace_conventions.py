"""Attribute and span names: one module, user data marked by a ``pii`` segment."""

from __future__ import annotations

from harness.trace import conventions as c


def _string_constants() -> dict[str, str]:
    return {
        k: v
        for k, v in vars(c).items()
        if k.isupper() and isinstance(v, str) and not k.startswith("_")
    }


def test_keys_that_carry_user_data_say_pii():
    carrying_user_data = [
        c.LK_PII_USER_TRANSCRIPT,
        c.LK_PII_USER_INPUT,
        c.LK_PII_RESPONSE_TEXT,
        c.LK_PII_TTS_INPUT_TEXT,
        c.LK_PII_ROOM_NAME,
        c.LK_PII_FUNCTION_TOOL_ARGUMENTS,
        c.LK_PII_FUNCTION_TOOL_OUTPUT,
    ]
    assert all(c.is_pii(k) for k in carrying_user_data)
    for name, value in _string_constants().items():
        if "PII" in name:
            assert c.is_pii(value), name
        elif name.startswith(("LK_", "CONVERSATION", "AGENT_", "ACTION_", "INTENT_")):
            assert not c.is_pii(value), name


def test_our_names_match_the_architecture():
    assert (c.CONVERSATION_ID, c.AGENT_LAYER, c.AGENT_VERSION, c.DEPLOYMENT_ENVIRONMENT) == (
        "conversation.id",
        "agent.layer",
        "agent.version",
        "deployment.environment",
    )
    assert c.LAYERS == ("conversational", "background", "workflow")
    assert c.APPROVALS == ("approved", "denied", "skipped")
    assert (c.ACTION_NAME, c.ACTION_MUTATING, c.ACTION_APPROVAL) == (
        "action.name",
        "action.mutating",
        "action.approval",
    )
    assert (c.INTENT_NAME, c.INTENT_OUTCOME) == ("intent.name", "intent.outcome")


def test_livekit_names_are_spelled_as_livekit_agents_spells_them():
    from livekit.agents.telemetry import trace_types as lk

    assert c.LK_RESPONSE_TTFT == lk.ATTR_RESPONSE_TTFT
    assert c.LK_RESPONSE_TTFB == lk.ATTR_RESPONSE_TTFB
    assert c.LK_E2E_LATENCY == lk.ATTR_E2E_LATENCY
    assert c.LK_END_OF_TURN_DELAY == lk.ATTR_END_OF_TURN_DELAY
    assert c.LK_TRANSCRIPTION_DELAY == lk.ATTR_TRANSCRIPTION_DELAY
    assert c.LK_PII_USER_TRANSCRIPT == lk.ATTR_USER_TRANSCRIPT
    assert c.LK_INTERRUPTED == lk.ATTR_SPEECH_INTERRUPTED
    assert c.LK_PII_RESPONSE_TEXT == lk.ATTR_RESPONSE_TEXT
    assert c.LK_FUNCTION_TOOL_NAME == lk.ATTR_FUNCTION_TOOL_NAME
    assert c.LK_FUNCTION_TOOL_ID == lk.ATTR_FUNCTION_TOOL_ID
    assert c.LK_FUNCTION_TOOL_IS_ERROR == lk.ATTR_FUNCTION_TOOL_IS_ERROR
    assert c.LK_PII_FUNCTION_TOOL_ARGUMENTS == lk.ATTR_FUNCTION_TOOL_ARGS
    assert c.LK_PII_FUNCTION_TOOL_OUTPUT == lk.ATTR_FUNCTION_TOOL_OUTPUT
    assert c.LK_PII_ROOM_NAME == lk.ATTR_ROOM_NAME
    assert c.LK_PII_USER_INPUT == lk.ATTR_USER_INPUT
    assert c.LK_PII_TTS_INPUT_TEXT == lk.ATTR_TTS_INPUT_TEXT
    assert c.LK_SPEECH_ID == lk.ATTR_SPEECH_ID
    assert c.LK_EOU_PROBABILITY == lk.ATTR_EOU_PROBABILITY
    assert c.LK_INTERRUPTION_SOURCE == lk.ATTR_INTERRUPTION_SOURCE


def test_attribute_keys_are_unique():
    keys = [
        v
        for k, v in _string_constants().items()
        if "." in v and not k.startswith(("BAGGAGE_", "SPAN_", "OTLP_"))
    ]
    assert len(keys) == len(set(keys))


def test_the_instruments_names_have_one_source_of_truth():
    from harness_instrument import conventions as ours

    owned = {k: v for k, v in vars(ours).items() if k[:1].isupper() and not k.startswith("_")}
    assert owned and all(getattr(c, k) is v for k, v in owned.items())
    assert (c.DEPLOYMENT_ENVIRONMENT_NAME, c.SERVICE_VERSION) == (
        "deployment.environment.name",
        "service.version",
    )
