"""OTLP codecs (protobuf and OTLP/JSON) and Instance file io.

On disk an instance is two files in one directory:

- ``trace.jsonl``: the OpenTelemetry Collector file exporter format, one
  ``ExportTraceServiceRequest`` per line in the OTLP/JSON encoding (lowerCamelCase keys,
  hex trace and span ids, 64-bit integers as decimal strings, enums as integers);
- ``caller.json``: the conversation id, the recording path, the complete flag and reason,
  and the caller side-file (``null`` for a production trace).

:func:`load_instance` also reads a production export of the same format: several lines,
resources from several services, every AnyValue type, many conversations (grouped by
``conversation.id``). Both files are written atomically (a temporary file, then a rename).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from harness.errors import ScenarioError
from harness.trace import conventions as c
from harness.trace.instance import Instance, Span, SpanEvent, SpanLink

__all__ = [
    "CALLER_FILE",
    "TRACE_FILE",
    "Decoded",
    "OtlpDecodeError",
    "TraceFileError",
    "group_by_conversation",
    "load_instance",
    "load_instances",
    "read_spans",
    "save_instance",
    "spans_from_json",
    "spans_from_proto",
    "spans_to_json",
    "spans_to_json_lines",
    "spans_to_proto",
]

TRACE_FILE = "trace.jsonl"
CALLER_FILE = "caller.json"
_SIDE_FORMAT = "harness.instance/1"

_STATUS_BY_CODE = {0: c.STATUS_UNSET, 1: c.STATUS_OK, 2: c.STATUS_ERROR}
_CODE_BY_STATUS = {v: k for k, v in _STATUS_BY_CODE.items()}
_STATUS_NAMES = {"STATUS_CODE_UNSET": 0, "STATUS_CODE_OK": 1, "STATUS_CODE_ERROR": 2}
_KIND_NAMES = {
    "SPAN_KIND_UNSPECIFIED": 0,
    "SPAN_KIND_INTERNAL": 1,
    "SPAN_KIND_SERVER": 2,
    "SPAN_KIND_CLIENT": 3,
    "SPAN_KIND_PRODUCER": 4,
    "SPAN_KIND_CONSUMER": 5,
}
_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_UINT64_MAX = (1 << 64) - 1


class OtlpDecodeError(ValueError):
    """A body or line that is not an ExportTraceServiceRequest; ``path`` says where."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}" if path else reason)


class TraceFileError(ScenarioError):
    """A trace file that cannot be read: rendered as ``file:line: field: reason``."""


class _InvalidSpan(Exception):
    """One span with unusable ids: rejected alone (partial success), not the whole body."""

    def __init__(self, path: str, reason: str) -> None:
        self.path = path
        self.reason = reason
        super().__init__(f"{path}: {reason}")


@dataclass
class Decoded:
    spans: list[Span] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    """One reason per span dropped for unusable ids."""


# --- protobuf ---------------------------------------------------------------------------------


def _any_pb(v: AnyValue) -> Any:
    which = v.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_any_pb(x) for x in v.array_value.values]
    if which == "kvlist_value":
        return {kv.key: _any_pb(kv.value) for kv in v.kvlist_value.values}
    if which == "string_value_strindex":
        return None  # a profiles dictionary index; meaningless without the dictionary
    return getattr(v, which)


def _attrs_pb(kvs: Iterable[KeyValue]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        v = kv.value
        which = v.WhichOneof("value")
        if which == "string_value":
            out[kv.key] = v.string_value
        elif which is None or which in ("array_value", "kvlist_value", "string_value_strindex"):
            out[kv.key] = _any_pb(v)
        else:
            out[kv.key] = getattr(v, which)
    return out


def _check_ids(path: str, trace_id: bytes, span_id: bytes, parent: bytes) -> None:
    if len(trace_id) != 16 or not any(trace_id):
        raise _InvalidSpan(path, f"traceId must be 16 non-zero bytes, got {len(trace_id)} bytes")
    if len(span_id) != 8 or not any(span_id):
        raise _InvalidSpan(path, f"spanId must be 8 non-zero bytes, got {len(span_id)} bytes")
    if parent and len(parent) != 8:
        raise _InvalidSpan(path, f"parentSpanId must be empty or 8 bytes, got {len(parent)}")


def spans_from_proto(req: ExportTraceServiceRequest | bytes) -> Decoded:
    """Spans of a protobuf ExportTraceServiceRequest (bytes are parsed first).

    Raises :class:`OtlpDecodeError` when the bytes do not parse.
    """
    if isinstance(req, (bytes, bytearray, memoryview)):
        msg = ExportTraceServiceRequest()
        try:
            msg.ParseFromString(bytes(req))
        except Exception as e:  # DecodeError, or a RuntimeError from a hostile nesting depth
            raise OtlpDecodeError("", f"not a protobuf ExportTraceServiceRequest: {e}") from None
        req = msg
    out = Decoded()
    for i, rs in enumerate(req.resource_spans):
        resource = _attrs_pb(rs.resource.attributes)
        for j, ss in enumerate(rs.scope_spans):
            scope_name, scope_version = ss.scope.name, ss.scope.version
            for k, sp in enumerate(ss.spans):
                try:
                    _check_ids(
                        f"resourceSpans[{i}].scopeSpans[{j}].spans[{k}]",
                        sp.trace_id,
                        sp.span_id,
                        sp.parent_span_id,
                    )
                except _InvalidSpan as e:
                    out.rejected.append(str(e))
                    continue
                trace_hex = sp.trace_id.hex()
                out.spans.append(
                    Span(
                        trace_id=trace_hex,
                        span_id=sp.span_id.hex(),
                        parent_span_id=sp.parent_span_id.hex() or None,
                        name=sp.name,
                        start_ns=sp.start_time_unix_nano,
                        end_ns=sp.end_time_unix_nano,
                        attributes=_attrs_pb(sp.attributes),
                        status=_STATUS_BY_CODE.get(sp.status.code, c.STATUS_UNSET),
                        status_message=sp.status.message,
                        kind=sp.kind,
                        events=tuple(
                            SpanEvent(e.name, e.time_unix_nano, _attrs_pb(e.attributes))
                            for e in sp.events
                        ),
                        links=tuple(
                            SpanLink(
                                ln.trace_id.hex(),
                                ln.span_id.hex(),
                                _attrs_pb(ln.attributes),
                                ln.trace_state,
                                ln.flags,
                            )
                            for ln in sp.links
                        ),
                        resource=resource,
                        scope_name=scope_name,
                        scope_version=scope_version,
                        trace_state=sp.trace_state,
                        flags=sp.flags,
                    )
                )
    return out


def _set_any_pb(target: AnyValue, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, int):
        target.int_value = value
    elif isinstance(value, float):
        target.double_value = value
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, (bytes, bytearray)):
        target.bytes_value = bytes(value)
    elif isinstance(value, Mapping):
        kvl = target.kvlist_value
        kvl.SetInParent()
        for k, v in value.items():
            kv = kvl.values.add()
            kv.key = str(k)
            _set_any_pb(kv.value, v)
    elif isinstance(value, (list, tuple)):
        arr = target.array_value
        arr.SetInParent()
        for v in value:
            _set_any_pb(arr.values.add(), v)
    else:
        target.string_value = str(value)


def _fill_attrs_pb(target: Any, attrs: Mapping[str, Any]) -> None:
    for k, v in attrs.items():
        kv = target.add()
        kv.key = k
        _set_any_pb(kv.value, v)


def spans_to_proto(spans: Iterable[Span]) -> ExportTraceServiceRequest:
    """One protobuf request holding ``spans``, grouped by resource and scope."""
    req = ExportTraceServiceRequest()
    for resource, scopes in _group(spans):
        rs = req.resource_spans.add()
        _fill_attrs_pb(rs.resource.attributes, resource)
        for (scope_name, scope_version), group in scopes:
            ss = rs.scope_spans.add()
            ss.scope.name = scope_name
            ss.scope.version = scope_version
            for s in group:
                sp = ss.spans.add()
                sp.trace_id = bytes.fromhex(s.trace_id)
                sp.span_id = bytes.fromhex(s.span_id)
                if s.parent_span_id:
                    sp.parent_span_id = bytes.fromhex(s.parent_span_id)
                sp.trace_state = s.trace_state
                sp.flags = s.flags
                sp.name = s.name
                sp.kind = s.kind  # type: ignore[assignment]
                sp.start_time_unix_nano = s.start_ns
                sp.end_time_unix_nano = s.end_ns
                _fill_attrs_pb(sp.attributes, s.attributes)
                for e in s.events:
                    pe = sp.events.add()
                    pe.name = e.name
                    pe.time_unix_nano = e.time_ns
                    _fill_attrs_pb(pe.attributes, e.attributes)
                for ln in s.links:
                    pl = sp.links.add()
                    pl.trace_id = bytes.fromhex(ln.trace_id)
                    pl.span_id = bytes.fromhex(ln.span_id)
                    pl.trace_state = ln.trace_state
                    pl.flags = ln.flags
                    _fill_attrs_pb(pl.attributes, ln.attributes)
                sp.status.code = _CODE_BY_STATUS.get(s.status, 0)  # type: ignore[assignment]
                sp.status.message = s.status_message
    return req


# --- OTLP/JSON --------------------------------------------------------------------------------


def _get(obj: Mapping[str, Any], camel: str, snake: str | None = None) -> Any:
    if camel in obj:
        return obj[camel]
    if snake is not None and snake in obj:
        return obj[snake]
    return None


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise OtlpDecodeError(path, f"expected an object, got {_kind(value)}")
    return value


def _list(value: Any, path: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise OtlpDecodeError(path, f"expected an array, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _str(value: Any, path: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise OtlpDecodeError(path, f"expected a string, got {_kind(value)}")
    return value


def _uint(value: Any, path: str, limit: int = _UINT64_MAX) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        raise OtlpDecodeError(path, "expected an integer, got a boolean")
    if isinstance(value, int):
        n = value
    elif isinstance(value, str):
        try:
            n = int(value, 10)
        except ValueError:
            raise OtlpDecodeError(path, f"expected a decimal integer, got {value!r}") from None
    elif isinstance(value, float) and value.is_integer():
        n = int(value)
    else:
        raise OtlpDecodeError(path, f"expected an integer, got {_kind(value)}")
    if not 0 <= n <= limit:
        raise OtlpDecodeError(path, f"integer {n} out of range")
    return n


def _enum(value: Any, path: str, names: Mapping[str, int]) -> int:
    if isinstance(value, str) and value in names:
        return names[value]
    return _uint(value, path, 0xFFFFFFFF)


def _hex_id(value: Any, path: str, nbytes: int, *, required: bool) -> str | None:
    text = _str(value, path)
    if not text:
        if required:
            raise _InvalidSpan(path, "missing")
        return None
    try:
        raw = bytes.fromhex(text)
    except ValueError:
        raise OtlpDecodeError(path, f"expected {2 * nbytes} hex digits, got {text!r}") from None
    if len(raw) != nbytes or (required and not any(raw)):
        raise _InvalidSpan(path, f"expected {2 * nbytes} hex digits, not all zero, got {text!r}")
    return raw.hex()


def _double(value: Any, path: str) -> float:
    if isinstance(value, bool):
        raise OtlpDecodeError(path, "expected a number, got a boolean")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        special = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}
        if value in special:
            return special[value]
        try:
            return float(value)
        except ValueError:
            pass
    raise OtlpDecodeError(path, f"expected a number, got {value!r}")


def _any_json(value: Any, path: str) -> Any:
    v = _obj(value, path)
    if not v:
        return None
    for camel, snake in (
        ("stringValue", "string_value"),
        ("boolValue", "bool_value"),
        ("intValue", "int_value"),
        ("doubleValue", "double_value"),
        ("arrayValue", "array_value"),
        ("kvlistValue", "kvlist_value"),
        ("bytesValue", "bytes_value"),
    ):
        if camel in v or snake in v:
            inner = _get(v, camel, snake)
            p = f"{path}.{camel}"
            if camel == "stringValue":
                return _str(inner, p)
            if camel == "boolValue":
                if not isinstance(inner, bool):
                    raise OtlpDecodeError(p, f"expected a boolean, got {_kind(inner)}")
                return inner
            if camel == "intValue":
                if isinstance(inner, str) and inner.startswith("-"):
                    n = -_uint(inner[1:], p, 1 << 63)
                elif isinstance(inner, int) and not isinstance(inner, bool) and inner < 0:
                    n = inner
                else:
                    n = _uint(inner, p, _INT64_MAX)
                if not _INT64_MIN <= n <= _INT64_MAX:
                    raise OtlpDecodeError(p, f"integer {n} out of the int64 range")
                return n
            if camel == "doubleValue":
                return _double(inner, p)
            if camel == "bytesValue":
                try:
                    return base64.b64decode(_str(inner, p), validate=True)
                except (binascii.Error, ValueError):
                    raise OtlpDecodeError(p, "expected base64") from None
            values = _list(_obj(inner, p).get("values"), f"{p}.values")
            if camel == "arrayValue":
                return [_any_json(x, f"{p}.values[{n}]") for n, x in enumerate(values)]
            return _attrs_json(values, f"{p}.values")
    return None  # an AnyValue of a kind this reader does not know


def _attrs_json(value: Any, path: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, kv in enumerate(_list(value, path)):
        p = f"{path}[{n}]"
        kv = _obj(kv, p)
        key = _str(kv.get("key"), f"{p}.key")
        out[key] = _any_json(kv.get("value"), f"{p}.value")
    return out


def _span_json(
    sp: Any, path: str, resource: dict[str, Any], scope_name: str, scope_version: str
) -> Span:
    sp = _obj(sp, path)
    trace_id = _hex_id(_get(sp, "traceId", "trace_id"), f"{path}.traceId", 16, required=True)
    span_id = _hex_id(_get(sp, "spanId", "span_id"), f"{path}.spanId", 8, required=True)
    parent = _hex_id(
        _get(sp, "parentSpanId", "parent_span_id"), f"{path}.parentSpanId", 8, required=False
    )
    status = _obj(sp.get("status"), f"{path}.status")
    code = _enum(status.get("code"), f"{path}.status.code", _STATUS_NAMES)
    events = []
    for n, e in enumerate(_list(sp.get("events"), f"{path}.events")):
        p = f"{path}.events[{n}]"
        e = _obj(e, p)
        events.append(
            SpanEvent(
                name=_str(e.get("name"), f"{p}.name"),
                time_ns=_uint(_get(e, "timeUnixNano", "time_unix_nano"), f"{p}.timeUnixNano"),
                attributes=_attrs_json(e.get("attributes"), f"{p}.attributes"),
            )
        )
    links = []
    for n, ln in enumerate(_list(sp.get("links"), f"{path}.links")):
        p = f"{path}.links[{n}]"
        ln = _obj(ln, p)
        links.append(
            SpanLink(
                trace_id=_hex_id(_get(ln, "traceId", "trace_id"), f"{p}.traceId", 16, required=True)
                or "",
                span_id=_hex_id(_get(ln, "spanId", "span_id"), f"{p}.spanId", 8, required=True)
                or "",
                attributes=_attrs_json(ln.get("attributes"), f"{p}.attributes"),
                trace_state=_str(_get(ln, "traceState", "trace_state"), f"{p}.traceState"),
                flags=_uint(ln.get("flags"), f"{p}.flags", 0xFFFFFFFF),
            )
        )
    return Span(
        trace_id=trace_id or "",
        span_id=span_id or "",
        parent_span_id=parent,
        name=_str(sp.get("name"), f"{path}.name"),
        start_ns=_uint(
            _get(sp, "startTimeUnixNano", "start_time_unix_nano"), f"{path}.startTimeUnixNano"
        ),
        end_ns=_uint(_get(sp, "endTimeUnixNano", "end_time_unix_nano"), f"{path}.endTimeUnixNano"),
        attributes=_attrs_json(sp.get("attributes"), f"{path}.attributes"),
        status=_STATUS_BY_CODE.get(code, c.STATUS_UNSET),
        status_message=_str(status.get("message"), f"{path}.status.message"),
        kind=_enum(sp.get("kind"), f"{path}.kind", _KIND_NAMES),
        events=tuple(events),
        links=tuple(links),
        resource=resource,
        scope_name=scope_name,
        scope_version=scope_version,
        trace_state=_str(_get(sp, "traceState", "trace_state"), f"{path}.traceState"),
        flags=_uint(sp.get("flags"), f"{path}.flags", 0xFFFFFFFF),
    )


def spans_from_json(doc: Any, *, strict: bool = False) -> Decoded:
    """Spans of an OTLP/JSON ExportTraceServiceRequest (an already parsed JSON value).

    Raises :class:`OtlpDecodeError` for anything that is not such a request; a span with
    missing or invalid ids is rejected alone, or raises too when ``strict``.
    """
    root = _obj(doc, "")
    if not isinstance(doc, dict):
        raise OtlpDecodeError("", "expected a JSON object (an ExportTraceServiceRequest)")
    out = Decoded()
    for i, rs in enumerate(_list(_get(root, "resourceSpans", "resource_spans"), "resourceSpans")):
        p = f"resourceSpans[{i}]"
        rs = _obj(rs, p)
        res = _obj(rs.get("resource"), f"{p}.resource")
        resource = _attrs_json(res.get("attributes"), f"{p}.resource.attributes")
        scopes = _get(rs, "scopeSpans", "scope_spans")
        if scopes is None:  # OTLP before 0.19 called them instrumentation library spans
            scopes = _get(rs, "instrumentationLibrarySpans", "instrumentation_library_spans")
        for j, ss in enumerate(_list(scopes, f"{p}.scopeSpans")):
            q = f"{p}.scopeSpans[{j}]"
            ss = _obj(ss, q)
            scope = _obj(ss.get("scope") or ss.get("instrumentationLibrary"), f"{q}.scope")
            scope_name = _str(scope.get("name"), f"{q}.scope.name")
            scope_version = _str(scope.get("version"), f"{q}.scope.version")
            for k, sp in enumerate(_list(ss.get("spans"), f"{q}.spans")):
                try:
                    out.spans.append(
                        _span_json(sp, f"{q}.spans[{k}]", resource, scope_name, scope_version)
                    )
                except _InvalidSpan as e:
                    if strict:
                        raise OtlpDecodeError(e.path, e.reason) from None
                    out.rejected.append(str(e))
    return out


def _any_to_json(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if isinstance(value, bool):
        return {"boolValue": value}
    if isinstance(value, int):
        return {"intValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, (bytes, bytearray)):
        return {"bytesValue": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, Mapping):
        return {"kvlistValue": {"values": _attrs_to_json(value)}}
    if isinstance(value, (list, tuple)):
        return {"arrayValue": {"values": [_any_to_json(v) for v in value]}}
    return {"stringValue": str(value)}


def _attrs_to_json(attrs: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [{"key": str(k), "value": _any_to_json(v)} for k, v in attrs.items()]


def _span_to_json(s: Span) -> dict[str, Any]:
    out: dict[str, Any] = {"traceId": s.trace_id, "spanId": s.span_id}
    if s.trace_state:
        out["traceState"] = s.trace_state
    if s.parent_span_id:
        out["parentSpanId"] = s.parent_span_id
    if s.flags:
        out["flags"] = s.flags
    out["name"] = s.name
    out["kind"] = s.kind
    out["startTimeUnixNano"] = str(s.start_ns)
    out["endTimeUnixNano"] = str(s.end_ns)
    if s.attributes:
        out["attributes"] = _attrs_to_json(s.attributes)
    if s.events:
        out["events"] = [
            {
                "timeUnixNano": str(e.time_ns),
                "name": e.name,
                "attributes": _attrs_to_json(e.attributes),
            }
            for e in s.events
        ]
    if s.links:
        links = []
        for ln in s.links:
            link: dict[str, Any] = {"traceId": ln.trace_id, "spanId": ln.span_id}
            if ln.trace_state:
                link["traceState"] = ln.trace_state
            link["attributes"] = _attrs_to_json(ln.attributes)
            if ln.flags:
                link["flags"] = ln.flags
            links.append(link)
        out["links"] = links
    status: dict[str, Any] = {}
    if s.status_message:
        status["message"] = s.status_message
    if s.status != c.STATUS_UNSET:
        status["code"] = _CODE_BY_STATUS[s.status]
    out["status"] = status
    return out


def _canon(value: Any) -> str:
    return json.dumps(_any_to_json(value), sort_keys=True)


def _group(
    spans: Iterable[Span],
) -> list[tuple[dict[str, Any], list[tuple[tuple[str, str], list[Span]]]]]:
    """Spans by resource, then by scope, both in order of first appearance."""
    groups: dict[str, tuple[dict[str, Any], dict[tuple[str, str], list[Span]]]] = {}
    for s in spans:
        key = _canon(s.resource)
        if key not in groups:
            groups[key] = (s.resource, {})
        groups[key][1].setdefault((s.scope_name, s.scope_version), []).append(s)
    return [(res, list(scopes.items())) for res, scopes in groups.values()]


def spans_to_json(spans: Iterable[Span]) -> dict[str, Any]:
    """One OTLP/JSON ExportTraceServiceRequest holding ``spans``."""
    resource_spans = []
    for resource, scopes in _group(spans):
        scope_spans = []
        for (name, version), group in scopes:
            scope: dict[str, Any] = {"name": name}
            if version:
                scope["version"] = version
            scope_spans.append({"scope": scope, "spans": [_span_to_json(s) for s in group]})
        resource_spans.append(
            {"resource": {"attributes": _attrs_to_json(resource)}, "scopeSpans": scope_spans}
        )
    return {"resourceSpans": resource_spans}


def spans_to_json_lines(spans: Iterable[Span]) -> list[str]:
    """File exporter lines: one ExportTraceServiceRequest per resource (service)."""
    lines = []
    for _, scopes in _group(spans):
        group = [s for _, scoped in scopes for s in scoped]
        lines.append(json.dumps(spans_to_json(group), separators=(",", ":")))
    return lines


# --- grouping ---------------------------------------------------------------------------------


def group_by_conversation(
    spans: Iterable[Span], *, adopt: bool = True
) -> tuple[dict[str, list[Span]], list[Span]]:
    """Spans by conversation, by the rules of :mod:`harness.trace.join`: ``conversation.id``,
    then ids learned from spans that carry one (the room's, the job's), then trace
    membership and links. With ``adopt`` (a production export from an agent that never
    heard of us), a room's ``gen_ai.conversation.id`` or sid names a conversation of its
    own. The rest are returned as unassigned, in file order.
    """
    from harness.trace.join import Joiner

    joiner = Joiner(max_parked=1 << 62)
    groups: dict[str, list[Span]] = {}
    for s in spans:
        for cid, joined in joiner.add(s):
            groups.setdefault(cid, []).append(joined)
    if adopt:
        for cid, joined in joiner.adopt_parked():
            groups.setdefault(cid, []).append(joined)
    return groups, list(joiner.parked())


# --- files ------------------------------------------------------------------------------------


def _paths(path: str | os.PathLike[str]) -> tuple[Path, Path]:
    p = Path(path)
    if p.suffix == ".jsonl" or p.is_file():
        return p, p.with_name(CALLER_FILE)
    return p / TRACE_FILE, p / CALLER_FILE


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def save_instance(instance: Instance, path: str | os.PathLike[str]) -> Path:
    """Write ``instance`` as ``trace.jsonl`` + ``caller.json``; returns the trace file.

    ``path`` is a directory (created if needed) or the ``.jsonl`` trace file itself, in
    which case ``caller.json`` goes next to it. Each file is replaced atomically.
    """
    trace_file, side_file = _paths(path)
    lines = spans_to_json_lines(instance.spans)
    side = {
        "format": _SIDE_FORMAT,
        "conversation_id": instance.conversation_id,
        "recording": instance.recording,
        "complete": instance.complete,
        "incomplete_reason": instance.incomplete_reason,
        "caller": instance.caller,
    }
    side_text = json.dumps(side, indent=2, allow_nan=False) + "\n"
    _atomic_write(trace_file, "".join(line + "\n" for line in lines))
    _atomic_write(side_file, side_text)
    return trace_file


def read_spans(path: str | os.PathLike[str]) -> list[Span]:
    """Every span of a file exporter file, in file order.

    Raises :class:`TraceFileError` naming the file and line of the first bad line.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise TraceFileError(f"cannot read trace file: {e.strerror or e}", file=p) from None
    spans: list[Span] = []
    for n, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TraceFileError(f"not UTF-8 text ({e.reason})", file=p, line=n) from None
        try:
            doc = json.loads(text)
        except RecursionError:
            raise TraceFileError(
                "not an OTLP request: JSON nested too deeply", file=p, line=n
            ) from None
        except ValueError as e:
            msg = getattr(e, "msg", str(e))
            col = getattr(e, "colno", None)
            where = f" at column {col}" if col else ""
            raise TraceFileError(
                f"not valid JSON ({msg}{where}); the line may be truncated or garbled",
                file=p,
                line=n,
            ) from None
        try:
            spans.extend(spans_from_json(doc, strict=True).spans)
        except RecursionError:
            raise TraceFileError("attribute values nested too deeply", file=p, line=n) from None
        except OtlpDecodeError as e:
            raise TraceFileError(e.reason, file=p, line=n, field=e.path or None) from None
    return spans


def _read_side(side_file: Path) -> dict[str, Any] | None:
    if not side_file.is_file():
        return None
    try:
        side = json.loads(side_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise TraceFileError(f"cannot read side file: {e}", file=side_file) from None
    if not isinstance(side, dict):
        raise TraceFileError("expected a JSON object", file=side_file)
    if side.get("format") == _SIDE_FORMAT:
        return side
    # the synthetic caller's own file, as it writes it
    return {
        "conversation_id": side.get("conversation_id"),
        "recording": side.get("recording"),
        "complete": True,
        "incomplete_reason": None,
        "caller": side,
    }


def _instance(
    cid: str, spans: Sequence[Span], side: Mapping[str, Any] | None, source: Path
) -> Instance:
    if side is None or side.get("conversation_id") != cid:
        return Instance(conversation_id=cid, spans=tuple(spans), source=source)
    caller = side.get("caller")
    recording = side.get("recording")
    return Instance(
        conversation_id=cid,
        spans=tuple(spans),
        caller=caller if isinstance(caller, dict) else None,
        recording=str(recording) if recording is not None else None,
        complete=bool(side.get("complete", True)),
        incomplete_reason=side.get("incomplete_reason"),
        source=source,
    )


def load_instances(path: str | os.PathLike[str]) -> dict[str, Instance]:
    """Every conversation in a trace file (or an instance directory), by conversation id."""
    trace_file, side_file = _paths(path)
    spans = read_spans(trace_file)
    side = _read_side(side_file)
    source = trace_file.parent
    if side is not None and side.get("format") == _SIDE_FORMAT and side.get("conversation_id"):
        cid = str(side["conversation_id"])
        # a saved instance: every span in the file is this conversation's
        return {cid: _instance(cid, spans, side, source)}
    if not spans:
        raise TraceFileError("no spans in the file", file=trace_file)
    groups, unassigned = group_by_conversation(spans)
    if not groups:
        raise TraceFileError(
            f"none of its {len(unassigned)} spans carries {c.CONVERSATION_ID} or a room's id "
            f"({', '.join(c.JOIN_KEYS[:3])}): export the agent's spans with livekit-agents' "
            "tracing, or stamp conversation.id with harness_instrument",
            file=trace_file,
        )
    return {cid: _instance(cid, group, side, source) for cid, group in groups.items()}


def load_instance(path: str | os.PathLike[str], conversation_id: str | None = None) -> Instance:
    """One instance from ``path`` (an instance directory or a ``.jsonl`` trace file).

    For a file holding several conversations, ``conversation_id`` picks one.
    """
    instances = load_instances(path)
    trace_file, _ = _paths(path)
    if conversation_id is not None:
        if conversation_id not in instances:
            known = ", ".join(sorted(instances)) or "none"
            raise TraceFileError(
                f"no spans for conversation {conversation_id!r} (conversations: {known})",
                file=trace_file,
            )
        return instances[conversation_id]
    if len(instances) > 1:
        raise TraceFileError(
            f"{len(instances)} conversations in the file ({', '.join(sorted(instances))}); "
            "pass conversation_id= to pick one",
            file=trace_file,
        )
    return next(iter(instances.values()))
