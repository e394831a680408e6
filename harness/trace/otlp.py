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

:func:`iter_instances` gives the same Instances one at a time, for an export too large to
hold: it reads the file twice (an index of which conversation each span joins, then the
conversations) and, when asked, skips and counts bad lines instead of stopping
(:class:`TraceFileReport`).
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import math
import os
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

from harness.call.rundir import CALLER_FORMAT, CallDir, CallerFile, RunDirError
from harness.core.errors import ScenarioError
from harness.core.files import atomic_write
from harness.trace import conventions as c
from harness.trace.instance import Instance, Span, SpanEvent, SpanLink, prefer
from harness.trace.join import _adoptable, join_values

__all__ = [
    "Decoded",
    "OtlpDecodeError",
    "TraceFileError",
    "TraceFileReport",
    "group_by_conversation",
    "iter_instances",
    "load_instance",
    "load_instances",
    "read_side",
    "read_spans",
    "save_instance",
    "spans_from_json",
    "spans_from_proto",
    "spans_to_json",
    "spans_to_json_lines",
    "spans_to_proto",
]


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
    """The trace file and its side file: a call directory's, or a ``.jsonl`` file and the
    side file beside it (:class:`harness.call.rundir.CallDir`)."""
    p = Path(path)
    if p.suffix == ".jsonl" or p.is_file():
        return p, CallDir(p.parent).caller
    call = CallDir(p)
    return call.trace, call.caller


def save_instance(instance: Instance, path: str | os.PathLike[str]) -> Path:
    """Write ``instance`` as ``trace.jsonl`` + ``caller.json``; returns the trace file.

    ``path`` is a directory (created if needed) or the ``.jsonl`` trace file itself, in
    which case ``caller.json`` goes next to it. Each file is replaced atomically.
    """
    trace_file, side_file = _paths(path)
    lines = spans_to_json_lines(instance.spans)
    side = CallerFile(
        format=CALLER_FORMAT,
        conversation_id=instance.conversation_id,
        recording=instance.recording,
        complete=instance.complete,
        incomplete_reason=instance.incomplete_reason,
        caller=instance.caller,
    )
    atomic_write(trace_file, "".join(line + "\n" for line in lines))
    CallDir(side_file.parent).write_caller(side)
    return trace_file


def _decode_line(raw: bytes, path: Path, n: int) -> list[Span]:
    """The spans of one file exporter line (``n`` counts from 1); :class:`TraceFileError`
    naming the file, the line and the field when it is not an OTLP/JSON request."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise TraceFileError(f"not UTF-8 text ({e.reason})", file=path, line=n) from None
    try:
        doc = json.loads(text)
    except RecursionError:
        raise TraceFileError(
            "not an OTLP request: JSON nested too deeply", file=path, line=n
        ) from None
    except ValueError as e:
        msg = getattr(e, "msg", str(e))
        col = getattr(e, "colno", None)
        where = f" at column {col}" if col else ""
        raise TraceFileError(
            f"not valid JSON ({msg}{where}); the line may be truncated or garbled",
            file=path,
            line=n,
        ) from None
    try:
        return spans_from_json(doc, strict=True).spans
    except RecursionError:
        raise TraceFileError("attribute values nested too deeply", file=path, line=n) from None
    except OtlpDecodeError as e:
        raise TraceFileError(e.reason, file=path, line=n, field=e.path or None) from None


def _open_trace(p: Path) -> Any:
    try:
        return p.open("rb")
    except OSError as e:
        raise TraceFileError(f"cannot read trace file: {e.strerror or e}", file=p) from None


def _lines(f: Any, p: Path) -> Iterator[tuple[int, int, bytes]]:
    """``(line number from 1, byte offset, bytes)`` of every line with content."""
    offset = 0
    n = 0
    while True:
        try:
            raw = f.readline()
        except OSError as e:
            raise TraceFileError(
                f"cannot read trace file: {e.strerror or e}", file=p, line=n + 1
            ) from None
        if not raw:
            return
        n += 1
        if raw.strip():
            yield n, offset, raw
        offset += len(raw)


def read_spans(path: str | os.PathLike[str]) -> list[Span]:
    """Every span of a file exporter file, in file order.

    Raises :class:`TraceFileError` naming the file and line of the first bad line.
    """
    p = Path(path)
    spans: list[Span] = []
    with _open_trace(p) as f:
        for n, _, raw in _lines(f, p):
            spans.extend(_decode_line(raw, p, n))
    return spans


def read_side(side_file: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The side file next to a trace (``caller.json``), as a saved instance's header:
    ``conversation_id``, ``recording``, ``complete``, ``incomplete_reason``, ``caller``
    (:class:`harness.call.rundir.CallerFile`). None when there is none;
    :class:`TraceFileError` naming the file when it cannot be read."""
    side_file = Path(side_file)
    try:
        side = CallDir(side_file.parent).read_caller() if side_file.is_file() else None
    except RunDirError as e:
        raise TraceFileError(f"cannot read side file: {e.reason}", file=side_file) from None
    return dict(side) if side is not None else None


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
    side = read_side(side_file)
    source = trace_file.parent
    if side is not None and side.get("format") == CALLER_FORMAT and side.get("conversation_id"):
        cid = str(side["conversation_id"])
        # a saved instance: every span in the file is this conversation's
        return {cid: _instance(cid, spans, side, source)}
    if not spans:
        raise TraceFileError("no spans in the file", file=trace_file)
    groups, unassigned = group_by_conversation(spans)
    if not groups:
        raise _no_conversation(trace_file, len(unassigned))
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


# --- streaming a large file -------------------------------------------------------------------

_PARKED = -1
"""``conv_of`` of a span that joined no conversation (yet)."""
_DROPPED = -2
"""``conv_of`` of the copy of a span that lost to another copy while both waited to join."""
_KEEP_BAD_LINES = 20
"""Bad lines kept with their reason per file; the rest are counted."""


@dataclass
class TraceFileReport:
    """What :func:`iter_instances` could not use in one trace file. Nothing is left out
    without a count here."""

    file: Path
    spans: int = 0
    """Spans read from the file's good lines."""
    conversations: int = 0
    """Instances yielded so far."""
    bad_lines: list[TraceFileError] = field(default_factory=list)
    """The first bad lines, each naming the file, the line and the field."""
    bad_line_count: int = 0
    """Every bad line (only the first few are kept in :attr:`bad_lines`)."""
    unreadable: TraceFileError | None = None
    """Why the file gave no conversation at all: it cannot be opened, holds no span, or
    none of its spans joins a conversation."""
    side_error: TraceFileError | None = None
    """Why the side file next to it (``caller.json``) could not be read."""
    untraced: str | None = None
    """A call whose trace was unusable (a saved call with a bad line, or a file that gave
    no conversation): yielded without spans under this conversation id."""
    unjoined: dict[str, int] = field(default_factory=dict)
    """Spans that joined no conversation, by service name (``"?"`` without one)."""
    duplicates: int = 0
    """Copies of a span that arrived while another copy waited to join (the same span
    exported twice): one copy is kept, the one :func:`group_by_conversation` keeps."""

    def bad_line(self, error: TraceFileError) -> None:
        self.bad_line_count += 1
        if len(self.bad_lines) < _KEEP_BAD_LINES:
            self.bad_lines.append(error)

    @property
    def unjoined_spans(self) -> int:
        return sum(self.unjoined.values())


def _no_conversation(trace_file: Path, n: int) -> TraceFileError:
    return TraceFileError(
        f"none of its {n} spans carries {c.CONVERSATION_ID} or a room's id "
        f"({', '.join(c.JOIN_KEYS[:3])}): export the agent's spans with livekit-agents' "
        "tracing, or stamp conversation.id with harness_instrument",
        file=trace_file,
    )


def iter_instances(
    path: str | os.PathLike[str],
    *,
    report: TraceFileReport | None = None,
    tolerant: bool = False,
    fallback_id: str | None = None,
) -> Iterator[Instance]:
    """Every conversation in a trace file (or an instance directory), one Instance at a
    time: the Instances of :func:`load_instances`, without holding the file.

    A saved instance (its ``caller.json`` names the conversation) is read whole: it is one
    conversation. Any other file is read twice. The first pass decodes one line at a time
    and joins its spans by the rules of :func:`group_by_conversation`, keeping an index
    only (a conversation number per span, a byte offset per line, and the join keys of the
    spans still waiting to join); the second decodes the lines again and yields each
    conversation after its last line. Memory is bounded by the conversations whose spans
    are spread over the same stretch of the file (for an export in time order: the calls
    that were in progress at once), not by the file.

    Strict (the default), the first bad line raises :class:`TraceFileError`, as
    :func:`load_instances` does. ``tolerant``: a bad line is skipped and counted in
    ``report`` (which conversations its spans belonged to cannot be known); a saved call
    with a bad line is yielded without spans, since a per-call score from part of a trace
    could pass where the whole would fail (``report.untraced`` names it); an unreadable
    side file is reported and left out. With ``fallback_id``, a file that gives no
    conversation (it cannot be opened, holds no span, or none of its spans joins one)
    yields one Instance without spans instead of raising, named by the side file's
    conversation id, else ``fallback_id``: a call directory whose trace is unusable.
    """
    trace_file, side_file = _paths(path)
    rep = report if report is not None else TraceFileReport(trace_file)
    source = trace_file.parent
    try:
        side = read_side(side_file)
    except TraceFileError as e:
        if not tolerant:
            raise
        rep.side_error = e
        side = None
    if side is not None and side.get("format") == CALLER_FORMAT and side.get("conversation_id"):
        yield _saved_call(trace_file, side, source, rep, tolerant)
        return
    try:
        index = _Index(trace_file, rep, tolerant)
        if index.spans == 0:
            bad = (
                f" that can be read ({rep.bad_line_count} bad lines)" if rep.bad_line_count else ""
            )
            raise TraceFileError(f"no spans in the file{bad}", file=trace_file)
        if not index.cids:
            raise _no_conversation(trace_file, index.spans)
    except TraceFileError as e:
        if fallback_id is None or (not tolerant and e.line is not None):
            raise
        rep.unreadable = e
        cid = str(side["conversation_id"]) if side and side.get("conversation_id") else fallback_id
        rep.untraced = cid
        yield _instance(cid, (), side, source).marked_incomplete(f"trace unusable: {e}")
        return
    yield from index.instances(side, source)


def _saved_call(
    trace_file: Path, side: Mapping[str, Any], source: Path, rep: TraceFileReport, tolerant: bool
) -> Instance:
    cid = str(side["conversation_id"])
    spans: list[Span] = []
    try:
        with _open_trace(trace_file) as f:
            for n, _, raw in _lines(f, trace_file):
                try:
                    spans.extend(_decode_line(raw, trace_file, n))
                except TraceFileError as e:
                    if not tolerant:
                        raise
                    rep.bad_line(e)
    except TraceFileError as e:  # the file cannot be opened or read
        if not tolerant:
            raise
        rep.unreadable = e
    if rep.bad_line_count or rep.unreadable is not None:
        first = rep.unreadable or rep.bad_lines[0]
        rep.untraced = cid
        return _instance(cid, (), side, source).marked_incomplete(f"trace unusable: {first}")
    rep.spans = len(spans)
    rep.conversations = 1
    return _instance(cid, spans, side, source)


_Sig = tuple[tuple[str, ...], str, tuple[str, ...], str | None, str | None]
"""What joining looks at in a span without ``conversation.id``: its join-key values, its
trace id, the trace ids it links to, its adoptable value and (for the counts) its service."""


class _Group:
    """Parked spans that share one signature: released together, by the same key."""

    __slots__ = ("fingerprints", "lookup", "members", "reparked")

    LOOKUP_FROM = 512
    """Members past which a group keeps a set of its fingerprints (else it scans them)."""

    def __init__(self) -> None:
        self.members = array("i")
        """Span numbers, in the order they were parked."""
        self.fingerprints = array("i")
        """Per member: a 31-bit hash of its span id (a duplicate's hint, checked exactly)."""
        self.lookup: set[int] | None = None
        self.reparked: dict[int, int] | None = None
        """Span number -> when it was parked again (a copy that won over a later copy)."""

    def add(self, g: int, fingerprint: int) -> None:
        self.members.append(g)
        self.fingerprints.append(fingerprint)
        if self.lookup is not None:
            self.lookup.add(fingerprint)
        elif len(self.members) > self.LOOKUP_FROM:
            self.lookup = set(self.fingerprints)

    def candidates(self, fingerprint: int) -> list[int]:
        """Members whose span id may be the one with ``fingerprint``."""
        if (
            (fingerprint not in self.lookup)
            if self.lookup is not None
            else (fingerprint not in self.fingerprints)
        ):
            return []
        return [g for g, f in zip(self.members, self.fingerprints, strict=True) if f == fingerprint]

    def remove(self, g: int) -> None:
        i = self.members.index(g)
        del self.members[i]
        del self.fingerprints[i]
        if self.lookup is not None:
            self.lookup = set(self.fingerprints)
        if self.reparked:
            self.reparked.pop(g, None)

    def position(self) -> int:
        first = self.members[0]
        return self.reparked.get(first, first) if self.reparked else first


def _fingerprint(span_id: str) -> int:
    return hash(span_id) & 0x7FFFFFFF


class _Index:
    """The first pass of :func:`iter_instances`: each span's conversation, by the rules of
    :class:`harness.trace.join.Joiner` as :func:`group_by_conversation` drives it (nothing
    registered, no bound on parked spans, adoption at the end).

    Spans waiting to join are kept as groups of span numbers that share a signature
    (:data:`_Sig`): all of a group is released by the first key bound among its keys,
    which is what the Joiner does to each of them. A file whose spans all wait for
    adoption (a livekit-agents export: every span carries only the room's
    ``gen_ai.conversation.id``) so holds 8 bytes per waiting span and 4 per span, never the
    spans. A second copy of a waiting span (same trace and span id) is found by its trace's
    groups and a hash of its span id, and both copies are decoded again from their lines
    to keep the one the Joiner keeps.
    """

    def __init__(self, path: Path, rep: TraceFileReport, tolerant: bool) -> None:
        self.path = path
        self.rep = rep
        self.cids: list[str] = []
        self._cid_index: dict[str, int] = {}
        self.conv_of = array("i")
        """Per span number: its conversation's index, :data:`_PARKED` or :data:`_DROPPED`."""
        self.offsets = array("q")
        """Per good line with spans: its byte offset, its line number, its first span."""
        self.numbers = array("q")
        self.firsts = array("q")
        self._alias: dict[str, int] = {}
        self._owner: dict[str, int] = {}
        self._groups: dict[_Sig, _Group] = {}
        self._waiting: dict[str, set[_Sig]] = {}
        self._by_trace: dict[str, set[_Sig]] = {}  # trace id -> parked groups in it
        self._reader: Any = None
        try:
            with _open_trace(path) as f:
                for n, offset, raw in _lines(f, path):
                    try:
                        spans = _decode_line(raw, path, n)
                    except TraceFileError as e:
                        if not tolerant:
                            raise
                        rep.bad_line(e)
                        continue
                    if not spans:
                        continue
                    first = len(self.conv_of)
                    if first + len(spans) > 0x7FFFFFFF:
                        raise TraceFileError(
                            "more than 2**31 spans in one file: split the export", file=path
                        )
                    self.offsets.append(offset)
                    self.numbers.append(n)
                    self.firsts.append(first)
                    self.conv_of.extend(array("i", [_PARKED]) * len(spans))
                    for k, s in enumerate(spans):
                        self._add(first + k, s)
            self._adopt()
        finally:
            if self._reader is not None:
                self._reader.close()
                self._reader = None
        self.spans = len(self.conv_of)
        rep.spans = self.spans
        for sig, group in self._groups.items():
            service = sig[4] or "?"
            rep.unjoined[service] = rep.unjoined.get(service, 0) + len(group.members)
        self._groups.clear()
        self._waiting.clear()
        self._by_trace.clear()

    # --- joining ---

    def _conv(self, cid: str) -> int:
        k = self._cid_index.get(cid)
        if k is None:
            k = self._cid_index[cid] = len(self.cids)
            self.cids.append(cid)
        return k

    @staticmethod
    def _sig(span: Span) -> _Sig:
        return (
            join_values(span),
            span.trace_id,
            tuple(ln.trace_id for ln in span.links),
            _adoptable(span),
            span.service_name,
        )

    @staticmethod
    def _waiting_keys(sig: _Sig) -> Iterator[str]:
        yield from sig[0]
        yield sig[1]
        yield from sig[2]

    def _resolve(self, sig: _Sig) -> int | None:
        for value in sig[0]:
            k = self._alias.get(value)
            if k is not None:
                return k
        k = self._owner.get(sig[1])
        if k is not None:
            return k
        for trace in sig[2]:
            k = self._owner.get(trace)
            if k is not None:
                return k
        return None

    def _add(self, g: int, span: Span) -> None:
        sig = self._sig(span)
        cid = span.conversation_id
        k = self._conv(cid) if cid else self._resolve(sig)
        if k is None:
            self._park(g, span, sig)
            return
        self.conv_of[g] = k
        self._drain([(k, sig)])

    def _drain(self, todo: list[tuple[int, _Sig]]) -> None:
        while todo:
            k, sig = todo.pop()
            for value in sig[0]:
                self._bind(value, k, self._alias, todo)
            self._bind(sig[1], k, self._owner, todo)

    def _bind(self, key: str, k: int, table: dict[str, int], todo: list[tuple[int, _Sig]]) -> None:
        if key in table:
            return
        table[key] = k
        for sig in self._waiting.pop(key, ()):
            group = self._unpark_group(sig)
            if group is not None:
                for g in group.members:
                    self.conv_of[g] = k
                todo.append((k, sig))

    def _adopt(self) -> None:
        for sig, group in sorted(self._groups.items(), key=lambda kv: kv[1].position()):
            if self._groups.get(sig) is not group or sig[3] is None:
                continue
            k = self._conv(sig[3])
            todo: list[tuple[int, _Sig]] = []
            self._bind(sig[3], k, self._alias, todo)
            self._drain(todo)

    # --- parking ---

    def _park(self, g: int, span: Span, sig: _Sig) -> None:
        fingerprint = _fingerprint(span.span_id)
        arrival = g
        found = self._find_parked(span, fingerprint)
        if found is not None:
            g_old, old, old_sig = found
            group = self._groups[old_sig]
            group.remove(g_old)
            if not group.members:
                self._unpark_group(old_sig)
            self.rep.duplicates += 1
            if prefer(old, span) is old:
                self.conv_of[g] = _DROPPED
                g, sig = g_old, old_sig
            else:
                self.conv_of[g_old] = _DROPPED
        group = self._groups.get(sig)
        if group is None:
            group = self._groups[sig] = _Group()
            for w in self._waiting_keys(sig):
                self._waiting.setdefault(w, set()).add(sig)
            self._by_trace.setdefault(sig[1], set()).add(sig)
        group.add(g, fingerprint)
        if g != arrival:
            if group.reparked is None:
                group.reparked = {}
            group.reparked[g] = arrival

    def _find_parked(self, span: Span, fingerprint: int) -> tuple[int, Span, _Sig] | None:
        """The waiting copy of ``span`` (same trace and span id), if one waits."""
        for sig in self._by_trace.get(span.trace_id, ()):
            for g in self._groups[sig].candidates(fingerprint):
                old = self._reread(g)
                if old.key == span.key:
                    return g, old, sig
        return None

    def _unpark_group(self, sig: _Sig) -> _Group | None:
        group = self._groups.pop(sig, None)
        if group is None:
            return None
        for w in self._waiting_keys(sig):
            sigs = self._waiting.get(w)
            if sigs is not None:
                sigs.discard(sig)
                if not sigs:
                    del self._waiting[w]
        in_trace = self._by_trace.get(sig[1])
        if in_trace is not None:
            in_trace.discard(sig)
            if not in_trace:
                del self._by_trace[sig[1]]
        return group

    def _reread(self, g: int) -> Span:
        """Span number ``g``, decoded again from its line (a copy met its twin)."""
        i = bisect.bisect_right(self.firsts, g) - 1
        if self._reader is None:
            self._reader = _open_trace(self.path)
        self._reader.seek(self.offsets[i])
        raw = self._reader.readline()
        return _decode_line(raw, self.path, self.numbers[i])[g - self.firsts[i]]

    # --- the second pass ---

    def instances(self, side: Mapping[str, Any] | None, source: Path) -> Iterator[Instance]:
        """Each conversation's Instance, after the last line that holds one of its spans."""
        n_lines = len(self.firsts)
        last = [-1] * len(self.cids)
        line = 0
        for g, k in enumerate(self.conv_of):
            while line + 1 < n_lines and self.firsts[line + 1] <= g:
                line += 1
            if k >= 0:
                last[k] = line
        closing: dict[int, list[int]] = {}
        for k, line in enumerate(last):
            closing.setdefault(line, []).append(k)
        buffers: dict[int, list[Span]] = {}
        with _open_trace(self.path) as f:
            for i in range(n_lines):
                f.seek(self.offsets[i])
                spans = _decode_line(f.readline(), self.path, self.numbers[i])
                lo = self.firsts[i]
                hi = self.firsts[i + 1] if i + 1 < n_lines else self.spans
                if len(spans) != hi - lo:
                    raise TraceFileError(
                        "the file changed while it was read; read it again once it is complete",
                        file=self.path,
                        line=self.numbers[i],
                    )
                for j, s in enumerate(spans):
                    k = self.conv_of[lo + j]
                    if k >= 0:
                        buffers.setdefault(k, []).append(s)
                for k in closing.pop(i, ()):
                    self.rep.conversations += 1
                    yield _instance(self.cids[k], buffers.pop(k), side, source)
