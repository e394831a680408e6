"""Every span name and attribute key the harness writes or reads, in one place.

Ours (written by :mod:`harness.instrument`) come first, then livekit-agents' names, which
are read exactly as ``livekit/agents/telemetry/trace_types.py`` spells them. Keys that carry
user data (transcripts, tool payloads, room names) contain a ``pii`` segment, so redaction
can drop them by name.

Which livekit-agents span carries which ``lk.*`` attribute (livekit-agents 1.8):

- ``user_turn`` (child of ``agent_session``): ``lk.pii.user_transcript``,
  ``lk.transcript_confidence``, ``lk.transcription_delay``, ``lk.end_of_turn_delay``
  (seconds, set when the turn is committed).
- ``agent_turn`` (child of ``agent_session``; one per speech handle): ``lk.speech_id``,
  ``lk.pii.user_input``, ``lk.pii.response.text``, ``lk.interrupted``,
  ``lk.interruption.source``, ``lk.e2e_latency`` (seconds from the user's end of speech
  to the agent starting to speak), and again ``lk.end_of_turn_delay`` and
  ``lk.transcription_delay`` for the turn it answers.
- ``llm_node`` (child of ``agent_turn``): ``lk.response.ttft``, ``lk.pii.response.text``,
  ``lk.pii.chat_ctx``, ``lk.function_tools``.
- ``tts_node`` (child of ``agent_turn``): ``lk.response.ttfb``, ``lk.pii.input_text``.
- ``function_tool`` (under ``agent_turn``): ``lk.function_tool.id``,
  ``lk.function_tool.name``, ``lk.pii.function_tool.arguments`` (a JSON string),
  ``lk.pii.function_tool.output``, ``lk.function_tool.is_error``.
- ``eou_wait`` (child of ``user_turn``) and ``eou_detection`` (child of ``eou_wait``):
  ``lk.eou.probability``, ``lk.eou.endpointing_delay``, ``lk.eou.source``.
"""

from __future__ import annotations

from typing import Final, Literal

# --- ours -------------------------------------------------------------------------------

CONVERSATION_ID: Final = "conversation.id"
"""The conversation an instance is keyed by. On every span, and in baggage across services."""
AGENT_LAYER: Final = "agent.layer"
AGENT_VERSION: Final = "agent.version"
DEPLOYMENT_ENVIRONMENT: Final = "deployment.environment"
SERVICE_NAME: Final = "service.name"

Layer = Literal["conversational", "background", "workflow"]
LAYER_CONVERSATIONAL: Final = "conversational"
LAYER_BACKGROUND: Final = "background"
LAYER_WORKFLOW: Final = "workflow"
LAYERS: Final[tuple[str, ...]] = (LAYER_CONVERSATIONAL, LAYER_BACKGROUND, LAYER_WORKFLOW)

INTENT_NAME: Final = "intent.name"
INTENT_OUTCOME: Final = "intent.outcome"

ACTION_NAME: Final = "action.name"
ACTION_MUTATING: Final = "action.mutating"
ACTION_APPROVAL: Final = "action.approval"

Approval = Literal["approved", "denied", "skipped"]
APPROVAL_APPROVED: Final = "approved"
APPROVAL_DENIED: Final = "denied"
APPROVAL_SKIPPED: Final = "skipped"
APPROVALS: Final[tuple[str, ...]] = (APPROVAL_APPROVED, APPROVAL_DENIED, APPROVAL_SKIPPED)

# Our span names: "intent <intent.name>" and "action <action.name>" (the operation, then its
# target, as the OpenTelemetry GenAI conventions name "execute_tool <tool>"). Views find
# these spans by attribute, never by name.
SPAN_INTENT_PREFIX: Final = "intent"
SPAN_ACTION_PREFIX: Final = "action"

BAGGAGE_CONVERSATION_ID: Final = CONVERSATION_ID
"""The baggage key that carries the conversation id between services."""

METADATA_CONVERSATION_ID: Final = "conversation_id"
"""The key of the conversation id in room and agent dispatch metadata (a JSON object)."""

# --- livekit-agents span names ------------------------------------------------------------

SPAN_JOB_ENTRYPOINT: Final = "job_entrypoint"
SPAN_AGENT_SESSION: Final = "agent_session"
SPAN_USER_TURN: Final = "user_turn"
SPAN_AGENT_TURN: Final = "agent_turn"
SPAN_LLM_NODE: Final = "llm_node"
SPAN_TTS_NODE: Final = "tts_node"
SPAN_FUNCTION_TOOL: Final = "function_tool"
SPAN_EOU_DETECTION: Final = "eou_detection"
SPAN_EOU_WAIT: Final = "eou_wait"
SPAN_USER_SPEAKING: Final = "user_speaking"
SPAN_AGENT_SPEAKING: Final = "agent_speaking"

# --- livekit-agents attributes (seconds for every delay and latency) -----------------------

LK_SPEECH_ID: Final = "lk.speech_id"
LK_RESPONSE_TTFT: Final = "lk.response.ttft"
LK_RESPONSE_TTFB: Final = "lk.response.ttfb"
LK_E2E_LATENCY: Final = "lk.e2e_latency"
LK_END_OF_TURN_DELAY: Final = "lk.end_of_turn_delay"
LK_TRANSCRIPTION_DELAY: Final = "lk.transcription_delay"
LK_TRANSCRIPT_CONFIDENCE: Final = "lk.transcript_confidence"
LK_INTERRUPTED: Final = "lk.interrupted"
LK_INTERRUPTION_SOURCE: Final = "lk.interruption.source"
LK_EOU_PROBABILITY: Final = "lk.eou.probability"
LK_EOU_DELAY: Final = "lk.eou.endpointing_delay"

LK_PII_USER_TRANSCRIPT: Final = "lk.pii.user_transcript"
LK_PII_USER_INPUT: Final = "lk.pii.user_input"
LK_PII_RESPONSE_TEXT: Final = "lk.pii.response.text"
LK_PII_TTS_INPUT_TEXT: Final = "lk.pii.input_text"
LK_PII_ROOM_NAME: Final = "lk.pii.room_name"

LK_FUNCTION_TOOL_ID: Final = "lk.function_tool.id"
LK_FUNCTION_TOOL_NAME: Final = "lk.function_tool.name"
LK_FUNCTION_TOOL_IS_ERROR: Final = "lk.function_tool.is_error"
LK_PII_FUNCTION_TOOL_ARGUMENTS: Final = "lk.pii.function_tool.arguments"
LK_PII_FUNCTION_TOOL_OUTPUT: Final = "lk.pii.function_tool.output"

LK_ROOM_SID: Final = "lk.room_sid"
LK_JOB_ID: Final = "lk.job_id"
LK_AGENT_NAME: Final = "lk.agent_name"

# --- OTLP ----------------------------------------------------------------------------------

STATUS_UNSET: Final = "unset"
STATUS_OK: Final = "ok"
STATUS_ERROR: Final = "error"
Status = Literal["unset", "ok", "error"]

OTLP_TRACES_PATH: Final = "/v1/traces"


def is_pii(key: str) -> bool:
    """Whether an attribute key carries user data, by its ``pii`` segment."""
    return "pii" in key.split(".")
