"""``harness merge RUN_DIR...``: the runs of many processes or machines as one.

A run split across machines (a Kubernetes Job of N pods, each writing its own run
directory; see ``deploy/kubernetes/load-job.yaml``) is one run again when its run
directories merge: each run's Scores are read back from its ``scores.jsonl``, exactly as
its session recorded them, with each call's trace state and data errors from its timings
file, and the stores merge. Percentiles come from mergeable sketches, so the merged gate
table is the one a single run over all the calls would print, within the sketch's relative
accuracy (exactly, while a series holds few enough values to keep them all).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.call.rundir import NAMES, RunDir, RunDirError
from harness.core.errors import ScenarioError
from harness.gates import ScoreStore
from harness.gates.scoring import read_run_scores
from harness.trace.validate import DataError

__all__ = ["MergedRuns", "RunScores", "merge_runs", "run_scores"]


@dataclass
class RunScores:
    """One run directory's Scores as its session stored them."""

    path: Path
    store: ScoreStore
    conversations: set[str] = field(default_factory=set)
    bad_records: int = 0
    """Lines of its scores file that could not be read (cut short by a crash, say)."""
    unreadable: list[str] = field(default_factory=list)
    """Timings files that could not be read (their calls are merged as traced, without
    data errors)."""

    @property
    def calls(self) -> int:
        return len(self.conversations)


def _call_states(run: RunDir) -> tuple[dict[str, tuple[bool, tuple[DataError, ...]]], list[str]]:
    """Per conversation id: whether its call was traced, and its data errors, from each
    call's timings file (however deep the call's directory)."""
    out: dict[str, tuple[bool, tuple[DataError, ...]]] = {}
    bad: list[str] = []
    for call in run.walk_calls():
        if not call.timings.is_file():
            continue
        try:
            t = call.read_timings()
        except RunDirError as e:
            bad.append(str(e))
            continue
        cid = t.get("conversation_id")
        if not isinstance(cid, str):
            continue
        trace = t.get("trace")
        traced = not (isinstance(trace, dict) and trace.get("state") == "none")
        errors = []
        for d in t.get("data_errors") or []:
            try:
                errors.append(DataError.from_dict(d))
            except (KeyError, TypeError, ValueError):
                bad.append(f"{call.timings}: data_errors: not a data error: {d!r}")
        out[cid] = (traced, tuple(errors))
    return out, bad


def run_scores(path: str | os.PathLike[str]) -> RunScores:
    """A run directory's Scores, counted per call as its session counted them."""
    run = RunDir(Path(path))
    if not run.path.is_dir():
        raise ScenarioError("not a run directory", file=run.path)
    if not run.scores.is_file():
        raise ScenarioError(
            f"no {NAMES.scores} here: every run directory the harness writes has one (a run "
            "whose calls all failed before scoring has none to merge)",
            file=run.path,
        )
    by_call, bad = read_run_scores(run.path)
    states, unreadable = _call_states(run)
    store = ScoreStore()
    for cid in sorted(by_call):
        traced, errors = states.get(cid, (True, ()))
        store.add(by_call[cid], traced=traced, data_errors=errors)
    return RunScores(run.path, store, set(by_call), bad, unreadable)


@dataclass
class MergedRuns:
    runs: list[RunScores]
    store: ScoreStore

    @property
    def calls(self) -> int:
        return self.store.calls

    def lines(self) -> list[str]:
        """Per run: where, how many calls, and what could not be read."""
        out = []
        for r in self.runs:
            extra = f", {r.bad_records} unreadable score lines skipped" if r.bad_records else ""
            out.append(f"{r.path}: {r.calls} calls{extra}")
            out.extend(f"  {u}" for u in r.unreadable[:5])
        out.append(f"merged: {len(self.runs)} runs, {self.calls} calls")
        return out


def merge_runs(paths: Sequence[str | os.PathLike[str]]) -> MergedRuns:
    """The runs under ``paths`` as one store. The same call in two runs (a run directory
    given twice, or copied into another) is an error: merging it would count it twice."""
    if not paths:
        raise ScenarioError("give at least one run directory to merge")
    runs = [run_scores(p) for p in paths]
    _refuse_overlap(runs)
    return MergedRuns(runs, ScoreStore.merged(r.store for r in runs))


def _refuse_overlap(runs: Iterable[RunScores]) -> None:
    seen: dict[str, Path] = {}
    for r in runs:
        for cid in sorted(r.conversations):
            if cid in seen:
                raise ScenarioError(
                    f"call {cid} is in both {seen[cid]} and {r.path}: a run given twice, or "
                    "copied into another? Each call may be merged once",
                    file=r.path,
                )
            seen[cid] = r.path
