"""One scenario under several audio conditions: how the agent's hearing and its task
completion degrade as the line gets worse."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from harness.scenario.model import Scenario
from harness.session.engine import CallOutcome, CallSession
from harness.session.summary import percentile


@dataclass(frozen=True)
class SweepRow:
    condition: str
    calls: int
    passed: int
    wer: float | None  # mean over calls of the call's WER (errors / reference words)
    task_completion: float | None  # share of calls that reached the expected end state
    p50_ms: float | None  # median caller-measured response latency over all turns

    @classmethod
    def of(cls, condition: str, outcomes: Sequence[CallOutcome]) -> SweepRow:
        def call_scores(name: str) -> list[float]:
            return [
                s.value for o in outcomes for s in o.scores if s.name == name and s.turn is None
            ]

        wer, done = call_scores("wer"), call_scores("task_completed")
        lat = [x for o in outcomes if o.result for x in o.result.response_latencies_ms]
        return cls(
            condition,
            len(outcomes),
            sum(o.verdict == "pass" for o in outcomes),
            statistics.fmean(wer) if wer else None,
            statistics.fmean(done) if done else None,
            percentile(lat, 50),
        )


def sweep_conditions(
    session: CallSession, scenario: Scenario, conditions: Sequence[Any], calls: int = 1
) -> list[SweepRow]:
    """Run ``calls`` calls of ``scenario`` under each condition (a preset name or a spec)."""
    futures = {
        str(c): [
            session.submit(scenario, r, conditions=c, label=f"{scenario.id}@{c}")
            for r in range(1, calls + 1)
        ]
        for c in conditions
    }
    timeout = scenario.timeouts.call_s + 300
    return [SweepRow.of(c, [f.result(timeout) for f in fs]) for c, fs in futures.items()]


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def sweep_table(rows: Sequence[SweepRow]) -> str:
    header = ("condition", "calls", "passed", "agent WER", "task completion", "p50 ms")
    cells = [
        (
            r.condition,
            str(r.calls),
            str(r.passed),
            _pct(r.wer),
            _pct(r.task_completion),
            "-" if r.p50_ms is None else f"{r.p50_ms:.0f}",
        )
        for r in rows
    ]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(line.rstrip() for line in lines)
