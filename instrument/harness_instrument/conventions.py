"""The span names, attribute keys and baggage keys :mod:`harness_instrument` writes.

This is their one source of truth: ``harness.trace.conventions`` re-exports them beside the
livekit-agents names it reads. Standard library only, so importing it costs nothing.
"""

from __future__ import annotations

from typing import Final, Literal

CONVERSATION_ID: Final = "conversation.id"
"""The conversation an instance is keyed by. On every span, and in baggage across services."""
AGENT_LAYER: Final = "agent.layer"
AGENT_VERSION: Final = "agent.version"
SERVICE_NAME: Final = "service.name"
SERVICE_VERSION: Final = "service.version"
"""OpenTelemetry's name for the version; written beside ``agent.version`` with its value."""
DEPLOYMENT_ENVIRONMENT_NAME: Final = "deployment.environment.name"
"""The current semantic-convention name of the environment: written, and read first."""
DEPLOYMENT_ENVIRONMENT: Final = "deployment.environment"
"""The older name of the environment: still written, and read when the current one is absent."""

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
ACTION_KEY: Final = "action.key"
"""What an action acts on, as an idempotency key (no personal data): two mutating actions
of one call with the same name and key did the same thing twice."""

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

OTLP_TRACES_PATH: Final = "/v1/traces"
"""Appended to an OTLP/HTTP base endpoint to reach the traces receiver."""
