"""Alert channels against a real local HTTP receiver: bodies, retries, timeouts, specs and
the secrecy of webhook URLs."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from harness.monitor.alerts import (
    PAYLOAD_VERSION,
    AlertChannel,
    AlertmanagerChannel,
    DeliveryResult,
    SlackChannel,
    WebhookChannel,
    channel_from_spec,
    redact_url,
    rfc3339,
    slack_headline,
)
from harness.monitor.model import AlertEvent

T0 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
RFC3339_Z = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
SECRET = "T0SECRET/B0SECRET/XXSECRETTOKEN"
SLACK_URL = f"https://hooks.slack.com/services/{SECRET}"


@dataclass
class Receiver:
    """A local HTTP server recording every POST; answers ``statuses`` in turn, then 200."""

    url: str = ""
    requests: list[tuple[str, dict[str, str], bytes]] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    answer: bytes = b"ok"
    delay: float = 0.0

    def bodies(self) -> list:
        return [json.loads(body) for _, _, body in self.requests]


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch):
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            rec.requests.append((self.path, dict(self.headers), body))
            if rec.delay:
                time.sleep(rec.delay)
            status = rec.statuses.pop(0) if rec.statuses else 200
            try:
                self.send_response(status)
                self.send_header("Content-Length", str(len(rec.answer)))
                self.end_headers()
                self.wfile.write(rec.answer)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client timed out and left

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    rec.url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        yield rec
    finally:
        server.shutdown()
        server.server_close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def firing(**kw) -> AlertEvent:
    base = dict(
        key="gate:e2e_latency_p90:15m,source=synthetic",
        status="firing",
        alertname="HarnessE2eLatencyP90",
        severity="critical",
        summary="e2e_latency_p90 (15m window): p90 = 4.6 s > fail 3.5 s",
        labels={"source": "synthetic"},
        starts_at=T0,
        gate="e2e_latency_p90",
        window="15m",
        state="failing",
        value="p90 4.6 s",
        ci="[4.1 s, 5.2 s]",
        n=24,
        failed_calls=(("conv-17", ".harness/monitor/calls/conv-17"), ("conv-18", None)),
        runbook_url="https://wiki.example.com/runbooks/latency",
        annotations={"description": "end-to-end latency"},
    )
    base.update(kw)
    return AlertEvent(**base)  # type: ignore[arg-type]


def resolved() -> AlertEvent:
    return firing(status="resolved", ends_at=T0 + 900, state="ok")


FAST = {"timeout": 2.0, "backoff": 0.01}


# --- webhook -------------------------------------------------------------------------------------


def test_webhook_posts_the_versioned_body(receiver):
    ch = WebhookChannel(receiver.url + "/hook", **FAST)
    result = ch.send([firing(), resolved()])
    assert result == DeliveryResult(ok=True, status=200, error=None, attempts=1)
    [(path, headers, _)] = receiver.requests
    assert path == "/hook"
    assert headers["Content-Type"] == "application/json"
    [body] = receiver.bodies()
    assert set(body) == {"version", "alerts"}
    assert body["version"] == PAYLOAD_VERSION == "harness.alert/1"
    first, second = body["alerts"]
    assert set(first) == {
        "key",
        "status",
        "alertname",
        "severity",
        "summary",
        "labels",
        "starts_at",
        "ends_at",
        "gate",
        "window",
        "state",
        "value",
        "ci",
        "n",
        "failed_calls",
        "runbook_url",
        "annotations",
    }
    assert first == firing().to_dict()
    assert first["failed_calls"][0] == {
        "conversation_id": "conv-17",
        "artifacts": ".harness/monitor/calls/conv-17",
    }
    assert (second["status"], second["ends_at"]) == ("resolved", T0 + 900)
    assert (ch.sent, ch.failures) == (1, 0)
    assert ch.resend_firing is False
    assert isinstance(ch, AlertChannel)


def test_nothing_to_send_makes_no_request(receiver):
    ch = WebhookChannel(receiver.url, **FAST)
    assert ch.send([]).ok
    assert receiver.requests == []
    assert (ch.sent, ch.failures) == (0, 0)


def test_an_unencodable_event_is_a_failed_delivery_not_an_exception(receiver):
    ch = WebhookChannel(receiver.url, **FAST)
    result = ch.send([firing(labels={"x": object()})])
    assert not result.ok
    assert "encode" in (result.error or "")
    assert ch.failures == 1
    assert receiver.requests == []


# --- slack ---------------------------------------------------------------------------------------


def test_slack_body_has_text_and_blocks_with_everything_on_call_needs(receiver):
    ch = SlackChannel(receiver.url + "/services/" + SECRET, **FAST)
    assert ch.send([firing(), resolved()]).ok
    [body] = receiver.bodies()
    assert set(body) == {"text", "blocks"}
    headline = "[FIRING] e2e_latency_p90 (15m window): p90 4.6 s [4.1 s, 5.2 s], n=24"
    assert slack_headline(firing()) == headline
    assert headline in body["text"]
    assert "[RESOLVED] e2e_latency_p90" in body["text"]
    assert len(body["blocks"]) == 2
    block = body["blocks"][0]
    assert block["type"] == "section"
    text = block["text"]["text"]
    assert block["text"]["type"] == "mrkdwn"
    for needle in (
        "e2e_latency_p90",
        "15m window",
        "p90 4.6 s",
        "n=24",
        "conv-17",
        ".harness/monitor/calls/conv-17",
        "conv-18",
        "<https://wiki.example.com/runbooks/latency|runbook>",
        "critical",
    ):
        assert needle in text, needle
    assert "[RESOLVED]" in body["blocks"][1]["text"]["text"]


def test_slack_escapes_markup_and_headline_without_a_gate():
    ev = firing(gate=None, window=None, value=None, ci=None, n=None, summary="a <b> & c")
    assert slack_headline(ev) == "[FIRING] HarnessE2eLatencyP90: a <b> & c"
    body = SlackChannel("https://hooks.slack.com/x").body([ev], T0)
    assert "a &lt;b&gt; &amp; c" in body["blocks"][0]["text"]["text"]


def test_slack_caps_failed_calls_and_blocks():
    calls = tuple((f"c-{i}", f"/calls/c-{i}") for i in range(30))
    body = SlackChannel("https://hooks.slack.com/x").body([firing(failed_calls=calls)] * 60, T0)
    assert len(body["blocks"]) <= 50
    assert "and 15 more alerts" in json.dumps(body["blocks"][-1])
    assert "and 20 more" in body["blocks"][0]["text"]["text"]


# --- alertmanager --------------------------------------------------------------------------------


def test_alertmanager_posts_v2_alerts(receiver):
    ch = AlertmanagerChannel(
        receiver.url + "/", resolve_timeout_s=600, generator_url="http://monitor:9464/", **FAST
    )
    assert ch.resend_firing is True
    before = time.time()
    assert ch.send([firing(), resolved()]).ok
    [(path, _, _)] = receiver.requests
    assert path == "/api/v2/alerts"
    [body] = receiver.bodies()
    assert isinstance(body, list) and len(body) == 2
    fire, res = body
    assert set(fire) == {"labels", "annotations", "startsAt", "endsAt", "generatorURL"}
    assert fire["labels"] == {
        "alertname": "HarnessE2eLatencyP90",
        "severity": "critical",
        "gate": "e2e_latency_p90",
        "window": "15m",
        "source": "synthetic",
    }
    ann = fire["annotations"]
    assert ann["summary"].startswith("e2e_latency_p90 (15m window)")
    assert ann["description"] == "end-to-end latency"
    assert ann["runbook_url"] == "https://wiki.example.com/runbooks/latency"
    assert (ann["value"], ann["ci"], ann["n"]) == ("p90 4.6 s", "[4.1 s, 5.2 s]", "24")
    assert ann["failed_calls"] == "conv-17 (.harness/monitor/calls/conv-17)\nconv-18"
    assert all(isinstance(v, str) for v in ann.values())
    for alert in body:
        assert RFC3339_Z.match(alert["startsAt"]), alert["startsAt"]
        assert RFC3339_Z.match(alert["endsAt"]), alert["endsAt"]
    assert fire["startsAt"] == "2026-01-01T00:00:00.000Z"
    assert res["endsAt"] == rfc3339(T0 + 900) == "2026-01-01T00:15:00.000Z"
    ends = datetime.fromisoformat(fire["endsAt"].replace("Z", "+00:00")).timestamp()
    assert before + 600 - 2 <= ends <= time.time() + 600 + 1
    assert fire["generatorURL"] == "http://monitor:9464/"


def test_alertmanager_omits_empty_annotations_and_generator():
    ev = firing(runbook_url=None, value=None, ci=None, n=None, failed_calls=(), annotations={})
    [alert] = AlertmanagerChannel("http://am:9093").body([ev], T0)
    assert set(alert) == {"labels", "annotations", "startsAt", "endsAt"}
    assert set(alert["annotations"]) == {"summary", "description"}
    assert alert["annotations"]["description"] == ev.summary


# --- retries, failures, timeouts -----------------------------------------------------------------


def test_a_500_then_200_is_retried(receiver):
    receiver.statuses = [500]
    ch = WebhookChannel(receiver.url, **FAST)
    result = ch.send([firing()])
    assert result.ok and result.status == 200 and result.attempts == 2
    assert len(receiver.requests) == 2
    assert (ch.sent, ch.failures) == (1, 0)


def test_persistent_5xx_gives_up_after_two_retries(receiver):
    receiver.statuses = [503, 502, 500, 500]
    receiver.answer = b"upstream down"
    ch = SlackChannel(receiver.url + "/services/" + SECRET, **FAST)
    result = ch.send([firing()])
    assert not result.ok
    assert (result.status, result.attempts) == (500, 3)
    assert "HTTP 500" in (result.error or "") and "upstream down" in (result.error or "")
    assert len(receiver.requests) == 3
    assert (ch.sent, ch.failures) == (0, 1)


def test_a_4xx_is_not_retried(receiver):
    receiver.statuses = [400]
    ch = AlertmanagerChannel(receiver.url, **FAST)
    result = ch.send([firing()])
    assert (result.ok, result.status, result.attempts) == (False, 400, 1)
    assert len(receiver.requests) == 1


def test_a_closed_port_is_a_failed_delivery_within_the_timeout():
    ch = WebhookChannel(f"http://127.0.0.1:{closed_port()}/hook", **FAST)
    start = time.monotonic()
    result = ch.send([firing()])
    assert time.monotonic() - start < FAST["timeout"]
    assert not result.ok
    assert result.status is None
    assert result.attempts == 3
    assert result.error
    assert ch.failures == 1


def test_a_hung_receiver_times_out(receiver):
    receiver.delay = 1.5
    ch = WebhookChannel(receiver.url, timeout=0.3, retries=0)
    start = time.monotonic()
    result = ch.send([firing()])
    assert time.monotonic() - start < 1.2
    assert not result.ok and result.attempts == 1


# --- specs ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "cls", "display"),
    [
        ("webhook:http://127.0.0.1:8080/hook", WebhookChannel, "webhook:http://127.0.0.1:8080/…"),
        ("webhook:https://example.com", WebhookChannel, "webhook:https://example.com"),
        (f"slack:{SLACK_URL}", SlackChannel, "slack:https://hooks.slack.com/…"),
        (
            " Slack:https://hooks.slack.com/x?token=1 ",
            SlackChannel,
            "slack:https://hooks.slack.com/…",
        ),
        ("alertmanager:http://am:9093", AlertmanagerChannel, "alertmanager:http://am:9093"),
        ("alertmanager:http://am:9093/", AlertmanagerChannel, "alertmanager:http://am:9093/"),
    ],
)
def test_channel_from_spec(spec, cls, display):
    ch = channel_from_spec(spec)
    assert type(ch) is cls
    assert ch.display == display
    assert ch.name == cls.kind
    assert repr(ch) == f"{cls.__name__}({display!r})"


@pytest.mark.parametrize(
    ("spec", "named"),
    [
        ("", "''"),
        ("webhook", "'webhook'"),
        ("email:ops@example.com", "'email:…'"),
        ("pagerduty:https://events.pagerduty.com/v2/enqueue", "pagerduty:https://events"),
        ("webhook:ftp://example.com/x", "webhook:ftp://example.com/…"),
        ("webhook:example.com/hook", "webhook:"),
        ("slack:https:///nohost", "slack:https://"),
        ("https://hooks.slack.com/services/T/B/X", "https://hooks.slack.com/…"),
        ("alertmanager:http://am:notaport", "alertmanager:"),
    ],
)
def test_a_bad_spec_names_itself_and_the_three_forms(spec, named):
    with pytest.raises(ValueError) as info:
        channel_from_spec(spec)
    msg = str(info.value)
    assert named in msg
    for form in ("webhook:URL", "slack:URL", "alertmanager:URL"):
        assert form in msg


def test_redact_url():
    assert redact_url("https://u:p@h.example:8443/a/b?c=d") == "https://h.example:8443/…"
    assert redact_url("http://h") == "http://h"
    assert redact_url("http://h/") == "http://h/"
    assert redact_url("http://h?token=x") == "http://h/…"
    assert redact_url("http://[::1]:9/x") == "http://[::1]:9/…"


# --- secrets -------------------------------------------------------------------------------------

SECRET_PARTS = ("services", "T0SECRET", "B0SECRET", "XXSECRETTOKEN")


def assert_secret_free(text: str) -> None:
    for part in SECRET_PARTS:
        assert part not in text, f"{part!r} leaked in {text!r}"


def test_a_slack_url_never_shows_in_repr_display_or_errors(receiver):
    ch = channel_from_spec(f"slack:{SLACK_URL}")
    assert_secret_free(repr(ch))
    assert_secret_free(ch.display)

    # a receiver that echoes the path (as a proxy's error page might)
    receiver.statuses = [403]
    receiver.answer = f"no such hook: /services/{SECRET}".encode()
    local = SlackChannel(f"{receiver.url}/services/{SECRET}", **FAST)
    result = local.send([firing()])
    assert not result.ok and result.status == 403
    assert_secret_free(result.error or "")
    assert_secret_free(repr(result))

    dead = SlackChannel(f"http://127.0.0.1:{closed_port()}/services/{SECRET}", **FAST)
    assert_secret_free(dead.send([firing()]).error or "")
    assert_secret_free(repr(dead))


@pytest.mark.parametrize(
    "spec",
    [
        f"slak:{SLACK_URL}",
        f"slack:ftp://hooks.slack.com/services/{SECRET}",
        f"slack:hooks.slack.com/services/{SECRET}",
        f"slack:https://hooks.slack.com:badport/services/{SECRET}",
        f"https://hooks.slack.com/services/{SECRET}",
        f"slack:https://user:XXSECRETTOKEN@hooks.slack.com:0/services/{SECRET}",
    ],
)
def test_bad_specs_do_not_leak_the_url(spec):
    with pytest.raises(ValueError) as info:
        channel_from_spec(spec)
    assert_secret_free(str(info.value))


def test_userinfo_is_never_shown():
    ch = channel_from_spec("slack:https://user:XXSECRETTOKEN@hooks.slack.com/x")
    assert ch.display == "slack:https://hooks.slack.com/…"
    assert "XXSECRETTOKEN" not in repr(ch) and "user" not in repr(ch)
