"""Scores per call and gates per session: the one path from Instances to a verdict.

Used by the pytest plugin (per item, then at session end, merging xdist workers), by
``harness run`` and by ``harness evaluate`` over saved instances, so all three give the same
verdicts from the same Instances.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

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
from harness.plan import CallPlan
from harness.trace.health import SessionTraceReport
from harness.trace.instance import Instance
from harness.trace.validate import DataError

SCORES_FILE = "scores.jsonl"


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


def score_instance(instance: Instance, plan: CallPlan | None = None) -> list[Score]:
    """Every built-in (and plugged-in) evaluator on one Instance. The expected end state
    comes from the plan, else from the caller side-file of a saved synthetic call."""
    end = expected_end_state(plan)
    if end is None and instance.caller:
        end = instance.caller.get("expected_end_state")
    params = {"task_completion": {"expected": end}} if end else None
    return evaluate(instance, default_evaluators(params))


def score_record(score: Score, **context: Any) -> dict[str, Any]:
    return {**context, **asdict(score)}


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
                self.run_dir.mkdir(parents=True, exist_ok=True)
                lines = "".join(
                    json.dumps(score_record(s, **context), default=str) + "\n" for s in scores
                )
                # one write per call with O_APPEND: lines of concurrent writers never interleave
                fd = os.open(self.run_dir / SCORES_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
                try:
                    os.write(fd, lines.encode())
                finally:
                    os.close(fd)

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


def find_instances(path: str | Path) -> Iterator[Instance]:
    """Instances under ``path``: a run directory (one sub-directory per call), one call's
    directory, or an OTLP JSON-lines file holding one or more conversations."""
    from harness.trace.otlp import load_instance, load_instances

    p = Path(path)
    if p.is_file():
        yield from load_instances(p).values()
        return
    if (p / "trace.jsonl").is_file():
        yield load_instance(p)
        return
    for trace in sorted(p.rglob("trace.jsonl")):
        yield load_instance(trace.parent)


def score_path(path: str | Path) -> tuple[ScoreStore, int]:
    """Score every Instance under ``path``; returns the store and how many calls it holds."""
    store = ScoreStore()
    n = 0
    for instance in find_instances(path):
        store.add(
            score_instance(instance),
            traced=instance.trace_state != "none",
            data_errors=instance.data_errors,
        )
        n += 1
    return store, n


@dataclass
class GateRun:
    """What a pytest session (or a run) gates on: the merged scores and the per-call rows,
    from this process and from any pytest-xdist workers."""

    store: ScoreStore = field(default_factory=ScoreStore)
    rows: list[Any] = field(default_factory=list)
    traces: list[SessionTraceReport] = field(default_factory=list)
    """Per process: spans its receiver got that became no call's trace."""

    def add(
        self, store: ScoreStore, rows: Iterable[Any], traces: SessionTraceReport | None = None
    ) -> None:
        self.store.merge(store)
        self.rows.extend(rows)
        if traces is not None:
            self.traces.append(traces)

    def add_worker_output(self, output: dict[str, Any]) -> None:
        from harness.summary import CallRow

        if "harness_scores" in output:
            self.store.merge(ScoreStore.from_json(output["harness_scores"]))
        self.rows.extend(CallRow(**r) for r in json.loads(output.get("harness_rows", "[]")))
        if output.get("harness_traces"):
            self.traces.append(SessionTraceReport.from_dict(json.loads(output["harness_traces"])))

    @staticmethod
    def worker_output(
        store: ScoreStore, rows: Iterable[Any], traces: SessionTraceReport | None = None
    ) -> dict[str, str]:
        return {
            "harness_scores": store.to_json(),
            "harness_rows": json.dumps([r.to_dict() for r in rows]),
            "harness_traces": json.dumps(traces.to_dict()) if traces is not None else "",
        }

    def trace_lines(self) -> list[str]:
        """What the session's receivers got that became no call's trace, merged."""
        return SessionTraceReport.merged(self.traces).lines() if self.traces else []

    def verdicts(
        self, gates_file: str | Path | None, baseline_file: str | Path | None, root: Path
    ) -> list[Verdict]:
        from harness.baseline import load_baseline

        baseline = load_baseline(baseline_file) if baseline_file else None
        return session_verdicts(self.store, gates_config(gates_file, root), baseline)
