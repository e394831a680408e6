"""The OTLP/HTTP receiver: decoding, robustness, assembly by conversation, readiness."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
import urllib.error
import urllib.request

import aiohttp
import pytest
from google.protobuf import json_format
from google.rpc import status_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from harness.core.errors import InfrastructureError
from harness.trace import collector as collector_mod
from harness.trace import conventions as c
from harness.trace.collector import Collector
from harness.trace.instance import Instance, Span
from harness.trace.otlp import spans_to_json, spans_to_proto

PB = "application/x-protobuf"
JSON = "application/json"
T0 = 1_763_750_000 * 10**9
TRACE_A = "0af7651916cd43dd8448eb211c80319c"
TRACE_B = "5b8efff798038103d269b633813fc60c"


def span(
    span_id: int,
    *,
    cid: str | None = "c-1",
    layer: str = "conversational",
    trace: str = TRACE_A,
    parent: int | None = None,
    name: str = "work",
    flags: int = 0x100,
    start: float = 0.0,
    resource_cid: str | None = None,
) -> Span:
    attrs: dict = {c.AGENT_LAYER: layer}
    if cid is not None:
        attrs[c.CONVERSATION_ID] = cid
    resource = {c.SERVICE_NAME: f"svc-{layer}"}
    if resource_cid is not None:
        resource[c.CONVERSATION_ID] = resource_cid
    return Span(
        trace_id=trace,
        span_id=f"{span_id:016x}",
        parent_span_id=f"{parent:016x}" if parent is not None else None,
        name=name,
        start_ns=T0 + int(start * 1e9),
        end_ns=T0 + int(start * 1e9) + 1000,
        attributes=attrs,
        resource=resource,
        flags=flags,
    )


def pb(spans: list[Span]) -> bytes:
    return spans_to_proto(spans).SerializeToString()


def js(spans: list[Span]) -> bytes:
    return json.dumps(spans_to_json(spans)).encode()


def status_of(body: bytes, content_type: str) -> status_pb2.Status:
    """An OTLP/HTTP failure body, decoded in the encoding it says it has."""
    if content_type.startswith(JSON):
        return json_format.Parse(body, status_pb2.Status())
    assert content_type.startswith(PB), content_type
    return status_pb2.Status.FromString(body)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- decoding ---------------------------------------------------------------------------------


def test_ingest_protobuf_json_and_gzip():
    col = Collector()
    a, b, d = span(1), span(2, cid="c-2"), span(3, resource_cid="c-3", cid=None, trace=TRACE_B)
    r1 = col.ingest(pb([a]), PB)
    r2 = col.ingest(gzip.compress(js([b])), "application/json; charset=utf-8", "gzip")
    r3 = col.ingest(gzip.compress(pb([d])), PB, "gzip")
    assert (r1.status, r2.status, r3.status) == (200, 200, 200)
    assert r1.accepted == 1 and r1.content_type == PB
    assert ExportTraceServiceResponse.FromString(r1.body).partial_success.rejected_spans == 0
    assert json.loads(r2.body) == {}
    assert col.spans("c-1") == (a,)
    assert col.spans("c-2") == (b,)
    assert col.spans("c-3") == (d,)  # indexed by the resource attribute
    assert sorted(col.conversation_ids()) == ["c-1", "c-2", "c-3"]


@pytest.mark.parametrize(
    ("content_type", "encoding", "status", "reason"),
    [
        (None, None, 415, "unsupported content type None"),
        ("text/plain", None, 415, "unsupported content type 'text/plain'"),
        (PB, "br", 415, "unsupported content encoding 'br'"),
        (PB, "gzip", 400, "cannot decompress gzip body"),
        (JSON, None, 400, "not valid JSON"),
        (PB, None, 400, "not a protobuf ExportTraceServiceRequest"),
    ],
)
def test_bad_requests_get_a_status_and_a_reason(content_type, encoding, status, reason):
    col = Collector()
    result = col.ingest(b"\xff\x01garbage{", content_type, encoding)
    assert result.status == status
    assert reason in result.reason
    assert col.stats.bad_requests == 1


def test_json_of_the_wrong_shape_is_400_with_the_path():
    col = Collector()
    sp = {"traceId": TRACE_A, "spanId": "b7ad6b7169203331", "name": 5}
    body = json.dumps({"resourceSpans": [{"scopeSpans": [{"spans": [sp]}]}]}).encode()
    result = col.ingest(body, JSON)
    assert result.status == 400
    assert "resourceSpans[0].scopeSpans[0].spans[0].name: expected a string" in result.reason
    assert col.ingest(b'{"resourceSpans": {}}', JSON).status == 400


def test_spans_with_bad_ids_are_rejected_alone_as_partial_success():
    col = Collector()
    req = spans_to_proto([span(1), span(2)])
    req.resource_spans[0].scope_spans[0].spans[1].trace_id = b"\x01" * 5
    result = col.ingest(req.SerializeToString(), PB)
    assert result.status == 200 and (result.accepted, result.rejected) == (1, 1)
    partial = ExportTraceServiceResponse.FromString(result.body).partial_success
    assert partial.rejected_spans == 1 and "traceId must be 16" in partial.error_message
    assert [s.span_id for s in col.spans("c-1")] == [f"{1:016x}"]
    no_ids = {"resourceSpans": [{"scopeSpans": [{"spans": [{"name": "x"}]}]}]}
    reply = col.ingest(json.dumps(no_ids).encode(), JSON)
    assert reply.status == 200 and reply.rejected == 1
    assert json.loads(reply.body)["partialSuccess"]["rejectedSpans"] == "1"
    assert col.stats.spans_rejected == 2


def test_a_decompression_bomb_is_refused():
    col = Collector(max_body_bytes=1000)
    result = col.ingest(gzip.compress(b"\x00" * 100_000), PB, "gzip")
    assert result.status == 413 and "larger than 1000 bytes" in result.reason


@settings(max_examples=300, deadline=None)
@given(
    body=st.binary(max_size=300),
    content_type=st.sampled_from([PB, JSON]),
    encoding=st.sampled_from([None, "gzip"]),
)
def test_arbitrary_bodies_never_crash_the_receiver(body, content_type, encoding):
    col = Collector()
    result = col.ingest(body, content_type, encoding)
    assert result.status in (200, 400)
    if result.status == 400:
        assert result.reason.startswith(("malformed", "cannot decompress"))


@settings(max_examples=200, deadline=None)
@given(data=st.data(), json_body=st.booleans())
def test_truncated_bodies_get_400_with_a_reason(data, json_body):
    batch = [span(i, start=i) for i in range(1, 4)]  # one resource: any strict prefix is invalid
    body = js(batch) if json_body else pb(batch)
    cut = data.draw(st.integers(min_value=1, max_value=len(body) - 1))
    col = Collector()
    result = col.ingest(body[:cut], JSON if json_body else PB)
    assert result.status == 400
    assert result.reason.startswith("malformed ExportTraceServiceRequest")
    assert col.conversation_ids() == []


# --- assembly ---------------------------------------------------------------------------------


def _call_spans() -> tuple[dict[str, list[Span]], list[Span]]:
    """Two conversations; some spans without an id that belong by trace; one orphan trace."""
    conv1 = [
        span(1, name="job_entrypoint", cid=None),  # no id: joins through the trace
        span(2, parent=1, name="agent_session"),
        span(3, parent=2, name="agent_turn", start=1),
        span(4, layer="background", parent=3, flags=0x300, start=2),
        span(5, layer="workflow", trace=TRACE_B, name="after_call", start=9),
        span(6, layer="workflow", trace=TRACE_B, parent=5, name="summarize", start=9.5),
    ]
    conv2_trace = "6b8efff798038103d269b633813fc60c"
    conv2 = [
        span(20, cid="c-2", trace=conv2_trace, name="agent_session"),
        span(21, cid=None, trace=conv2_trace, parent=20, name="user_turn"),
    ]
    orphans = [span(30, cid=None, trace="7b8efff798038103d269b633813fc60c")]
    return {"c-1": conv1, "c-2": conv2}, orphans


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_same_instance_whatever_the_order_duplication_and_lateness(data):
    by_cid, orphans = _call_spans()
    everything = [s for group in by_cid.values() for s in group] + orphans
    sent = data.draw(st.permutations(everything + data.draw(st.lists(st.sampled_from(everything)))))
    sizes = data.draw(st.lists(st.integers(1, 4), min_size=len(sent), max_size=len(sent)))
    col = Collector()
    i = 0
    for size in sizes:
        batch = sent[i : i + size]
        if not batch:
            break
        i += size
        use_json = data.draw(st.booleans())
        result = col.ingest(js(batch) if use_json else pb(batch), JSON if use_json else PB)
        assert result.status == 200
        if data.draw(st.booleans()):
            col.instance("c-1")  # someone looked before the late spans came
    for cid, expected in by_cid.items():
        assert col.instance(cid) == Instance(cid, tuple(expected))
    assert col.unassigned() == tuple(orphans)
    assert col.stats.duplicates == len(sent) - len(everything)


def test_unassigned_spans_are_bounded():
    col = Collector(max_unassigned=3)
    traces = [f"{i:032x}" for i in range(1, 6)]
    for n, t in enumerate(traces):
        col.ingest(pb([span(n + 1, cid=None, trace=t)]), PB)
    assert [s.trace_id for s in col.unassigned()] == traces[2:]


def test_idle_instances_are_evicted(monkeypatch):
    monkeypatch.setattr(collector_mod, "_EVICT_EVERY_S", 0.0)
    col = Collector(retention_s=0.05)
    col.ingest(pb([span(1, cid="old")]), PB)
    time.sleep(0.1)
    col.ingest(pb([span(2, cid="new", trace=TRACE_B)]), PB)
    assert col.conversation_ids() == ["new"]
    assert col.stats.evicted_instances == 1


def test_the_least_recent_instance_goes_beyond_max_instances():
    col = Collector(max_instances=2)
    for n, cid in enumerate(["a", "b", "a", "c"]):
        col.ingest(pb([span(n + 1, cid=cid, trace=f"{n + 1:032x}")]), PB)
    assert sorted(col.conversation_ids()) == ["a", "c"]
    col.discard("a")
    assert col.conversation_ids() == ["c"] and col.spans("a") == ()


# --- readiness --------------------------------------------------------------------------------


def test_instance_ready_returns_when_the_workflow_root_arrives():
    async def main() -> tuple[Instance, float]:
        col = Collector()
        col.ingest(pb([span(1), span(2, parent=1)]), PB)

        async def later() -> None:
            await asyncio.sleep(0.1)
            col.ingest(pb([span(6, layer="workflow", trace=TRACE_B, parent=5)]), PB)
            await asyncio.sleep(0.1)
            col.ingest(pb([span(5, layer="workflow", trace=TRACE_B)]), PB)

        task = asyncio.create_task(later())
        t = time.monotonic()
        inst = await col.instance_ready("c-1", timeout=5.0, settle_s=0.05)
        await task
        return inst, time.monotonic() - t

    inst, elapsed = asyncio.run(main())
    assert inst.complete is True and inst.incomplete_reason is None
    assert len(inst.spans) == 4  # the child that came first did not end the wait
    assert [s.name for s in inst.workflow_roots] == ["work"]
    assert 0.2 <= elapsed < 2.0


def test_instance_ready_marks_the_instance_incomplete_after_its_timeout():
    async def main() -> tuple[Instance, float]:
        col = Collector()
        col.ingest(pb([span(1), span(2, parent=1)]), PB)
        # a workflow step whose (local) parent never arrives is not the root
        col.ingest(pb([span(6, layer="workflow", trace=TRACE_B, parent=5)]), PB)
        t = time.monotonic()
        inst = await col.instance_ready("c-1", timeout=0.3)
        return inst, time.monotonic() - t

    inst, elapsed = asyncio.run(main())
    assert inst.complete is False
    assert inst.incomplete_reason == "after-call workflow did not complete within 0.3s"
    assert len(inst.spans) == 3
    assert 0.3 <= elapsed < 1.5


def test_instance_ready_times_out_with_no_spans_at_all():
    async def main() -> Instance:
        return await Collector().instance_ready("c-none", timeout=0.2)

    inst = asyncio.run(main())
    assert inst.spans == () and inst.complete is False
    assert inst.incomplete_reason == "after-call workflow did not complete within 0.2s"


def test_without_a_workflow_layer_it_returns_once_quiet():
    async def main() -> tuple[Instance, float]:
        col = Collector()
        col.ingest(pb([span(1, name="job_entrypoint"), span(2, parent=1)]), PB)
        t = time.monotonic()
        inst = await col.instance_ready(
            "c-1", timeout=5.0, require_layers=("conversational",), settle_s=0.2
        )
        return inst, time.monotonic() - t

    inst, elapsed = asyncio.run(main())
    assert inst.complete is True and len(inst.spans) == 2
    assert elapsed < 1.0


def test_a_lost_local_parent_counts_after_quiet_but_never_for_the_workflow(monkeypatch):
    monkeypatch.setattr(collector_mod, "_WEAK_ROOT_QUIET_S", 0.2)

    async def main() -> tuple[Instance, Instance]:
        col = Collector()
        # agent_session's parent (job_entrypoint) went to another tracer provider
        col.ingest(pb([span(2, parent=1, name="agent_session")]), PB)
        # a crashed workflow: its step ended, its root never will
        col.ingest(pb([span(6, layer="workflow", trace=TRACE_B, parent=5)]), PB)
        conv = await col.instance_ready("c-1", timeout=3.0, require_layers=("conversational",))
        wf = await col.instance_ready("c-1", timeout=0.6)
        return conv, wf

    conv, wf = asyncio.run(main())
    assert conv.complete is True
    assert wf.complete is False
    assert wf.incomplete_reason == "after-call workflow did not complete within 0.6s"


def test_a_missing_required_layer_is_named():
    async def main() -> Instance:
        col = Collector()
        col.ingest(pb([span(1)]), PB)
        return await col.instance_ready(
            "c-1", timeout=0.2, require_layers=("conversational", "background")
        )

    inst = asyncio.run(main())
    assert inst.incomplete_reason == "background layer did not complete within 0.2s"
    with pytest.raises(ValueError, match="not a layer"):
        asyncio.run(Collector().instance_ready("c-1", require_layers=("bogus",)))


def test_wait_for_a_predicate_and_late_spans_still_land():
    async def main() -> tuple[Instance, Instance, Instance]:
        col = Collector()

        async def feed() -> None:
            for n in range(1, 4):
                await asyncio.sleep(0.05)
                col.ingest(pb([span(n)]), PB)

        task = asyncio.create_task(feed())
        got = await col.wait_for("c-1", lambda inst: len(inst.spans) >= 3, timeout=5.0)
        await task
        missed = await col.wait_for("c-1", lambda inst: len(inst.spans) >= 9, timeout=0.1)
        col.ingest(pb([span(9)]), PB)  # late
        return got, missed, col.instance("c-1")

    got, missed, final = asyncio.run(main())
    assert got.complete and len(got.spans) == 3
    assert missed.complete is False and missed.incomplete_reason == "condition not met within 0.1s"
    assert len(final.spans) == 4


# --- over HTTP --------------------------------------------------------------------------------


def test_http_server_answers_otlp_requests():
    async def main() -> list[tuple[int, bytes, str]]:
        async with Collector() as col:
            assert col.endpoint.startswith("http://127.0.0.1:")
            out = []
            async with aiohttp.ClientSession() as http:
                for body, headers in [
                    (pb([span(1)]), {"Content-Type": PB}),
                    (
                        gzip.compress(js([span(2)])),
                        {"Content-Type": JSON, "Content-Encoding": "gzip"},
                    ),
                    (b"\x0a\xff", {"Content-Type": PB}),
                    (b"{}", {"Content-Type": "text/plain"}),
                ]:
                    async with http.post(col.traces_url, data=body, headers=headers) as resp:
                        out.append((resp.status, await resp.read(), resp.content_type))
            assert len(col.spans("c-1")) == 2
        return out

    results = asyncio.run(main())
    assert [(status, ctype) for status, _, ctype in results] == [
        (200, PB),
        (200, JSON),
        (400, PB),
        (415, PB),  # neither of ours: the specification's default encoding
    ]
    assert ExportTraceServiceResponse.FromString(results[0][1]) == ExportTraceServiceResponse()
    assert json.loads(results[1][1]) == {}
    assert status_of(results[2][1], PB).message.startswith("malformed")
    assert status_of(results[3][1], PB).message.startswith("unsupported content type")


def _post(url: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        assert e.headers["Content-Type"].startswith(content_type)
        return e.code, e.read()


@pytest.fixture(scope="module")
def threaded():
    handle = Collector.run_in_thread()
    yield handle
    handle.stop()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(body=st.binary(max_size=200), content_type=st.sampled_from([PB, JSON]))
def test_the_http_receiver_survives_garbage(threaded, body, content_type):
    status, reply = _post(threaded.traces_url, body, content_type)
    assert status in (200, 400)
    if status == 400:
        assert status_of(reply, content_type).message.startswith("malformed")
    ok, _ = _post(threaded.traces_url, pb([span(1, cid="alive")]), PB)
    assert ok == 200


def test_the_threaded_collector_serves_synchronous_callers():
    with Collector.run_in_thread() as col:
        assert col.endpoint.startswith("http://127.0.0.1:")
        status, _ = _post(col.traces_url, pb([span(1, name="job_entrypoint")]), PB)
        assert status == 200
        inst = col.instance_ready("c-1", timeout=3.0, require_layers=("conversational",))
        assert inst.complete and [s.name for s in inst.spans] == ["job_entrypoint"]
        late = col.instance_ready("c-1", timeout=0.2)
        assert late.incomplete_reason == "after-call workflow did not complete within 0.2s"
        url = col.traces_url
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=2)


def test_a_taken_port_is_an_infrastructure_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]

        async def main() -> None:
            await Collector(port=port).start()

        with pytest.raises(InfrastructureError, match=f"cannot listen on 127.0.0.1:{port}"):
            asyncio.run(main())
        with pytest.raises(InfrastructureError, match="cannot listen"):
            Collector.run_in_thread(port=port)


def test_endpoint_before_start_is_a_clear_error():
    with pytest.raises(RuntimeError, match="not started"):
        _ = Collector().endpoint
    assert free_port() > 0
    assert ExportTraceServiceRequest().SerializeToString() == b""
