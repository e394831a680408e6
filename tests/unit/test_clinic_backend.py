"""The clinic's background agent: the approval policy, its spans, its fault knobs, the client."""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import harness_instrument as instrument
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from examples.clinic import clients, store
from examples.clinic.backend import (
    ApprovalPolicy,
    BackendConfig,
    BookingRequest,
    WeekTime,
    create_app,
)
from examples.clinic.faults import FaultConfigError
from harness.trace import conventions as c
from harness.trace.collector import Collector

ROOT = Path(__file__).resolve().parents[2]
TRACE_ID = 0x5B8EFFF798038103D269B633813FC60C
PARENT_SPAN_ID = 0xEEE19B7EC3C1B174


def trace_headers(cid: str = "c-1") -> dict[str, str]:
    """What the agent's function_tool span would inject."""
    return {
        "traceparent": f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-01",
        "baggage": f"conversation.id={cid}",
    }


def booking(**over: str) -> dict[str, str]:
    return {"name": "John Miller", "day": "tuesday", "time": "09:00", "service": "cleaning"} | over


def dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.fixture
def spans():
    provider = instrument.init_tracing(
        "clinic-backend",
        "background",
        endpoint=dead_endpoint(),
        livekit=False,
        set_global=False,
        export_timeout_s=0.3,
    )
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield memory
    instrument.shutdown_tracing(timeout_s=3.0)


def by_name(memory: InMemorySpanExporter) -> dict[str, list]:
    out: dict[str, list] = {}
    for s in memory.get_finished_spans():
        out.setdefault(s.name, []).append(s)
    return out


@contextlib.asynccontextmanager
async def serving(config: BackendConfig):
    async with TestClient(TestServer(create_app(config), host="127.0.0.1", port=0)) as client:
        yield client


def rows(db: Path) -> list[dict]:
    with store.opened(db) as conn:
        return store.bookings(conn)


# --- the approval policy ------------------------------------------------------------------

WED_NOON = WeekTime.parse("wednesday 12:00")


@pytest.mark.parametrize(
    ("over", "now", "taken", "rule"),
    [
        ({}, None, set(), "ok"),
        ({}, WED_NOON, {"11:00"}, "past"),
        ({"day": "wednesday", "time": "10:00"}, WED_NOON, set(), "past"),
        ({"day": "wednesday", "time": "12:00"}, WED_NOON, set(), "time"),
        ({"day": "wednesday", "time": "13:00"}, WED_NOON, set(), "ok"),
        ({"day": "thursday", "time": "09:30"}, WED_NOON, set(), "ok"),
        ({}, None, {"09:00"}, "free"),
        ({"name": ""}, None, set(), "name"),
        ({"name": "x" * 81}, None, set(), "name"),
        ({"name": "DROP TABLE; --"}, None, set(), "name"),
        ({"name": "Mary-Jane O'Brien"}, None, set(), "ok"),
        ({"service": "surgery"}, None, set(), "service"),
        ({"day": "funday"}, None, set(), "day"),
        ({"day": "sunday", "time": "10:00"}, None, set(), "day"),
        ({"time": "09:15"}, None, set(), "time"),
        ({"time": "9:00"}, None, set(), "ok"),
    ],
)
def test_the_policy_approves_open_slots_and_names_the_rule_that_denies(over, now, taken, rule):
    req = BookingRequest.from_json(booking(**over))
    decision = ApprovalPolicy(now=now).check(req, taken)
    assert (decision.rule, decision.approved) == (rule, rule == "ok")
    assert decision.outcome == ("approved" if rule == "ok" else "denied")
    assert decision.reason


def test_reasons_are_sentences_for_the_caller():
    policy = ApprovalPolicy(now=WED_NOON)
    past = policy.check(BookingRequest.from_json(booking()), set())
    assert past.reason == "tuesday at 09:00 is already in the past (it is now wednesday 12:00)"
    taken = ApprovalPolicy().check(BookingRequest.from_json(booking()), {"09:00"})
    assert taken.reason == "09:00 on tuesday is already taken"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"CLINIC_TOOL_FAILURE_RATE": "1.5"}, r"CLINIC_TOOL_FAILURE_RATE must be a number between"),
        (
            {"CLINIC_SKIP_APPROVAL": "maybe"},
            r"CLINIC_SKIP_APPROVAL must be a number between 0 and 1 \(or true/false\), got 'maybe'",
        ),
        ({"CLINIC_NOW": "funday 10:00"}, r"CLINIC_NOW must be a weekday"),
        ({"CLINIC_NOW": "monday 25:00"}, r"CLINIC_NOW has a bad time '25:00'"),
        ({"CLINIC_CALENDAR": "weekly"}, r"CLINIC_CALENDAR must be one of per_call, shared"),
        ({"CLINIC_SEED": "x"}, r"CLINIC_SEED must be an integer"),
    ],
)
def test_bad_knobs_are_refused_with_their_name(tmp_path, env, message):
    with pytest.raises(FaultConfigError, match=message):
        BackendConfig.from_env({"CLINIC_DB": str(tmp_path / "db"), **env})


def test_knobs_from_the_environment(tmp_path):
    cfg = BackendConfig.from_env(
        {
            "CLINIC_DB": str(tmp_path / "c.db"),
            "CLINIC_SKIP_APPROVAL": "1",
            "CLINIC_TOOL_FAILURE_RATE": "0.3",
            "CLINIC_SEED": "7",
            "CLINIC_NOW": "Friday 08:30",
        }
    )
    assert (cfg.skip_approval, cfg.tool_failure_rate, cfg.seed) == (True, 0.3, 7)
    assert cfg.now == WeekTime(4, "08:30") and cfg.db_path == tmp_path / "c.db"


# --- the service, its spans and its database ----------------------------------------------


def test_an_approved_booking_is_written_and_traced_under_the_agents_span(tmp_path, spans):
    db = tmp_path / "clinic.db"

    async def go():
        async with serving(BackendConfig(db)) as client:
            resp = await client.post("/bookings", json=booking(), headers=trace_headers("c-1"))
            return resp.status, await resp.json()

    status, body = asyncio.run(go())
    assert status == 201
    assert body == {
        "confirmation_id": "1001",
        "name": "John Miller",
        "day": "tuesday",
        "time": "09:00",
        "service": "cleaning",
    }
    (row,) = rows(db)
    assert (row["day"], row["time"], row["approval"], row["conversation_id"]) == (
        "tuesday",
        "09:00",
        "approved",
        "c-1",
    )

    got = by_name(spans)
    (server,) = got["POST /bookings"]
    (check,) = got["intent approve_booking"]
    (act,) = got["action create_booking"]
    assert server.context.trace_id == TRACE_ID
    assert server.parent.span_id == PARENT_SPAN_ID and server.parent.is_remote
    assert check.parent.span_id == server.context.span_id
    assert act.parent.span_id == server.context.span_id
    assert check.attributes[c.INTENT_OUTCOME] == "approved"
    assert act.attributes[c.ACTION_MUTATING] is True
    assert act.attributes[c.ACTION_APPROVAL] == "approved"
    assert act.attributes["clinic.booking.confirmation_id"] == "1001"
    for s in (server, check, act):
        assert s.attributes[c.CONVERSATION_ID] == "c-1"
        assert s.attributes[c.AGENT_LAYER] == "background"
        assert s.status.status_code is not StatusCode.ERROR
    assert server.attributes["http.response.status_code"] == 201
    # the caller's name stays out of the trace
    assert not any("John" in str(v) for s in (server, check, act) for v in s.attributes.values())


def test_a_double_booking_is_denied_with_409_and_not_written(tmp_path, spans):
    db = tmp_path / "clinic.db"

    async def go():
        async with serving(BackendConfig(db)) as client:
            first = await client.post("/bookings", json=booking(), headers=trace_headers())
            second = await client.post(
                "/bookings", json=booking(name="Anna Lee"), headers=trace_headers()
            )
            return first.status, second.status, await second.json()

    first, second, body = asyncio.run(go())
    assert (first, second) == (201, 409)
    assert body == {"error": "09:00 on tuesday is already taken", "rule": "free"}
    assert [r["name"] for r in rows(db)] == ["John Miller"]
    checks = by_name(spans)["intent approve_booking"]
    acts = by_name(spans)["action create_booking"]
    assert [s.attributes[c.INTENT_OUTCOME] for s in checks] == ["approved", "denied"]
    assert [s.attributes[c.ACTION_APPROVAL] for s in acts] == ["approved", "denied"]
    assert acts[1].attributes["clinic.approval.reason"] == "09:00 on tuesday is already taken"
    assert acts[1].status.status_code is StatusCode.UNSET  # the gate worked: not an error


def test_a_slot_in_the_past_is_denied_and_not_offered(tmp_path, spans):
    db = tmp_path / "clinic.db"

    async def go():
        async with serving(BackendConfig(db, now=WED_NOON)) as client:
            denied = await client.post("/bookings", json=booking(), headers=trace_headers())
            free = await client.get("/bookings", params={"day": "wednesday"})
            return denied.status, await denied.json(), await free.json()

    status, body, free = asyncio.run(go())
    assert status == 409 and body["rule"] == "past"
    assert free == {"day": "wednesday", "open": True, "times": ["13:00", "16:00"]}
    assert rows(db) == []
    (act,) = by_name(spans)["action create_booking"]
    assert act.attributes[c.ACTION_APPROVAL] == "denied"


def test_skip_approval_writes_without_checking_and_says_so(tmp_path, spans):
    db = tmp_path / "clinic.db"

    async def go():
        async with serving(BackendConfig(db, skip_approval=True, now=WED_NOON)) as client:
            resp = await client.post("/bookings", json=booking(), headers=trace_headers())
            return resp.status

    assert asyncio.run(go()) == 201  # a past slot, written all the same
    assert [r["approval"] for r in rows(db)] == ["skipped"]
    got = by_name(spans)
    assert "intent approve_booking" not in got
    (act,) = got["action create_booking"]
    assert act.attributes[c.ACTION_APPROVAL] == "skipped"
    assert act.attributes[c.ACTION_MUTATING] is True


def test_skip_approval_per_request_from_the_body(tmp_path, spans):
    async def go():
        async with serving(BackendConfig(tmp_path / "db", now=WED_NOON)) as client:
            body = booking() | {"faults": {"skip_approval": True}}
            resp = await client.post("/bookings", json=body, headers=trace_headers())
            return resp.status

    assert asyncio.run(go()) == 201
    (act,) = by_name(spans)["action create_booking"]
    assert act.attributes[c.ACTION_APPROVAL] == "skipped"


def _statuses(db: Path, rate: float, seed: int, n: int) -> list[int]:
    async def go():
        async with serving(BackendConfig(db, tool_failure_rate=rate, seed=seed)) as client:
            out = []
            for _ in range(n):
                resp = await client.get("/bookings", params={"day": "monday"})
                out.append(resp.status)
            return out

    return asyncio.run(go())


def test_the_tool_failure_rate_fails_a_seeded_share_with_503_and_error_spans(tmp_path, spans):
    draws = random.Random(11)
    expected = [503 if draws.random() < 0.3 else 200 for _ in range(40)]
    got = _statuses(tmp_path / "a.db", 0.3, 11, 40)
    assert got == expected
    assert 0 < got.count(503) < 40
    assert _statuses(tmp_path / "b.db", 0.3, 11, 40) == got  # the same again
    servers = by_name(spans)["GET /bookings"]
    errors = [s for s in servers if s.status.status_code is StatusCode.ERROR]
    assert len(errors) == 2 * got.count(503)
    assert all(s.attributes["clinic.fault"] == "tool_failure" for s in errors)
    assert all(s.attributes["http.response.status_code"] == 503 for s in errors)


def test_a_full_failure_rate_fails_bookings_before_anything_is_written(tmp_path, spans):
    db = tmp_path / "clinic.db"

    async def go():
        async with serving(BackendConfig(db, tool_failure_rate=1.0)) as client:
            resp = await client.post("/bookings", json=booking(), headers=trace_headers())
            return resp.status, await resp.json()

    status, body = asyncio.run(go())
    assert status == 503 and "unavailable" in body["error"]
    assert rows(db) == []
    assert "action create_booking" not in by_name(spans)


@pytest.mark.parametrize(
    ("send", "reason"),
    [
        ({"data": b"{not json"}, r"^the body is not valid JSON"),
        ({"json": [1, 2]}, r"^the body must be a JSON object"),
        ({"json": {"name": "A"}}, r"^missing field\(s\): day, time, service$"),
        ({"json": booking(day=3)}, r"^day must be a string, got int$"),
        ({"json": booking() | {"faults": {"explode": 1}}}, r"^faults.explode: unknown fault knob"),
        ({"json": booking() | {"faults": {"tool_failure_rate": 2}}}, r"between 0 and 1"),
    ],
)
def test_bad_input_gets_400_with_the_reason_and_the_service_carries_on(
    tmp_path, spans, send, reason
):
    async def go():
        async with serving(BackendConfig(tmp_path / "db")) as client:
            resp = await client.post("/bookings", **send)
            health = await client.get("/healthz")
            return resp.status, await resp.json(), health.status

    status, body, health = asyncio.run(go())
    assert status == 400 and re.search(reason, body["error"]), body
    assert health == 200


def test_availability_refuses_a_missing_or_unknown_day(tmp_path, spans):
    async def go():
        async with serving(BackendConfig(tmp_path / "db")) as client:
            a = await client.get("/bookings")
            b = await client.get("/bookings", params={"day": "funday"})
            return (a.status, await a.json()), (b.status, await b.json())

    (sa, a), (sb, b) = asyncio.run(go())
    assert sa == 400 and "missing query parameter day" in a["error"]
    assert sb == 400 and a != b and "unknown day 'funday'" in b["error"]


def test_each_call_books_into_its_own_calendar_unless_shared(tmp_path, spans):
    async def go(calendar: str, db: Path):
        async with serving(BackendConfig(db, calendar=calendar)) as client:
            out = []
            for cid in ("c-1", "c-2"):
                resp = await client.post("/bookings", json=booking(), headers=trace_headers(cid))
                out.append((resp.status, (await resp.json()).get("confirmation_id")))
            free = await client.get(
                "/bookings", params={"day": "tuesday"}, headers=trace_headers("c-3")
            )
            return out, (await free.json())["times"]

    per_call, free = asyncio.run(go("per_call", tmp_path / "a.db"))
    assert per_call == [(201, "1001"), (201, "1001")]
    assert free == ["09:00", "11:00", "14:00"]
    shared, free = asyncio.run(go("shared", tmp_path / "b.db"))
    assert shared == [(201, "1001"), (409, None)]
    assert free == ["11:00", "14:00"]


# --- the client the agent calls -----------------------------------------------------------


def test_the_client_books_carries_the_conversation_and_maps_refusals(tmp_path, spans, monkeypatch):
    db = tmp_path / "clinic.db"

    async def go():
        async with serving(BackendConfig(db)) as client:
            monkeypatch.setenv("CLINIC_BACKEND_URL", str(client.make_url("")).rstrip("/"))
            otel_context.attach(baggage.set_baggage(c.CONVERSATION_ID, "c-9"))
            made = await clients.request_booking_remote(
                "John Miller", "tuesday", "09:00", "cleaning"
            )
            free = await clients.availability_remote("tuesday")
            with pytest.raises(clients.BackendRefused) as refused:
                await clients.request_booking_remote("Anna Lee", "tuesday", "09:00", "cleaning")
            with pytest.raises(clients.BackendUnavailable) as failed:
                await clients.request_booking_remote(
                    "Anna Lee", "tuesday", "11:00", "cleaning", faults={"tool_failure_rate": 1.0}
                )
            return made, free, refused.value, failed.value

    made, free, refused, failed = asyncio.run(go())
    assert made["confirmation_id"] == "1001"
    assert free["times"] == ["11:00", "14:00"]
    assert str(refused) == "09:00 on tuesday is already taken"
    assert (refused.status, refused.rule) == (409, "free")
    assert failed.status == 503 and "HTTP 503" in str(failed)
    assert [r["conversation_id"] for r in rows(db)] == ["c-9"]


def test_the_client_reports_a_dead_or_silent_backend_as_unavailable(monkeypatch):
    async def go():
        release = asyncio.Event()

        async def never(request: web.Request) -> web.Response:
            await release.wait()
            return web.Response()

        app = web.Application()
        app.router.add_post("/bookings", never)
        async with TestServer(app, host="127.0.0.1", port=0) as server:
            monkeypatch.setenv("CLINIC_BACKEND_URL", str(server.make_url("")))
            with pytest.raises(clients.BackendUnavailable) as slow:
                await clients.request_booking_remote(
                    "A B", "monday", "09:00", "cleaning", timeout_s=0.3
                )
            release.set()
        monkeypatch.setenv("CLINIC_BACKEND_URL", dead_endpoint())
        with pytest.raises(clients.BackendUnavailable) as dead:
            await clients.request_booking_remote("A B", "monday", "09:00", "cleaning")
        monkeypatch.delenv("CLINIC_BACKEND_URL")
        with pytest.raises(clients.BackendUnavailable) as unset:
            await clients.availability_remote("monday")
        return slow.value, dead.value, unset.value

    slow, dead, unset = asyncio.run(go())
    assert str(slow) == "the booking system did not answer within 0.3 seconds"
    assert str(dead).startswith("cannot reach the booking system")
    assert "CLINIC_BACKEND_URL" in str(unset)
    assert isinstance(slow, clients.BackendError)


# --- the real process ---------------------------------------------------------------------


class Output:
    """A child's stdout, drained line by line on a thread (the pipe never fills up)."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream) -> None:
        for line in stream:
            self._queue.put(line)
        self._queue.put(None)

    def read_until(self, pattern: str, timeout: float) -> re.Match:
        """The next line matching ``pattern``; fails with the output so far."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                break
            if line is None:
                break
            self.lines.append(line)
            if m := re.search(pattern, line):
                return m
        pytest.fail(f"no line matching {pattern!r} within {timeout}s; output:\n{self.text()}")

    def text(self, wait_s: float = 0.0) -> str:
        """Everything read so far (after up to ``wait_s`` for the end of the stream)."""
        self._thread.join(wait_s)
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                break
            if line is not None:
                self.lines.append(line)
        return "".join(self.lines)


def test_the_backend_process_exports_its_spans_with_the_conversation(tmp_path):
    with Collector.run_in_thread() as col:
        env = {
            **os.environ,
            "OTEL_EXPORTER_OTLP_ENDPOINT": col.endpoint,
            "OTEL_BSP_SCHEDULE_DELAY": "50",
            "CLINIC_DB": str(tmp_path / "clinic.db"),
            "CLINIC_BACKEND_PORT": "0",
        }
        env.pop("CLINIC_SUPERVISOR_PID", None)
        proc = subprocess.Popen(
            [sys.executable, "-m", "examples.clinic.backend"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            output = Output(proc.stdout)
            url = output.read_until(r"clinic-backend listening on (http://\S+)", 20).group(1)

            async def book():
                async with (
                    aiohttp.ClientSession() as http,
                    http.post(url + "/bookings", json=booking(), headers=trace_headers("c-p")) as r,
                ):
                    return r.status

            assert asyncio.run(book()) == 201
            inst = col.wait_for(
                "c-p", lambda i: any(a.name == "create_booking" for a in i.actions), timeout=10
            )
            assert inst.complete, inst.incomplete_reason
            (act,) = inst.actions
            assert (act.approval, act.mutating, act.layer) == ("approved", True, "background")
            assert act.service == "clinic-backend"
            inst = col.wait_for("c-p", lambda i: len(i.spans) == 3, timeout=10)
            (server,) = inst.find("POST /bookings")
            assert server.parent_span_id == f"{PARENT_SPAN_ID:016x}"
            assert server.trace_id == f"{TRACE_ID:032x}"
            assert inst.layer_finished("background")
            assert {s.conversation_id for s in inst.spans} == {"c-p"}
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
        out = output.text(wait_s=5)
        assert proc.returncode == 0, out  # alone (not supervised), SIGTERM stops it cleanly
        assert "clinic-backend stopping" in out
