"""After a crash: calls that completed (their artifacts are written) but were not stored.

A call's artifacts are written before its row is committed, so a monitor killed between
the two leaves a finished call on disk only. On restart the monitor finds each call
directory whose ``timings.json`` (written last) holds a verdict, and whose conversation the
store does not have, and stores it from its artifacts and the run's ``scores.jsonl``. A call
that ended in an infrastructure error is not a call to recover. Lines it cannot read are
counted, never guessed at.
"""

from __future__ import annotations

import calendar
import time
from dataclasses import dataclass
from pathlib import Path

from harness.call.rundir import RunDir, RunDirError
from harness.gates.scoring import read_run_scores
from harness.monitor.model import CallRecord
from harness.trace.validate import DataError

__all__ = ["Recovered", "recover_unstored"]


@dataclass(frozen=True)
class Recovered:
    records: tuple[CallRecord, ...]
    unreadable: int


def _slot(label: str) -> float | None:
    try:
        return float(calendar.timegm(time.strptime(label.split("-", 1)[0], "%Y%m%dT%H%M%S")))
    except ValueError:
        return None


def recover_unstored(
    store: object,
    run_dir: Path,
    *,
    agent_version: str | None = None,
    environment: str | None = None,
) -> Recovered:
    """Store every completed call of ``run_dir`` that ``store`` lacks; returns them."""
    if not run_dir.is_dir():
        return Recovered((), 0)
    scores, bad = read_run_scores(run_dir)
    out: list[CallRecord] = []
    for call in RunDir(run_dir).calls():
        if not call.timings.is_file():
            continue  # killed before its verdict: nothing to store
        try:
            t = call.read_timings()
            cid = t["conversation_id"]
            verdict = t["verdict"]
            data_errors = tuple(DataError.from_dict(e) for e in t.get("data_errors") or ())
        except (RunDirError, ValueError, KeyError, TypeError, OSError):
            bad += 1
            continue
        if verdict not in ("pass", "fail") or store.has_call(cid):  # type: ignore[attr-defined]
            continue
        call_dir = call.path
        label = call_dir.name.rsplit(".", 1)[0]
        trace = t.get("trace") or {}
        failures = tuple(t.get("failures") or ())
        if t.get("error"):
            failures = (str(t["error"]), *failures)
        rec = CallRecord(
            conversation_id=cid,
            source="synthetic",
            ended_at=call.timings.stat().st_mtime,
            scores=tuple(scores.get(cid, ())),
            passed=verdict == "pass",
            scenario=label.split("-", 1)[1] if "-" in label else label,
            cycle=_slot(label),
            agent_version=agent_version,
            environment=environment,
            failures=failures,
            artifacts=str(call_dir),
            traced=trace.get("state", "none") != "none",
            data_errors=data_errors,
        )
        if store.add_call(rec):  # type: ignore[attr-defined]
            out.append(rec)
    return Recovered(tuple(out), bad)
