"""What one sender can make the receiver hold is bounded, and what it drops is counted:
spans per call (``HARNESS_MAX_SPANS_PER_CALL``), keys the joiner learns per call, service
names counted, waits left behind."""

from __future__ import annotations

import asyncio
import json

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from harness.core.errors import ScenarioError
from harness.session.summary import CallRow, call_table
from harness.trace import conventions as c
from harness.trace.collector import DEFAULT_MAX_SPANS_PER_CALL, Collector
from harness.trace.health import SPAN_CAP_ENV, SessionTraceReport, TraceHealth
from harness.trace.instance import Span
from harness.trace.join import MAX_SERVICES, OTHER_SERVICES, Joiner
from harness.trace.otlp import spans_to_json, spans_to_proto

PB = "application/x-protobuf"
JSON = "application/json"
T0 = 1_763_750_000 * 10**9


def span(
    n: int,
    *,
    cid: str | None = "c-1",
    trace: int = 1,
    service: str = "runaway-agent",
    name: str = "llm_node",
    parent: int | None = None,
) -> Span:
    attrs: dict = {c.AGENT_LAYER: "conversational"}
    if cid is not None:
        attrs[c.CONVERSATION_ID] = cid
    return Span(
        trace_id=f"{trace:032x}",
        span_id=f"{n:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else None,
        name=name,
        start_ns=T0 + n,
        end_ns=T0 + n + 10,
        attributes=attrs,
        resource={c.SERVICE_NAME: service},
    )


def pb(spans: list[Span]) -> bytes:
    return spans_to_proto(spans).SerializeToString()


# --- the cap of spans per call ------------------------------------------------------------------


def test_the_cap_defaults_to_20000_and_is_read_from_the_environment(monkeypatch):
    monkeypatch.delenv(SPAN_CAP_ENV, raising=False)
    assert Collector().max_spans_per_call == DEFAULT_MAX_SPANS_PER_CALL == 20_000
    monkeypatch.setenv(SPAN_CAP_ENV, " 500 ")
    assert Collector().max_spans_per_call == 500
    assert Collector(max_spans_per_call=7).max_spans_per_call == 7  # the argument wins
    for bad, why in (("lots", "is not a number of spans"), ("0", "must be at least 1")):
        monkeypatch.setenv(SPAN_CAP_ENV, bad)
        with pytest.raises(ScenarioError, match=f"{SPAN_CAP_ENV}='{bad}' {why}"):
            Collector()
    with pytest.raises(ValueError, match="max_spans_per_call must be at least 1, got 0"):
        Collector(max_spans_per_call=0)


def test_spans_past_the_cap_are_dropped_counted_and_answered_as_partial_success():
    col = Collector(max_spans_per_call=3)
    first = col.ingest(pb([span(n) for n in range(1, 3)]), PB)
    assert (first.status, first.rejected) == (200, 0)
    reply = col.ingest(pb([span(n) for n in range(3, 7)] + [span(9, cid="c-2", trace=2)]), PB)
    assert (reply.status, reply.accepted, reply.rejected) == (200, 2, 3)
    partial = ExportTraceServiceResponse.FromString(reply.body).partial_success
    assert partial.rejected_spans == 3
    assert partial.error_message == (
        "3 spans over the cap of 3 spans per call dropped (conversation c-1: 3); "
        f"set {SPAN_CAP_ENV} on the receiver to raise it"
    )
    assert [s.span_id for s in col.spans("c-1")] == [f"{n:016x}" for n in (1, 2, 3)]
    assert len(col.spans("c-2")) == 1
    # a retry of a span already kept is a duplicate, not a drop
    again = col.ingest(pb([span(1)]), PB)
    assert (again.rejected, col.stats.duplicates) == (0, 1)
    assert col.spans_over_cap("c-1") == 3 and col.spans_over_cap("c-2") == 0
    stats = col.stats
    assert (stats.spans_over_cap, stats.calls_over_cap) == (3, 1)


def test_the_json_partial_success_names_the_cap_too():
    col = Collector(max_spans_per_call=1)
    body = json.dumps(spans_to_json([span(1), span(2)])).encode()
    reply = col.ingest(body, JSON)
    assert reply.status == 200 and reply.content_type == JSON
    partial = json.loads(reply.body)["partialSuccess"]
    assert partial["rejectedSpans"] == "1"
    assert "over the cap of 1 spans per call" in partial["errorMessage"]


def test_a_capped_call_is_incomplete_with_the_reason_and_the_fix():
    col = Collector(max_spans_per_call=2)
    col.add_spans([span(1, name="job_entrypoint"), span(2, parent=1)])
    assert col.instance("c-1").complete
    assert col.add_spans([span(3, parent=1), span(4, parent=1, service="helper")]) == 2
    inst = col.instance("c-1")
    assert len(inst.spans) == 2 and not inst.complete
    assert inst.incomplete_reason == (
        "2 spans dropped over the cap of 2 spans per call (from helper: 1, runaway-agent: 1): "
        f"the trace is cut short. Raise the cap with {SPAN_CAP_ENV}=<spans> (or "
        "Collector(max_spans_per_call=...)), or find why the agent sends so many"
    )
    health = TraceHealth.of(inst)
    assert health.label == "partial" and health.reason == inst.incomplete_reason
    table = call_table([CallRow("s", 1, 1, 1.0, 1.0, 1.0, "pass", "", health.label, health.reason)])
    assert f"Raise the cap with {SPAN_CAP_ENV}" in table


def test_the_cap_reason_survives_a_readiness_timeout():
    async def main():
        col = Collector(max_spans_per_call=1)
        col.add_spans([span(1, name="job_entrypoint"), span(2)])
        return await col.instance_ready("c-1", timeout=0.05)

    inst = asyncio.run(main())
    assert inst.incomplete_reason.startswith("1 span dropped over the cap of 1 spans per call")
    assert inst.incomplete_reason.endswith("; after-call workflow did not complete within 0.05s")


def test_the_session_report_counts_capped_spans_by_service_across_workers():
    col = Collector(max_spans_per_call=1)
    col.add_spans([span(1), span(2), span(3, service="helper")])
    col.add_spans([span(10, cid="c-2", trace=2), span(11, cid="c-2", trace=2)])
    report = col.trace_report()
    assert report.over_cap == (("runaway-agent", 2), ("helper", 1))
    assert (report.over_cap_spans, report.over_cap_calls, report.span_cap) == (3, 2, 1)
    assert report.lines() == [
        "3 spans dropped over the cap of 1 spans per call, in 2 calls (from runaway-agent: 2, "
        f"helper: 1): those calls are marked incomplete; raise the cap with {SPAN_CAP_ENV}=<spans>"
    ]
    # as pytest-xdist workers send it to the controller
    merged = SessionTraceReport.merged(
        [SessionTraceReport.from_dict(json.loads(json.dumps(report.to_dict())))] * 2
    )
    assert merged.over_cap == (("runaway-agent", 4), ("helper", 2))
    assert (merged.over_cap_calls, merged.span_cap) == (4, 1)
    # a report written before the cap existed still reads
    old = {"parked": 0, "dropped": 0, "by_service": [], "late_spans": 1}
    assert SessionTraceReport.from_dict(old).over_cap_spans == 0


def test_a_runaway_call_goes_quiet_though_it_keeps_sending():
    col = Collector(max_spans_per_call=1)
    col.add_spans([span(1)])
    seen = col.last_seen("c-1")
    col.add_spans([span(2)])  # dropped: no news, so the call's quiet time runs on
    assert col.last_seen("c-1") == seen


# --- bounds on what the joiner learns ----------------------------------------------------------


def test_a_call_minting_new_traces_does_not_grow_the_join_tables():
    col = Collector()
    col.register_call("c-1", ["room-1"])
    # every span a new trace: each would be learned as one of the call's traces
    col.add_spans([span(n, trace=n) for n in range(1, 3001)])
    assert len(col.spans("c-1")) == 3000  # they all join by conversation.id
    joiner = col._joiner
    aliases, traces = joiner._owned["c-1"]
    assert len(aliases) + len(traces) == 1000
    assert "room-1" in aliases  # a registered id is always kept
    # a span carrying a trace learned before the bound still joins by it
    col.add_spans([span(5000, cid=None, trace=5)])
    assert len(col.spans("c-1")) == 3001


def test_late_spans_of_a_closed_call_do_not_grow_the_join_tables():
    col = Collector()
    col.add_spans([span(1)])
    col.discard("c-1")
    col.add_spans([span(n, trace=n) for n in range(2, 2002)])
    assert col.late_spans("c-1") == 2000
    aliases, traces = col._joiner._owned["c-1"]
    assert len(aliases) + len(traces) <= 1000


def test_service_names_counted_are_bounded():
    j = Joiner(max_parked=1)
    for n in range(1, MAX_SERVICES + 51):
        j.add(span(n, cid=None, trace=n, service=f"svc-{n}"))
    report = j.unmatched()
    assert report.total == MAX_SERVICES + 50
    names = dict(report.by_service)
    assert len(names) <= MAX_SERVICES + 1
    assert names[OTHER_SERVICES] >= 50
    col = Collector(max_spans_per_call=1)
    col.add_spans([span(1)] + [span(n, service=f"svc-{n}") for n in range(2, MAX_SERVICES + 60)])
    assert len(col.trace_report().over_cap) == MAX_SERVICES + 1
    assert col.trace_report().over_cap_spans == MAX_SERVICES + 58


def test_a_wait_that_times_out_leaves_nothing_behind():
    async def main() -> Collector:
        col = Collector()
        await asyncio.gather(*(col.wait_for(f"c-{i}", bool, timeout=0.01) for i in range(50)))
        return col

    col = asyncio.run(main())
    assert col._events == {} and not col._pins
