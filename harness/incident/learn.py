"""Teach the redactor the whole call before anything is redacted.

A name or number said once is redacted wherever it occurs again, so the redactor first
reads everything the call holds: every caller turn (with the agent's question it answers,
which marks an answer as a name or a birth date), every agent reply, tool arguments and
results (JSON under personal keys as their kind, every other string as text), span status
messages, and the spans' other user-data (``pii``) attributes. The whole prompt
(``chat_ctx``) is instructions, not this call's data, and is skipped.
"""

from __future__ import annotations

import json
from typing import Any

from harness.incident.redact import PiiMatch, RedactionConfig, Redactor, Speaker
from harness.incident.turns import CallerTurns
from harness.trace import conventions as c
from harness.trace.instance import WORD_TEXT, Instance

__all__ = ["NoRedaction", "learn_call", "learn_payload", "make_redactor"]

_CALLER_KEYS = frozenset({c.LK_PII_USER_TRANSCRIPT, c.LK_PII_USER_INPUT, WORD_TEXT})
_AGENT_KEYS = frozenset({c.LK_PII_RESPONSE_TEXT, c.LK_PII_TTS_INPUT_TEXT})
_TOOL_KEYS = frozenset({c.LK_PII_FUNCTION_TOOL_ARGUMENTS, c.LK_PII_FUNCTION_TOOL_OUTPUT})


class NoRedaction(Redactor):
    """A redactor that finds nothing (``redact=False``): text passes through unchanged."""

    def find(self, text: str, *, speaker: Speaker = "caller") -> list[PiiMatch]:
        return []


def make_redactor(config: RedactionConfig, enabled: bool = True) -> Redactor:
    """The import's redactor; with ``enabled=False`` one that redacts nothing."""
    return Redactor(config) if enabled else NoRedaction(config)


def learn_payload(redactor: Redactor, payload: Any) -> None:
    """A tool's arguments or result: JSON (personal keys and every string) or plain text."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            redactor.learn_text(payload, speaker="system")
            return
    redactor.learn_arguments(payload)


def _speaker(key: str) -> Speaker:
    if key in _CALLER_KEYS:
        return "caller"
    return "agent" if key in _AGENT_KEYS else "system"


def learn_call(redactor: Redactor, read: CallerTurns, instance: Instance) -> None:
    """Teach ``redactor`` the call's names and personal values (see the module)."""
    asked = read.greeting.agent_said if read.greeting is not None else None
    if asked:
        redactor.learn_text(asked, speaker="agent")
    for t in read.turns:
        heard = " ".join(w.text for w in t.words)
        for text in (t.text, heard):
            if text:
                redactor.learn_text(text, speaker="caller", asked=asked)
        if t.agent_said:
            redactor.learn_text(t.agent_said, speaker="agent")
        asked = t.agent_said
    asked = None
    for turn in instance.turns:
        for text in (turn.caller_said, turn.agent_heard):
            if text:
                redactor.learn_text(text, speaker="caller", asked=asked)
        if turn.agent_said:
            redactor.learn_text(turn.agent_said, speaker="agent")
        asked = turn.agent_said
    for tc in instance.tool_calls:
        learn_payload(redactor, tc.arguments)
        if tc.output:
            learn_payload(redactor, tc.output)
    for span in instance.spans:
        if span.status_message:
            redactor.learn_text(span.status_message, speaker="system")
        for key, value in span.attributes.items():
            if not isinstance(value, str) or not c.is_pii(key) or key in _TOOL_KEYS:
                continue
            if "chat_ctx" in key:
                continue
            redactor.learn_text(value, speaker=_speaker(key))
