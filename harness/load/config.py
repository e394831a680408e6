"""A load test's settings: the ramp of concurrency levels, how long each step lasts, what
counts as the knee, and when the harness itself is the bottleneck."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from harness.core.errors import ScenarioError

__all__ = [
    "DEFAULT_KNEE_FACTOR",
    "DEFAULT_RAMP",
    "DEFAULT_STEP_S",
    "LoadConfig",
    "RigLimits",
    "parse_duration",
    "parse_ramp",
]

DEFAULT_RAMP = (1, 2, 4, 8, 16)
DEFAULT_STEP_S = 120.0
DEFAULT_KNEE_FACTOR = 2.0
MAX_CONCURRENCY = 1000


def parse_ramp(text: str | Any, *, option: str = "--ramp") -> tuple[int, ...]:
    """``1,2,4,8`` -> (1, 2, 4, 8): positive, strictly increasing concurrency levels. A list
    of integers is taken as it is (a pytest marker's ``ramp=[1, 2, 4]``)."""
    if isinstance(text, (list, tuple)):
        items = [str(x) for x in text]
    elif isinstance(text, str):
        items = [p.strip() for p in text.split(",") if p.strip()]
    else:
        raise ScenarioError(f"{option} {text!r}: write concurrency levels, e.g. 1,2,4,8")
    if not items:
        raise ScenarioError(f"{option} {text!r}: write concurrency levels, e.g. 1,2,4,8")
    levels = []
    for item in items:
        if not item.isdigit() or int(item) < 1:
            raise ScenarioError(
                f"{option} {text!r}: {item!r} is not a concurrency level (a whole number >= 1)"
            )
        levels.append(int(item))
    if any(b <= a for a, b in itertools.pairwise(levels)):
        raise ScenarioError(f"{option} {text!r}: the levels must increase, e.g. 1,2,4,8")
    if levels[-1] > MAX_CONCURRENCY:
        raise ScenarioError(f"{option} {text!r}: at most {MAX_CONCURRENCY} calls at once")
    return tuple(levels)


def parse_duration(text: str | float | int, *, option: str = "--step-duration") -> float:
    """``2m``, ``90s``, ``1m30s`` or a number of seconds -> seconds (> 0)."""
    from harness.gates.model import duration_seconds

    if isinstance(text, bool):
        raise ScenarioError(f"{option} {text!r}: write a duration, e.g. 2m or 90s")
    if isinstance(text, (int, float)):
        seconds = float(text)
    else:
        value = text.strip()
        try:
            seconds = float(value) if value.replace(".", "", 1).isdigit() else None
        except ValueError:
            seconds = None
        if seconds is None:
            try:
                seconds = duration_seconds(value)
            except ValueError:
                raise ScenarioError(
                    f"{option} {text!r}: write a duration, e.g. 2m, 90s or 1m30s"
                ) from None
    if not math.isfinite(seconds) or seconds <= 0:
        raise ScenarioError(f"{option} {text!r}: must be longer than zero")
    return seconds


@dataclass(frozen=True)
class RigLimits:
    """When a step is *harness-limited*: the rig, not the agent, could not keep up, so the
    step's figures say nothing about the agent.

    - any caller frame underrun (the caller's speech had gaps the agent heard);
    - the calls' event loop woke up late: its lag's 99th percentile over ``max_loop_lag_ms``
      (every reply the caller times is late by as much);
    - the loop thread that runs every caller was busy more than ``max_loop_busy`` of the
      time (one more call and it falls behind);
    - the host was saturated (CPU pressure over ``max_host_pressure``) and the caller side
      used at least ``min_rig_share`` of the CPU the host spent.
    """

    max_loop_lag_ms: float = 50.0
    max_loop_busy: float = 0.85
    max_host_pressure: float = 0.5
    min_rig_share: float = 0.5

    def __post_init__(self) -> None:
        for name in ("max_loop_lag_ms", "max_loop_busy", "max_host_pressure", "min_rig_share"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                raise ValueError(f"{name}={v!r}: a positive number")
        for name in ("max_loop_busy", "max_host_pressure", "min_rig_share"):
            if getattr(self, name) > 1:
                raise ValueError(f"{name}={getattr(self, name)!r}: a share, at most 1")


@dataclass(frozen=True)
class LoadConfig:
    """``ramp``: concurrency levels, one step each; ``step_s``: how long each step keeps
    that many calls going (a call started before the end runs to its end); ``knee_factor``:
    the knee is the first step where a gate fails or the p90 response latency exceeds this
    multiple of the first step's; ``stop_at_knee``: no step after the knee."""

    ramp: tuple[int, ...] = DEFAULT_RAMP
    step_s: float = DEFAULT_STEP_S
    knee_factor: float = DEFAULT_KNEE_FACTOR
    stop_at_knee: bool = True
    limits: RigLimits = field(default_factory=RigLimits)
    stagger_s: float = 1.0
    """At the start of a step, calls start this far apart (at most), so greetings do not
    all land at once."""

    def __post_init__(self) -> None:
        if not self.ramp:
            raise ValueError("ramp: at least one concurrency level")
        parse_ramp(list(self.ramp), option="ramp")
        if not math.isfinite(self.step_s) or self.step_s <= 0:
            raise ValueError(f"step_s={self.step_s!r}: must be longer than zero")
        if not math.isfinite(self.knee_factor) or self.knee_factor <= 1:
            raise ValueError(
                f"knee_factor={self.knee_factor!r}: a multiple of step 1's p90 above 1, e.g. 2"
            )
        if not math.isfinite(self.stagger_s) or self.stagger_s < 0:
            raise ValueError(f"stagger_s={self.stagger_s!r}: zero or more seconds")

    @property
    def max_concurrency(self) -> int:
        return self.ramp[-1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "ramp": list(self.ramp),
            "step_s": self.step_s,
            "knee_factor": self.knee_factor,
            "stop_at_knee": self.stop_at_knee,
            "limits": {
                "max_loop_lag_ms": self.limits.max_loop_lag_ms,
                "max_loop_busy": self.limits.max_loop_busy,
                "max_host_pressure": self.limits.max_host_pressure,
                "min_rig_share": self.limits.min_rig_share,
            },
        }


LOAD_SETTINGS = ("ramp", "step_duration", "knee_factor", "keep_going")
"""The settings a pytest marker, the command line or the ini may give a load test."""


def resolve_load_config(*sources: dict[str, Any] | None) -> LoadConfig:
    """A :class:`LoadConfig` from settings given in order of precedence (first wins: a
    pytest marker's keywords, then the command line, then the ini), each a dict of
    :data:`LOAD_SETTINGS` (None or a missing key: not given there). Unknown keys are
    errors naming the known ones."""
    merged: dict[str, Any] = {}
    for source in sources:
        for key, value in (source or {}).items():
            if key not in LOAD_SETTINGS:
                raise ScenarioError(
                    f"load setting {key!r} is unknown: use {', '.join(LOAD_SETTINGS)}"
                )
            if value is not None and key not in merged:
                merged[key] = value
    kw: dict[str, Any] = {}
    if "ramp" in merged:
        kw["ramp"] = parse_ramp(merged["ramp"], option="ramp")
    if "step_duration" in merged:
        kw["step_s"] = parse_duration(merged["step_duration"], option="step_duration")
    if "knee_factor" in merged:
        try:
            kw["knee_factor"] = float(merged["knee_factor"])
        except (TypeError, ValueError):
            raise ScenarioError(
                f"knee_factor {merged['knee_factor']!r}: a number above 1, e.g. 2"
            ) from None
    if "keep_going" in merged:
        value = merged["keep_going"]
        kw["stop_at_knee"] = not (value is True or str(value).lower() in ("1", "true", "yes"))
    try:
        return LoadConfig(**kw)
    except ValueError as e:
        raise ScenarioError(str(e)) from None
