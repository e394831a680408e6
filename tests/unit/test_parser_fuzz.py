"""Every parser of a file the harness reads, given arbitrary bytes and arbitrary structured
values: it returns, or raises one of the project's own errors; it never takes more than
2 s; it never writes a file (so never a partial one) next to what it read.

The parsers: scenario and gates files (YAML), baselines (JSON), OTLP JSON (a trace line and
a trace file), OTLP protobuf (a collector body) and WAV recordings."""

from __future__ import annotations

import json
import math
import struct
from datetime import timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from harness.core.errors import HarnessError
from harness.gates import load_gates
from harness.gates.baseline import load_baseline
from harness.scenario.model import load_scenario
from harness.trace.otlp import OtlpDecodeError, read_spans, spans_from_json, spans_from_proto

FUZZ = settings(
    max_examples=60,
    deadline=timedelta(seconds=2),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- strategies --------------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(max_size=12), inner, max_size=4),
    ),
    max_leaves=30,
)

# keys a real file uses, so that structured values get past the first check
SCENARIO_KEYS = ["id", "agent", "turns", "say", "expect", "voice", "audio", "timeouts", "tags"]
GATES_KEYS = ["gates", "name", "metric", "span", "layer", "stat", "warn", "fail", "window"]
OTLP_KEYS = [
    "resourceSpans",
    "scopeSpans",
    "spans",
    "resource",
    "attributes",
    "traceId",
    "spanId",
    "parentSpanId",
    "name",
    "startTimeUnixNano",
    "endTimeUnixNano",
    "status",
    "code",
    "events",
    "links",
    "key",
    "value",
    "stringValue",
    "intValue",
    "doubleValue",
    "boolValue",
    "arrayValue",
    "kvlistValue",
    "values",
]
BASELINE_KEYS = ["format", "scores", "series", "units", "sketch", "metric", "count", "bins"]


def shaped(keys: list[str]) -> st.SearchStrategy:
    """JSON-like values whose mapping keys are mostly the parser's own."""
    key = st.one_of(st.sampled_from(keys), st.text(max_size=8))
    return st.recursive(
        scalars | st.sampled_from(["0" * 32, "1" * 16, "ab", "STATUS_CODE_ERROR", "1e30"]),
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(key, inner, max_size=6),
        ),
        max_leaves=40,
    )


def any_value(depth: int = 3) -> st.SearchStrategy[AnyValue]:
    leaf = st.one_of(
        st.text(max_size=10).map(lambda s: AnyValue(string_value=s)),
        st.integers(-(2**63), 2**63 - 1).map(lambda i: AnyValue(int_value=i)),
        st.floats().map(lambda f: AnyValue(double_value=f)),
        st.booleans().map(lambda b: AnyValue(bool_value=b)),
        st.binary(max_size=8).map(lambda b: AnyValue(bytes_value=b)),
        st.just(AnyValue()),
    )
    if depth == 0:
        return leaf

    def array(vals: list[AnyValue]) -> AnyValue:
        v = AnyValue()
        v.array_value.values.extend(vals)
        return v

    def kvlist(pairs: list[tuple[str, AnyValue]]) -> AnyValue:
        v = AnyValue()
        v.kvlist_value.values.extend(KeyValue(key=k, value=x) for k, x in pairs)
        return v

    inner = any_value(depth - 1)
    return st.one_of(
        leaf,
        st.lists(inner, max_size=3).map(array),
        st.lists(st.tuples(st.text(max_size=6), inner), max_size=3).map(kvlist),
    )


@st.composite
def export_requests(draw) -> bytes:
    """A protobuf ExportTraceServiceRequest with fields of any value, ids of any length."""
    req = ExportTraceServiceRequest()
    for _ in range(draw(st.integers(0, 2))):
        rs = req.resource_spans.add()
        for k, v in draw(st.lists(st.tuples(st.text(max_size=8), any_value()), max_size=3)):
            rs.resource.attributes.add(key=k, value=v)
        ss = rs.scope_spans.add()
        for _ in range(draw(st.integers(0, 3))):
            sp = ss.spans.add()
            sp.trace_id = draw(st.sampled_from([b"", b"\x01" * 16, b"\x00" * 16, b"\x02" * 3]))
            sp.span_id = draw(st.sampled_from([b"", b"\x03" * 8, b"\x00" * 8, b"\x04" * 9]))
            sp.parent_span_id = draw(st.sampled_from([b"", b"\x03" * 8, b"\x05" * 8, b"\x06"]))
            sp.name = draw(st.text(max_size=12))
            sp.start_time_unix_nano = draw(st.integers(0, 2**64 - 1))
            sp.end_time_unix_nano = draw(st.integers(0, 2**64 - 1))
            sp.status.code = draw(st.integers(0, 2))
            sp.status.message = draw(st.text(max_size=10))
            for k, v in draw(st.lists(st.tuples(st.text(max_size=8), any_value()), max_size=4)):
                sp.attributes.add(key=k, value=v)
            for _ in range(draw(st.integers(0, 2))):
                ev = sp.events.add()
                ev.name = draw(st.text(max_size=6))
                ev.time_unix_nano = draw(st.integers(0, 2**64 - 1))
            for _ in range(draw(st.integers(0, 1))):
                ln = sp.links.add()
                ln.trace_id = draw(st.binary(max_size=17))
                ln.span_id = draw(st.binary(max_size=9))
    return req.SerializeToString()


@st.composite
def wav_files(draw) -> bytes:
    """A RIFF/WAVE file whose header fields and data size may lie."""
    channels = draw(st.integers(0, 3))
    width = draw(st.sampled_from([0, 1, 2, 3, 4, 8]))
    rate = draw(st.sampled_from([0, 1, 8000, 16000, 48000, 2**31 - 1]))
    fmt_tag = draw(st.sampled_from([1, 3, 0xFFFE, 0]))
    data = draw(st.binary(max_size=400))
    declared = draw(st.one_of(st.just(len(data)), st.integers(0, 2**32 - 1)))
    block = channels * width
    byte_rate = rate * block & 0xFFFFFFFF
    fmt = struct.pack("<HHIIHH", fmt_tag, channels, rate, byte_rate, block, width * 8)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", declared) + data
    riff = draw(st.one_of(st.just(len(body)), st.integers(0, 2**32 - 1)))
    out = b"RIFF" + struct.pack("<I", riff) + body
    cut = draw(st.integers(0, len(out)))
    return out[: max(cut, 12)] if draw(st.booleans()) else out


# --- the check -----------------------------------------------------------------------------


def only_input_left(folder: Path, name: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [name], "the parser wrote a file"


def parse_file(folder: Path, name: str, content: bytes, load, errors=(HarnessError,)) -> None:
    for p in folder.iterdir():
        p.unlink()
    f = folder / name
    f.write_bytes(content)
    try:
        load(f)
    except errors:
        pass
    only_input_left(folder, name)


def yaml_bytes(value) -> bytes:
    return yaml.safe_dump(value, allow_unicode=True).encode()


# --- scenario files --------------------------------------------------------------------------


@FUZZ
@given(content=st.binary(max_size=400))
@example(content=b"id: x\nturns:\n  - say: [" * 1 + b"[" * 5000)
@example(content=b"\xff\xfe\x00")
def test_scenario_bytes(tmp_path, content):
    parse_file(tmp_path, "s.yaml", content, load_scenario)


@FUZZ
@given(value=shaped(SCENARIO_KEYS))
@example(value={"id": "x", "turns": [{"say": "hi", "expect": {"reply_matches": "("}}]})
@example(value={"id": "x", "turns": [{"say": float("nan")}], "timeouts": {"turn": -1}})
def test_scenario_values(tmp_path, value):
    parse_file(tmp_path, "s.yaml", yaml_bytes(value), load_scenario)


# --- gates files -----------------------------------------------------------------------------


@FUZZ
@given(content=st.binary(max_size=400))
@example(content=b"gates:\n  - " + b"{a: " * 3000)
def test_gates_bytes(tmp_path, content):
    parse_file(tmp_path, "gates.yaml", content, load_gates)


@FUZZ
@given(value=shaped(GATES_KEYS))
@example(value={"gates": [{"name": "g", "metric": "e2e_latency", "stat": "p90", "fail": "1e400"}]})
@example(value={"gates": [{"name": "g", "metric": "e2e_latency", "stat": "p101", "fail": 1}]})
def test_gates_values(tmp_path, value):
    parse_file(tmp_path, "gates.yaml", yaml_bytes(value), load_gates)


@FUZZ
@given(content=st.binary(max_size=300))
@example(content=b"[tool.harness]\ngates = " + b"[" * 5000)
def test_gates_toml_bytes(tmp_path, content):
    parse_file(tmp_path, "pyproject.toml", content, load_gates)


# --- baselines -------------------------------------------------------------------------------


@FUZZ
@given(content=st.binary(max_size=400))
@example(content=b"[" * 100_000)
def test_baseline_bytes(tmp_path, content):
    parse_file(tmp_path, "baseline.json", content, load_baseline)


@FUZZ
@given(value=shaped(BASELINE_KEYS))
def test_baseline_values(tmp_path, value):
    doc = {"format": "harness.gates.baseline/1", "scores": value}
    parse_file(tmp_path, "baseline.json", json.dumps(doc).encode(), load_baseline)


# --- OTLP JSON ---------------------------------------------------------------------------------


@FUZZ
@given(value=shaped(OTLP_KEYS))
def test_otlp_json_values(value):
    try:
        decoded = spans_from_json(value)
    except OtlpDecodeError:
        return
    for s in decoded.spans:
        assert len(s.trace_id) == 32 and len(s.span_id) == 16
        assert 0 <= s.start_ns < 2**64 and 0 <= s.end_ns < 2**64


@FUZZ
@given(value=shaped(OTLP_KEYS))
def test_otlp_json_values_strict(value):
    try:
        spans_from_json(value, strict=True)
    except OtlpDecodeError:
        pass


@FUZZ
@given(
    lines=st.lists(
        st.one_of(st.binary(max_size=200), shaped(OTLP_KEYS).map(lambda v: json.dumps(v).encode())),
        max_size=4,
    )
)
@example(lines=[b"[" * 100_000])
@example(lines=[b'{"resourceSpans": ' + b"[" * 50_000])
def test_otlp_json_file(tmp_path, lines):
    parse_file(tmp_path, "trace.jsonl", b"\n".join(lines), read_spans)


# --- OTLP protobuf -----------------------------------------------------------------------------


@FUZZ
@given(body=st.binary(max_size=600))
@example(body=b"\x0a" * 2000)
def test_otlp_protobuf_bytes(body):
    try:
        spans_from_proto(body)
    except OtlpDecodeError:
        pass


@FUZZ
@given(body=export_requests())
def test_otlp_protobuf_values(body):
    try:
        decoded = spans_from_proto(body)
    except OtlpDecodeError:
        return
    for s in decoded.spans:
        assert len(s.trace_id) == 32 and len(s.span_id) == 16
        for v in s.attributes.values():
            assert not (isinstance(v, float) and math.isnan(v) and v == v)


# --- WAV -------------------------------------------------------------------------------------


def wav_readers():
    from harness.audio.clip import Clip
    from harness.evaluators.audio import read_stereo

    return [
        pytest.param(Clip.read_wav, id="Clip.read_wav"),
        pytest.param(lambda p: Clip.read_wav(p, channel=0), id="Clip.read_wav-channel"),
        pytest.param(read_stereo, id="read_stereo"),
    ]


@pytest.mark.parametrize("reader", wav_readers())
@FUZZ
@given(content=st.binary(max_size=300))
@example(content=b"RIFF\x00\x00\x00\x00WAVE")
def test_wav_bytes(tmp_path, reader, content):
    parse_file(tmp_path, "recording.wav", content, reader)


@pytest.mark.parametrize("reader", wav_readers())
@FUZZ
@given(content=wav_files())
def test_wav_structured(tmp_path, reader, content):
    parse_file(tmp_path, "recording.wav", content, reader)
