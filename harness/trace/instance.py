"""An Instance: one conversation id, every span of every layer, and what the caller measured.

Evaluators and gates read only Instances, so a synthetic call in CI, a synthetic call in
monitoring and a production call loaded from a trace export look the same to them.

Spans form a forest across services (a background agent's spans are children of the
conversational agent's, the after-call workflow is linked, not parented). The views
(:attr:`Instance.turns`, :attr:`Instance.tool_calls`, :attr:`Instance.actions`,
:attr:`Instance.workflow`, :attr:`Instance.layers`) are computed once, on first use; smaller
ones read one fact the way every consumer should (:attr:`Instance.trace_id`,
:attr:`Instance.agent_name`, :meth:`Instance.agent_speech`, :attr:`Turn.words`).
"""

from __future__ import annotations

import bisect
import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from harness.trace import conventions as c
from harness.trace.span import Span, SpanEvent, SpanLink, canonical_spans, prefer, span_sort_key
from harness.trace.validate import DataError, quarantine, quarantine_caller

__all__ = [
    "LAYER_UNKNOWN",
    "NO_TRACE",
    "WORD_DURATION",
    "WORD_EVENT",
    "WORD_TEXT",
    "Action",
    "AgentSpeech",
    "Instance",
    "Span",
    "SpanEvent",
    "SpanLink",
    "ToolCall",
    "TraceState",
    "Turn",
    "Word",
    "WorkflowStep",
    "canonical_spans",
    "number",
    "prefer",
    "span_sort_key",
]

LAYER_UNKNOWN = "unknown"
"""The :attr:`Instance.layers` key of spans that carry no ``agent.layer``."""

NO_TRACE = "no trace from the agent"
"""The incomplete reason of an Instance without a single span (the harness adds the likely
cause and the fix when it knows them)."""

TraceState = Literal["complete", "partial", "none"]

# Word timings, when the speech recognizer reports them: events on the user_turn span.
WORD_EVENT = "word"
"""Span event name of one recognized word; the event's time is the word's start."""
WORD_TEXT = "word.pii.text"
"""The word's text (user data, hence ``pii``)."""
WORD_DURATION = "word.duration"
"""The word's duration in seconds."""

_NS = 1_000_000_000
# How far a user_turn span may sit outside the caller's own speech and still be its turn:
# VAD fires a little after the audio starts, and the turn is committed after the
# end-of-turn delay and the final transcript.
_MATCH_BEFORE_NS = 500_000_000
_MATCH_AFTER_NS = 3 * _NS


def number(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (not a bool); None otherwise. How an
    attribute or a side-file field that nobody validated is read as a measurement."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def seconds_to_ms(value: Any) -> float | None:
    """A span attribute in seconds as milliseconds; None unless it is a finite number."""
    v = number(value)
    return v * 1000.0 if v is not None else None


# --- views ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Word:
    """One word the caller said, with its start and end (epoch seconds)."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class AgentSpeech:
    """When the agent's audio of one turn began and ended (epoch seconds; None: unknown)."""

    onset: float | None
    offset: float | None


@dataclass(frozen=True)
class ToolCall:
    """One ``function_tool`` span: a tool the conversational agent called."""

    name: str
    call_id: str | None
    arguments: Any
    """The arguments parsed from JSON; the raw text when it is not JSON; None when absent."""
    output: str | None
    is_error: bool
    duration_ms: float
    span: Span = field(repr=False)


@dataclass(frozen=True)
class Turn:
    """One exchange: what the caller did, what the agent heard, and how it answered.

    With a caller side-file there is one Turn per caller turn; for a production trace,
    one per ``user_turn`` span (plus a leading greeting when the agent spoke first).
    Latencies are milliseconds; ``None`` means nobody measured it.
    """

    index: int
    kind: str | None
    caller_said: str | None
    agent_heard: str | None
    agent_said: str | None
    interrupted: bool | None
    end_of_turn_delay_ms: float | None
    transcription_delay_ms: float | None
    ttft_ms: float | None
    ttfb_ms: float | None
    e2e_latency_ms: float | None
    response_latency_ms: float | None
    """Measured by the caller: from the end of its speech to the agent's audio onset."""
    agent_speech_ms: float | None
    caller_start: float | None
    """Epoch seconds, from the caller side-file."""
    caller_end: float | None
    agent_onset: float | None
    agent_offset: float | None
    user_turn: Span | None = field(repr=False)
    agent_turns: tuple[Span, ...] = field(repr=False)
    tool_calls: tuple[ToolCall, ...]
    caller_words: tuple[Word, ...] = field(default=(), repr=False)
    """The words the caller side-file timed (its turn's ``words: [{text, start, end}]``)."""
    barge_in_ms: float | None = None
    """Measured by the caller: how far into the agent's speech it started talking."""

    @property
    def replied(self) -> bool:
        return bool(self.agent_turns) or self.agent_onset is not None

    @property
    def heard_words(self) -> tuple[Word, ...]:
        """The words the agent's recognizer timed: the user_turn span's ``word`` events
        (:data:`WORD_EVENT`; the event's time is the start, :data:`WORD_DURATION` the
        length). Events without a text or a duration of zero or more are skipped."""
        if self.user_turn is None:
            return ()
        out = []
        for e in self.user_turn.events:
            if e.name != WORD_EVENT:
                continue
            text = e.attributes.get(WORD_TEXT)
            duration = number(e.attributes.get(WORD_DURATION))
            if isinstance(text, str) and duration is not None and duration >= 0:
                start = e.time_ns / _NS
                out.append(Word(text, start, start + duration))
        return tuple(out)

    @property
    def words(self) -> tuple[Word, ...]:
        """The caller's words with their timings: the side-file's, else the recognizer's."""
        return self.caller_words or self.heard_words


@dataclass(frozen=True)
class Action:
    """One span carrying ``action.name``: something the background layer did."""

    name: str
    mutating: bool | None
    approval: str | None
    status: str
    status_message: str
    duration_ms: float
    layer: str | None
    service: str | None
    span: Span = field(repr=False)


@dataclass(frozen=True)
class WorkflowStep:
    """A direct child of an after-call workflow root, or a root without children."""

    name: str
    status: str
    status_message: str
    duration_ms: float
    start_ns: int
    end_ns: int
    span: Span = field(repr=False)


# --- the instance -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Instance:
    """One conversation: every span of every layer, and what the synthetic caller measured.

    ``caller`` is the caller side-file (a JSON-able dict) or None for a production trace.
    ``complete`` is False when the collector gave up waiting; ``incomplete_reason`` says
    what was missing; an instance without spans is never complete (:data:`NO_TRACE`).
    ``source`` is the directory an instance was loaded from (it resolves a relative
    ``recording``) and takes no part in equality.

    What cannot be true (a negative latency, a span that ends before it starts, two
    different spans with one id, a parent cycle, an impossible caller measurement) is
    quarantined as the Instance is built (:mod:`harness.trace.validate`): evaluators never
    see it, and :attr:`data_errors` says what was removed, so no gate passes on it.
    """

    conversation_id: str
    spans: tuple[Span, ...] = ()
    caller: dict[str, Any] | None = None
    recording: str | None = None
    complete: bool = True
    incomplete_reason: str | None = None
    source: Path | None = field(default=None, compare=False)
    data_errors: tuple[DataError, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        spans, errors = quarantine(self.spans)
        object.__setattr__(self, "spans", tuple(sorted(spans, key=span_sort_key)))
        caller, caller_errors = quarantine_caller(self.caller)
        if caller_errors:
            object.__setattr__(self, "caller", caller)
        if errors or caller_errors:
            found = dict.fromkeys((*self.data_errors, *errors, *caller_errors))
            object.__setattr__(self, "data_errors", tuple(found))
        if not self.spans and self.complete:
            object.__setattr__(self, "complete", False)
            object.__setattr__(self, "incomplete_reason", NO_TRACE)
        if self.complete and self.incomplete_reason is not None:
            object.__setattr__(self, "incomplete_reason", None)

    def __repr__(self) -> str:
        state = "complete" if self.complete else f"incomplete: {self.incomplete_reason}"
        errors = f", {len(self.data_errors)} data errors" if self.data_errors else ""
        return (
            f"Instance(conversation_id={self.conversation_id!r}, spans={len(self.spans)}, "
            f"caller={'yes' if self.caller is not None else 'no'}, {state}{errors})"
        )

    def with_caller(
        self, caller: Mapping[str, Any] | None, recording: str | Path | None = None
    ) -> Instance:
        """A copy with the caller side-file attached (recording defaults to the caller's)."""
        caller_dict = dict(caller) if caller is not None else None
        if recording is None and caller_dict is not None and caller_dict.get("recording"):
            recording = caller_dict["recording"]
        return replace(
            self,
            caller=caller_dict,
            recording=str(recording) if recording is not None else self.recording,
        )

    def marked_incomplete(self, reason: str) -> Instance:
        return replace(self, complete=False, incomplete_reason=reason)

    @property
    def trace_state(self) -> TraceState:
        """``none``: not a single span; ``partial``: the collector gave up waiting, or the
        conversational agent's root span (livekit-agents' ``job_entrypoint``) never came;
        ``complete`` otherwise."""
        if not self.spans:
            return "none"
        if not self.complete or not self.layer_finished(c.LAYER_CONVERSATIONAL):
            return "partial"
        return "complete"

    @property
    def turns_from_caller(self) -> bool:
        """Whether :attr:`turns` are the caller side-file's turns (else the user_turn spans)."""
        return bool(_caller_turns(self.caller))

    @property
    def caller_started_at(self) -> float | None:
        """When the caller's recording began (epoch seconds, the side-file's ``started_at``)."""
        return number(self.caller.get("started_at")) if self.caller else None

    @property
    def recording_path(self) -> Path | None:
        if not self.recording:
            return None
        path = Path(self.recording)
        if not path.is_absolute() and self.source is not None:
            path = self.source / path
        return path

    # --- the forest ---

    @cached_property
    def _index(self) -> dict[tuple[str, str], Span]:
        return {s.key: s for s in self.spans}

    @cached_property
    def _children(self) -> dict[tuple[str, str], tuple[Span, ...]]:
        out: dict[tuple[str, str], list[Span]] = {}
        for s in self.spans:
            if s.parent_span_id is not None and (s.trace_id, s.parent_span_id) in self._index:
                out.setdefault((s.trace_id, s.parent_span_id), []).append(s)
        return {k: tuple(v) for k, v in out.items()}

    def span(self, span_id: str, trace_id: str | None = None) -> Span | None:
        if trace_id is not None:
            return self._index.get((trace_id, span_id))
        for s in self.spans:
            if s.span_id == span_id:
                return s
        return None

    def parent(self, span: Span) -> Span | None:
        if span.parent_span_id is None:
            return None
        return self._index.get((span.trace_id, span.parent_span_id))

    def children(self, span: Span) -> tuple[Span, ...]:
        return self._children.get(span.key, ())

    def descendants(self, span: Span) -> tuple[Span, ...]:
        """Every span below ``span``, depth first; each once, even if parent links loop."""
        out: list[Span] = []
        seen = {span.key}
        stack = list(reversed(self.children(span)))
        while stack:
            s = stack.pop()
            if s.key in seen:
                continue
            seen.add(s.key)
            out.append(s)
            stack.extend(reversed(self.children(s)))
        return tuple(out)

    def ancestors(self, span: Span) -> tuple[Span, ...]:
        out: list[Span] = []
        seen = {span.key}
        p = self.parent(span)
        while p is not None and p.key not in seen:
            out.append(p)
            seen.add(p.key)
            p = self.parent(p)
        return tuple(out)

    @cached_property
    def roots(self) -> tuple[Span, ...]:
        """Spans whose parent is not in this instance."""
        return tuple(s for s in self.spans if self.parent(s) is None)

    def find(self, name: str) -> tuple[Span, ...]:
        return tuple(s for s in self.spans if s.name == name)

    @cached_property
    def services(self) -> tuple[str, ...]:
        return tuple(sorted({s.service_name for s in self.spans if s.service_name}))

    @cached_property
    def trace_id(self) -> str | None:
        """The call's trace: the ``agent_session`` span's, else the one most of the
        conversational layer's spans (else of all spans) belong to; None without spans."""
        for s in self.spans:
            if s.name == c.SPAN_AGENT_SESSION:
                return s.trace_id
        counts = Counter(s.trace_id for s in self.spans if s.layer == c.LAYER_CONVERSATIONAL)
        if not counts:
            counts = Counter(s.trace_id for s in self.spans)
        return counts.most_common(1)[0][0] if counts else None

    @cached_property
    def agent_name(self) -> str | None:
        """The dispatched agent's name (the first non-blank ``lk.agent_name``)."""
        for s in self.spans:
            v = s.attributes.get(c.LK_AGENT_NAME)
            if isinstance(v, str) and v.strip():
                return v.strip()
        return None

    @property
    def session_start(self) -> float | None:
        """When the agent's session began (epoch seconds): the earliest ``job_entrypoint``
        or ``agent_session`` span, else the earliest span; None without spans."""
        sessions = (c.SPAN_JOB_ENTRYPOINT, c.SPAN_AGENT_SESSION)
        starts = [s.start_ns for s in self.spans if s.name in sessions]
        starts = starts or [s.start_ns for s in self.spans]
        return min(starts) / _NS if starts else None

    def agent_speech(self, turn: Turn) -> AgentSpeech:
        """When the agent spoke in ``turn``: as the caller measured it when it did; else
        from the turn's agent_turn spans, the onset being the first ``agent_speaking``
        span's start, or the first ``tts_node``'s start plus its ``lk.response.ttfb``, or
        the first agent_turn's start, and the offset the last agent_turn's end (never
        before the onset)."""
        if turn.agent_onset is not None or not turn.agent_turns:
            return AgentSpeech(turn.agent_onset, turn.agent_offset)
        first = turn.agent_turns[0]
        onset = first.start_ns / _NS
        for d in self.descendants(first):
            if d.name == c.SPAN_AGENT_SPEAKING:
                onset = d.start_ns / _NS
                break
            if d.name == c.SPAN_TTS_NODE:
                onset = d.start_ns / _NS + (number(d.attributes.get(c.LK_RESPONSE_TTFB)) or 0.0)
                break
        offset = max(a.end_ns for a in turn.agent_turns) / _NS
        return AgentSpeech(onset, max(onset, offset))

    # --- views ---

    @cached_property
    def layers(self) -> dict[str, tuple[Span, ...]]:
        """Spans grouped by ``agent.layer`` (``"unknown"`` for spans without one)."""
        out: dict[str, list[Span]] = {}
        for s in self.spans:
            out.setdefault(s.layer or LAYER_UNKNOWN, []).append(s)
        return {k: tuple(v) for k, v in out.items()}

    @cached_property
    def tool_calls(self) -> tuple[ToolCall, ...]:
        return tuple(_tool_call(s) for s in self.find(c.SPAN_FUNCTION_TOOL))

    @cached_property
    def actions(self) -> tuple[Action, ...]:
        out = []
        for s in self.spans:
            name = s.attributes.get(c.ACTION_NAME)
            if name is None:
                continue
            mutating = s.attributes.get(c.ACTION_MUTATING)
            approval = s.attributes.get(c.ACTION_APPROVAL)
            out.append(
                Action(
                    name=str(name),
                    mutating=mutating if isinstance(mutating, bool) else None,
                    approval=str(approval) if approval is not None else None,
                    status=s.status,
                    status_message=s.status_message,
                    duration_ms=s.duration_ms,
                    layer=s.layer,
                    service=s.service_name,
                    span=s,
                )
            )
        return tuple(out)

    @cached_property
    def workflow_roots(self) -> tuple[Span, ...]:
        """After-call workflow roots: ``agent.layer=workflow`` spans with no parent here."""
        return tuple(s for s in self.roots if s.layer == c.LAYER_WORKFLOW)

    def layer_finished(self, layer: str) -> bool:
        """Whether the root span of ``layer`` has arrived (spans are exported as they end).

        The root is a span of the layer whose parent is known to be elsewhere: no parent
        (the after-call workflow's linked root), a remote parent (a background request
        continuing the call's trace), or a parent of another layer. A span whose local
        parent is missing does not count: for a workflow that crashed, its finished steps
        are here and its root is not.
        """
        for s in self.layers.get(layer, ()):
            p = self.parent(s)
            if p is not None:
                if p.layer != layer:
                    return True
            elif s.parent_span_id is None or s.parent_is_remote:
                return True
        return False

    @cached_property
    def workflow(self) -> tuple[WorkflowStep, ...]:
        """The after-call steps: each workflow root's direct children, in start order."""
        steps: list[WorkflowStep] = []
        for root in self.workflow_roots:
            kids = self.children(root) or (root,)
            for s in kids:
                steps.append(
                    WorkflowStep(
                        name=s.name,
                        status=s.status,
                        status_message=s.status_message,
                        duration_ms=s.duration_ms,
                        start_ns=s.start_ns,
                        end_ns=s.end_ns,
                        span=s,
                    )
                )
        steps.sort(key=lambda w: (w.start_ns, w.end_ns, w.span.span_id))
        return tuple(steps)

    @cached_property
    def turns(self) -> tuple[Turn, ...]:
        return _build_turns(self)

    @cached_property
    def unmatched_user_turns(self) -> tuple[Span, ...]:
        """``user_turn`` spans that no caller turn accounts for (the agent heard speech
        nobody said, e.g. noise); empty without a caller side-file."""
        if not _caller_turns(self.caller):
            return ()
        used = {t.user_turn.key for t in self.turns if t.user_turn is not None}
        return tuple(s for s in self.find(c.SPAN_USER_TURN) if s.key not in used)


# --- view helpers -----------------------------------------------------------------------------


def _tool_call(s: Span) -> ToolCall:
    raw = s.attributes.get(c.LK_PII_FUNCTION_TOOL_ARGUMENTS)
    args: Any = raw
    if isinstance(raw, str):
        try:
            args = json.loads(raw) if raw.strip() else {}
        except ValueError:
            args = raw
    output = s.attributes.get(c.LK_PII_FUNCTION_TOOL_OUTPUT)
    is_error = s.attributes.get(c.LK_FUNCTION_TOOL_IS_ERROR)
    call_id = s.attributes.get(c.LK_FUNCTION_TOOL_ID)
    return ToolCall(
        name=str(s.attributes.get(c.LK_FUNCTION_TOOL_NAME) or s.name),
        call_id=str(call_id) if call_id is not None else None,
        arguments=args,
        output=str(output) if output is not None else None,
        is_error=bool(is_error) if is_error is not None else s.is_error,
        duration_ms=s.duration_ms,
        span=s,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _side_words(raw: Any) -> tuple[Word, ...]:
    """A side-file turn's ``words: [{text, start, end}]``; malformed entries skipped."""
    out = []
    if isinstance(raw, list):
        for w in raw:
            if isinstance(w, Mapping) and isinstance(w.get("text"), str):
                start, end = number(w.get("start")), number(w.get("end"))
                if start is not None and end is not None and end >= start:
                    out.append(Word(w["text"], start, end))
    return tuple(out)


def _to_ns(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * _NS)


def _caller_turns(caller: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    if not caller:
        return []
    turns = caller.get("turns")
    if not isinstance(turns, list):
        return []
    good = [t for t in turns if isinstance(t, dict)]
    return sorted(
        good, key=lambda t: t.get("index") if isinstance(t.get("index"), int) else 1 << 30
    )


def _match_user_turns(said: list[tuple[int, int, int]], user_turns: list[Span]) -> dict[int, int]:
    """Caller turns (position, start ns, end ns) to user_turn spans, by overlap, in order."""
    match: dict[int, int] = {}
    next_k = 0
    for pos, cs, ce in said:
        lo, hi = cs - _MATCH_BEFORE_NS, ce + _MATCH_AFTER_NS
        best, best_overlap = None, 0
        for k in range(next_k, len(user_turns)):
            u = user_turns[k]
            if u.start_ns > hi:
                break
            overlap = min(hi, max(u.end_ns, u.start_ns + 1)) - max(lo, u.start_ns)
            if overlap > best_overlap:
                best, best_overlap = k, overlap
        if best is not None:
            match[pos] = best
            next_k = best + 1
    if not match and said and user_turns:
        # no overlap at all (clocks on different machines): fall back to order
        match = {pos: k for k, (pos, _, _) in enumerate(said[: len(user_turns)])}
    return match


class _TurnSpans:
    """Which llm_node, tts_node and function_tool spans belong to which agent_turn."""

    def __init__(self, inst: Instance) -> None:
        self.under: dict[tuple[str, str], list[Span]] = {}
        self.orphans: list[Span] = []
        wanted = (c.SPAN_LLM_NODE, c.SPAN_TTS_NODE, c.SPAN_FUNCTION_TOOL)
        for s in inst.spans:
            if s.name not in wanted:
                continue
            owner = next((a for a in inst.ancestors(s) if a.name == c.SPAN_AGENT_TURN), None)
            if owner is None:
                self.orphans.append(s)
            else:
                self.under.setdefault(owner.key, []).append(s)

    def collect(self, agent_turns: tuple[Span, ...], lo: int | None, hi: int | None) -> list[Span]:
        out: list[Span] = []
        for a in agent_turns:
            out.extend(self.under.get(a.key, ()))
        for s in self.orphans:
            if (lo is None or s.start_ns >= lo) and (hi is None or s.start_ns < hi):
                out.append(s)
        out.sort(key=span_sort_key)
        return out


def _first_attr(spans: Iterable[Span], name: str, key: str) -> Any:
    for s in spans:
        if s.name == name and key in s.attributes:
            return s.attributes[key]
    return None


def _make_turn(
    *,
    index: int,
    kind: str | None,
    caller_turn: Mapping[str, Any] | None,
    user_turn: Span | None,
    agent_turns: tuple[Span, ...],
    nodes: list[Span],
) -> Turn:
    ct = caller_turn or {}
    ut = user_turn.attributes if user_turn is not None else {}

    heard = _text(ut.get(c.LK_PII_USER_TRANSCRIPT))
    if heard is None:
        heard = _text(ct.get("agent_heard"))

    said_parts = [t for a in agent_turns if (t := _text(a.attributes.get(c.LK_PII_RESPONSE_TEXT)))]
    agent_said = " ".join(said_parts) if said_parts else _text(ct.get("agent_said"))

    def from_turns(key: str) -> Any:
        if key in ut:
            return ut[key]
        return next((a.attributes[key] for a in agent_turns if key in a.attributes), None)

    interrupted: bool | None = None
    if agent_turns:
        interrupted = any(a.attributes.get(c.LK_INTERRUPTED) is True for a in agent_turns)

    return Turn(
        index=index,
        kind=kind,
        caller_said=_text(ct.get("spoken_text") or ct.get("text")),
        agent_heard=heard,
        agent_said=agent_said,
        interrupted=interrupted,
        end_of_turn_delay_ms=seconds_to_ms(from_turns(c.LK_END_OF_TURN_DELAY)),
        transcription_delay_ms=seconds_to_ms(from_turns(c.LK_TRANSCRIPTION_DELAY)),
        ttft_ms=seconds_to_ms(_first_attr(nodes, c.SPAN_LLM_NODE, c.LK_RESPONSE_TTFT)),
        ttfb_ms=seconds_to_ms(_first_attr(nodes, c.SPAN_TTS_NODE, c.LK_RESPONSE_TTFB)),
        e2e_latency_ms=seconds_to_ms(
            next(
                (
                    a.attributes[c.LK_E2E_LATENCY]
                    for a in agent_turns
                    if c.LK_E2E_LATENCY in a.attributes
                ),
                None,
            )
        ),
        response_latency_ms=number(ct.get("response_latency_ms")),
        agent_speech_ms=number(ct.get("agent_speech_ms")),
        caller_start=number(ct.get("caller_start")),
        caller_end=number(ct.get("caller_end")),
        agent_onset=number(ct.get("agent_onset")),
        agent_offset=number(ct.get("agent_offset")),
        user_turn=user_turn,
        agent_turns=agent_turns,
        tool_calls=tuple(_tool_call(s) for s in nodes if s.name == c.SPAN_FUNCTION_TOOL),
        caller_words=_side_words(ct.get("words")),
        barge_in_ms=number(ct.get("barge_in_ms")),
    )


def _assign(agent_turns: list[Span], bounds: list[int | None]) -> list[list[Span]]:
    """Agent turns into windows [bounds[i], bounds[i+1]) by start time; None is -inf."""
    starts = [b if b is not None else -(1 << 62) for b in bounds]
    out: list[list[Span]] = [[] for _ in bounds]
    for a in agent_turns:
        i = bisect.bisect_right(starts, a.start_ns) - 1
        if i >= 0:
            out[i].append(a)
    return out


def _build_turns(inst: Instance) -> tuple[Turn, ...]:
    user_turns = list(inst.find(c.SPAN_USER_TURN))
    agent_turns = list(inst.find(c.SPAN_AGENT_TURN))
    nodes = _TurnSpans(inst)
    caller_turns = _caller_turns(inst.caller)

    if caller_turns:
        said: list[tuple[int, int, int]] = []
        bounds: list[int | None] = []
        last_bound: int | None = None
        for pos, t in enumerate(caller_turns):
            cs = _to_ns(number(t.get("caller_start")))
            ce = _to_ns(number(t.get("caller_end")))
            if cs is None:
                cs = last_bound
            if pos == 0 and t.get("kind") == "greeting":
                bound = None  # the agent's greeting may start before the caller listens
            else:
                bound = cs if cs is not None else last_bound
            bounds.append(bound)
            last_bound = bound if bound is not None else last_bound
            if t.get("kind") not in ("greeting", "silence") and cs is not None:
                said.append((pos, cs, ce if ce is not None else cs))
        match = _match_user_turns(said, user_turns)
        # windows must not run backwards when a caller turn has no timing
        for i in range(1, len(bounds)):
            if bounds[i] is not None and bounds[i - 1] is not None and bounds[i] < bounds[i - 1]:
                bounds[i] = bounds[i - 1]
        windows = _assign(agent_turns, bounds)
        turns = []
        for pos, t in enumerate(caller_turns):
            lo = bounds[pos]
            hi = next((b for b in bounds[pos + 1 :] if b is not None), None)
            window = tuple(windows[pos])
            index = t.get("index") if isinstance(t.get("index"), int) else pos
            turns.append(
                _make_turn(
                    index=index,
                    kind=_text(t.get("kind")),
                    caller_turn=t,
                    user_turn=user_turns[match[pos]] if pos in match else None,
                    agent_turns=window,
                    nodes=nodes.collect(window, lo, hi),
                )
            )
        return tuple(turns)

    # no caller: one turn per user_turn, and a greeting for what the agent said first
    bounds = [None] + [u.start_ns for u in user_turns]
    windows = _assign(agent_turns, bounds)
    turns = []
    if windows[0]:
        window = tuple(windows[0])
        first_user = user_turns[0].start_ns if user_turns else None
        turns.append(
            _make_turn(
                index=0,
                kind="greeting",
                caller_turn=None,
                user_turn=None,
                agent_turns=window,
                nodes=nodes.collect(window, None, first_user),
            )
        )
    for k, u in enumerate(user_turns):
        window = tuple(windows[k + 1])
        hi = user_turns[k + 1].start_ns if k + 1 < len(user_turns) else None
        turns.append(
            _make_turn(
                index=len(turns),
                kind="say",
                caller_turn=None,
                user_turn=u,
                agent_turns=window,
                nodes=nodes.collect(window, u.start_ns, hi),
            )
        )
    return tuple(turns)
