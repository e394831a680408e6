"""The clinic's after-call workflow: the job, the summary, the outbox, its linked trace, a crash."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
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
from aiohttp.test_utils import TestClient, TestServer
from opentelemetry import baggage
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from examples.clinic import clients, store
from examples.clinic.after_call import Job, WorkflowConfig, create_app, summarize
from harness.trace import conventions as c
from harness.trace.collector import Collector

ROOT = Path(__file__).resolve().parents[2]
CALL_TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
CALL_SPAN_ID = 0xB7AD6B7169203331

TRANSCRIPT = [
    {"role": "assistant", "text": "Hello, Bright Smile Dental, how can I help you?"},
    {"role": "user", "text": "Hi there. I would like to book a cleaning appointment."},
    {"role": "assistant", "text": "Sure. What day would suit you?"},
    {"role": "user", "text": "Next tuesday please."},
    {"role": "assistant", "text": "On Tuesday I have nine AM, eleven AM and two PM."},
    {"role": "user", "text": "Nine o'clock please. My name is John Miller."},
    {
        "role": "assistant",
        "text": "You are booked for a cleaning on Tuesday at nine AM. "
        "Your confirmation number is 1001. Goodbye!",
    },
    {"role": "system", "text": "You are the receptionist of Bright Smile Dental."},
]
BOOKING = {
    "confirmation_id": "1001",
    "name": "John Miller",
    "day": "tuesday",
    "time": "09:00",
    "service": "cleaning",
}


def call_trace(cid: str) -> dict[str, str]:
    """What the agent injects into the job: its span, and the conversation in baggage."""
    return {
        "traceparent": f"00-{CALL_TRACE_ID:032x}-{CALL_SPAN_ID:016x}-01",
        "baggage": f"conversation.id={cid}",
    }


def job(cid: str, bookings: list | None = None, **extra) -> dict:
    body = {
        "conversation_id": cid,
        "transcript": TRANSCRIPT,
        "bookings": [BOOKING] if bookings is None else bookings,
        "trace": call_trace(cid),
    }
    return body | extra


def dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


def outbox(db: Path, cid: str | None = None) -> list[dict]:
    with store.opened(db) as conn:
        return store.outbox(conn, cid)


def job_row(db: Path, job_id: int) -> dict | None:
    with store.opened(db) as conn:
        return store.job(conn, job_id)


# --- the steps ----------------------------------------------------------------------------


def test_the_summary_keeps_the_booking_sentences_in_order():
    lines = [(t["role"], t["text"]) for t in TRANSCRIPT]
    got = summarize(lines)
    assert got == [
        "Caller: I would like to book a cleaning appointment.",
        "Agent: On Tuesday I have nine AM, eleven AM and two PM.",
        "Agent: You are booked for a cleaning on Tuesday at nine AM.",
        "Agent: Your confirmation number is 1001.",
    ]
    assert summarize(lines) == got  # deterministic
    assert not any("receptionist" in s for s in got)  # system text is not the call


def test_the_summary_of_small_talk_and_of_nothing():
    assert summarize([]) == []
    assert summarize([("system", "instructions only")]) == []
    chat = [("user", "Hello. Hello?"), ("assistant", "Hi. Anyone there?")]
    assert summarize(chat) == ["Caller: Hello.", "Caller: Hello?"]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "the body must be a JSON object"),
        ({"transcript": []}, "conversation_id must be a non-empty string"),
        ({"conversation_id": "  "}, "conversation_id must be a non-empty string"),
        ({"conversation_id": "c", "transcript": "hi"}, "transcript must be a list"),
        ({"conversation_id": "c", "transcript": [{"role": "user"}]}, r"transcript\[0\] needs"),
        ({"conversation_id": "c", "bookings": [{"name": "A"}]}, r"bookings\[0\].day must be"),
        ({"conversation_id": "c", "trace": {"traceparent": 1}}, "trace must be an object"),
        ({"conversation_id": "c", "faults": {"workflow_crash": "yes"}}, "must be true or false"),
        ({"conversation_id": "c", "faults": {"boom": True}}, "unknown knob"),
        ({"conversation_id": "c", "extra": 1}, r"unknown field\(s\): extra"),
    ],
)
def test_a_malformed_job_is_refused_with_the_reason(body, reason):
    with pytest.raises(ValueError, match=reason):
        Job.from_json(body)


def test_a_job_survives_the_round_trip_through_the_queue():
    j = Job.from_json(job("c-1", faults={"workflow_crash": False}))
    assert Job.from_json(j.payload()) == j
    assert j.transcript[0] == ("assistant", TRANSCRIPT[0]["text"])


# --- in process: the trace it makes and what it writes ------------------------------------


@pytest.fixture
def spans():
    provider = instrument.init_tracing(
        "clinic-workflow",
        "workflow",
        endpoint=dead_endpoint(),
        livekit=False,
        set_global=False,
        export_timeout_s=0.3,
    )
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    yield memory
    instrument.shutdown_tracing(timeout_s=3.0)


async def until_finished(client: TestClient, job_id: int, timeout: float = 10.0) -> dict:
    """Poll the job's state until it is no longer queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        resp = await client.get(f"/jobs/{job_id}")
        row = await resp.json()
        if row["state"] not in ("queued", "running"):
            return row
        await asyncio.sleep(0.02)
    pytest.fail(f"job {job_id} still {row['state']} after {timeout}s")


@contextlib.asynccontextmanager
async def serving(config: WorkflowConfig):
    async with TestClient(TestServer(create_app(config), host="127.0.0.1", port=0)) as client:
        yield client


def test_a_job_is_accepted_at_once_then_summarized_and_confirmed_in_a_linked_trace(tmp_path, spans):
    db = tmp_path / "clinic.db"

    async def go():
        async with serving(WorkflowConfig(db)) as client:
            resp = await client.post("/jobs", json=job("c-1"))
            accepted = resp.status, await resp.json()
            return accepted, await until_finished(client, accepted[1]["job_id"])

    (status, body), row = asyncio.run(go())
    assert status == 202 and body == {"job_id": 1, "state": "queued"}
    assert row["state"] == "done" and row["attempts"] == 1
    assert row["summary"].startswith("Caller: I would like to book a cleaning appointment.")
    (msg,) = outbox(db, "c-1")
    assert (msg["kind"], msg["recipient"]) == ("confirmation", "John Miller")
    assert msg["body"] == (
        "Bright Smile Dental: hello John Miller, your cleaning appointment is booked for "
        "Tuesday at 09:00. Your confirmation number is 1001."
    )

    got = {s.name: s for s in spans.get_finished_spans()}
    assert set(got) == {"after_call", "summarize", "send_confirmation"}
    root = got["after_call"]
    assert root.parent is None  # a new trace...
    assert root.context.trace_id != CALL_TRACE_ID
    assert [link.context.span_id for link in root.links] == [CALL_SPAN_ID]  # ...linked to the call
    for step in ("summarize", "send_confirmation"):
        assert got[step].parent.span_id == root.context.span_id
        assert got[step].status.status_code is StatusCode.OK
    assert root.status.status_code is StatusCode.OK
    for s in got.values():
        assert s.attributes[c.CONVERSATION_ID] == "c-1"
        assert s.attributes[c.AGENT_LAYER] == "workflow"
    assert got["send_confirmation"].attributes["clinic.outbox.kind"] == "confirmation"
    assert got["summarize"].end_time <= got["send_confirmation"].start_time


def test_a_call_without_a_booking_gets_a_note_and_a_job_without_trace_still_joins(tmp_path, spans):
    db = tmp_path / "clinic.db"

    async def go():
        async with serving(WorkflowConfig(db)) as client:
            resp = await client.post("/jobs", json=job("c-2", bookings=[], trace={}))
            return await until_finished(client, (await resp.json())["job_id"])

    assert asyncio.run(go())["state"] == "done"
    (msg,) = outbox(db, "c-2")
    assert (msg["kind"], msg["recipient"]) == ("no_booking", None)
    assert msg["body"] == "No booking was made in conversation c-2."
    root = next(s for s in spans.get_finished_spans() if s.name == "after_call")
    assert root.links == () or list(root.links) == []
    assert {s.attributes[c.CONVERSATION_ID] for s in spans.get_finished_spans()} == {"c-2"}


def test_bad_jobs_get_400_and_are_not_queued(tmp_path, spans):
    db = tmp_path / "clinic.db"

    async def go():
        async with serving(WorkflowConfig(db)) as client:
            bad_json = await client.post("/jobs", data=b"{oops")
            bad_job = await client.post("/jobs", json={"conversation_id": 5})
            missing = await client.get("/jobs/99")
            health = await client.get("/healthz")
            return (
                (bad_json.status, (await bad_json.json())["error"]),
                (bad_job.status, (await bad_job.json())["error"]),
                missing.status,
                health.status,
            )

    bad_json, bad_job, missing, health = asyncio.run(go())
    assert bad_json[0] == 400 and bad_json[1].startswith("the body is not valid JSON")
    assert bad_job == (400, "conversation_id must be a non-empty string")
    assert (missing, health) == (404, 200)
    with store.opened(db) as conn:
        assert store.queued_jobs(conn) == []
    assert spans.get_finished_spans() == ()


def test_the_client_queues_the_job_and_never_raises(tmp_path, spans, monkeypatch, caplog):
    db = tmp_path / "clinic.db"
    caplog.set_level(logging.INFO, logger="clinic.clients")

    async def go():
        async with serving(WorkflowConfig(db)) as client:
            monkeypatch.setenv("CLINIC_WORKFLOW_URL", str(client.make_url("")))
            otel_context.attach(baggage.set_baggage(c.CONVERSATION_ID, "c-3"))
            assert await clients.enqueue_after_call("c-3", TRANSCRIPT, [BOOKING]) is None
            await until_finished(client, 1)
            await clients.enqueue_after_call("", TRANSCRIPT, [])  # refused: 400, logged
        monkeypatch.setenv("CLINIC_WORKFLOW_URL", dead_endpoint())
        await clients.enqueue_after_call("c-4", TRANSCRIPT, [])
        monkeypatch.delenv("CLINIC_WORKFLOW_URL")
        await clients.enqueue_after_call("c-5", TRANSCRIPT, [])

    asyncio.run(go())
    assert [m["conversation_id"] for m in outbox(db)] == ["c-3"]
    text = caplog.text
    assert "after-call job queued for c-3" in text
    assert "refused the job" in text and "HTTP 400" in text
    assert "cannot queue the after-call job for c-4" in text
    assert "no after-call workflow (CLINIC_WORKFLOW_URL is not set)" in text


def test_transcript_from_history_keeps_the_callers_and_the_agents_messages():
    class Msg:
        type = "message"

        def __init__(self, role, text):
            self.role, self.text_content = role, text

    class Call:
        type = "function_call"
        role = "assistant"
        text_content = "request_booking"

    items = [Msg("system", "rules"), Msg("assistant", " Hello. "), Call(), Msg("user", "")]
    items.append(Msg("user", "book a cleaning"))
    assert clients.transcript_from_history(items) == [
        {"role": "assistant", "text": "Hello."},
        {"role": "user", "text": "book a cleaning"},
    ]


# --- the real process, against the collector ----------------------------------------------


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


@contextlib.contextmanager
def worker(col, db: Path, **env_extra: str):
    env = {
        **os.environ,
        "OTEL_EXPORTER_OTLP_ENDPOINT": col.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "50",
        "CLINIC_DB": str(db),
        "CLINIC_WORKFLOW_PORT": "0",
        **env_extra,
    }
    env.pop("CLINIC_SUPERVISOR_PID", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "examples.clinic.after_call"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        url = Output(proc.stdout).read_until(r"clinic-workflow listening on (http://\S+)", 20)[1]
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def post_job(url: str, body: dict) -> int:
    async def go():
        async with aiohttp.ClientSession() as http, http.post(url + "/jobs", json=body) as r:
            assert r.status == 202, await r.text()
            return (await r.json())["job_id"]

    return asyncio.run(go())


def test_the_workflow_process_completes_the_instance_at_the_collector(tmp_path):
    db = tmp_path / "clinic.db"
    with Collector.run_in_thread() as col, worker(col, db) as (proc, url):
        post_job(url, job("c-w"))
        inst = col.instance_ready("c-w", require_layers=("workflow",), timeout=10)
        assert inst.complete, inst.incomplete_reason
        assert [(w.name, w.status) for w in inst.workflow] == [
            ("summarize", "ok"),
            ("send_confirmation", "ok"),
        ]
        (root,) = inst.workflow_roots
        assert root.name == "after_call" and root.parent_span_id is None
        assert [(ln.trace_id, ln.span_id) for ln in root.links] == [
            (f"{CALL_TRACE_ID:032x}", f"{CALL_SPAN_ID:016x}")
        ]
        assert {s.service_name for s in inst.spans} == {"clinic-workflow"}
        assert proc.poll() is None  # it keeps serving
    assert [m["kind"] for m in outbox(db, "c-w")] == ["confirmation"]


def test_a_crash_mid_job_leaves_the_instance_incomplete(tmp_path):
    db = tmp_path / "clinic.db"
    with Collector.run_in_thread() as col, worker(col, db, CLINIC_WORKFLOW_CRASH="1") as w:
        proc, url = w
        job_id = post_job(url, job("c-x"))  # accepted (and queued) before the crash
        assert proc.wait(timeout=15) == 1
        inst = col.instance_ready("c-x", require_layers=("workflow",), timeout=3)
        assert not inst.complete
        assert inst.incomplete_reason == "after-call workflow did not complete within 3s"
        assert [s.name for s in inst.spans] == ["summarize"]  # the step, never its root
        assert not inst.layer_finished("workflow")  # its parent is missing, not elsewhere
    assert outbox(db) == []
    row = job_row(db, job_id)
    assert row["state"] == "running" and row["summary"]


def test_a_restarted_worker_abandons_the_crashed_job_and_resumes_the_queue(tmp_path):
    db = tmp_path / "clinic.db"
    with Collector.run_in_thread() as col:
        with worker(col, db) as (proc, url):
            crashed = post_job(url, job("c-y", faults={"workflow_crash": True}))
            assert proc.wait(timeout=15) == 1
        with store.opened(db) as conn:  # queued while no worker ran
            waiting = store.enqueue_job(conn, "c-z", Job.from_json(job("c-z")).payload())
        with worker(col, db):
            inst = col.instance_ready("c-z", require_layers=("workflow",), timeout=10)
            assert inst.complete, inst.incomplete_reason
        assert not col.instance_ready("c-y", require_layers=("workflow",), timeout=0.5).complete
    assert job_row(db, crashed)["state"] == "abandoned"
    assert job_row(db, waiting)["state"] == "done"
    assert [m["conversation_id"] for m in outbox(db)] == ["c-z"]
