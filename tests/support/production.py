"""Production-like clinic Instances: the hand-built booking call of
``tests/fixtures/instances``, made many times over with fresh ids, times and latencies, and
some of them faulty, as production traffic would bring them."""

from __future__ import annotations

import hashlib
from dataclasses import replace

from harness.trace import conventions as c
from harness.trace.instance import Instance, Span, SpanLink
from tests.fixtures.instances.build import T0, clinic_10_turns

_NS = 1_000_000_000
LATENCY_KEYS = ("lk.e2e_latency", "lk.response.ttft", "lk.response.ttfb")


def _hex(seed: str, n: int) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:n]


def production_call(index: int, *, start: float, faulty: bool = False) -> Instance:
    """Call ``index``: its own trace ids, shifted to ``start`` (epoch seconds), latencies
    scaled by a factor that varies with ``index``; a faulty call's booking tool fails and
    its background write skips the approval check."""
    cid = f"prod-{index:04d}"
    base = clinic_10_turns(cid)
    shift = round((start - T0) * _NS)
    factor = 0.7 + (index * 37 % 13) / 10  # 0.7 .. 1.9

    def tid(old: str) -> str:
        return _hex(f"{cid}:{old}", 32)

    spans: list[Span] = []
    for s in base.spans:
        attrs = dict(s.attributes)
        for k in LATENCY_KEYS:
            if isinstance(attrs.get(k), (int, float)):
                attrs[k] = round(attrs[k] * factor, 4)
        if faulty:
            if (
                s.name == c.SPAN_FUNCTION_TOOL
                and attrs.get("lk.function_tool.name") == "request_booking"
            ):
                attrs["lk.function_tool.is_error"] = True
            if attrs.get("action.mutating"):
                attrs["action.approval"] = "skipped"
        spans.append(
            replace(
                s,
                trace_id=tid(s.trace_id),
                start_ns=s.start_ns + shift,
                end_ns=s.end_ns + shift,
                attributes=attrs,
                links=tuple(SpanLink(tid(x.trace_id), x.span_id) for x in s.links),
                resource={
                    **s.resource,
                    "service.version": "2.3.0",
                    "deployment.environment.name": "production",
                },
            )
        )
    return Instance(cid, tuple(spans))
