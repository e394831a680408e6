"""Every span name and attribute key the harness writes or reads, in one place.

Ours (written by :mod:`harness_instrument`, defined in ``harness_instrument.conventions``
and re-exported here) come first, then livekit-agents' names, which are read exactly as
``livekit/agents/telemetry/trace_types.py`` spells them. Keys that carry user data
(transcripts, tool payloads, room names) contain a ``pii`` segment, so redaction can drop
them by name. Readers of the environment read ``DEPLOYMENT_ENVIRONMENT_NAME`` first, then
the older ``DEPLOYMENT_ENVIRONMENT``.

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
# Written by the instrument, which owns them (one source of truth); re-exported here.
from harness_instrument.conventions import (  # noqa: F401  (re-exported)
    ACTION_APPROVAL,
    ACTION_KEY,
    ACTION_MUTATING,
    ACTION_NAME,
    AGENT_LAYER,
    AGENT_VERSION,
    APPROVAL_APPROVED,
    APPROVAL_DENIED,
    APPROVAL_SKIPPED,
    APPROVALS,
    BAGGAGE_CONVERSATION_ID,
    CONVERSATION_ID,
    DEPLOYMENT_ENVIRONMENT,
    DEPLOYMENT_ENVIRONMENT_NAME,
    INTENT_NAME,
    INTENT_OUTCOME,
    LAYER_BACKGROUND,
    LAYER_CONVERSATIONAL,
    LAYER_WORKFLOW,
    LAYERS,
    METADATA_CONVERSATION_ID,
    OTLP_TRACES_PATH,
    SERVICE_NAME,
    SERVICE_VERSION,
    SPAN_ACTION_PREFIX,
    SPAN_INTENT_PREFIX,
    Approval,
    Layer,
)

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
LK_DISPATCH_ID: Final = "lk.dispatch_id"
LK_ROOM_NAME: Final = "lk.room_name"
"""Not written by livekit-agents 1.8 (it writes ``lk.pii.room_name``); older releases and
other LiveKit integrations do."""
LIVEKIT_SCOPE: Final = "livekit-agents"
"""The instrumentation scope of every span livekit-agents starts."""

# --- OpenTelemetry GenAI conventions ------------------------------------------------------

GEN_AI_CONVERSATION_ID: Final = "gen_ai.conversation.id"
"""livekit-agents sets it to the room's server id (``lk.room_sid``) on every span of a job."""

JOIN_KEYS: Final[tuple[str, ...]] = (
    GEN_AI_CONVERSATION_ID,
    LK_ROOM_SID,
    LK_PII_ROOM_NAME,
    LK_ROOM_NAME,
    LK_JOB_ID,
    LK_DISPATCH_ID,
)
"""Attributes (on the span, else its resource) whose values tie a span to a call when it
carries no ``conversation.id``, in the order they are tried. Their values are ids the
harness knows (it created the room and the dispatch) or learns from a span that carries
both (``job_entrypoint`` carries the job id beside the room's)."""
ADOPTABLE_KEYS: Final[tuple[str, ...]] = (GEN_AI_CONVERSATION_ID, LK_ROOM_SID)
"""Join keys that may name a conversation of their own, for traces whose calls nobody
registered (a production export): one call per room."""

# --- OTLP ----------------------------------------------------------------------------------

STATUS_UNSET: Final = "unset"
STATUS_OK: Final = "ok"
STATUS_ERROR: Final = "error"
Status = Literal["unset", "ok", "error"]


def is_pii(key: str) -> bool:
    """Whether an attribute key carries user data, by its ``pii`` segment."""
    return "pii" in key.split(".")
