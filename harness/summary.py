"""The per-call table printed by ``harness run`` and at the end of a pytest session."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from harness.engine import CallOutcome


def percentile(values: Sequence[float], q: float) -> float | None:
    """Exact percentile with linear interpolation (numpy's default); None when empty."""
    return float(np.percentile(values, q)) if values else None


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.0f}"


def call_table(outcomes: Sequence[CallOutcome]) -> str:
    header = ("scenario", "call", "turns", "p50 ms", "p95 ms", "secs", "verdict")
    rows = []
    for o in outcomes:
        lat = o.result.response_latencies_ms if o.result else []
        turns = sum(1 for t in o.result.turns if t.index > 0) if o.result else 0
        verdict = o.verdict.upper()
        reason = (str(o.error) if o.error else (o.failures[0] if o.failures else "")).split("\n")[0]
        if reason:
            verdict += f"  {reason[:90]}"
        rows.append(
            (
                o.scenario_id,
                str(o.repeat),
                str(turns),
                _ms(percentile(lat, 50)),
                _ms(percentile(lat, 95)),
                f"{o.duration_s:.1f}",
                verdict,
            )
        )
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]
    fmt = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()  # noqa: E731
    lines = [fmt(header), fmt(tuple("-" * w for w in widths))]
    lines.extend(fmt(r) for r in rows)
    counts = {v: sum(1 for o in outcomes if o.verdict == v) for v in ("pass", "fail", "error")}
    lines.append(
        f"{len(outcomes)} calls: {counts['pass']} passed, {counts['fail']} failed, "
        f"{counts['error']} errors"
    )
    return "\n".join(lines)
