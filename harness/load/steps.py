"""One step of a load test: its calls at one concurrency level, their response latency,
their gates, what the harness itself cost, and whether the rig was the bottleneck."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from harness.call.selfload import CallerLoad
from harness.gates import ScoreStore, Verdict
from harness.load.config import RigLimits

__all__ = [
    "GateResult",
    "HarnessCost",
    "StepResult",
    "rig_limits_hit",
    "summarise_calls",
    "timing_notes",
]

LATENCY_METRIC = "response_latency"
"""The caller-measured response latency (:mod:`harness.evaluators.latency`)."""


@dataclass(frozen=True)
class GateResult:
    """A gate's outcome in one step, as the load table and the report need it."""

    name: str
    status: str
    value: float | None
    unit: str | None
    n: int
    detail: str = ""

    @classmethod
    def of(cls, v: Verdict) -> GateResult:
        status = "data_error" if v.data_errors else v.status
        return cls(v.name, status, v.value, v.unit, v.n, v.detail)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "value": _finite(self.value),
            "unit": self.unit,
            "n": self.n,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> GateResult:
        return cls(
            str(d.get("name", "")),
            str(d.get("status", "")),
            _num(d.get("value")),
            d.get("unit") if isinstance(d.get("unit"), str) else None,
            int(d.get("n") or 0),
            str(d.get("detail") or ""),
        )

    @property
    def failed(self) -> bool:
        return self.status in ("fail", "data_error")


@dataclass(frozen=True)
class HarnessCost:
    """What the caller side cost a step and how the rig kept time."""

    caller_cpu_s: float = 0.0
    """Caller-side CPU seconds over the step's calls."""
    call_minutes: float = 0.0
    """The step's calls' durations added up, in minutes."""
    loop_lag_p99_ms: float | None = None
    """The worst of the calls' 99th-percentile loop lag."""
    loop_lag_max_ms: float | None = None
    loop_busy: float | None = None
    """The highest share of a call's time the calls' loop thread was on a CPU."""
    underrun_ms: float = 0.0
    """Gaps in the callers' speech because the harness fell behind, over all calls."""
    underrun_calls: int = 0
    host_pressure: float | None = None
    """The host's CPU pressure over the step (the mean of its calls')."""
    host_pressure_max: float | None = None
    rig_share: float | None = None
    """The caller side's share of the CPU the whole host spent during the step."""

    @property
    def cpu_per_call_minute(self) -> float | None:
        """Caller-side CPU seconds per minute of call."""
        return self.caller_cpu_s / self.call_minutes if self.call_minutes > 0 else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "caller_cpu_s": _finite(self.caller_cpu_s, 4),
            "call_minutes": _finite(self.call_minutes, 4),
            "cpu_per_call_minute": _finite(self.cpu_per_call_minute, 4),
            "loop_lag_p99_ms": _finite(self.loop_lag_p99_ms, 2),
            "loop_lag_max_ms": _finite(self.loop_lag_max_ms, 2),
            "loop_busy": _finite(self.loop_busy, 4),
            "underrun_ms": _finite(self.underrun_ms, 1),
            "underrun_calls": self.underrun_calls,
            "host_pressure": _finite(self.host_pressure, 4),
            "host_pressure_max": _finite(self.host_pressure_max, 4),
            "rig_share": _finite(self.rig_share, 4),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HarnessCost:
        return cls(
            _num(d.get("caller_cpu_s")) or 0.0,
            _num(d.get("call_minutes")) or 0.0,
            _num(d.get("loop_lag_p99_ms")),
            _num(d.get("loop_lag_max_ms")),
            _num(d.get("loop_busy")),
            _num(d.get("underrun_ms")) or 0.0,
            int(d.get("underrun_calls") or 0),
            _num(d.get("host_pressure")),
            _num(d.get("host_pressure_max")),
            _num(d.get("rig_share")),
        )


def summarise_calls(
    loads: Iterable[CallerLoad | None],
    underruns_ms: Iterable[float],
    pressures: Iterable[float | None],
    *,
    rig_share: float | None = None,
) -> HarnessCost:
    """A step's :class:`HarnessCost` from its calls' measurements: each call's
    :class:`CallerLoad`, the underrun milliseconds of each call, each call's host CPU
    pressure."""
    known = [x for x in loads if x is not None]
    runs = list(underruns_ms)
    press = [p for p in pressures if p is not None]
    lag99 = [x.loop_lag_p99_ms for x in known if x.loop_lag_p99_ms is not None]
    lagmax = [x.loop_lag_max_ms for x in known if x.loop_lag_max_ms is not None]
    busy = [x.loop_busy for x in known if x.loop_busy is not None]
    return HarnessCost(
        caller_cpu_s=sum(x.cpu_s for x in known),
        call_minutes=sum(x.wall_s for x in known) / 60,
        loop_lag_p99_ms=max(lag99) if lag99 else None,
        loop_lag_max_ms=max(lagmax) if lagmax else None,
        loop_busy=max(busy) if busy else None,
        underrun_ms=sum(runs),
        underrun_calls=sum(1 for r in runs if r > 0),
        host_pressure=sum(press) / len(press) if press else None,
        host_pressure_max=max(press) if press else None,
        rig_share=rig_share,
    )


def _timing_trouble(cost: HarnessCost, limits: RigLimits) -> list[str]:
    """What distorted the step's measurements, whoever caused it: gaps in the callers'
    speech, and an event loop that woke up late (every timed reply is late by as much)."""
    out = []
    if cost.underrun_ms > 0:
        out.append(
            f"caller audio underruns: {cost.underrun_ms:.0f} ms of gaps in "
            f"{cost.underrun_calls} call{'s' if cost.underrun_calls != 1 else ''}"
        )
    if cost.loop_lag_p99_ms is not None and cost.loop_lag_p99_ms > limits.max_loop_lag_ms:
        out.append(
            f"event-loop lag p99 {cost.loop_lag_p99_ms:.0f} ms > {limits.max_loop_lag_ms:g} ms "
            "(replies timed that much late)"
        )
    return out


def _rig_owns(cost: HarnessCost, limits: RigLimits) -> bool | None:
    """Whether the rig's own load is behind the trouble: its loop thread saturated, or its
    caller side used at least ``min_rig_share`` of the CPU the host spent; None when that
    share is unknown."""
    if cost.loop_busy is not None and cost.loop_busy > limits.max_loop_busy:
        return True
    if cost.rig_share is None:
        return None
    return cost.rig_share >= limits.min_rig_share


def rig_limits_hit(cost: HarnessCost, limits: RigLimits) -> list[str]:
    """Why the rig, not the agent, was the bottleneck in a step (empty: it was not).

    Underruns and a late event loop are the rig's when its own load is behind them (its
    loop thread saturated, or its caller side used at least ``min_rig_share`` of the host's
    CPU, or that share unknown); when the host was saturated by something else (an agent on
    the same machine) they are only :func:`timing_notes`."""
    out = []
    if cost.loop_busy is not None and cost.loop_busy > limits.max_loop_busy:
        out.append(
            f"the callers' loop thread was busy {cost.loop_busy * 100:.0f} % of the time "
            f"(> {limits.max_loop_busy * 100:.0f} %)"
        )
    owns = _rig_owns(cost, limits)
    if owns is not False:
        out += _timing_trouble(cost, limits)
    saturated = cost.host_pressure is not None and cost.host_pressure > limits.max_host_pressure
    if saturated and cost.rig_share is not None and cost.rig_share >= limits.min_rig_share:
        assert cost.host_pressure is not None
        out.append(
            f"host saturated (CPU pressure {cost.host_pressure * 100:.0f} %) and the caller "
            f"side used {cost.rig_share * 100:.0f} % of the CPU the host spent"
        )
    return out


def timing_notes(cost: HarnessCost, limits: RigLimits) -> list[str]:
    """Measurements a step's rig could not keep exact though the rig was not the bottleneck:
    the host was saturated by something else, so its figures carry the rig's delay."""
    trouble = _timing_trouble(cost, limits)
    if not trouble or _rig_owns(cost, limits) is not False:
        return []
    assert cost.rig_share is not None
    pressure = (
        f"host CPU pressure {cost.host_pressure * 100:.0f} %, "
        if cost.host_pressure is not None
        else ""
    )
    return [
        f"not the rig's load ({pressure}the caller side used {cost.rig_share * 100:.0f} % of "
        f"the host's CPU): " + "; ".join(trouble)
    ]


@dataclass
class StepResult:
    """One concurrency level: its calls, their latency, gates, and the rig's health."""

    concurrency: int
    calls: int = 0
    passed: int = 0
    failed: int = 0
    errors: int = 0
    duration_s: float = 0.0
    latency_n: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    gates: list[GateResult] = field(default_factory=list)
    cost: HarnessCost = field(default_factory=HarnessCost)
    harness_limited: list[str] = field(default_factory=list)
    """Why the rig was the bottleneck (empty: it was not)."""
    timing: list[str] = field(default_factory=list)
    """What distorted the step's timing though the rig was not the bottleneck."""
    first_error: str = ""
    call_dirs: list[str] = field(default_factory=list)
    store: ScoreStore | None = field(default=None, repr=False, compare=False)

    @property
    def failed_gates(self) -> list[GateResult]:
        return [g for g in self.gates if g.failed]

    def set_latency(self, store: ScoreStore) -> None:
        dist = store.select(LATENCY_METRIC)
        self.latency_n = dist.count
        self.p50_ms = dist.quantile(0.5)
        self.p90_ms = dist.quantile(0.9)
        self.p99_ms = dist.quantile(0.99)

    def to_dict(self) -> dict[str, Any]:
        return {
            "concurrency": self.concurrency,
            "calls": self.calls,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "duration_s": round(self.duration_s, 3),
            "latency": {
                "metric": LATENCY_METRIC,
                "n": self.latency_n,
                "p50_ms": _finite(self.p50_ms, 1),
                "p90_ms": _finite(self.p90_ms, 1),
                "p99_ms": _finite(self.p99_ms, 1),
            },
            "gates": [g.to_dict() for g in self.gates],
            "harness": self.cost.to_dict(),
            "harness_limited": list(self.harness_limited),
            "timing": list(self.timing),
            "first_error": self.first_error,
            "call_dirs": list(self.call_dirs),
            "scores": self.store.to_dict() if self.store is not None else None,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StepResult:
        """Read :meth:`to_dict` back; the step's scores only when they read cleanly (a
        ValueError names what is wrong with the rest)."""
        lat = d.get("latency") if isinstance(d.get("latency"), Mapping) else {}
        store = None
        if isinstance(d.get("scores"), Mapping):
            try:
                store = ScoreStore.from_dict(d["scores"])
            except (KeyError, TypeError, ValueError):
                store = None
        return cls(
            concurrency=int(d["concurrency"]),
            calls=int(d.get("calls") or 0),
            passed=int(d.get("passed") or 0),
            failed=int(d.get("failed") or 0),
            errors=int(d.get("errors") or 0),
            duration_s=_num(d.get("duration_s")) or 0.0,
            latency_n=int(lat.get("n") or 0),
            p50_ms=_num(lat.get("p50_ms")),
            p90_ms=_num(lat.get("p90_ms")),
            p99_ms=_num(lat.get("p99_ms")),
            gates=[GateResult.from_dict(g) for g in d.get("gates") or [] if isinstance(g, Mapping)],
            cost=HarnessCost.from_dict(d.get("harness") or {}),
            harness_limited=[str(x) for x in d.get("harness_limited") or []],
            timing=[str(x) for x in d.get("timing") or []],
            first_error=str(d.get("first_error") or ""),
            call_dirs=[str(x) for x in d.get("call_dirs") or []],
            store=store,
        )


def steps_from_dicts(items: Sequence[Any]) -> list[StepResult]:
    return [StepResult.from_dict(x) for x in items if isinstance(x, Mapping)]


def _finite(v: float | None, digits: int = 6) -> float | None:
    if v is None or not math.isfinite(v):
        return None
    return round(v, digits)


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v)
