"""A call (or a run) as Chrome trace-event JSON, which Perfetto and ``chrome://tracing`` open.

Each layer of each call is one process (``conversational``, ``background``, ``workflow``,
and ``caller`` for what the synthetic caller measured), so each layer is one track group.
Trace-event viewers stack the complete events ("X") of one thread, so they must nest; spans
of one layer overlap without nesting (an ``llm_node`` still streaming when its ``tts_node``
starts), and such a span goes to the next thread of its layer's process. Span links (the
after-call workflow to the call) and a background request's parent in the conversational
agent are flow arrows. Times are microseconds from the earliest event in the file;
``otherData.origin_unix_ns`` gives that instant.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from typing import Any

from harness.report.model import CallView
from harness.report.timeline import LAYER_ORDER, span_order
from harness.trace.instance import Span

__all__ = ["CALLER_PROCESS", "trace_events"]

CALLER_PROCESS = "caller"


def _arg(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_arg(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _arg(v) for k, v in value.items()}
    return value


def _lanes(spans: Sequence[Span]) -> dict[tuple[str, str], int]:
    """A thread per span such that the spans of each thread nest (sorted by start, longest
    first, each goes to the first thread whose open spans it fits in)."""
    stacks: list[list[int]] = []
    out: dict[tuple[str, str], int] = {}
    for s in sorted(spans, key=lambda s: (s.start_ns, -s.end_ns, s.span_id)):
        for lane, stack in enumerate(stacks):
            while stack and stack[-1] <= s.start_ns:
                stack.pop()
            if not stack or s.end_ns <= stack[-1]:
                stack.append(s.end_ns)
                out[s.key] = lane
                break
        else:
            stacks.append([s.end_ns])
            out[s.key] = len(stacks) - 1
    return out


def trace_events(calls: Sequence[CallView]) -> dict[str, Any]:
    """The trace-event document (JSON object format) of ``calls``."""
    starts = [s.start_ns for call in calls for s in call.instance.spans]
    starts += [round(call.started_at * 1e9) for call in calls if call.started_at is not None]
    origin = min(starts) if starts else 0

    def us(ns: int) -> float:
        return round((ns - origin) / 1000.0, 3)

    events: list[dict[str, Any]] = []
    pid = 0
    flows = 0
    for call in calls:
        inst = call.instance
        prefix = f"{call.name} · " if len(calls) > 1 else ""
        layers = inst.layers
        names = [n for n in LAYER_ORDER if n in layers] + sorted(
            n for n in layers if n not in LAYER_ORDER
        )
        where: dict[tuple[str, str], tuple[int, int]] = {}
        ordered = {s.key: k for k, (s, _, _) in enumerate(span_order(inst))}
        for name in names:
            pid += 1
            spans = layers[name]
            lanes = _lanes(spans)
            events.append(
                {
                    "ph": "M",
                    "name": "process_name",
                    "pid": pid,
                    "tid": 0,
                    "args": {"name": f"{prefix}{name}"},
                }
            )
            events.append(
                {
                    "ph": "M",
                    "name": "process_sort_index",
                    "pid": pid,
                    "tid": 0,
                    "args": {"sort_index": pid},
                }
            )
            for lane in sorted(set(lanes.values())):
                label = name if lane == 0 else f"{name} ({lane + 1})"
                events.append(
                    {
                        "ph": "M",
                        "name": "thread_name",
                        "pid": pid,
                        "tid": lane + 1,
                        "args": {"name": label},
                    }
                )
            for s in sorted(spans, key=lambda s: ordered.get(s.key, 0)):
                tid = lanes[s.key] + 1
                where[s.key] = (pid, tid)
                args = {
                    "span_id": s.span_id,
                    "trace_id": s.trace_id,
                    "parent_span_id": s.parent_span_id,
                    "service": s.service_name,
                    "status": s.status + (f": {s.status_message}" if s.status_message else ""),
                    **{k: _arg(v) for k, v in s.attributes.items()},
                }
                events.append(
                    {
                        "ph": "X",
                        "name": s.name,
                        "cat": name,
                        "pid": pid,
                        "tid": tid,
                        "ts": us(s.start_ns),
                        "dur": round((s.end_ns - s.start_ns) / 1000.0, 3),
                        "args": args,
                    }
                )
        # what the caller measured
        turns = [t for t in inst.turns if t.caller_start is not None or t.agent_onset is not None]
        if turns:
            pid += 1
            events.append(
                {
                    "ph": "M",
                    "name": "process_name",
                    "pid": pid,
                    "tid": 0,
                    "args": {"name": f"{prefix}{CALLER_PROCESS}"},
                }
            )
            events.append(
                {
                    "ph": "M",
                    "name": "process_sort_index",
                    "pid": pid,
                    "tid": 0,
                    "args": {"sort_index": pid},
                }
            )
            for tid, label in ((1, "caller speaking"), (2, "agent audio, as heard")):
                events.append(
                    {
                        "ph": "M",
                        "name": "thread_name",
                        "pid": pid,
                        "tid": tid,
                        "args": {"name": label},
                    }
                )
            for t in turns:
                name = "greeting" if t.kind == "greeting" else f"turn {t.index}"
                if t.caller_start is not None and t.caller_end is not None:
                    a, b = round(t.caller_start * 1e9), round(t.caller_end * 1e9)
                    events.append(
                        {
                            "ph": "X",
                            "name": name,
                            "cat": CALLER_PROCESS,
                            "pid": pid,
                            "tid": 1,
                            "ts": us(a),
                            "dur": round(max(0, b - a) / 1000.0, 3),
                            "args": {"said": t.caller_said, "agent_heard": t.agent_heard},
                        }
                    )
                if t.agent_onset is not None:
                    off = t.agent_offset if t.agent_offset is not None else t.agent_onset
                    a, b = round(t.agent_onset * 1e9), round(off * 1e9)
                    events.append(
                        {
                            "ph": "X",
                            "name": f"{name}: agent",
                            "cat": CALLER_PROCESS,
                            "pid": pid,
                            "tid": 2,
                            "ts": us(a),
                            "dur": round(max(0, b - a) / 1000.0, 3),
                            "args": {
                                "agent_said": t.agent_said,
                                "response_latency_ms": t.response_latency_ms,
                            },
                        }
                    )
        # flows: links to the call, and parents in another layer
        bound: set[tuple[str, str]] = set()
        for s in inst.spans:
            source = None
            for link in s.links:
                source = inst.span(link.span_id, link.trace_id)
                if source is not None:
                    break
            if source is None:
                p = inst.parent(s)
                if p is not None and p.layer != s.layer:
                    source = p
            if source is None or source.key in bound or s.key in bound:
                continue
            bound.update((source.key, s.key))
            flows += 1
            _bind(events, where, source, flows, "flow_out")
            _bind(events, where, s, flows, "flow_in")
    return {
        "traceEvents": events,
        "displayTimeUnit": "ms",
        "otherData": {"origin_unix_ns": str(origin), "producer": "livekit-call-harness"},
    }


def _bind(
    events: list[dict[str, Any]],
    where: dict[tuple[str, str], tuple[int, int]],
    span: Span,
    flow: int,
    direction: str,
) -> None:
    pid, tid = where[span.key]
    for e in events:
        if (
            e["ph"] == "X"
            and e["pid"] == pid
            and e["tid"] == tid
            and e["args"].get("span_id") == span.span_id
            and e["args"].get("trace_id") == span.trace_id
        ):
            e["bind_id"] = f"0x{flow:x}"
            e[direction] = True
            return
