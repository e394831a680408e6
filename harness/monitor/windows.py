"""Rolling windows: the stored calls of the last N minutes, merged, under the gates.

A window's distributions are the merge of its calls' stored sketches (exact, see
:mod:`harness.gates.sketch`), so a window's p90 is the p90 of its calls' samples within the
sketch's stated error, the same figure ``harness evaluate`` gives over those calls. Each gate
gets a :data:`~harness.monitor.model.GateState`; a window with too few samples, or one the
monitor stopped feeding (no cycle finished within two periods), is ``no_data``, never ok.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.gates import GatesConfig, Verdict, evaluate_gates
from harness.gates.model import Gate, duration_seconds
from harness.monitor.model import CallRecord, GateState, Source, WindowSpec
from harness.monitor.states import state_of

__all__ = ["GateWindow", "WindowReport", "evaluate_window", "parse_windows"]

DEFAULT_WINDOWS = "15m,1h,24h"


def parse_windows(text: str) -> tuple[WindowSpec, ...]:
    """``"15m,1h,24h"`` → windows, shortest first. Raises ValueError naming the bad part."""
    out: list[WindowSpec] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            out.append(WindowSpec(part, duration_seconds(part)))
        except ValueError as e:
            raise ValueError(f"--windows: {e}") from None
    if not out:
        raise ValueError("--windows: give at least one window, e.g. 15m,1h,24h")
    names = [w.name for w in out]
    if len(set(names)) != len(names):
        raise ValueError(f"--windows: {text!r} names a window twice")
    return tuple(sorted(out, key=lambda w: w.seconds))


@dataclass(frozen=True)
class GateWindow:
    gate: Gate
    verdict: Verdict
    state: GateState


@dataclass(frozen=True)
class WindowReport:
    """Every gate over one window of one source (and version and environment)."""

    window: WindowSpec
    source: Source
    since: float
    until: float
    gates: tuple[GateWindow, ...]
    calls: tuple[CallRecord, ...]
    agent_version: str | None = None
    environment: str | None = None
    stale: bool = False

    @property
    def failed_calls(self) -> tuple[CallRecord, ...]:
        return tuple(c for c in self.calls if not c.passed)

    @property
    def verdicts(self) -> list[Verdict]:
        return [g.verdict for g in self.gates]


def evaluate_window(
    store: object,
    gates: GatesConfig | Sequence[Gate],
    window: WindowSpec,
    now: float,
    source: Source,
    *,
    agent_version: str | None = None,
    environment: str | None = None,
    stale: bool = False,
) -> WindowReport:
    """The gates over the calls of ``source`` that ended in ``[now - window, now)``.

    ``store`` is a :class:`~harness.monitor.store.MonitorStore`. ``stale`` marks a window
    the monitor stopped feeding: every gate is ``no_data`` whatever the old calls said.
    """
    since = now - window.seconds
    scores, calls = store.window(  # type: ignore[attr-defined]
        since=since,
        until=now,
        source=source,
        agent_version=agent_version,
        environment=environment,
    )
    verdicts = evaluate_gates(gates, scores)
    rows = tuple(GateWindow(v.gate, v, state_of(v, stale=stale)) for v in verdicts)
    return WindowReport(
        window, source, since, now, rows, tuple(calls), agent_version, environment, stale
    )
