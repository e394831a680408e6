"""Alert channels: deliver :class:`~harness.monitor.model.AlertEvent` notifications.

Channels are synchronous (the monitor calls them from a worker thread) and never raise to
the caller: :meth:`AlertChannel.send` returns a :class:`DeliveryResult` and counts the
delivery on the channel (``sent`` and ``failures``, one per ``send`` with events). Every
HTTP request has a timeout (default 10 s); connection errors, timeouts, 429 and 5xx
answers are retried twice with exponential backoff (0.5 s, 1 s); other 4xx answers are not.

Channels, as ``--alert`` specs (:func:`channel_from_spec`):

``webhook:URL``
    POSTs ``Content-Type: application/json``::

        {
          "version": "harness.alert/1",
          "alerts": [
            {
              "key": "gate:e2e_latency_p90:15m,source=synthetic",  # stable across restarts
              "status": "firing",              # or "resolved"
              "alertname": "HarnessE2eLatencyP90",
              "severity": "critical",          # "warning" (degraded, no data) or "critical"
              "summary": "e2e_latency_p90 (15m window): p90 = 4600 ms > fail 3500 ms ...",
              "labels": {"source": "synthetic"},   # extra routing labels
              "starts_at": 1767225600.0,       # epoch seconds the condition began
              "ends_at": null,                 # epoch seconds it resolved (resolved only)
              "gate": "e2e_latency_p90",       # null for the monitor's own alerts
              "window": "15m",                 # null for the monitor's own alerts
              "state": "failing",              # ok, degraded, failing, no_data
              "value": "p90 4600 ms",          # the statistic as people read it, or null
              "ci": "[4100 ms, 5200 ms]",      # its 95 % confidence interval, or null
              "n": 24,                         # samples in the window, or null
              "failed_calls": [                # the window's failed calls
                {"conversation_id": "c-17", "artifacts": ".harness/monitor/calls/c-17"}
              ],
              "runbook_url": "https://wiki.example.com/runbooks/latency",  # or null
              "annotations": {"description": "..."}  # free text, may be empty
            }
          ]
        }

``slack:URL``
    A Slack incoming webhook: ``{"text": ..., "blocks": [...]}``, one section per alert
    headed ``[FIRING] e2e_latency_p90 (15m window): p90 4600 ms [4100 ms, 5200 ms], n=24``,
    then the summary, the failed calls with their artifact paths and a ``<url|runbook>``
    link. The URL is a secret: only its scheme and host are ever shown.

``alertmanager:URL``
    Alertmanager's v2 API: POSTs ``URL/api/v2/alerts`` with a list of
    ``{"labels", "annotations", "startsAt", "endsAt", "generatorURL"}``. Labels are
    ``alertname``, ``severity``, ``gate`` and ``window`` over the event's labels; times are
    RFC 3339 in UTC (``2026-01-01T00:00:00.000Z``). A resolved alert's ``endsAt`` is when it
    resolved; a firing one's is now + ``resolve_timeout_s`` (default 15 min).
    Alertmanager forgets an alert that is not re-posted before its ``endsAt``, so this
    channel has ``resend_firing = True``: the monitor re-sends every firing alert to it each
    cycle (keep ``resolve_timeout_s`` above the cycle period), while webhook and Slack
    channels (``resend_firing = False``) get only the transitions. Severity is a label, so
    an escalated alert is a new Alertmanager alert; the old one, no longer re-sent, expires
    at its ``endsAt``.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Protocol, runtime_checkable
from urllib.parse import urlsplit

from harness.monitor.model import AlertEvent

__all__ = [
    "PAYLOAD_VERSION",
    "AlertChannel",
    "AlertmanagerChannel",
    "DeliveryResult",
    "SlackChannel",
    "WebhookChannel",
    "channel_from_spec",
    "redact_url",
    "rfc3339",
    "slack_headline",
]

PAYLOAD_VERSION = "harness.alert/1"
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_RETRIES = 2
DEFAULT_BACKOFF_S = 0.5
_SPEC_FORMS = "webhook:URL, slack:URL or alertmanager:URL (URL is http:// or https://)"
_MAX_FAILED_CALLS = 10
_MAX_SLACK_ALERTS = 45  # Slack allows 50 blocks per message
_ERROR_BODY_CHARS = 200


@dataclass(frozen=True)
class DeliveryResult:
    """One ``send``: ``ok``, the last HTTP ``status`` (None without an answer), the
    ``error`` text (never the URL's path, query or credentials) and the ``attempts`` made."""

    ok: bool
    status: int | None = None
    error: str | None = None
    attempts: int = 0


@runtime_checkable
class AlertChannel(Protocol):
    """Where alert events go."""

    @property
    def name(self) -> str:
        """The channel kind (``webhook``, ``slack``, ``alertmanager``): a metrics label."""
        ...

    @property
    def display(self) -> str:
        """The channel for people and logs, its URL redacted."""
        ...

    @property
    def resend_firing(self) -> bool:
        """True when the monitor must re-send every firing alert each cycle."""
        ...

    def send(self, events: Sequence[AlertEvent]) -> DeliveryResult:
        """Deliver ``events``; never raises."""
        ...


# --- URLs -------------------------------------------------------------------------------------


def redact_url(url: str) -> str:
    """``scheme://host[:port]``, with ``/…`` for any path, query or fragment; credentials
    are dropped. ``https://hooks.slack.com/services/T/B/X`` → ``https://hooks.slack.com/…``."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return "<invalid URL>"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port is not None else host
    secret = parts.path not in ("", "/") or parts.query or parts.fragment
    scheme = parts.scheme or "?"
    return f"{scheme}://{netloc}{'/…' if secret else parts.path}"


def _check_url(url: str, kind: str) -> str:
    """``url`` if it is an absolute http(s) URL with a host, else ValueError (redacted)."""
    try:
        parts = urlsplit(url)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or any(c.isspace() for c in url)
    ):
        raise ValueError(
            f"alert channel {kind}:{redact_url(url)}: the URL must be an absolute "
            "http:// or https:// URL with a host"
        )
    return url


def rfc3339(t: float) -> str:
    """Epoch seconds as RFC 3339 UTC with milliseconds: ``2026-01-01T00:00:00.000Z``."""
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --- the HTTP base ----------------------------------------------------------------------------


class _HttpChannel:
    """POSTs a JSON body to one URL with timeouts, retries and counters."""

    kind: ClassVar[str] = "http"
    resend_firing: ClassVar[bool] = False

    def __init__(
        self,
        url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF_S,
    ) -> None:
        self._url = _check_url(url, self.kind)
        self.timeout = timeout
        self.retries = max(0, retries)
        self.backoff = max(0.0, backoff)
        self.sent = 0
        self.failures = 0
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self.kind

    @property
    def display(self) -> str:
        return f"{self.kind}:{redact_url(self._url)}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.display!r})"

    def _endpoint(self) -> str:
        return self._url

    def body(self, events: Sequence[AlertEvent], now: float) -> Any:
        """The JSON body for ``events`` (``now``: epoch seconds of the send)."""
        raise NotImplementedError

    def send(self, events: Sequence[AlertEvent]) -> DeliveryResult:
        """POST ``events``; nothing to send is a success without a request."""
        if not events:
            return DeliveryResult(ok=True)
        try:
            data = json.dumps(self.body(events, time.time()), ensure_ascii=False).encode()
        except Exception as exc:  # a bug or odd event content: report it, do not raise
            return self._count(DeliveryResult(False, error=f"cannot encode alerts: {exc}"))
        return self._count(self._post(data))

    def _count(self, result: DeliveryResult) -> DeliveryResult:
        with self._lock:
            if result.ok:
                self.sent += 1
            else:
                self.failures += 1
        return result

    def _post(self, data: bytes) -> DeliveryResult:
        status: int | None = None
        error = ""
        attempts = 0
        for attempt in range(self.retries + 1):
            if attempt:
                time.sleep(self.backoff * 2 ** (attempt - 1))
            attempts += 1
            status, error, retry = self._attempt(data)
            if not error:
                return DeliveryResult(True, status, None, attempts)
            if not retry:
                break
        return DeliveryResult(False, status, self._scrub(error), attempts)

    def _attempt(self, data: bytes) -> tuple[int | None, str, bool]:
        """One POST: (status, error text or "", whether to retry)."""
        request = urllib.request.Request(
            self._endpoint(),
            data=data,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": "livekit-call-harness"},
        )
        opener = urllib.request.build_opener()
        try:
            with opener.open(request, timeout=self.timeout) as response:
                response.read(65536)
                return response.status, "", False
        except urllib.error.HTTPError as exc:
            detail = ""
            try:
                detail = exc.read(_ERROR_BODY_CHARS).decode("utf-8", "replace").strip()
            except Exception:
                pass
            finally:
                exc.close()
            text = f"HTTP {exc.code} {exc.reason}" + (f": {detail}" if detail else "")
            return exc.code, text, exc.code == 429 or exc.code >= 500
        except urllib.error.URLError as exc:
            return None, f"cannot connect: {exc.reason}", True
        except (TimeoutError, OSError, http.client.HTTPException) as exc:
            return None, f"{type(exc).__name__}: {exc}", True
        except Exception as exc:  # never raise to the monitor
            return None, f"{type(exc).__name__}: {exc}", False

    def _scrub(self, text: str) -> str:
        """``text`` without the URL's secret parts."""
        parts = urlsplit(self._url)
        out = text.replace(self._endpoint(), self.display).replace(self._url, self.display)
        secrets = [parts.path, parts.query, parts.fragment, parts.username, parts.password]
        for secret in secrets:
            if secret and len(secret) > 1:
                out = out.replace(secret, "…")
        return out


# --- the channels ------------------------------------------------------------------------------


class WebhookChannel(_HttpChannel):
    """POSTs ``{"version": "harness.alert/1", "alerts": [...]}`` (see the module)."""

    kind: ClassVar[str] = "webhook"

    def body(self, events: Sequence[AlertEvent], now: float) -> Any:
        return {"version": PAYLOAD_VERSION, "alerts": [e.to_dict() for e in events]}


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def slack_headline(event: AlertEvent) -> str:
    """``[FIRING] e2e_latency_p90 (15m window): p90 4.6 s [4.1 s, 5.2 s], n=24``."""
    what = event.gate or event.alertname
    where = f" ({event.window} window)" if event.window else ""
    figures = " ".join(x for x in (event.value, event.ci) if x)
    if event.n is not None:
        figures = f"{figures}, n={event.n}" if figures else f"n={event.n}"
    return f"[{event.status.upper()}] {what}{where}: {figures or event.summary}"


def _slack_section(event: AlertEvent) -> str:
    lines = [
        f"*{_slack_escape(slack_headline(event))}*",
        f"{event.severity} · {event.state or '-'} · {_slack_escape(event.summary)}",
    ]
    if event.failed_calls:
        lines.append(f"Failed calls ({len(event.failed_calls)}):")
        for cid, path in event.failed_calls[:_MAX_FAILED_CALLS]:
            where = f" `{_slack_escape(path)}`" if path else ""
            lines.append(f"• `{_slack_escape(cid)}`{where}")
        if len(event.failed_calls) > _MAX_FAILED_CALLS:
            lines.append(f"… and {len(event.failed_calls) - _MAX_FAILED_CALLS} more")
    if event.runbook_url:
        lines.append(f"<{event.runbook_url}|runbook>")
    text = "\n".join(lines)
    return text if len(text) <= 3000 else text[:2999] + "…"


class SlackChannel(_HttpChannel):
    """A Slack incoming webhook: ``text`` (the headlines, for notifications) and one
    ``section`` block per alert. Its URL is a secret and never shown."""

    kind: ClassVar[str] = "slack"

    def body(self, events: Sequence[AlertEvent], now: float) -> Any:
        shown = list(events)[:_MAX_SLACK_ALERTS]
        blocks: list[dict[str, Any]] = [
            {"type": "section", "text": {"type": "mrkdwn", "text": _slack_section(e)}}
            for e in shown
        ]
        if len(events) > len(shown):
            more = f"… and {len(events) - len(shown)} more alerts"
            blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": more}]})
        text = "\n".join(_slack_escape(slack_headline(e)) for e in events)
        return {"text": text[:3000], "blocks": blocks}


class AlertmanagerChannel(_HttpChannel):
    """Alertmanager's ``/api/v2/alerts``; firing alerts are re-sent every cycle."""

    kind: ClassVar[str] = "alertmanager"
    resend_firing: ClassVar[bool] = True

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = DEFAULT_TIMEOUT_S,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF_S,
        resolve_timeout_s: float = 900.0,
        generator_url: str | None = None,
    ) -> None:
        super().__init__(base_url, timeout=timeout, retries=retries, backoff=backoff)
        self.resolve_timeout_s = resolve_timeout_s
        self.generator_url = generator_url

    def _endpoint(self) -> str:
        return self._url.rstrip("/") + "/api/v2/alerts"

    def alert(self, event: AlertEvent, now: float) -> dict[str, Any]:
        """One postable alert of the v2 API."""
        labels = {str(k): str(v) for k, v in event.labels.items()}
        labels.update(alertname=event.alertname, severity=event.severity)
        if event.gate:
            labels["gate"] = event.gate
        if event.window:
            labels["window"] = event.window
        annotations = {str(k): str(v) for k, v in event.annotations.items()}
        annotations.update(
            summary=event.summary,
            description=annotations.get("description") or event.summary,
        )
        extra = {
            "runbook_url": event.runbook_url,
            "value": event.value,
            "ci": event.ci,
            "n": None if event.n is None else str(event.n),
            "failed_calls": "\n".join(
                f"{cid} ({path})" if path else cid for cid, path in event.failed_calls
            ),
        }
        annotations.update({k: v for k, v in extra.items() if v})
        if event.status == "resolved":
            ends = event.ends_at if event.ends_at is not None else now
        else:
            ends = now + self.resolve_timeout_s
        out: dict[str, Any] = {
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(event.starts_at),
            "endsAt": rfc3339(ends),
        }
        if self.generator_url:
            out["generatorURL"] = self.generator_url
        return out

    def body(self, events: Sequence[AlertEvent], now: float) -> Any:
        return [self.alert(e, now) for e in events]


_KINDS: dict[str, type[_HttpChannel]] = {
    "webhook": WebhookChannel,
    "slack": SlackChannel,
    "alertmanager": AlertmanagerChannel,
}


def channel_from_spec(
    spec: str,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    retries: int = DEFAULT_RETRIES,
    backoff: float = DEFAULT_BACKOFF_S,
) -> AlertChannel:
    """``webhook:URL``, ``slack:URL`` or ``alertmanager:URL`` → its channel. Raises
    ValueError naming the spec (its URL redacted) and the three forms."""
    kind, sep, url = spec.strip().partition(":")
    cls = _KINDS.get(kind.strip().lower())
    if not sep or cls is None:
        raise ValueError(f"alert channel {_redact_spec(spec)!r}: expected {_SPEC_FORMS}")
    try:
        return cls(url.strip(), timeout=timeout, retries=retries, backoff=backoff)
    except ValueError as exc:
        raise ValueError(f"{exc}; expected {_SPEC_FORMS}") from None


_URL_IN_SPEC = re.compile(r"^(?:(?P<kind>[^:/]*):)?(?P<url>[A-Za-z][A-Za-z0-9+.-]*://.*)$", re.S)


def _redact_spec(spec: str) -> str:
    """A spec for an error message: its URL redacted, nothing after the kind otherwise."""
    text = spec.strip()
    m = _URL_IN_SPEC.match(text)
    if m:
        kind = m.group("kind")
        return (f"{kind}:" if kind is not None else "") + redact_url(m.group("url"))
    kind, sep, rest = text.partition(":")
    if sep:
        return f"{kind}:…" if rest else f"{kind}:"
    return text if len(text) <= 20 and "/" not in text else "…"
