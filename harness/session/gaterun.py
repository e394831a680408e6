"""What a pytest session (or a run) gates on, merged across pytest-xdist workers."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.gates import ScoreStore, Verdict
from harness.gates.baseline import load_baseline
from harness.gates.scoring import gates_config, session_verdicts
from harness.session.summary import CallRow
from harness.trace.health import SessionTraceReport

__all__ = ["GateRun"]


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
        baseline = load_baseline(baseline_file) if baseline_file else None
        return session_verdicts(self.store, gates_config(gates_file, root), baseline)
