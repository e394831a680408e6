"""Which call a span belongs to.

An agent written by someone else carries none of our attributes, so a span joins a call by
the first of these that it has:

1. ``conversation.id`` (span attribute, else resource attribute), as ``harness_instrument``
   stamps it;
2. a join key (:data:`~harness.trace.conventions.JOIN_KEYS`: ``gen_ai.conversation.id``,
   the room's server id and name, the job and dispatch ids) whose value the harness
   registered for a call (it created the room and the dispatch) or learned from a span of
   that call (``job_entrypoint`` carries the job id beside the room's);
3. its trace id, once another span of that trace has joined;
4. a span link to a trace that has joined (the after-call workflow is linked, not parented).

A span that joins nothing yet is parked (bounded, oldest first out) and released the moment
a key or trace it carries becomes known, so arrival order never changes the outcome.
Parked spans that are dropped are counted by service: nothing is thrown away silently.

Everything a sender controls is bounded: the parked spans (``max_parked``), the keys and
traces learned per conversation (``max_keys``: a conversation that keeps sending new
traces, before or after it closed, cannot grow the tables) and the service names counted
(:data:`MAX_SERVICES`, the rest under :data:`OTHER_SERVICES`).

:class:`Joiner` is incremental; the collector feeds it live, and
:func:`harness.trace.otlp.group_by_conversation` feeds it a whole file. With
``adopt=True`` (files, production ingest) a parked span whose ``gen_ai.conversation.id`` or
room id no call claims becomes a conversation of its own, named by that value.
"""

from __future__ import annotations

from collections import Counter, OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from harness.trace import conventions as c
from harness.trace.instance import Span, prefer

__all__ = [
    "MAX_SERVICES",
    "OTHER_SERVICES",
    "Assignment",
    "Joiner",
    "UnmatchedReport",
    "count_service",
    "join_values",
]

Assignment = tuple[str, Span]
"""A span and the conversation it joined."""

MAX_SERVICES = 100
"""Distinct service names counted apart; spans of further services count under
:data:`OTHER_SERVICES` (the names come from the senders)."""
OTHER_SERVICES = "(other services)"


def count_service(counter: Counter[str], name: str | None, n: int = 1) -> None:
    """Add ``n`` spans of service ``name`` (``"?"`` when None) to ``counter``, which keeps at
    most :data:`MAX_SERVICES` names besides :data:`OTHER_SERVICES`."""
    key = name or "?"
    if key not in counter and len(counter) >= MAX_SERVICES:
        key = OTHER_SERVICES
    counter[key] += n


def join_values(span: Span) -> tuple[str, ...]:
    """The values of the span's join keys, in :data:`JOIN_KEYS` order (span attributes
    before resource attributes), each once."""
    out: list[str] = []
    for key in c.JOIN_KEYS:
        for where in (span.attributes, span.resource):
            value = where.get(key)
            if isinstance(value, str) and value and value not in out:
                out.append(value)
    return tuple(out)


def _adoptable(span: Span) -> str | None:
    for key in c.ADOPTABLE_KEYS:
        for where in (span.attributes, span.resource):
            value = where.get(key)
            if isinstance(value, str) and value:
                return value
    return None


@dataclass(frozen=True)
class UnmatchedReport:
    """Spans that joined no call: still parked, or dropped from the bounded park."""

    parked: int
    dropped: int
    by_service: tuple[tuple[str, int], ...]
    """(service name, spans), most first; ``"?"`` for spans without ``service.name``."""

    @property
    def total(self) -> int:
        return self.parked + self.dropped

    def describe(self) -> str:
        """``"12 spans received that matched no call (from pizza-agent: 10, ?: 2)"``, or ''."""
        if not self.total:
            return ""
        services = ", ".join(f"{name}: {n}" for name, n in self.by_service)
        dropped = f"; {self.dropped} of them dropped from the holding area" if self.dropped else ""
        return (
            f"{self.total} span{'s' if self.total != 1 else ''} received that matched no call "
            f"(from {services}){dropped}"
        )


class Joiner:
    """Assigns spans to conversations; see the module docstring for the rules."""

    def __init__(
        self, *, adopt: bool = False, max_parked: int = 10_000, max_keys: int | None = None
    ) -> None:
        self.adopt = adopt
        self.max_parked = max_parked
        self.max_keys = max_keys
        """Join-key values and trace ids learned from one conversation's spans at most
        (None: no bound). The ids a call is registered with are always kept."""
        self._alias: dict[str, str] = {}
        self._trace_owner: dict[str, str] = {}
        self._owned: dict[str, tuple[set[str], set[str]]] = {}  # cid -> (aliases, traces)
        self._parked: OrderedDict[tuple[str, str], Span] = OrderedDict()
        self._parked_at: dict[tuple[str, str], float] = {}
        self._waiting: dict[str, set[tuple[str, str]]] = {}  # key value or trace id -> spans
        self._dropped: Counter[str] = Counter()
        self.parked_duplicates = 0
        """Spans that arrived again while their first copy was parked (exporter retries)."""

    # --- knowing calls ---

    def register(self, conversation_id: str, keys: Iterable[str | None]) -> list[Assignment]:
        """Tell the joiner a call's ids (room name, room sid, dispatch id, ...); returns the
        parked spans this releases."""
        out: list[Assignment] = []
        for key in keys:
            if key:
                self._bind(key, conversation_id, self._alias, 0, out, bounded=False)
        return self._drain(out)

    def forget(self, conversation_id: str) -> None:
        """Drop everything known about one conversation."""
        aliases, traces = self._owned.pop(conversation_id, (set(), set()))
        for a in aliases:
            if self._alias.get(a) == conversation_id:
                del self._alias[a]
        for t in traces:
            if self._trace_owner.get(t) == conversation_id:
                del self._trace_owner[t]

    def owner(self, key: str) -> str | None:
        """The conversation a join-key value or trace id belongs to, if known."""
        return self._alias.get(key) or self._trace_owner.get(key)

    # --- spans ---

    def resolve(self, span: Span) -> str | None:
        """The conversation ``span`` joins by what is known now; None if none yet."""
        cid = span.conversation_id
        if cid:
            return cid
        for value in join_values(span):
            cid = self._alias.get(value)
            if cid:
                return cid
        cid = self._trace_owner.get(span.trace_id)
        if cid:
            return cid
        for link in span.links:
            cid = self._trace_owner.get(link.trace_id)
            if cid:
                return cid
        return None

    def add(self, span: Span, now: float = 0.0) -> list[Assignment]:
        """Join one span: returns it with its conversation, plus any parked spans it
        releases, or nothing if it was parked. Of two copies of a parked span the one
        :func:`~harness.trace.instance.prefer` picks is kept (the caller deduplicates
        joined spans)."""
        cid = self.resolve(span)
        if cid is None:
            self._park(span, now)
            return []
        return self._drain([(cid, span)])

    def adopt_parked(self) -> list[Assignment]:
        """Give each parked span with an adoptable key (``gen_ai.conversation.id``, the room
        sid) a conversation named by that value, in arrival order."""
        out: list[Assignment] = []
        for key in list(self._parked):
            span = self._parked.get(key)
            if span is None:
                continue
            value = _adoptable(span)
            if value is not None:
                out.extend(self.register(value, [value]))
        return out

    def parked(self) -> tuple[Span, ...]:
        """Spans that joined no call yet, oldest first."""
        return tuple(self._parked.values())

    def expire(self, older_than: float) -> int:
        """Drop parked spans that arrived before ``older_than``; returns how many."""
        n = 0
        while self._parked:
            key = next(iter(self._parked))
            if self._parked_at[key] >= older_than:
                break
            self._drop(key)
            n += 1
        return n

    def unmatched(self) -> UnmatchedReport:
        by_service = Counter(self._dropped)
        for s in self._parked.values():
            count_service(by_service, s.service_name)
        return UnmatchedReport(
            parked=len(self._parked),
            dropped=sum(self._dropped.values()),
            by_service=tuple(sorted(by_service.items(), key=lambda kv: (-kv[1], kv[0]))),
        )

    # --- inside ---

    def _bind(
        self,
        key: str,
        cid: str,
        table: dict[str, str],
        kind: int,
        out: list[Assignment],
        *,
        bounded: bool = True,
    ) -> None:
        if key in table:
            return
        owned = self._owned.setdefault(cid, (set(), set()))
        if bounded and self.max_keys is not None and len(owned[0]) + len(owned[1]) >= self.max_keys:
            return  # its spans still join by conversation.id and the keys already known
        table[key] = cid
        owned[kind].add(key)
        for pkey in self._waiting.pop(key, ()):
            span = self._unpark(pkey)
            if span is not None:
                out.append((cid, span))

    def _drain(self, todo: list[Assignment]) -> list[Assignment]:
        """Learn from each assigned span (its keys and trace), releasing parked spans that
        carry them, until nothing more is released. A worklist, never recursion."""
        done: list[Assignment] = []
        while todo:
            cid, span = todo.pop()
            done.append((cid, span))
            released: list[Assignment] = []
            for value in join_values(span):
                self._bind(value, cid, self._alias, 0, released)
            self._bind(span.trace_id, cid, self._trace_owner, 1, released)
            # a parked span may have joined through a link to this trace
            todo.extend(released)
        return done

    def _waiting_keys(self, span: Span) -> Iterator[str]:
        yield from join_values(span)
        yield span.trace_id
        for link in span.links:
            yield link.trace_id

    def _park(self, span: Span, now: float) -> None:
        key = span.key
        old = self._unpark(key)
        if old is not None:
            self.parked_duplicates += 1
            span = prefer(old, span)
        self._parked[key] = span
        self._parked_at[key] = now
        for w in self._waiting_keys(span):
            self._waiting.setdefault(w, set()).add(key)
        while len(self._parked) > self.max_parked:
            self._drop(next(iter(self._parked)))

    def _unpark(self, key: tuple[str, str]) -> Span | None:
        span = self._parked.pop(key, None)
        if span is None:
            return None
        del self._parked_at[key]
        for w in self._waiting_keys(span):
            keys = self._waiting.get(w)
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._waiting[w]
        return span

    def _drop(self, key: tuple[str, str]) -> None:
        span = self._unpark(key)
        if span is not None:
            count_service(self._dropped, span.service_name)
