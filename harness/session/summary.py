"""The per-call table printed by ``harness run`` and at the end of a pytest session.

Rows are plain data so pytest-xdist workers can send theirs to the controller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.call.hostload import overload_note
from harness.core.text import text_table


def percentile(values: Sequence[float], q: float) -> float | None:
    """Exact percentile with linear interpolation (numpy's default); None when empty."""
    return float(np.percentile(values, q)) if values else None


@dataclass(frozen=True)
class CallRow:
    scenario: str
    call: int
    turns: int
    p50_ms: float | None
    p95_ms: float | None
    seconds: float
    verdict: str
    reason: str = ""
    trace: str = "-"
    """``ok``, ``partial`` or ``none`` (:class:`harness.trace.health.TraceHealth`); ``-``
    when the call ended before its trace was looked at."""
    trace_reason: str = ""
    host_cpu_pressure: float | None = None
    """Share of the call in which the host's tasks waited for a CPU (None: unmeasured)."""
    data_errors: int = 0
    """Values in the call's Instance that cannot be true, quarantined."""
    data_error: str = ""
    """The first of them, described."""

    @classmethod
    def from_outcome(cls, o: Any) -> CallRow:
        lat = o.result.response_latencies_ms if o.result else []
        turns = sum(1 for t in o.result.turns if t.index > 0) if o.result else 0
        reason = str(o.error) if o.error else (o.failures[0] if o.failures else "")
        trace = getattr(o, "trace", None)
        errors = tuple(getattr(o, "data_errors", ()))
        return cls(
            o.scenario_id,
            o.repeat,
            turns,
            percentile(lat, 50),
            percentile(lat, 95),
            round(o.duration_s, 1),
            o.verdict,
            reason.split("\n")[0],
            trace.label if trace is not None else "-",
            trace.reason if trace is not None else "",
            getattr(o, "host_cpu_pressure", None),
            len(errors),
            errors[0].describe() if errors else "",
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def call_table(rows: Sequence[CallRow | Any]) -> str:
    """One line per call: scenario, call, turns, p50/p95 response latency, duration, trace,
    verdict; then, once per distinct reason, why some calls' traces are missing or partial."""
    rows = [r if isinstance(r, CallRow) else CallRow.from_outcome(r) for r in rows]
    header = ("scenario", "call", "turns", "p50 ms", "p95 ms", "secs", "trace", "verdict")
    cells = [
        (
            r.scenario,
            str(r.call),
            str(r.turns),
            _ms(r.p50_ms),
            _ms(r.p95_ms),
            f"{r.seconds:.1f}",
            r.trace,
            r.verdict.upper() + (f"  {r.reason[:90]}" if r.reason else ""),
        )
        for r in sorted(rows, key=lambda r: (r.scenario, r.call))
    ]
    lines = text_table(header, cells)
    counts = {v: sum(1 for r in rows if r.verdict == v) for v in ("pass", "fail", "error")}
    lines.append(
        f"{len(rows)} calls: {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['error']} errors"
    )
    lines.extend(trace_notes(rows))
    lines.extend(data_error_notes(rows))
    note = overload_note([r.host_cpu_pressure for r in rows])
    if note:
        lines.append(note)
    return "\n".join(lines)


def data_error_notes(rows: Sequence[CallRow]) -> list[str]:
    """``data errors in 2 of 9 calls: ...``: values quarantined as impossible, which fail
    the gates on the metrics they touch."""
    bad = [r for r in rows if r.data_errors]
    if not bad:
        return []
    total = sum(r.data_errors for r in bad)
    first = bad[0]
    return [
        f"data errors in {len(bad)} of {len(rows)} calls: {total} values that cannot be true, "
        f"quarantined (gates on what they touch fail); e.g. {first.scenario} "
        f"#{first.call}: {first.data_error} (`harness show CALL_DIR` lists each)"
    ]


def trace_notes(rows: Sequence[CallRow]) -> list[str]:
    """``trace none in 3 of 3 calls: no trace from the agent: ...``, once per reason."""
    by_reason: dict[tuple[str, str], int] = {}
    for r in rows:
        if r.trace in ("none", "partial"):
            key = (r.trace, r.trace_reason or "no reason recorded")
            by_reason[key] = by_reason.get(key, 0) + 1
    return [
        f"trace {state} in {n} of {len(rows)} calls: {reason}"
        for (state, reason), n in sorted(by_reason.items(), key=lambda kv: -kv[1])
    ]
