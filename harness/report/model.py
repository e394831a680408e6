"""What a report shows, read from a run directory (or a trace export): one :class:`CallView`
per call and one :class:`RunView` for the run.

A report shows only what the run directory already holds: each call's Instance
(``trace.jsonl`` + ``caller.json``), its ``timings.json`` (verdict, failures), the run's
``scores.jsonl`` and the recording, linked relatively. A call whose files cannot be read is
not dropped silently: it becomes a note on the run page that names the file and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.call.rundir import CallDir, RunDir
from harness.core.errors import HarnessError, ScenarioError
from harness.evaluators.base import Score
from harness.report.names import anchor
from harness.trace.instance import Instance, Span

__all__ = [
    "CallView",
    "Evidence",
    "IncidentView",
    "RunView",
    "anchor",
    "load_calls",
]

_VERDICT_ORDER = {"error": 0, "fail": 1, "pass": 2}
_REPEAT = re.compile(r"\.(\d+)$")


@dataclass(frozen=True)
class Evidence:
    """One reason a call failed, with where it shows: the turn (0 is the greeting) and the
    span (its id) when they can be told."""

    kind: str
    """``expectation``, ``evaluator``, ``error`` or ``trace``."""
    text: str
    turn: int | None = None
    span_id: str | None = None
    span_name: str | None = None


@dataclass(frozen=True)
class IncidentTurn:
    index: int
    caller_said: str | None
    agent_said: str | None
    """What the agent answered this turn on the original call (from the fixture)."""
    timing: str = ""


@dataclass(frozen=True)
class IncidentView:
    """The original incident of a replayed fixture, as its scenario file records it."""

    id: str
    severity: str
    failing_layer: str
    failed_evaluators: tuple[str, ...]
    occurred_at: str | None
    source: str | None
    header: tuple[str, ...]
    """The fixture's header comment: what failed on the production call, what was redacted."""
    greeting: str | None
    turns: tuple[IncidentTurn, ...]
    fixture: str | None


@dataclass
class CallView:
    """One call: its Instance and what the run directory says about it."""

    name: str
    """The call's directory name (``booking``, ``booking.2``, ``booking@bad_cell``), or the
    conversation id for a call read from a trace export."""
    instance: Instance
    path: Path | None = None
    scenario: str = ""
    repeat: int = 1
    verdict: str = "pass"
    reason: str = ""
    duration_s: float | None = None
    failures: tuple[str, ...] = ()
    error: str | None = None
    scores: tuple[Score, ...] = ()
    evidence: tuple[Evidence, ...] = ()
    incident: IncidentView | None = None
    notes: tuple[str, ...] = ()

    @property
    def anchor(self) -> str:
        return anchor(self.name)

    @property
    def caller(self) -> Mapping[str, Any] | None:
        return self.instance.caller

    @property
    def started_at(self) -> float | None:
        c = self.caller
        v = c.get("started_at") if c else None
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    @property
    def ended_at(self) -> float | None:
        c = self.caller
        v = c.get("ended_at") if c else None
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None

    @property
    def condition(self) -> str | None:
        """The audio condition of a sweep's call (``booking@bad_cell`` -> ``bad_cell``)."""
        if "@" not in self.name:
            return None
        return _REPEAT.sub("", self.name.split("@", 1)[1]) or None

    @property
    def response_latencies(self) -> list[float]:
        return [
            t.response_latency_ms
            for t in self.instance.turns
            if t.kind == "say" and t.response_latency_ms is not None
        ]

    @property
    def spoken_turns(self) -> int:
        return sum(1 for t in self.instance.turns if t.index > 0)

    def sort_key(self) -> tuple[int, str, int, str]:
        return (_VERDICT_ORDER.get(self.verdict, 0), self.scenario, self.repeat, self.name)


@dataclass
class RunView:
    title: str
    source: Path
    calls: list[CallView]
    verdicts: list[Any] = field(default_factory=list)
    store: Any = None
    gates: Any = None
    sweep: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load: Mapping[str, Any] | None = None
    """A load test's file (:class:`harness.call.rundir.LoadFile`), when the run was one."""
    sensitivity: Mapping[str, Any] | None = None
    """A sensitivity run's results (``sensitivity.json``), when the run was one."""


# --- reading ----------------------------------------------------------------------------------


def _instance_of(call_dir: Path) -> Instance:
    """The call's Instance; a call that ended before its trace was saved has only the
    caller's own file (or nothing), which still gives its turns."""
    from harness.trace.otlp import load_instance

    call = CallDir(call_dir)
    if call.trace.is_file():
        return load_instance(call_dir)
    side = call.read_caller() or {}
    caller = side.get("caller")
    if not isinstance(caller, dict):
        caller = None
    cid = str(side.get("conversation_id") or call_dir.name)
    rec = side.get("recording")
    recording = Path(rec).name if isinstance(rec, str) and rec else None
    return Instance(cid, caller=caller, recording=recording, source=call_dir).marked_incomplete(
        "no trace saved for this call"
    )


def _call_from_dir(call_dir: Path, scores: Mapping[str, list[Score]]) -> CallView:
    instance = _instance_of(call_dir)
    call_files = CallDir(call_dir)
    timings = call_files.read_timings() if call_files.timings.is_file() else {}
    caller = instance.caller or {}
    m = _REPEAT.search(call_dir.name)
    call = CallView(
        name=call_dir.name,
        instance=instance,
        path=call_dir,
        scenario=str(caller.get("scenario_id") or _REPEAT.sub("", call_dir.name)),
        repeat=int(m.group(1)) if m else 1,
        scores=tuple(scores.get(instance.conversation_id, ())),
    )
    if timings:
        call.verdict = str(timings.get("verdict") or "pass")
        call.duration_s = timings.get("duration_s")
        call.failures = tuple(str(f) for f in timings.get("failures") or ())
        call.error = str(timings["error"]) if timings.get("error") else None
    return call


def _score_if_missing(call: CallView) -> None:
    if call.scores or not (call.instance.spans or call.instance.caller):
        return
    from harness.gates.scoring import score_instance

    call.scores = tuple(score_instance(call.instance))


MAX_EXPORT_CALLS = 200
"""Calls of a trace export the report draws; the rest are counted in a note."""


def load_calls(
    source: Path, *, only: Iterable[Path] | None = None
) -> tuple[list[CallView], list[str]]:
    """Every call under ``source`` (a run directory, one call's directory, or a trace export
    file), and a note for each that could not be read. ``only``: these call directories."""
    from harness.gates.scoring import read_run_scores

    notes: list[str] = []
    calls: list[CallView] = []
    if not source.exists():
        raise ScenarioError("no such run directory, call directory or trace file", file=source)
    if source.is_file():
        from harness.trace.otlp import TraceFileReport, iter_instances

        report = TraceFileReport(source)
        more = False
        # streamed: an export of a million spans is read one conversation at a time
        for inst in iter_instances(source, report=report, tolerant=True):
            if len(calls) >= MAX_EXPORT_CALLS:
                more = True
                break
            call = CallView(name=inst.conversation_id, instance=inst, scenario=inst.conversation_id)
            _score_if_missing(call)
            calls.append(call)
        if more:
            notes.append(
                f"the export holds more calls than the first {len(calls)} drawn here (the gate "
                "table covers all of them when `harness evaluate` wrote it); "
                "`harness incident import --conversation-id ID` takes out another"
            )
        if report.bad_line_count:
            notes.append(
                f"{report.bad_line_count} lines of {source.name} could not be read: skipped "
                "(`harness evaluate` names each)"
            )
        if report.unjoined_spans:
            notes.append(f"{report.unjoined_spans} spans joined no conversation")
    else:
        run = RunDir.of(source)
        dirs = [c.path for c in RunDir(source).calls()]
        nested = not dirs  # a sensitivity run: <run>/<fault>/<scenario>/
        if nested:
            dirs = [c.path for c in RunDir(source).walk_calls()]
        if not dirs:
            raise ScenarioError(
                "no calls here: a run directory holds one directory per call, each with its "
                "timings, caller and trace files (see harness.call.rundir)",
                file=source,
            )
        if only is not None:
            wanted = {Path(p).resolve() for p in only}
            dirs = [d for d in dirs if d.resolve() in wanted]
        per_run: dict[Path, Mapping[str, list[Score]]] = {}
        for d in dirs:
            owner = d.parent  # the session that placed the call stored its scores
            if owner in per_run:
                continue
            per_run[owner], bad = read_run_scores(owner)
            if bad:
                notes.append(f"{bad} records of {RunDir(owner).scores} could not be read: skipped")
        for d in dirs:
            try:
                call = _call_from_dir(d, per_run[d.parent])
                if nested:  # one name per call across the faults' runs: llm_ttft/booking
                    call.name = d.relative_to(run.path).as_posix()
                _score_if_missing(call)
            except (HarnessError, OSError, ValueError) as exc:
                notes.append(f"call {d.name} left out: {exc}")
                continue
            calls.append(call)
    for call in calls:
        _finish(call)
    calls.sort(key=CallView.sort_key)
    return calls, notes


# --- verdicts and evidence --------------------------------------------------------------------

_TURN = re.compile(r"^(greeting|turn (\d+))\b")
_TOOL = re.compile(r"tool '([^']+)'")
_ACTION = re.compile(r"action '([^']+)'")
_STEP = re.compile(r"step '([^']+)'")
_DETAIL_TURN = re.compile(r"\bturn (\d+)\b")


def _turn_window(inst: Instance, turn: int | None) -> tuple[int | None, int | None]:
    """The span-time window of a turn, from the caller's timings (ns)."""
    if turn is None:
        return None, None
    turns = inst.turns
    for k, t in enumerate(turns):
        if t.index != turn:
            continue
        lo = t.caller_start if t.caller_start is not None else t.agent_onset
        nxt = turns[k + 1] if k + 1 < len(turns) else None
        hi = nxt.caller_start if nxt is not None else None
        spans = [*t.agent_turns, *(x.span for x in t.tool_calls)]
        if t.user_turn is not None:
            spans.append(t.user_turn)
        if spans:
            return min(s.start_ns for s in spans), max(s.end_ns for s in spans)
        return (
            round(lo * 1e9) if lo is not None else None,
            round(hi * 1e9) if hi is not None else None,
        )
    return None, None


def _find_span(
    inst: Instance, turn: int | None, *, name: str | None = None, pred: Any = None
) -> Span | None:
    lo, hi = _turn_window(inst, turn)
    hits = []
    for s in inst.spans:
        if name is not None and s.name != name:
            continue
        if pred is not None and not pred(s):
            continue
        if lo is not None and s.end_ns < lo:
            continue
        if hi is not None and s.start_ns > hi:
            continue
        hits.append(s)
    errors = [s for s in hits if s.is_error]
    return (errors or hits or [None])[0]


def _turn_span(inst: Instance, turn: int | None) -> Span | None:
    for t in inst.turns:
        if t.index == turn:
            if t.agent_turns:
                return t.agent_turns[0]
            return t.user_turn
    return None


def expectation_evidence(inst: Instance, text: str) -> Evidence:
    """Where a failed expectation shows: its turn and the span it is about."""
    from harness.trace import conventions as c

    m = _TURN.match(text)
    turn = None
    if m:
        turn = 0 if m.group(1) == "greeting" else int(m.group(2))
    span = None
    if (t := _TOOL.search(text)) is not None:
        tool = t.group(1)
        span = _find_span(
            inst,
            turn,
            name=c.SPAN_FUNCTION_TOOL,
            pred=lambda s: s.attributes.get(c.LK_FUNCTION_TOOL_NAME) == tool,
        )
    elif (a := _ACTION.search(text)) is not None:
        action = a.group(1)
        span = _find_span(inst, None, pred=lambda s: s.attributes.get(c.ACTION_NAME) == action)
    elif (st := _STEP.search(text)) is not None:
        step = st.group(1)
        span = next((w.span for w in inst.workflow if w.name == step), None)
    elif text.startswith("after-call"):
        span = inst.workflow_roots[0] if inst.workflow_roots else None
    if span is None and turn is not None:
        span = _turn_span(inst, turn)
    return Evidence(
        "expectation",
        text,
        turn,
        span.span_id if span is not None else None,
        span.name if span is not None else None,
    )


def score_evidence(inst: Instance, scores: Sequence[Score]) -> list[Evidence]:
    """The per-call conditions the scores fail (the monitor's incident rules), each with its
    turn and span."""
    from harness.gates.conditions import CALL_CONDITIONS

    out: list[Evidence] = []
    for cond in CALL_CONDITIONS:
        hits = [s for s in scores if cond.failed_by(s)]
        if not hits:
            continue
        s = hits[0]
        where = s.span or s.layer
        detail = f": {s.detail}" if s.detail else ""
        text = f"{cond.reason} ({cond.metric}{' on ' + where if where else ''}){detail}"
        turn = s.turn
        if turn is None and (m := _DETAIL_TURN.search(s.detail)) is not None:
            turn = int(m.group(1))  # "turn 5 repeats turn 4": the turn where it showed
        span = None
        if s.span:
            span = _find_span(inst, turn, name=s.span)
        if span is None and turn is not None:
            span = _turn_span(inst, turn)
        if span is None and s.layer:
            span = next((x for x in inst.roots if x.layer == s.layer), None)
        out.append(
            Evidence(
                "evaluator",
                text,
                turn,
                span.span_id if span is not None else None,
                span.name if span is not None else None,
            )
        )
    return out


def _finish(call: CallView) -> None:
    """Evidence for each failure; a call read without a verdict (a trace export) gets the
    per-call conditions' verdict."""
    inst = call.instance
    evidence: list[Evidence] = []
    if call.error:
        evidence.append(Evidence("error", call.error, _error_turn(call.error)))
    evidence.extend(expectation_evidence(inst, f) for f in call.failures if f)
    evidence.extend(score_evidence(inst, call.scores))
    if inst.trace_state != "complete":
        why = inst.incomplete_reason or "the conversational agent's root span never came"
        evidence.append(Evidence("trace", f"trace {inst.trace_state}: {why}"))
    if inst.data_errors:
        evidence.extend(Evidence("trace", f"data error: {e.describe()}") for e in inst.data_errors)
    call.evidence = tuple(evidence)
    if call.path is None:  # a production call: the per-call conditions decide
        call.verdict = "fail" if any(e.kind == "evaluator" for e in evidence) else "pass"
    first = call.error or (call.failures[0] if call.failures else "")
    if not first and call.verdict != "pass":
        first = next((e.text for e in evidence), "")
    call.reason = first.split("\n")[0]


def _error_turn(text: str) -> int | None:
    m = re.search(r"\bat turn (\d+)", text)
    return int(m.group(1)) if m else None
