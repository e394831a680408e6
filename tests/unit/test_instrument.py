"""harness_instrument: stamping, the conversation id, propagation, and never breaking the host."""

from __future__ import annotations

import asyncio
import contextvars
import json
import logging
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import harness_instrument as instrument
import pytest
from opentelemetry import baggage, trace
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from harness.trace import conventions as c
from harness.trace.collector import Collector


def dead_endpoint() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"  # nothing listens there any more


@pytest.fixture(autouse=True)
def _clean_state():
    yield
    instrument.set_conversation_id(None)
    instrument.shutdown_tracing(timeout_s=3.0)


def setup(layer: str = "conversational", **kwargs) -> tuple[TracerProvider, InMemorySpanExporter]:
    kwargs.setdefault("endpoint", dead_endpoint())
    kwargs.setdefault("livekit", False)
    kwargs.setdefault("set_global", False)
    kwargs.setdefault("export_timeout_s", 0.3)
    provider = instrument.init_tracing(f"svc-{layer}", layer, "1.2.3", "ci", **kwargs)
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider, memory


def in_fresh_context(fn, *args, **kwargs):
    """Run ``fn`` as a new job or request would: no baggage leaks between tests."""
    return contextvars.Context().run(fn, *args, **kwargs)


def finished(memory: InMemorySpanExporter) -> dict[str, dict]:
    return {s.name: dict(s.attributes or {}) for s in memory.get_finished_spans()}


# --- stamping ---------------------------------------------------------------------------------


def test_every_span_is_stamped_from_baggage_and_the_resource():
    provider, memory = setup("background")

    def work() -> None:
        otel_context.attach(baggage.set_baggage(c.CONVERSATION_ID, "c-42"))
        with instrument.get_tracer("user-code").start_as_current_span("plain"):
            pass

    in_fresh_context(work)
    attrs = finished(memory)["plain"]
    assert attrs[c.CONVERSATION_ID] == "c-42"
    assert attrs[c.AGENT_LAYER] == "background"
    assert attrs[c.AGENT_VERSION] == "1.2.3"
    assert attrs[c.DEPLOYMENT_ENVIRONMENT] == "ci"
    assert provider.resource.attributes[c.SERVICE_NAME] == "svc-background"
    assert provider.resource.attributes[c.AGENT_LAYER] == "background"


def test_the_process_wide_id_covers_contexts_without_baggage_and_baggage_wins():
    _, memory = setup()
    instrument.set_conversation_id("c-process")
    tracer = instrument.get_tracer()

    def spans() -> None:
        # a span started from a context captured before the id was in baggage
        with tracer.start_as_current_span("early", context=otel_context.Context()):
            pass
        otel_context.attach(baggage.set_baggage(c.CONVERSATION_ID, "c-baggage"))
        with tracer.start_as_current_span("later"):
            pass
        with tracer.start_as_current_span("explicit", attributes={c.CONVERSATION_ID: "mine"}):
            pass

    in_fresh_context(spans)
    got = finished(memory)
    assert got["early"][c.CONVERSATION_ID] == "c-process"
    assert got["later"][c.CONVERSATION_ID] == "c-baggage"
    assert got["explicit"][c.CONVERSATION_ID] == "mine"  # never overwritten
    assert instrument.current_conversation_id() == "c-process"


def test_no_conversation_id_means_no_attribute_rather_than_a_guess():
    _, memory = setup()
    in_fresh_context(lambda: instrument.get_tracer().start_span("x").end())
    attrs = finished(memory)["x"]
    assert c.CONVERSATION_ID not in attrs and attrs[c.AGENT_LAYER] == "conversational"


def test_a_bad_layer_is_refused_with_the_fix():
    with pytest.raises(
        ValueError, match=r"layer='frontend' is not a layer; use one of conversational"
    ):
        instrument.init_tracing("svc", "frontend")


# --- the conversation id from a job -----------------------------------------------------------


def fake_ctx(job_meta="", room_meta="", room_name="room-1", rtc_meta="", rtc_name=""):
    callbacks: list = []
    return SimpleNamespace(
        job=SimpleNamespace(
            metadata=job_meta, room=SimpleNamespace(name=room_name, metadata=room_meta)
        ),
        room=SimpleNamespace(name=rtc_name, metadata=rtc_meta),
        add_shutdown_callback=callbacks.append,
        callbacks=callbacks,
    )


@pytest.mark.parametrize(
    ("ctx", "expected"),
    [
        (fake_ctx(job_meta=json.dumps({"conversation_id": "c-dispatch"})), "c-dispatch"),
        (fake_ctx(job_meta="not json", room_meta='{"conversation_id": "c-room"}'), "c-room"),
        (fake_ctx(rtc_meta='{"conversation_id": "c-connected"}'), "c-connected"),
        (fake_ctx(job_meta='{"other": 1}'), "room-1"),
        (fake_ctx(room_name="", rtc_name="rtc-room"), "rtc-room"),
        (SimpleNamespace(), None),
    ],
)
def test_conversation_from_job_reads_metadata_then_the_room_name(ctx, expected):
    _, memory = setup()

    def entrypoint():
        cid = instrument.conversation_from_job(ctx)
        with instrument.intent("greet"):
            pass
        return cid, instrument.inject({})

    cid, carrier = in_fresh_context(entrypoint)
    assert cid == expected
    assert finished(memory)["intent greet"].get(c.CONVERSATION_ID) == expected
    if expected is not None:
        assert instrument.current_conversation_id() == expected
        assert f"{c.CONVERSATION_ID}={expected}" in carrier["baggage"]
        assert len(ctx.callbacks) == 1  # spans are flushed when the job shuts down


def test_conversation_from_job_with_livekit_types():
    from livekit import rtc
    from livekit.protocol import agent, models

    job = agent.Job(
        id="AJ_1",
        metadata=json.dumps({"conversation_id": "c-real"}),
        room=models.Room(name="room-real", sid="RM_1"),
    )
    loop = asyncio.new_event_loop()  # rtc.Room binds to a loop; don't depend on a global one
    asyncio.set_event_loop(loop)
    try:
        ctx = SimpleNamespace(job=job, room=rtc.Room(loop=loop))  # a JobContext before connect()
        assert in_fresh_context(instrument.conversation_from_job, ctx) == "c-real"
        ctx2 = SimpleNamespace(
            job=agent.Job(id="AJ_2", room=models.Room(name="room-b")), room=rtc.Room(loop=loop)
        )
        assert in_fresh_context(instrument.conversation_from_job, ctx2) == "room-b"
    finally:
        asyncio.set_event_loop(None)
        loop.close()


def test_livekit_agents_spans_join_and_are_stamped():
    from livekit.agents import telemetry as lk_telemetry

    provider, memory = setup(livekit=True)
    assert lk_telemetry.tracer._tracer_provider is provider

    def job() -> None:
        instrument.conversation_from_job(fake_ctx(job_meta='{"conversation_id": "c-lk"}'))
        with lk_telemetry.tracer.start_as_current_span("agent_turn"):
            pass

    in_fresh_context(job)
    attrs = finished(memory)["agent_turn"]
    assert attrs[c.CONVERSATION_ID] == "c-lk" and attrs[c.AGENT_LAYER] == "conversational"


def test_the_span_the_entrypoint_runs_under_gets_the_id_too():
    """livekit-agents opens job_entrypoint before the job's id is known."""
    from livekit.agents import telemetry as lk_telemetry

    _, memory = setup(livekit=True)

    def job() -> None:
        with lk_telemetry.tracer.start_as_current_span("job_entrypoint"):
            instrument.conversation_from_job(fake_ctx(job_meta='{"conversation_id": "c-root"}'))

    in_fresh_context(job)
    assert finished(memory)["job_entrypoint"][c.CONVERSATION_ID] == "c-root"


# --- propagation ------------------------------------------------------------------------------


def test_inject_then_extract_continues_the_trace_in_another_service():
    _, conv_memory = setup("conversational")

    def conversational() -> tuple[dict, trace.SpanContext]:
        instrument.set_conversation_id("c-7")  # no baggage: the process-wide id is injected
        with instrument.get_tracer().start_as_current_span("function_tool") as span:
            headers = instrument.inject({})
            return headers, span.get_span_context()

    headers, parent = in_fresh_context(conversational)
    assert headers["traceparent"].split("-")[2] == f"{parent.span_id:016x}"
    assert "conversation.id=c-7" in headers["baggage"]
    instrument.set_conversation_id(None)

    _, bg_memory = setup("background")
    wire = {k.title(): v for k, v in headers.items()}  # header names arrive in any case

    def background() -> None:
        with instrument.remote_context(wire):
            with instrument.action("create_booking", approval="approved"):
                pass

    in_fresh_context(background)
    (span,) = bg_memory.get_finished_spans()
    assert span.context.trace_id == parent.trace_id
    assert span.parent is not None and span.parent.span_id == parent.span_id
    assert span.parent.is_remote
    assert span.attributes[c.CONVERSATION_ID] == "c-7"
    assert span.attributes[c.AGENT_LAYER] == "background"
    assert conv_memory.get_finished_spans()[0].name == "function_tool"


def test_linked_span_starts_a_new_trace_linked_to_the_call():
    setup("conversational")

    def call() -> tuple[dict, trace.SpanContext]:
        otel_context.attach(baggage.set_baggage(c.CONVERSATION_ID, "c-9"))
        with instrument.get_tracer().start_as_current_span("agent_session") as span:
            return instrument.inject({}), span.get_span_context()

    payload, session = in_fresh_context(call)
    _, wf_memory = setup("workflow")

    def workflow() -> None:
        with instrument.linked_span("after_call", payload):
            with instrument.intent("summarize") as step:
                step.set_outcome("done")

    in_fresh_context(workflow)
    spans = {s.name: s for s in wf_memory.get_finished_spans()}
    root, step = spans["after_call"], spans["intent summarize"]
    assert root.parent is None
    assert root.context.trace_id != session.trace_id
    assert [link.context.span_id for link in root.links] == [session.span_id]
    assert root.attributes[c.CONVERSATION_ID] == "c-9"
    assert root.attributes[c.AGENT_LAYER] == "workflow"
    assert step.parent.span_id == root.context.span_id
    assert step.attributes[c.INTENT_OUTCOME] == "done"
    assert step.attributes[c.CONVERSATION_ID] == "c-9"


# --- business spans ---------------------------------------------------------------------------


def test_intent_records_name_outcome_and_errors_without_swallowing_them():
    _, memory = setup()

    class Boom(Exception):
        pass

    with instrument.intent("book_appointment") as it:
        it.set_outcome("booked")
    with pytest.raises(Boom, match="no slots"):
        with instrument.intent("reschedule"):
            raise Boom("no slots")
    got = {s.name: s for s in memory.get_finished_spans()}
    ok, bad = got["intent book_appointment"], got["intent reschedule"]
    assert ok.attributes[c.INTENT_NAME] == "book_appointment"
    assert ok.attributes[c.INTENT_OUTCOME] == "booked"
    assert bad.attributes[c.INTENT_OUTCOME] == "error"
    assert bad.status.status_code == trace.StatusCode.ERROR
    assert bad.status.description == "Boom: no slots"
    assert [e.name for e in bad.events] == ["exception"]


def test_action_attributes_and_a_late_approval(caplog):
    _, memory = setup("background")
    with instrument.action("send_sms", mutating=False):
        pass
    with instrument.action("create_booking") as act:
        act.set_approval("denied")
    with caplog.at_level(logging.WARNING, logger="harness_instrument"):
        with instrument.action("odd", approval="maybe"):  # recorded as given, never raised
            pass
    got = finished(memory)
    assert got["action send_sms"][c.ACTION_MUTATING] is False
    assert c.ACTION_APPROVAL not in got["action send_sms"]
    assert got["action create_booking"][c.ACTION_MUTATING] is True
    assert got["action create_booking"][c.ACTION_APPROVAL] == "denied"
    assert got["action odd"][c.ACTION_APPROVAL] == "maybe"
    assert "approval='maybe' is not one of approved, denied, skipped" in caplog.text


# --- never break the host ---------------------------------------------------------------------


def test_a_dead_collector_never_raises_into_the_agent(caplog):
    _, memory = setup()  # exporting to a port nobody listens on
    with caplog.at_level(logging.WARNING, logger="harness_instrument"):
        for n in range(3):
            with instrument.intent(f"turn-{n}") as it:
                it.set_outcome("ok")
        t = time.monotonic()
        flushed = instrument.flush(timeout_s=2.0)
        first = time.monotonic() - t
        with instrument.intent("after-outage"):
            pass
        instrument.flush(timeout_s=2.0)
        t = time.monotonic()
        assert instrument.shutdown_tracing(timeout_s=2.0) in (True, False)
        shutdown_took = time.monotonic() - t
    assert len(memory.get_finished_spans()) == 4  # the spans themselves were fine
    assert flushed in (True, False) and first < 2.5 and shutdown_took < 2.5
    outage_logs = [r for r in caplog.records if "could not export" in r.getMessage()]
    assert len(outage_logs) == 1  # logged once, not per batch


def test_the_guarded_exporter_swallows_exporter_exceptions(caplog):
    class Exploding:
        calls = 0

        def export(self, spans):
            Exploding.calls += 1
            raise ConnectionError("refused")

        def shutdown(self):
            raise RuntimeError("also broken")

        def force_flush(self, timeout_millis=0):
            raise RuntimeError("broken")

    guarded = instrument._GuardedExporter(Exploding(), "http://x")
    with caplog.at_level(logging.WARNING, logger="harness_instrument"):
        results = [guarded.export([object()]) for _ in range(5)]
    assert results == [SpanExportResult.FAILURE] * 5 and Exploding.calls == 5
    assert guarded.force_flush() is False
    guarded.shutdown()
    messages = [r.getMessage() for r in caplog.records]
    assert (
        len(messages) == 1
        and "could not export 1 spans to http://x (ConnectionError" in messages[0]
    )


def test_a_broken_exporter_set_up_leaves_the_service_untraced_not_crashed(monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise ValueError("bad OTEL_EXPORTER_OTLP_HEADERS")

    monkeypatch.setattr(instrument, "_make_exporter", broken)
    with caplog.at_level(logging.WARNING, logger="harness_instrument"):
        provider = instrument.init_tracing("svc", "conversational", livekit=False, set_global=False)
    with instrument.intent("still-works"):
        pass
    assert isinstance(provider, TracerProvider)
    assert "tracing disabled for svc: cannot set up the OTLP exporter" in caplog.text


def test_instrument_does_not_import_the_collector_stack():
    code = (
        "import sys, harness_instrument; "
        "bad = [m for m in ('aiohttp', 'harness.trace.collector', 'harness.trace.otlp', "
        "'livekit.agents') if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_the_first_provider_becomes_the_global_one():
    code = """
import sys
from opentelemetry import trace
import harness_instrument as instrument
first = instrument.init_tracing("a", "workflow", endpoint="http://127.0.0.1:9", livekit=False)
second = instrument.init_tracing("b", "workflow", endpoint="http://127.0.0.1:9", livekit=False)
ok = trace.get_tracer_provider() is first and instrument.get_tracer() is not None
ok = ok and instrument._state.provider is second
sys.exit(0 if ok else 1)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# --- into the collector, for real -------------------------------------------------------------


def test_spans_reach_the_collector_over_otlp_http(monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip")
    with Collector.run_in_thread() as col:
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", col.endpoint)
        instrument.init_tracing("clinic-agent", "conversational", livekit=False, set_global=False)

        def job() -> None:
            instrument.conversation_from_job(fake_ctx(job_meta='{"conversation_id": "c-e2e"}'))
            with instrument.get_tracer().start_as_current_span("agent_session"):
                with instrument.intent("book") as it:
                    it.set_outcome("booked")

        in_fresh_context(job)
        assert instrument.flush(timeout_s=5.0) is True
        inst = col.instance_ready("c-e2e", timeout=5.0, require_layers=("conversational",))
    assert inst.complete
    assert [s.name for s in inst.spans] == ["agent_session", "intent book"]
    (book,) = inst.find("intent book")
    assert book.attributes[c.INTENT_OUTCOME] == "booked"
    assert book.layer == "conversational" and book.service_name == "clinic-agent"
    assert inst.parent(book).name == "agent_session"


# --- current and older names ------------------------------------------------------------------


def test_the_current_semantic_convention_names_are_written_beside_ours():
    provider, memory = setup("workflow")
    in_fresh_context(lambda: instrument.get_tracer().start_span("x").end())
    attrs = finished(memory)["x"]
    assert attrs[c.SERVICE_VERSION] == attrs[c.AGENT_VERSION] == "1.2.3"
    assert attrs[c.DEPLOYMENT_ENVIRONMENT_NAME] == attrs[c.DEPLOYMENT_ENVIRONMENT] == "ci"
    res = provider.resource.attributes
    assert res[c.SERVICE_VERSION] == "1.2.3" and res[c.DEPLOYMENT_ENVIRONMENT_NAME] == "ci"


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (
            {c.SERVICE_VERSION: "2.0", c.DEPLOYMENT_ENVIRONMENT: "old-env"},
            {c.AGENT_VERSION: "2.0", c.SERVICE_VERSION: "2.0"},
        ),
        (
            {c.AGENT_VERSION: "3.0", c.DEPLOYMENT_ENVIRONMENT_NAME: "new-env"},
            {c.AGENT_VERSION: "3.0", c.SERVICE_VERSION: "3.0"},
        ),
    ],
)
def test_a_foreign_resource_with_either_name_fills_both(resource, expected):
    """A provider built elsewhere (OTEL_RESOURCE_ATTRIBUTES with one of the names)."""
    from opentelemetry.sdk.resources import Resource

    provider = TracerProvider(resource=Resource.create({c.AGENT_LAYER: "background", **resource}))
    provider.add_span_processor(instrument.ConversationSpanProcessor())
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    in_fresh_context(lambda: provider.get_tracer("t").start_span("x").end())
    attrs = finished(memory)["x"]
    env = resource.get(c.DEPLOYMENT_ENVIRONMENT_NAME) or resource.get(c.DEPLOYMENT_ENVIRONMENT)
    assert attrs[c.DEPLOYMENT_ENVIRONMENT_NAME] == attrs[c.DEPLOYMENT_ENVIRONMENT] == env
    assert {k: attrs[k] for k in expected} == expected
    assert attrs[c.AGENT_LAYER] == "background"
    provider.shutdown()
