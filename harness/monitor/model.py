"""The records the monitor's steps hand each other: a scored call, an infrastructure
failure, an incident candidate, a window and an alert event."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.evaluators.base import Score
from harness.trace.validate import DataError

__all__ = [
    "SOURCES",
    "AlertEvent",
    "CallRecord",
    "Candidate",
    "GateState",
    "InfraFailure",
    "Source",
    "WindowSpec",
]

Source = Literal["synthetic", "production"]
SOURCES: tuple[Source, ...] = ("synthetic", "production")

GateState = Literal["ok", "degraded", "failing", "no_data"]
"""A gate's state over one window: pass → ok, warn → degraded, fail → failing; too few
samples, or a monitor that stopped feeding the window, is ``no_data`` (never ok)."""


@dataclass(frozen=True)
class CallRecord:
    """One completed, scored call: what the store keeps and the windows read.

    ``passed`` is the call's own verdict: its scenario's expectations for a synthetic call,
    the per-call conditions (:mod:`harness.monitor.ingest`) for a production one.
    ``ended_at`` is epoch seconds. ``cycle`` is the scheduled slot (epoch seconds) of the
    synthetic cycle that placed the call; None for production calls.
    """

    conversation_id: str
    source: Source
    ended_at: float
    scores: tuple[Score, ...]
    passed: bool
    scenario: str | None = None
    cycle: float | None = None
    agent_version: str | None = None
    environment: str | None = None
    failures: tuple[str, ...] = ()
    artifacts: str | None = None
    traced: bool = True
    data_errors: tuple[DataError, ...] = ()
    """What the call's Instance quarantined as impossible: its window's gates on the
    metrics they touch fail."""


@dataclass(frozen=True)
class InfraFailure:
    """The monitor could not place a call: the server was unreachable, the agent never
    joined, the receiver was down. Counted apart; never a quality regression."""

    at: float
    kind: str  # "server_unreachable", "agent_not_joined", "other"
    detail: str
    scenario: str | None = None
    cycle: float | None = None


@dataclass(frozen=True)
class Candidate:
    """A production call that failed a per-call condition: an incident to import."""

    id: str  # the conversation id
    at: float
    reasons: tuple[str, ...]
    trace_path: str
    scores_path: str | None = None


@dataclass(frozen=True)
class WindowSpec:
    """A rolling window: ``name`` such as ``15m``, its length in seconds."""

    name: str
    seconds: float


@dataclass(frozen=True)
class AlertEvent:
    """One notification: a gate (or the monitor itself) starting to fire, firing again
    after ``repeat_interval``, or resolving.

    ``key`` identifies the alert across restarts (gate, window and labels); ``labels``
    are what Alertmanager groups and routes on; ``value`` is the statistic as people read
    it, with ``ci`` and ``n`` beside it; ``failed_calls`` are (conversation id, artifacts
    path) of the window's failed calls.
    """

    key: str
    status: Literal["firing", "resolved"]
    alertname: str
    severity: Literal["warning", "critical"]
    summary: str
    labels: Mapping[str, str]
    starts_at: float
    ends_at: float | None = None
    gate: str | None = None
    window: str | None = None
    state: GateState | None = None
    value: str | None = None
    ci: str | None = None
    n: int | None = None
    failed_calls: tuple[tuple[str, str | None], ...] = ()
    runbook_url: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "status": self.status,
            "alertname": self.alertname,
            "severity": self.severity,
            "summary": self.summary,
            "labels": dict(self.labels),
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "gate": self.gate,
            "window": self.window,
            "state": self.state,
            "value": self.value,
            "ci": self.ci,
            "n": self.n,
            "failed_calls": [
                {"conversation_id": cid, "artifacts": path} for cid, path in self.failed_calls
            ],
            "runbook_url": self.runbook_url,
            "annotations": dict(self.annotations),
        }
