"""What the conversational agent calls to reach the other two layers.

Every request carries the current trace context (``harness_instrument.inject``): W3C
``traceparent`` and ``baggage`` with the conversation id, so the background agent's spans
are children of the agent's ``function_tool`` span and the after-call workflow links to
the call.

- :func:`request_booking_remote` and :func:`availability_remote` ask the background agent
  at ``CLINIC_BACKEND_URL`` (5 s timeout), with the call's fault knobs for the background
  agent in the :data:`FAULTS_HEADER` header (a JSON object). A refusal (409, or 400 for a
  malformed request) raises :class:`BackendRefused`, whose message is safe to tell the
  caller; a failure of the service (5xx, timeout, no answer) raises
  :class:`BackendUnavailable`.
- :func:`enqueue_after_call` queues the after-call job at ``CLINIC_WORKFLOW_URL`` (3 s
  timeout). It never raises: a failure is logged and the call ends as it would anyway.
- :func:`transcript_from_history` turns a livekit-agents chat history into the job's
  transcript.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import aiohttp
import harness_instrument as instrument

from .deploy import ENV_BACKEND_URL, ENV_WORKFLOW_URL

__all__ = [
    "BackendError",
    "BackendRefused",
    "BackendUnavailable",
    "availability_remote",
    "backend_url",
    "enqueue_after_call",
    "request_booking_remote",
    "transcript_from_history",
    "workflow_url",
]

log = logging.getLogger("clinic.clients")

BACKEND_TIMEOUT_S = 5.0
FAULTS_HEADER = "X-Clinic-Faults"
"""The request header that carries the background agent's fault knobs for one request."""
WORKFLOW_TIMEOUT_S = 3.0
TRANSCRIPT_ROLES = ("user", "assistant")


class BackendError(Exception):
    """The background agent did not book; the message is safe to tell the caller."""


class BackendRefused(BackendError):
    """The background agent refused the request (the slot is taken, in the past, ...)."""

    def __init__(self, message: str, *, status: int = 409, rule: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.rule = rule


class BackendUnavailable(BackendError):
    """The background agent failed or did not answer in time."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


def backend_url() -> str | None:
    """``CLINIC_BACKEND_URL`` without a trailing slash, None when unset."""
    return os.environ.get(ENV_BACKEND_URL, "").strip().rstrip("/") or None


def workflow_url() -> str | None:
    """``CLINIC_WORKFLOW_URL`` without a trailing slash, None when unset."""
    return os.environ.get(ENV_WORKFLOW_URL, "").strip().rstrip("/") or None


async def request_booking_remote(
    name: str,
    day: str,
    time: str,
    service: str,
    *,
    faults: Mapping[str, Any] | None = None,
    timeout_s: float = BACKEND_TIMEOUT_S,
) -> dict[str, Any]:
    """Book through the background agent; returns the booking with its ``confirmation_id``.

    ``faults`` (optional) overrides the backend's knobs for this request only:
    ``{"skip_approval": true}``, ``{"tool_failure_rate": 0.5}``.
    """
    body: dict[str, Any] = {"name": name, "day": day, "time": time, "service": service}
    return await _backend("POST", "/bookings", json_body=body, timeout_s=timeout_s, faults=faults)


async def availability_remote(
    day: str,
    *,
    faults: Mapping[str, Any] | None = None,
    timeout_s: float = BACKEND_TIMEOUT_S,
) -> dict[str, Any]:
    """Free times on a weekday: ``{"day": "tuesday", "open": true, "times": [...]}``."""
    return await _backend(
        "GET", "/bookings", params={"day": day}, timeout_s=timeout_s, faults=faults
    )


async def _backend(
    method: str,
    path: str,
    *,
    json_body: Any = None,
    params: Mapping[str, str] | None = None,
    timeout_s: float,
    faults: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    base = backend_url()
    if base is None:
        raise BackendUnavailable(f"the booking system is not configured ({ENV_BACKEND_URL})")
    headers = dict(instrument.inject({}))
    if faults:
        headers[FAULTS_HEADER] = json.dumps(dict(faults))
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.request(
                method, base + path, json=json_body, params=params, headers=headers
            ) as resp:
                status = resp.status
                text = await resp.text()
    except TimeoutError:
        raise BackendUnavailable(
            f"the booking system did not answer within {timeout_s:g} seconds"
        ) from None
    except aiohttp.ClientError as e:
        raise BackendUnavailable(f"cannot reach the booking system: {e}") from None
    doc = _json_object(text)
    reason = str(doc.get("error") or "").strip()
    if 200 <= status < 300:
        return doc
    if 400 <= status < 500:
        rule = doc.get("rule")
        raise BackendRefused(
            reason or f"the booking system refused the request (HTTP {status})",
            status=status,
            rule=str(rule) if rule else None,
        )
    raise BackendUnavailable(
        f"the booking system failed (HTTP {status}" + (f": {reason})" if reason else ")"),
        status=status,
    )


def _json_object(text: str) -> dict[str, Any]:
    try:
        doc = json.loads(text) if text else {}
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


async def enqueue_after_call(
    conversation_id: str,
    transcript: Sequence[Mapping[str, str]],
    bookings: Sequence[Mapping[str, Any]],
    *,
    faults: Mapping[str, Any] | None = None,
    timeout_s: float = WORKFLOW_TIMEOUT_S,
) -> None:
    """Queue the after-call job; logs and returns on any failure, never raises.

    ``transcript`` is ``[{"role": "user" | "assistant", "text": ...}, ...]`` in order (see
    :func:`transcript_from_history`); ``bookings`` the dicts the backend returned.
    ``faults`` (optional): ``{"workflow_crash": true}`` for this job only.
    """
    try:
        base = workflow_url()
        if base is None:
            log.info("no after-call workflow (%s is not set)", ENV_WORKFLOW_URL)
            return
        carrier = dict(instrument.inject({}))
        body: dict[str, Any] = {
            "conversation_id": conversation_id,
            "transcript": [{"role": t["role"], "text": t["text"]} for t in transcript],
            "bookings": [dict(b) for b in bookings],
            "trace": carrier,
        }
        if faults:
            body["faults"] = dict(faults)
        timeout = aiohttp.ClientTimeout(total=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            async with http.post(base + "/jobs", json=body, headers=carrier) as resp:
                if resp.status != 202:
                    log.warning(
                        "the after-call workflow refused the job for %s: HTTP %d %s",
                        conversation_id,
                        resp.status,
                        (await resp.text())[:300],
                    )
                    return
        log.info("after-call job queued for %s", conversation_id)
    except TimeoutError:
        log.warning(
            "the after-call workflow did not answer within %gs; no after-call job for %s",
            timeout_s,
            conversation_id,
        )
    except Exception as e:
        log.warning(
            "cannot queue the after-call job for %s: %s: %s",
            conversation_id,
            type(e).__name__,
            e,
        )


def transcript_from_history(items: Iterable[Any]) -> list[dict[str, str]]:
    """``[{"role", "text"}]`` from a livekit-agents chat history (``session.history.items``):
    the caller's (``user``) and the agent's (``assistant``) messages in order; tool calls,
    system instructions and empty messages are left out."""
    out = []
    for item in items:
        if getattr(item, "type", "message") != "message":
            continue
        role = getattr(item, "role", None)
        if role not in TRANSCRIPT_ROLES:
            continue
        text = getattr(item, "text_content", None)
        if callable(text):
            text = text()
        if isinstance(text, str) and text.strip():
            out.append({"role": role, "text": text.strip()})
    return out
