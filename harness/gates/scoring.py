"""Scores per call and gates per session: the one path from Instances to a verdict.

Used by the pytest plugin (per item, then at session end, merging xdist workers), by
``harness run`` and by ``harness evaluate`` over saved instances, so all three give the same
verdicts from the same Instances.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from harness.call.rundir import NAMES, CallDir, RunDir
from harness.evaluators import Score, default_evaluators, evaluate
from harness.gates import (
    GatesConfig,
    ScoreStore,
    Verdict,
    discover_gates,
    evaluate_gates,
    load_gates,
    render_table,
)
from harness.plan.callplan import CallPlan
from harness.trace import conventions as c
from harness.trace.instance import Instance
from harness.trace.validate import DataError, data_error_lines

if TYPE_CHECKING:
    from harness.trace.otlp import TraceFileReport

log = logging.getLogger("harness.gates.scoring")


def expected_end_state(plan: CallPlan | None) -> dict[str, Any] | None:
    """The scenario's expected end state for task completion: its tools and actions."""
    if plan is None:
        return None
    if plan.expect is not None and plan.expect.end_state is not None:
        return plan.expect.end_state.model_dump()
    tools = [
        {"name": t.expect.tool_called.name, "args": t.expect.tool_called.args}
        for t in plan.turns
        if t.expect is not None and t.expect.tool_called is not None
    ]
    actions = [a.action for a in plan.expect.background] if plan.expect else []
    if not tools and not actions:
        return None
    return {"tool_called": tools, "action_done": actions}


def score_call(
    instance: Instance, plan: CallPlan | None = None
) -> tuple[list[Score], list[ArtifactProblem]]:
    """Every built-in (and plugged-in) evaluator on one Instance, and what of the call's
    artifacts could not be read. The expected end state comes from the plan, else from the
    caller side-file of a saved synthetic call.

    A recording that cannot be used (missing, truncated, garbled, not 16-bit stereo) leaves
    out, for this call only, the Scores of the evaluators that read it (those with a true
    ``reads_recording`` attribute, such as ``audio``), and is returned as a problem."""
    from harness.evaluators.audio import RecordingError, check_recording

    end = expected_end_state(plan)
    if end is None and instance.caller:
        end = instance.caller.get("expected_end_state")
    params = {"task_completion": {"expected": end}} if end else None
    evaluators = default_evaluators(params)
    problems: list[ArtifactProblem] = []
    recording = instance.recording_path
    if recording is not None:
        try:
            check_recording(recording)
        except RecordingError as e:
            readers = [ev for ev in evaluators if getattr(ev, "reads_recording", False)]
            metrics = ", ".join(m.name for ev in readers for m in getattr(ev, "metrics", ()))
            problems.append(
                ArtifactProblem(
                    "recording",
                    recording,
                    str(e),
                    instance.conversation_id,
                    f"scored without the scores read from its recording ({metrics})",
                    e.fix,
                )
            )
            evaluators = [ev for ev in evaluators if ev not in readers]
    return evaluate(instance, evaluators), problems


def score_instance(instance: Instance, plan: CallPlan | None = None) -> list[Score]:
    """:func:`score_call`'s Scores; what could not be read is logged as a warning."""
    scores, problems = score_call(instance, plan)
    for problem in problems:
        log.warning("%s", problem.describe())
    return scores


def score_record(score: Score, **context: Any) -> dict[str, Any]:
    """A ``scores.jsonl`` record: the Score and the call it belongs to."""
    return {**context, **asdict(score)}


def read_run_scores(run_dir: str | Path) -> tuple[dict[str, list[Score]], int]:
    """A run's ``scores.jsonl`` by conversation id, and how many records could not be read
    (a line cut short by a crash, a record that is not a Score)."""
    records, bad = RunDir(Path(run_dir)).read_scores()
    out: dict[str, list[Score]] = {}
    for record in records:
        cid = record.get("conversation_id")
        try:
            score = Score.from_dict(record)
        except (KeyError, TypeError, ValueError):
            score = None
        if score is None or not isinstance(cid, str):
            bad += 1
            continue
        out.setdefault(cid, []).append(score)
    return out, bad


@dataclass
class SessionScores:
    """The Scores of every call of a session, as a mergeable store and as ``scores.jsonl``."""

    run_dir: Path | None = None
    store: ScoreStore = field(default_factory=ScoreStore)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def record(
        self,
        scores: Iterable[Score],
        *,
        traced: bool = True,
        data_errors: Iterable[DataError] = (),
        **context: Any,
    ) -> None:
        scores = list(scores)
        with self._lock:
            self.store.add(scores, traced=traced, data_errors=data_errors)
            if self.run_dir is not None:
                RunDir(self.run_dir).append_scores(score_record(s, **context) for s in scores)

    def merge_json(self, text: str) -> None:
        with self._lock:
            self.store.merge(ScoreStore.from_json(text))

    def to_json(self) -> str:
        with self._lock:
            return self.store.to_json()


def gates_config(path: str | Path | None, root: str | Path = ".") -> GatesConfig:
    """The gates file given, else the project's (harness.yaml, pyproject), else defaults."""
    return load_gates(path) if path else discover_gates(root)


def session_verdicts(
    store: ScoreStore, gates: GatesConfig, baseline: ScoreStore | None = None
) -> list[Verdict]:
    return evaluate_gates(gates, store, baseline)


def gates_failed(verdicts: Iterable[Verdict]) -> bool:
    return any(v.status == "fail" for v in verdicts)


def gates_report(verdicts: list[Verdict]) -> str:
    return render_table(verdicts)


ArtifactKind = Literal["recording", "side file", "trace", "trace line"]


@dataclass(frozen=True)
class ArtifactProblem:
    """One artifact of a saved call (or one line of an export) that could not be read, and
    what its call was scored without."""

    kind: ArtifactKind
    file: Path
    reason: str
    """What is wrong, naming the file (and line and field where there is one)."""
    call: str | None
    """The conversation that lost something; None when it cannot be known (a bad line of
    an export holding many conversations)."""
    lost: str
    """What that call was scored without."""
    fix: str | None = None

    def describe(self) -> str:
        who = f"{self.call} " if self.call else ""
        fix = f" (fix: {self.fix})" if self.fix else ""
        return f"{self.reason}: {who}{self.lost}{fix}"


_TRACE_LINE_FIX = (
    "the line was cut short or garbled when it was written or copied; copy the file again "
    "from where it was made, or re-run the call"
)
_SIDE_FIX = (
    f"the harness writes {NAMES.caller} at the end of each call; copy it again from the run, "
    "or re-run the call"
)
_NO_TRACE = (
    "scored as a call without a trace: its span-derived scores are absent and gates on "
    "spans count it under NO TRACE"
)


@dataclass
class PathScores:
    """What :func:`evaluate_path` found under a path: the merged Scores, the calls, and
    everything it could not read or place, each counted."""

    path: Path
    store: ScoreStore = field(default_factory=ScoreStore)
    calls: int = 0
    problems: list[ArtifactProblem] = field(default_factory=list)
    """One per unreadable artifact, up to :data:`KEEP_PROBLEMS`; :attr:`artifacts` counts
    them all."""
    artifacts: dict[str, int] = field(default_factory=dict)
    """Unreadable artifacts by kind."""
    data_errors: dict[str, tuple[DataError, ...]] = field(default_factory=dict)
    """Per conversation: the values its Instance quarantined as impossible."""
    trace_notes: list[str] = field(default_factory=list)
    """Per trace file: spans that joined no conversation, and spans that arrived twice."""

    KEEP_PROBLEMS = 1000

    def add(self, instance: Instance) -> None:
        """Score one Instance into the store (and count what of it could not be read)."""
        scores, problems = score_call(instance)
        self.store.add(
            scores,
            traced=instance.trace_state != "none",
            data_errors=instance.data_errors,
        )
        self.calls += 1
        if instance.data_errors:
            self.data_errors[instance.conversation_id] = instance.data_errors
        for problem in problems:
            self.problem(problem)

    def problem(self, problem: ArtifactProblem, count: int = 1) -> None:
        self.artifacts[problem.kind] = self.artifacts.get(problem.kind, 0) + count
        if len(self.problems) < self.KEEP_PROBLEMS:
            self.problems.append(problem)

    def trace_file_done(self, rep: TraceFileReport, calls: list[str]) -> None:
        """Count what reading one trace file left out; ``calls``: the conversations it
        gave."""
        call = calls[0] if len(calls) == 1 else None
        if rep.side_error is not None:
            self.problem(
                ArtifactProblem(
                    "side file",
                    Path(rep.side_error.file or rep.file),
                    str(rep.side_error),
                    call,
                    "scored from its trace alone: what the caller measured (response "
                    "latency, the caller's words for WER, the expected end state, the "
                    "recording) is absent",
                    _SIDE_FIX,
                )
            )
        if rep.unreadable is not None:
            self.problem(
                ArtifactProblem(
                    "trace",
                    rep.file,
                    str(rep.unreadable),
                    rep.untraced,
                    _NO_TRACE,
                    None if "harness_instrument" in str(rep.unreadable) else _TRACE_LINE_FIX,
                )
            )
        elif rep.untraced is not None and rep.bad_lines:
            more = rep.bad_line_count - 1
            self.problem(
                ArtifactProblem(
                    "trace",
                    rep.file,
                    str(rep.bad_lines[0]) + (f" (and {more} more bad lines)" if more else ""),
                    rep.untraced,
                    _NO_TRACE + ", since a per-call score from part of its trace could "
                    "pass where the whole would fail",
                    _TRACE_LINE_FIX,
                )
            )
        elif rep.bad_line_count:
            lost = (
                "its spans are missing from whichever conversations they belong to; the "
                "rest of the file is scored"
            )
            for e in rep.bad_lines:
                self.problem(
                    ArtifactProblem("trace line", rep.file, str(e), None, lost, _TRACE_LINE_FIX)
                )
            unkept = rep.bad_line_count - len(rep.bad_lines)
            if unkept:
                self.artifacts["trace line"] = self.artifacts.get("trace line", 0) + unkept
        if rep.unjoined:
            services = ", ".join(
                f"{name}: {n}" for name, n in sorted(rep.unjoined.items(), key=lambda kv: -kv[1])
            )
            n = rep.unjoined_spans
            self.trace_notes.append(
                f"{rep.file}: {n} span{'s' if n != 1 else ''} joined no conversation (from "
                f"{services}) and are in no call's scores: they carry no {c.CONVERSATION_ID}, "
                "no room or job id of a conversation, and no trace or link of one"
            )
        if rep.duplicates:
            self.trace_notes.append(
                f"{rep.file}: {rep.duplicates} spans were exported twice; one copy of each was kept"
            )

    @property
    def artifact_count(self) -> int:
        return sum(self.artifacts.values())

    def lines(self, limit: int = 20) -> list[str]:
        """For the terminal: each unreadable artifact (up to ``limit``), their count, what
        joined no call, and the data errors."""
        out = [p.describe() for p in self.problems[:limit]]
        n = self.artifact_count
        if n > len(out):
            out.append(f"... and {n - len(out)} more")
        if n:
            kinds = ", ".join(f"{k} {kind}" for kind, k in sorted(self.artifacts.items()))
            out.append(
                f"{n} artifact{'s' if n != 1 else ''} could not be read ({kinds}): each call "
                "was scored without what it could not read, every other call in full"
            )
        out.extend(self.trace_notes)
        out.extend(data_error_lines(self.data_errors))
        return out


def _trace_files(p: Path) -> list[tuple[Path, str | None]]:
    """Trace files under ``p``, each with the call name to give a call whose trace is
    unusable (None for a file named on the command line: nothing to fall back on)."""
    if p.is_file():
        return [(p, None)]
    call = CallDir(p)
    if call.trace.exists():
        return [(call.trace, p.name or str(p))]
    return [
        (CallDir(t.parent).trace, str(t.parent.relative_to(p)))
        for t in sorted(p.rglob(call.trace.name))
    ]


def evaluate_path(path: str | Path) -> PathScores:
    """Score every Instance under ``path`` (a run directory with one sub-directory per call,
    one call's directory, or an OTLP JSON-lines export), one at a time, with per-call
    isolation: an artifact that cannot be read costs its own call what it holds and is
    counted in :class:`PathScores`, never the run. An export is streamed
    (:func:`harness.trace.otlp.iter_instances`): memory holds the conversations in
    progress, not the file. Raises :class:`~harness.trace.otlp.TraceFileError` only for a
    file named directly that gives no conversation at all."""
    from harness.trace.otlp import TraceFileReport, iter_instances

    p = Path(path)
    result = PathScores(p)
    for trace_file, fallback in _trace_files(p):
        rep = TraceFileReport(trace_file)
        calls: list[str] = []
        for instance in iter_instances(trace_file, report=rep, tolerant=True, fallback_id=fallback):
            if len(calls) < 2:
                calls.append(instance.conversation_id)
            result.add(instance)
        result.trace_file_done(rep, calls)
    return result


def find_instances(path: str | Path) -> Iterator[Instance]:
    """Instances under ``path``: a run directory (one sub-directory per call), one call's
    directory, or an OTLP JSON-lines file holding one or more conversations (streamed).
    Strict: the first artifact that cannot be read raises (:func:`evaluate_path` isolates
    it instead)."""
    from harness.trace.otlp import iter_instances

    for trace_file, _ in _trace_files(Path(path)):
        yield from iter_instances(trace_file)


def score_path(path: str | Path) -> tuple[ScoreStore, int]:
    """Score every Instance under ``path``; returns the store and how many calls it holds.
    What could not be read is logged as a warning (:func:`evaluate_path` returns it)."""
    result = evaluate_path(path)
    for line in result.lines():
        log.warning("%s", line)
    return result.store, result.calls
