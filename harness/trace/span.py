"""A span as received: the unit every layer's trace is made of, and which of two versions
of one span to keep.

Spans are finished OTLP spans with ids in lowercase hex and times in Unix nanoseconds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from harness.trace import conventions as c

__all__ = ["Span", "SpanEvent", "SpanLink", "canonical_spans", "prefer", "span_sort_key"]


@dataclass(frozen=True, slots=True)
class SpanEvent:
    name: str
    time_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class SpanLink:
    trace_id: str
    span_id: str
    attributes: dict[str, Any] = field(default_factory=dict)
    trace_state: str = ""
    flags: int = 0


@dataclass(frozen=True, slots=True)
class Span:
    """One finished span, as received: ids in lowercase hex, times in Unix nanoseconds.

    ``attributes`` and ``resource`` are plain dicts of OTLP values (str, bool, int, float,
    bytes, None, list, dict); treat them as read-only.
    """

    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    start_ns: int
    end_ns: int
    attributes: dict[str, Any] = field(default_factory=dict)
    status: c.Status = "unset"
    status_message: str = ""
    kind: int = 1
    """OTLP SpanKind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer."""
    events: tuple[SpanEvent, ...] = ()
    links: tuple[SpanLink, ...] = ()
    resource: dict[str, Any] = field(default_factory=dict)
    scope_name: str = ""
    scope_version: str = ""
    trace_state: str = ""
    flags: int = 0
    """OTLP span flags; bits 8 and 9 say whether the parent was remote."""

    def __hash__(self) -> int:
        return hash((self.trace_id, self.span_id))

    @property
    def key(self) -> tuple[str, str]:
        return (self.trace_id, self.span_id)

    @property
    def duration_ns(self) -> int:
        return max(0, self.end_ns - self.start_ns)

    @property
    def duration_ms(self) -> float:
        return self.duration_ns / 1e6

    @property
    def conversation_id(self) -> str | None:
        """``conversation.id`` from the span, else from its resource."""
        value = self.attributes.get(c.CONVERSATION_ID)
        if not value:
            value = self.resource.get(c.CONVERSATION_ID)
        return str(value) if value else None

    @property
    def layer(self) -> str | None:
        """``agent.layer``; livekit-agents' own spans without one are the conversational
        agent's (the framework runs nothing else)."""
        value = self.attributes.get(c.AGENT_LAYER) or self.resource.get(c.AGENT_LAYER)
        if value:
            return str(value)
        return c.LAYER_CONVERSATIONAL if self.scope_name == c.LIVEKIT_SCOPE else None

    @property
    def service_name(self) -> str | None:
        value = self.resource.get(c.SERVICE_NAME)
        return str(value) if value else None

    @property
    def parent_is_remote(self) -> bool | None:
        """Whether the parent came from another process; None when the exporter did not say."""
        if not self.flags & 0x100:
            return None
        return bool(self.flags & 0x200)

    @property
    def is_error(self) -> bool:
        return self.status == c.STATUS_ERROR

    def get(self, key: str, default: Any = None) -> Any:
        return self.attributes.get(key, default)


def span_sort_key(span: Span) -> tuple[int, int, str, str]:
    return (span.start_ns, span.end_ns, span.trace_id, span.span_id)


def prefer(a: Span, b: Span) -> Span:
    """Of two versions of the same span, the one to keep, whatever order they came in.

    Exporters retry, so duplicates are usually identical; when they are not, the later
    ending, richer one wins, and a total order on the text breaks any tie.
    """
    if a == b:
        return a

    def rank(s: Span) -> tuple[int, int, int, str]:
        return (s.end_ns, len(s.attributes), len(s.events), repr(s))

    return a if rank(a) >= rank(b) else b


def canonical_spans(spans: Iterable[Span]) -> tuple[Span, ...]:
    """Deduplicated by (trace id, span id) and sorted by start time."""
    by_key: dict[tuple[str, str], Span] = {}
    for s in spans:
        old = by_key.get(s.key)
        by_key[s.key] = s if old is None else prefer(old, s)
    return tuple(sorted(by_key.values(), key=span_sort_key))
