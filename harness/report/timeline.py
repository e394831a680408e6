"""One time axis for a call: the caller's turns and every span of every layer on it.

Spans come in tree order: each layer's spans under the span that caused them (a background
request under the conversational ``function_tool`` that made it, since it continues that
trace), and the after-call workflow, which starts a trace of its own and only links to the
call, under the span it links to. Times are seconds from the start of the recording (the
caller joining), so a span's bar and the audio player share one clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from harness.trace import conventions as c
from harness.trace.instance import Instance, Span, number

__all__ = ["Bar", "Timeline", "TurnRow", "span_order", "timeline"]

LAYER_ORDER = (c.LAYER_CONVERSATIONAL, c.LAYER_BACKGROUND, c.LAYER_WORKFLOW)


@dataclass(frozen=True)
class Bar:
    span: Span
    depth: int
    start_s: float
    end_s: float
    linked_from: Span | None = None
    """For a root that only links to the call (the after-call workflow): the span it links to."""
    cross_parent: Span | None = None
    """The parent, when it is a span of another layer (a background request's caller)."""


@dataclass(frozen=True)
class TurnRow:
    index: int
    kind: str
    caller_said: str | None
    agent_heard: str | None
    agent_said: str | None
    start_s: float
    """Where the turn starts in the recording (the caller starts speaking; the greeting at 0)."""
    end_s: float
    caller: tuple[float, float] | None
    agent: tuple[float, float] | None
    turn: Any
    """The :class:`harness.trace.instance.Turn`."""


@dataclass(frozen=True)
class Timeline:
    origin: float
    """Epoch seconds of 0 on the axis: the recording's start, else the first span's."""
    lo: float
    hi: float
    recording_s: float | None
    turns: tuple[TurnRow, ...]
    bars: tuple[Bar, ...]

    @property
    def span_s(self) -> float:
        return max(self.hi - self.lo, 1e-6)

    def pct(self, t: float) -> float:
        """Where ``t`` (seconds on the axis) falls across the track, in percent."""
        return max(0.0, min(100.0, (t - self.lo) / self.span_s * 100.0))

    def ticks(self, target: int = 8) -> list[float]:
        raw = self.span_s / target
        step = next(
            (s for s in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600) if s >= raw),
            600.0,
        )
        first = (int(self.lo / step) - (1 if self.lo < 0 else 0)) * step
        out = []
        t = first
        while t <= self.hi + 1e-9:
            if t >= self.lo - 1e-9:
                out.append(round(t, 6))
            t += step
        return out


def _layer_rank(span: Span) -> int:
    layer = span.layer
    return LAYER_ORDER.index(layer) if layer in LAYER_ORDER else len(LAYER_ORDER)


def span_order(inst: Instance) -> list[tuple[Span, int, Span | None]]:
    """Every span once, depth first: (span, depth, the span it links to if it is a linked
    root placed under it)."""
    linked: dict[tuple[str, str], list[Span]] = {}
    tops: list[Span] = []
    for root in inst.roots:
        target = None
        for link in root.links:
            t = inst.span(link.span_id, link.trace_id or None)
            if t is not None and t.key != root.key:
                target = t
                break
        if target is not None:
            linked.setdefault(target.key, []).append(root)
        else:
            tops.append(root)
    tops.sort(key=lambda s: (_layer_rank(s), s.start_ns, s.span_id))
    out: list[tuple[Span, int, Span | None]] = []
    seen: set[tuple[str, str]] = set()
    stack: list[tuple[Span, int, Span | None]] = [(r, 0, None) for r in reversed(tops)]
    while stack:
        span, depth, via = stack.pop()
        if span.key in seen:
            continue
        seen.add(span.key)
        out.append((span, depth, via))
        kids = sorted(inst.children(span), key=lambda s: (s.start_ns, s.span_id))
        extra = sorted(linked.get(span.key, ()), key=lambda s: (s.start_ns, s.span_id))
        items = [(k, depth + 1, None) for k in kids] + [(k, depth + 1, span) for k in extra]
        stack.extend(reversed(items))
    # a root linked into its own subtree is never reached from the top: keep it anyway
    out.extend((s, 0, None) for s in inst.spans if s.key not in seen)
    return out


def timeline(inst: Instance) -> Timeline:
    caller = inst.caller or {}
    started = number(caller.get("started_at"))
    ended = number(caller.get("ended_at"))
    first_span = min((s.start_ns for s in inst.spans), default=None)
    last_span = max((s.end_ns for s in inst.spans), default=None)
    if started is not None:
        origin = started
    elif first_span is not None:
        origin = first_span / 1e9
    else:
        origin = 0.0

    def rel(epoch: float | None) -> float | None:
        return None if epoch is None else epoch - origin

    def rel_ns(ns: int) -> float:
        return ns / 1e9 - origin

    recording_s = (ended - started) if started is not None and ended is not None else None
    los = [0.0]
    his = [recording_s or 0.0]
    if first_span is not None and last_span is not None:
        los.append(rel_ns(first_span))
        his.append(rel_ns(last_span))

    turns: list[TurnRow] = []
    raw = inst.turns
    starts: list[float] = []
    for t in raw:
        if t.kind == "greeting":
            s = 0.0 if started is not None else (rel(t.agent_onset) or 0.0)
        elif t.caller_start is not None:
            s = rel(t.caller_start) or 0.0
        elif t.user_turn is not None:
            s = rel_ns(t.user_turn.start_ns)
        elif t.agent_turns:
            s = rel_ns(t.agent_turns[0].start_ns)
        else:
            s = starts[-1] if starts else 0.0
        starts.append(s)
    for k, t in enumerate(raw):
        end = starts[k + 1] if k + 1 < len(starts) else (recording_s or max(his))
        said = None
        if t.caller_start is not None and t.caller_end is not None:
            said = (rel(t.caller_start) or 0.0, rel(t.caller_end) or 0.0)
        elif t.user_turn is not None and started is None:
            said = (rel_ns(t.user_turn.start_ns), rel_ns(t.user_turn.end_ns))
        agent = None
        if t.agent_onset is not None:
            off = t.agent_offset if t.agent_offset is not None else t.agent_onset
            agent = (rel(t.agent_onset) or 0.0, rel(off) or 0.0)
        elif t.agent_turns and started is None:
            agent = (
                rel_ns(t.agent_turns[0].start_ns),
                rel_ns(max(a.end_ns for a in t.agent_turns)),
            )
        turns.append(
            TurnRow(
                index=t.index,
                kind=t.kind or "say",
                caller_said=t.caller_said,
                agent_heard=t.agent_heard,
                agent_said=t.agent_said,
                start_s=starts[k],
                end_s=max(end, starts[k]),
                caller=said,
                agent=agent,
                turn=t,
            )
        )

    bars = []
    for span, depth, via in span_order(inst):
        parent = inst.parent(span)
        cross = parent if parent is not None and parent.layer != span.layer else None
        bars.append(Bar(span, depth, rel_ns(span.start_ns), rel_ns(span.end_ns), via, cross))
    return Timeline(
        origin=origin,
        lo=min(los),
        hi=max(his),
        recording_s=recording_s,
        turns=tuple(turns),
        bars=tuple(bars),
    )
