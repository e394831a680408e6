"""OTLP codecs and Instance file io (the OpenTelemetry Collector file exporter format)."""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.core.errors import ScenarioError
from harness.trace import otlp
from harness.trace.instance import Instance, Span, SpanEvent, SpanLink
from harness.trace.otlp import (
    TraceFileError,
    load_instance,
    load_instances,
    read_spans,
    save_instance,
    spans_from_json,
    spans_from_proto,
    spans_to_json,
    spans_to_proto,
)

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "otel_file_exporter.jsonl"

# --- strategies -------------------------------------------------------------------------------


def hex_id(n: int) -> st.SearchStrategy[str]:
    return st.binary(min_size=n, max_size=n).filter(any).map(bytes.hex)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
    st.text(max_size=12),
    st.binary(max_size=6),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
attr_dicts = st.dictionaries(st.text(max_size=14), values, max_size=4)
uint64 = st.integers(min_value=0, max_value=2**64 - 1)
uint32 = st.integers(min_value=0, max_value=2**32 - 1)


@st.composite
def spans(draw: st.DrawFn, resources: list[dict] | None = None) -> Span:
    parent = draw(st.none() | hex_id(8))
    return Span(
        trace_id=draw(hex_id(16)),
        span_id=draw(hex_id(8)),
        parent_span_id=parent,
        name=draw(st.text(max_size=20)),
        start_ns=draw(uint64),
        end_ns=draw(uint64),
        attributes=draw(attr_dicts),
        status=draw(st.sampled_from(["unset", "ok", "error"])),
        status_message=draw(st.text(max_size=10)),
        kind=draw(st.integers(min_value=0, max_value=5)),
        events=tuple(
            draw(
                st.lists(st.builds(SpanEvent, st.text(max_size=8), uint64, attr_dicts), max_size=2)
            )
        ),
        links=tuple(
            draw(
                st.lists(
                    st.builds(
                        SpanLink, hex_id(16), hex_id(8), attr_dicts, st.text(max_size=8), uint32
                    ),
                    max_size=2,
                )
            )
        ),
        resource=draw(st.sampled_from(resources)) if resources else draw(attr_dicts),
        scope_name=draw(st.sampled_from(["livekit-agents", "harness.instrument", ""])),
        scope_version=draw(st.sampled_from(["", "1.8.9"])),
        trace_state=draw(st.sampled_from(["", "vendor=x"])),
        flags=draw(uint32),
    )


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=8,
)


@st.composite
def instances(draw: st.DrawFn) -> Instance:
    resources = draw(st.lists(attr_dicts, min_size=1, max_size=3))
    complete = draw(st.booleans())
    return Instance(
        conversation_id=draw(st.text(min_size=1, max_size=12)),
        spans=tuple(draw(st.lists(spans(resources), max_size=6))),
        caller=draw(st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4)),
        recording=draw(st.none() | st.text(max_size=12)),
        complete=complete,
        incomplete_reason=None if complete else draw(st.text(max_size=30)),
    )


# --- round trips ------------------------------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inst=instances())
def test_save_then_load_round_trips_exactly(tmp_path_factory, inst: Instance):
    out = tmp_path_factory.mktemp("inst")
    trace_file = save_instance(inst, out)
    assert trace_file == out / "trace.jsonl"
    loaded = load_instance(out)
    assert loaded == inst
    assert loaded.source == out
    assert sorted(p.name for p in out.iterdir()) == ["caller.json", "trace.jsonl"]


def _total(s: Span) -> tuple:
    """A total order: a batch may hold copies of one span id that differ (exporter retries),
    and the encoder groups spans by resource, so the id alone leaves their order open."""
    return (s.key, repr(s))


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(spans(), max_size=6))
def test_protobuf_round_trips(batch: list[Span]):
    wire = spans_to_proto(batch).SerializeToString()
    decoded = spans_from_proto(wire)
    assert decoded.rejected == []
    assert sorted(decoded.spans, key=_total) == sorted(batch, key=_total)


@settings(max_examples=60, deadline=None)
@given(batch=st.lists(spans(), max_size=6))
def test_otlp_json_round_trips_through_text(batch: list[Span]):
    text = json.dumps(spans_to_json(batch))
    decoded = spans_from_json(json.loads(text), strict=True)
    assert sorted(decoded.spans, key=_total) == sorted(batch, key=_total)


def test_json_encoding_follows_the_otlp_spec():
    s = Span(
        trace_id="0af7651916cd43dd8448eb211c80319c",
        span_id="b7ad6b7169203331",
        parent_span_id=None,
        name="x",
        start_ns=2**62,
        end_ns=2**62 + 1,
        attributes={"i": -5, "d": 1.5, "inf": math.inf, "b": b"\x00\xff", "l": [1, "a"], "n": None},
        status="error",
        status_message="boom",
        kind=2,
    )
    doc = spans_to_json([s])
    sp = doc["resourceSpans"][0]["scopeSpans"][0]["spans"][0]
    assert sp["traceId"] == "0af7651916cd43dd8448eb211c80319c"  # hex, not base64
    assert "parentSpanId" not in sp
    assert sp["startTimeUnixNano"] == str(2**62)  # int64 as a string
    assert sp["kind"] == 2 and sp["status"] == {"message": "boom", "code": 2}
    attrs = {a["key"]: a["value"] for a in sp["attributes"]}
    assert attrs["i"] == {"intValue": "-5"}
    assert attrs["d"] == {"doubleValue": 1.5}
    assert attrs["inf"] == {"doubleValue": "Infinity"}
    assert attrs["b"] == {"bytesValue": "AP8="}
    assert attrs["l"] == {"arrayValue": {"values": [{"intValue": "1"}, {"stringValue": "a"}]}}
    assert attrs["n"] == {}


def test_json_decoder_accepts_every_anyvalue_form():
    doc = {
        "resourceSpans": [
            {
                "resource": {
                    "attributes": [{"key": "service.name", "value": {"stringValue": "a"}}]
                },
                "scopeSpans": [
                    {
                        "spans": [
                            {
                                "traceId": "0AF7651916CD43DD8448EB211C80319C",
                                "spanId": "B7AD6B7169203331",
                                "parentSpanId": "",
                                "name": "s",
                                "kind": "SPAN_KIND_SERVER",
                                "startTimeUnixNano": 1,
                                "endTimeUnixNano": "2",
                                "attributes": [
                                    {"key": "neg", "value": {"intValue": "-9223372036854775808"}},
                                    {"key": "num", "value": {"intValue": 7}},
                                    {"key": "nan", "value": {"doubleValue": "NaN"}},
                                    {"key": "dint", "value": {"doubleValue": 3}},
                                    {"key": "snake", "value": {"string_value": "s"}},
                                    {"key": "kv", "value": {"kvlistValue": {"values": []}}},
                                    {"key": "arr", "value": {"arrayValue": {}}},
                                    {"key": "bytes", "value": {"bytesValue": "3q2+7w=="}},
                                    {"key": "empty", "value": {}},
                                ],
                                "status": {"code": "STATUS_CODE_OK"},
                            }
                        ]
                    }
                ],
            }
        ]
    }
    (s,) = spans_from_json(doc, strict=True).spans
    assert s.trace_id == "0af7651916cd43dd8448eb211c80319c" and s.parent_span_id is None
    assert s.kind == 2 and s.status == "ok" and (s.start_ns, s.end_ns) == (1, 2)
    a = s.attributes
    assert a["neg"] == -(2**63) and a["num"] == 7 and math.isnan(a["nan"])
    assert a["dint"] == 3.0 and isinstance(a["dint"], float)
    assert a["snake"] == "s" and a["kv"] == {} and a["arr"] == []
    assert a["bytes"] == bytes.fromhex("deadbeef") and a["empty"] is None


# --- the committed fixture --------------------------------------------------------------------


def test_the_file_exporter_fixture_loads_as_one_instance_of_three_services():
    inst = load_instance(FIXTURE)
    assert inst.conversation_id == "c-fixture-0001"
    assert inst.caller is None and inst.complete is True
    assert inst.services == ("clinic-after-call", "clinic-agent", "clinic-backend")
    assert {k: len(v) for k, v in inst.layers.items()} == {
        "conversational": 18,
        "background": 3,
        "workflow": 4,
    }
    # job_entrypoint has no conversation.id: it joins through its trace
    (job,) = inst.find("job_entrypoint")
    assert "conversation.id" not in job.attributes
    assert [e.name for e in job.events] == ["job_received", "entrypoint_started"]
    turns = inst.turns
    assert [t.kind for t in turns] == ["greeting", "say", "say"]
    assert turns[1].agent_heard == "i'd like to book a cleaning next tuesday"
    assert turns[1].ttft_ms == pytest.approx(330.0) and turns[1].ttfb_ms == 1000.0
    assert turns[1].e2e_latency_ms == pytest.approx(740.0)
    assert turns[2].end_of_turn_delay_ms == pytest.approx(550.0)
    assert [(t.name, t.arguments, t.is_error) for t in inst.tool_calls] == [
        ("check_availability", {"day": "tuesday", "service": "cleaning"}, False),
        ("request_booking", {"slot": "tue-10:00", "service": "cleaning"}, False),
    ]
    (act,) = inst.actions
    assert (act.name, act.mutating, act.approval, act.status) == (
        "create_booking",
        True,
        "approved",
        "ok",
    )
    assert act.span.events[0].attributes["policy"] == {
        "rule": "auto-approve-cleaning",
        "max_per_day": 2,
        "weekdays": [1, 2],
    }
    assert [w.name for w in inst.workflow] == ["summarize", "crm_update", "send_confirmation"]
    (root,) = inst.workflow_roots
    assert root.parent_span_id is None and root.links[0].span_id == "1000000000000002"
    (server,) = inst.find("POST /bookings")
    assert server.parent_is_remote is True and server.attributes["http.response.status_code"] == 201
    (db,) = inst.find("db.insert")
    assert db.attributes["booking.checksum"] == bytes.fromhex("deadbeef")
    assert server.attributes["empty"] is None


def test_a_saved_fixture_instance_reloads_equal(tmp_path: Path):
    inst = load_instance(FIXTURE).with_caller({"conversation_id": "c-fixture-0001", "turns": []})
    save_instance(inst, tmp_path / "out")
    assert load_instance(tmp_path / "out") == inst


# --- production files -------------------------------------------------------------------------


def _two_conversation_file(tmp_path: Path) -> Path:
    lines = FIXTURE.read_text().splitlines()
    other = [ln.replace("c-fixture-0001", "c-other") for ln in lines[:2]]
    other = [
        ln.replace("0af7651916cd43dd8448eb211c80319c", "1af7651916cd43dd8448eb211c80319c")
        for ln in other
    ]
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join(lines + other) + "\n")
    return path


def test_a_file_with_several_conversations_is_grouped(tmp_path: Path):
    path = _two_conversation_file(tmp_path)
    groups = load_instances(path)
    assert sorted(groups) == ["c-fixture-0001", "c-other"]
    assert len(groups["c-fixture-0001"].spans) == 25
    assert len(groups["c-other"].spans) == 9
    with pytest.raises(TraceFileError, match="2 conversations in the file"):
        load_instance(path)
    assert load_instance(path, "c-other").conversation_id == "c-other"
    with pytest.raises(TraceFileError, match="no spans for conversation 'c-x'"):
        load_instance(path, "c-x")


def test_the_callers_own_side_file_is_read(tmp_path: Path):
    shutil.copy(FIXTURE, tmp_path / "trace.jsonl")
    caller = {"conversation_id": "c-fixture-0001", "recording": "rec.wav", "turns": []}
    (tmp_path / "caller.json").write_text(json.dumps(caller))
    inst = load_instance(tmp_path)
    assert inst.caller == caller and inst.recording == "rec.wav"
    assert inst.recording_path == tmp_path / "rec.wav"


# --- errors -----------------------------------------------------------------------------------


def _write_lines(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "trace.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_truncated_line_names_the_file_and_line(tmp_path: Path):
    lines = FIXTURE.read_text().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]  # a crash mid-write
    path = _write_lines(tmp_path, lines)
    with pytest.raises(TraceFileError) as info:
        read_spans(path)
    assert info.value.file == str(path) and info.value.line == 3
    assert str(info.value).startswith(f"{path}:3: not valid JSON")
    assert isinstance(info.value, ScenarioError)


def test_a_garbled_field_names_the_field(tmp_path: Path):
    lines = FIXTURE.read_text().splitlines()
    lines[1] = lines[1].replace('"traceId":"0af7651916cd43dd', '"traceId":"zzf7651916cd43dd', 1)
    path = _write_lines(tmp_path, lines)
    with pytest.raises(TraceFileError) as info:
        read_spans(path)
    assert info.value.line == 2
    assert info.value.field == "resourceSpans[0].scopeSpans[0].spans[0].traceId"
    assert "hex digits" in str(info.value)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([], "no spans in the file"),
        (["", "   "], "no spans in the file"),
        (['{"resourceSpans": []}'], "no spans in the file"),
        (["[1, 2]"], "expected an object"),
        (['{"resourceSpans": 5}'], "expected an array"),
    ],
)
def test_files_without_spans_or_of_the_wrong_shape(tmp_path: Path, lines, message):
    path = _write_lines(tmp_path, lines)
    with pytest.raises(TraceFileError, match=message) as info:
        load_instance(path)
    assert str(path) in str(info.value)


def test_spans_without_any_conversation_id_are_an_error(tmp_path: Path):
    s = Span("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", None, "x", 1, 2)
    path = _write_lines(tmp_path, [json.dumps(spans_to_json([s]))])
    with pytest.raises(TraceFileError, match=r"none of its 1 spans carries conversation\.id"):
        load_instance(path)


def test_a_missing_file_is_a_clear_error(tmp_path: Path):
    with pytest.raises(TraceFileError, match="cannot read trace file"):
        load_instance(tmp_path / "nope.jsonl")


# --- atomic writes ----------------------------------------------------------------------------


def test_a_failed_save_leaves_the_previous_files_intact(tmp_path: Path, monkeypatch):
    first = load_instance(FIXTURE)
    save_instance(first, tmp_path)
    before = (tmp_path / "trace.jsonl").read_bytes()

    def crash(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(otlp.os, "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        save_instance(Instance("c-fixture-0001"), tmp_path)
    monkeypatch.undo()
    assert (tmp_path / "trace.jsonl").read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["caller.json", "trace.jsonl"]  # no temp files left
    assert load_instance(tmp_path) == first


def test_saving_to_a_jsonl_path_puts_the_side_file_next_to_it(tmp_path: Path):
    inst = Instance("c-1", (), recording="/abs/rec.wav", complete=False, incomplete_reason="late")
    trace_file = save_instance(inst, tmp_path / "run" / "calls.jsonl")
    assert trace_file == tmp_path / "run" / "calls.jsonl"
    side = json.loads((tmp_path / "run" / "caller.json").read_text())
    assert side["complete"] is False and side["recording"] == "/abs/rec.wav"
    assert load_instance(trace_file) == inst  # an instance with no spans still loads


# --- streaming: iter_instances ----------------------------------------------------------------


def test_iter_instances_gives_what_load_instances_gives(tmp_path: Path):
    path = _two_conversation_file(tmp_path)
    report = otlp.TraceFileReport(path)
    streamed = {i.conversation_id: i for i in otlp.iter_instances(path, report=report)}
    assert streamed == load_instances(path)
    assert (report.spans, report.conversations, report.bad_line_count) == (34, 2, 0)
    # a saved instance (directory with caller.json) is one conversation, read whole
    inst = load_instance(FIXTURE).with_caller({"conversation_id": "c-fixture-0001", "turns": []})
    save_instance(inst, tmp_path / "saved")
    assert list(otlp.iter_instances(tmp_path / "saved")) == [inst]


def test_iter_instances_is_strict_by_default(tmp_path: Path):
    lines = FIXTURE.read_text().splitlines()
    lines[2] = lines[2][: len(lines[2]) // 2]
    path = _write_lines(tmp_path, lines)
    with pytest.raises(TraceFileError) as info:
        list(otlp.iter_instances(path))
    assert info.value.line == 3 and str(info.value).startswith(f"{path}:3: not valid JSON")


def test_a_tolerant_read_skips_bad_lines_of_an_export_and_counts_every_one(tmp_path: Path):
    lines = _two_conversation_file(tmp_path).read_text().splitlines()
    garbled = ["{not json", '{"resourceSpans": 5}'] * 15
    path = _write_lines(tmp_path, lines[:1] + garbled + lines[1:])
    report = otlp.TraceFileReport(path)
    got = {i.conversation_id: i for i in otlp.iter_instances(path, report=report, tolerant=True)}
    assert sorted(got) == ["c-fixture-0001", "c-other"]
    assert report.bad_line_count == 30 and len(report.bad_lines) == 20  # counted, a few kept
    assert [e.line for e in report.bad_lines[:2]] == [2, 3]
    assert report.bad_lines[1].field == "resourceSpans"
    assert report.untraced is None


def test_a_saved_call_with_a_bad_line_is_yielded_without_its_trace(tmp_path: Path):
    inst = load_instance(FIXTURE).with_caller({"conversation_id": "c-fixture-0001", "turns": []})
    save_instance(inst, tmp_path)
    trace = tmp_path / "trace.jsonl"
    lines = trace.read_text().splitlines()
    lines[0] = lines[0][:-40]
    trace.write_text("\n".join(lines) + "\n")
    with pytest.raises(TraceFileError, match=r"trace\.jsonl:1: not valid JSON"):
        list(otlp.iter_instances(tmp_path))
    report = otlp.TraceFileReport(trace)
    (got,) = otlp.iter_instances(tmp_path, report=report, tolerant=True)
    assert got.conversation_id == "c-fixture-0001" and got.spans == ()
    assert got.caller == inst.caller and got.trace_state == "none"
    assert got.incomplete_reason.startswith("trace unusable: ") and ":1: not valid JSON" in (
        got.incomplete_reason
    )
    assert report.untraced == "c-fixture-0001" and report.bad_line_count == 1


def test_a_file_that_gives_no_conversation_falls_back_to_the_call_directory(tmp_path: Path):
    s = Span("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", None, "x", 1, 2)
    path = _write_lines(tmp_path, [json.dumps(spans_to_json([s]))])
    with pytest.raises(TraceFileError, match="none of its 1 spans"):
        list(otlp.iter_instances(path, tolerant=True))
    report = otlp.TraceFileReport(path)
    (got,) = otlp.iter_instances(path, report=report, tolerant=True, fallback_id="call-7")
    assert got.conversation_id == "call-7" and got.spans == () and not got.complete
    assert report.untraced == "call-7" and "none of its 1 spans" in str(report.unreadable)
    # an empty file, or none at all, the same way
    for empty in (_write_lines(tmp_path, []), tmp_path / "nope" / "trace.jsonl"):
        (got,) = otlp.iter_instances(empty, tolerant=True, fallback_id="call-8")
        assert got.conversation_id == "call-8"


def test_an_unreadable_side_file_is_reported_when_tolerant(tmp_path: Path):
    shutil.copy(FIXTURE, tmp_path / "trace.jsonl")
    (tmp_path / "caller.json").write_text("[" * 100_000)  # nested too deeply for json
    with pytest.raises(TraceFileError, match=r"caller\.json: cannot read side file"):
        list(otlp.iter_instances(tmp_path))
    report = otlp.TraceFileReport(tmp_path / "trace.jsonl")
    (got,) = otlp.iter_instances(tmp_path, report=report, tolerant=True)
    assert got.conversation_id == "c-fixture-0001" and got.caller is None
    assert report.side_error is not None and report.side_error.file == str(tmp_path / "caller.json")


def test_a_file_that_changes_between_the_two_passes_is_an_error(tmp_path: Path):
    path = _two_conversation_file(tmp_path)
    lines = path.read_text().splitlines()
    stream = otlp.iter_instances(path)
    # the second pass yields a conversation after its last line: c-fixture-0001 first
    assert next(stream).conversation_id == "c-fixture-0001"
    path.write_text("\n".join([*lines[:-1], lines[0]]) + "\n")
    with pytest.raises(TraceFileError, match="the file changed while it was read"):
        list(stream)
