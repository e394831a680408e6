"""The per-call table printed by ``harness run`` and at the end of a pytest session.

Rows are plain data so pytest-xdist workers can send theirs to the controller."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np


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

    @classmethod
    def from_outcome(cls, o: Any) -> CallRow:
        lat = o.result.response_latencies_ms if o.result else []
        turns = sum(1 for t in o.result.turns if t.index > 0) if o.result else 0
        reason = str(o.error) if o.error else (o.failures[0] if o.failures else "")
        return cls(
            o.scenario_id,
            o.repeat,
            turns,
            percentile(lat, 50),
            percentile(lat, 95),
            round(o.duration_s, 1),
            o.verdict,
            reason.split("\n")[0],
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def call_table(rows: Sequence[CallRow | Any]) -> str:
    """One line per call: scenario, call, turns, p50/p95 response latency, duration, verdict."""
    rows = [r if isinstance(r, CallRow) else CallRow.from_outcome(r) for r in rows]
    header = ("scenario", "call", "turns", "p50 ms", "p95 ms", "secs", "verdict")
    cells = [
        (
            r.scenario,
            str(r.call),
            str(r.turns),
            _ms(r.p50_ms),
            _ms(r.p95_ms),
            f"{r.seconds:.1f}",
            r.verdict.upper() + (f"  {r.reason[:90]}" if r.reason else ""),
        )
        for r in sorted(rows, key=lambda r: (r.scenario, r.call))
    ]
    widths = [max([len(h)] + [len(c[i]) for c in cells]) for i, h in enumerate(header)]

    def fmt(cols: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip()

    lines = [fmt(header), fmt(["-" * w for w in widths]), *(fmt(c) for c in cells)]
    counts = {v: sum(1 for r in rows if r.verdict == v) for v in ("pass", "fail", "error")}
    lines.append(
        f"{len(rows)} calls: {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['error']} errors"
    )
    return "\n".join(lines)
