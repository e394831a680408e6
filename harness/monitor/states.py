"""Gate states and the alert state machine that turns them into notifications.

:func:`state_of` maps a window's :class:`~harness.gates.verdict.Verdict` to a
:data:`~harness.monitor.model.GateState`. :class:`AlertTracker` follows one alert per key
(a gate over a window and its labels, or the monitor itself) through the states
*inactive* → *pending* → *firing* → *inactive*, with Alertmanager's rules:

- a bad state (``degraded`` or ``failing``) fires only once it has held for the policy's
  ``for_s`` (0: at once); before that the alert is pending, and ``ok`` while pending sends
  nothing;
- a firing alert notifies again only after ``repeat_interval_s`` since its last
  notification, except for an escalation (``degraded`` → ``failing``), which notifies at
  once; a de-escalation waits for the next repeat, which carries the lower severity;
- ``ok`` resolves a firing alert with exactly one ``resolved`` event (same key, alertname,
  labels and ``starts_at``; ``ends_at`` = now);
- ``no_data`` changes nothing: it neither fires nor resolves, a pending timer keeps running
  (a bad state seen after the gap fires if the episode began ``for_s`` ago) and a firing
  alert stays firing without repeats. With ``no_data_for_s`` set, ``no_data`` held that long
  fires a separate ``<alertname>NoData`` alert (severity ``warning``, key ``<key>:no_data``),
  resolved when data returns.

``starts_at`` of an alert is when its condition began (the start of the pending period), as
Prometheus reports ``activeAt``. The tracker's state is JSON-serialisable
(:meth:`AlertTracker.to_dict` / :meth:`AlertTracker.from_dict`), so a restarted monitor
neither re-sends a firing alert nor loses a pending timer.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from harness.gates.verdict import Verdict, format_value
from harness.monitor.model import AlertEvent, GateState

__all__ = [
    "INFRASTRUCTURE_ALERTNAME",
    "INFRASTRUCTURE_KEY",
    "AlertContent",
    "AlertPolicy",
    "AlertTracker",
    "Phase",
    "event_from_dict",
    "gate_alertname",
    "gate_content",
    "gate_key",
    "infrastructure_content",
    "severity_of",
    "state_of",
]

Phase = Literal["inactive", "pending", "firing"]
Severity = Literal["warning", "critical"]

INFRASTRUCTURE_KEY = "monitor:infrastructure"
INFRASTRUCTURE_ALERTNAME = "HarnessMonitorCannotReachAgent"
NO_DATA_SUFFIX = "NoData"

_STATE_OF_STATUS: dict[str, GateState] = {
    "pass": "ok",
    "warn": "degraded",
    "fail": "failing",
    "insufficient": "no_data",
}
_SEVERITY: dict[str, Severity] = {"degraded": "warning", "failing": "critical"}
_RANK: dict[str, int] = {"warning": 1, "critical": 2}
_STATE_VERSION = 1


def state_of(verdict: Verdict | None, *, stale: bool = False) -> GateState:
    """A verdict's state: pass → ok, warn → degraded, fail → failing; no verdict, too few
    samples, or a ``stale`` window (the monitor stopped feeding it) → ``no_data``."""
    if verdict is None or stale:
        return "no_data"
    return _STATE_OF_STATUS.get(verdict.status, "no_data")


def severity_of(state: GateState) -> Severity | None:
    """``warning`` for degraded, ``critical`` for failing, None for ok and no_data."""
    return _SEVERITY.get(state)


@dataclass(frozen=True)
class AlertPolicy:
    """How long a bad state must hold before it fires (``for_s``, 0 = at once), how often a
    firing alert is re-sent (``repeat_interval_s``), and how long ``no_data`` must hold
    before it fires its own alert (``no_data_for_s``; None = never)."""

    for_s: float = 0.0
    repeat_interval_s: float = 4 * 3600.0
    no_data_for_s: float | None = None

    def __post_init__(self) -> None:
        if self.for_s < 0 or self.repeat_interval_s < 0:
            raise ValueError("AlertPolicy: for_s and repeat_interval_s must be >= 0")
        if self.no_data_for_s is not None and self.no_data_for_s < 0:
            raise ValueError("AlertPolicy: no_data_for_s must be >= 0 (or None)")


@dataclass(frozen=True)
class AlertContent:
    """What an alert says now, supplied by the caller on every update: the tracker adds the
    key, status, severity, state and times. ``labels`` are extra routing labels (such as
    ``source``); ``failed_calls`` are (conversation id, artifacts path)."""

    alertname: str
    summary: str
    labels: Mapping[str, str] = field(default_factory=dict)
    gate: str | None = None
    window: str | None = None
    value: str | None = None
    ci: str | None = None
    n: int | None = None
    failed_calls: tuple[tuple[str, str | None], ...] = ()
    runbook_url: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict)


# --- content builders ---------------------------------------------------------------------


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", name) if p)


def gate_alertname(gate_name: str) -> str:
    """``e2e_latency_p90`` → ``HarnessE2eLatencyP90``."""
    return f"Harness{_camel(gate_name)}"


def gate_key(gate_name: str, window: str, labels: Mapping[str, str] | None = None) -> str:
    """The tracker key of a gate over a window: ``gate:<name>:<window>`` and the sorted
    labels, e.g. ``gate:e2e_latency_p90:15m,source=production``."""
    extra = "".join(f",{k}={v}" for k, v in sorted((labels or {}).items()))
    return f"gate:{gate_name}:{window}{extra}"


def gate_content(
    verdict: Verdict,
    window: str,
    *,
    labels: Mapping[str, str] | None = None,
    failed_calls: Iterable[tuple[str, str | None]] = (),
) -> AlertContent:
    """What a gate's alert says over ``window``: its statistic (``p90 4.6 s``), the 95 % CI
    (``[4.1 s, 5.2 s]``), ``n``, the verdict's detail, and the gate's runbook."""
    gate = verdict.gate
    value = (
        f"{gate.statistic} {format_value(verdict.value, verdict.unit)}"
        if verdict.value is not None
        else None
    )
    ci = None
    if verdict.ci is not None:
        lo, hi = (format_value(x, verdict.unit) for x in verdict.ci)
        ci = f"[{lo}, {hi}]"
    description = getattr(gate, "description", "") or ""
    return AlertContent(
        alertname=gate_alertname(gate.name),
        summary=f"{gate.name} ({window} window): {verdict.detail}",
        labels=dict(labels or {}),
        gate=gate.name,
        window=window,
        value=value,
        ci=ci,
        n=verdict.n,
        failed_calls=tuple(failed_calls),
        runbook_url=getattr(gate, "runbook_url", None),
        annotations={"description": description} if description else {},
    )


def infrastructure_content(
    detail: str = "", *, labels: Mapping[str, str] | None = None, runbook_url: str | None = None
) -> AlertContent:
    """What the monitor's own "cannot reach the agent" alert says."""
    summary = "The harness monitor cannot reach the agent"
    return AlertContent(
        alertname=INFRASTRUCTURE_ALERTNAME,
        summary=f"{summary}: {detail}" if detail else summary,
        labels=dict(labels or {}),
        runbook_url=runbook_url,
        annotations={
            "description": (
                "Synthetic calls cannot be placed (server unreachable, agent not joining). "
                "This is not a quality regression, but no synthetic quality data arrives."
            )
        },
    )


def _duration_text(seconds: float) -> str:
    """``900`` → ``15m``; ``5400`` → ``1h30m``; ``45`` → ``45s``."""
    s = round(seconds)
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if s >= size:
            parts.append(f"{s // size}{unit}")
            s %= size
    return "".join(parts) or "0s"


# --- serialisation --------------------------------------------------------------------------


def event_from_dict(data: Mapping[str, Any]) -> AlertEvent:
    """The inverse of :meth:`AlertEvent.to_dict`."""
    return AlertEvent(
        key=data["key"],
        status=data["status"],
        alertname=data["alertname"],
        severity=data["severity"],
        summary=data["summary"],
        labels=dict(data.get("labels") or {}),
        starts_at=float(data["starts_at"]),
        ends_at=None if data.get("ends_at") is None else float(data["ends_at"]),
        gate=data.get("gate"),
        window=data.get("window"),
        state=data.get("state"),
        value=data.get("value"),
        ci=data.get("ci"),
        n=data.get("n"),
        failed_calls=tuple(
            (c["conversation_id"], c.get("artifacts")) for c in data.get("failed_calls") or ()
        ),
        runbook_url=data.get("runbook_url"),
        annotations=dict(data.get("annotations") or {}),
    )


# --- the state machine ------------------------------------------------------------------------


@dataclass(frozen=True)
class _Track:
    """One alert's state: ``since`` is when the current bad episode began (pending or
    firing), ``last_sent`` the last notification, ``event`` the firing alert as last sent
    (with its content refreshed on every bad update)."""

    phase: Phase = "inactive"
    since: float | None = None
    last_sent: float | None = None
    event: AlertEvent | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "phase": self.phase,
            "since": self.since,
            "last_sent": self.last_sent,
            "event": self.event.to_dict() if self.event is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> _Track:
        event = data.get("event")
        return cls(
            phase=data["phase"],
            since=data.get("since"),
            last_sent=data.get("last_sent"),
            event=event_from_dict(event) if event else None,
        )


_IDLE = _Track()


def _event(
    key: str,
    status: Literal["firing", "resolved"],
    severity: Severity,
    state: GateState,
    starts_at: float,
    content: AlertContent,
) -> AlertEvent:
    return AlertEvent(
        key=key,
        status=status,
        alertname=content.alertname,
        severity=severity,
        summary=content.summary,
        labels=dict(content.labels),
        starts_at=starts_at,
        gate=content.gate,
        window=content.window,
        state=state,
        value=content.value,
        ci=content.ci,
        n=content.n,
        failed_calls=content.failed_calls,
        runbook_url=content.runbook_url,
        annotations=dict(content.annotations),
    )


def _refresh(event: AlertEvent, state: GateState, content: AlertContent) -> AlertEvent:
    """``event`` with today's content; its identity (key, alertname, labels, severity,
    starts_at) unchanged."""
    return replace(
        event,
        summary=content.summary,
        state=state,
        value=content.value,
        ci=content.ci,
        n=content.n,
        failed_calls=content.failed_calls,
        runbook_url=content.runbook_url or event.runbook_url,
        annotations={**event.annotations, **content.annotations},
    )


def _step(
    track: _Track,
    key: str,
    signal: Literal["bad", "ok", "hold"],
    state: GateState,
    severity: Severity,
    now: float,
    for_s: float,
    repeat_s: float,
    content: AlertContent,
) -> tuple[_Track, list[AlertEvent]]:
    """One update of one alert: ``bad`` (with ``severity``), ``ok`` or ``hold`` (no data:
    keep everything as is)."""
    if signal == "hold":
        return track, []
    if signal == "ok":
        if track.phase == "firing" and track.event is not None:
            resolved = replace(
                _refresh(track.event, state, content), status="resolved", ends_at=now
            )
            return _IDLE, [resolved]
        return _IDLE, []
    # bad
    if track.phase == "inactive":
        track = _Track(phase="pending", since=now)
    if track.phase == "pending":
        assert track.since is not None
        if now - track.since < for_s:
            return track, []
        event = _event(key, "firing", severity, state, track.since, content)
        return _Track("firing", track.since, now, event), [event]
    # firing
    assert track.event is not None and track.last_sent is not None
    current = _refresh(track.event, state, content)
    escalation = _RANK[severity] > _RANK[track.event.severity]
    if escalation or now - track.last_sent >= repeat_s:
        current = replace(current, severity=severity)
        return replace(track, last_sent=now, event=current), [current]
    return replace(track, event=current), []


class AlertTracker:
    """Every alert's state, by key. Not thread-safe: one monitor loop drives it."""

    def __init__(self) -> None:
        self._tracks: dict[str, _Track] = {}

    def update(
        self,
        key: str,
        state: GateState,
        now: float,
        policy: AlertPolicy,
        content: AlertContent | None = None,
        **fields: Any,
    ) -> list[AlertEvent]:
        """Feed ``state`` at time ``now`` (epoch seconds, non-decreasing per key); the
        notifications it causes (the quality alert first, then its NoData alert).

        What the events say is ``content``, or :class:`AlertContent` fields given as
        keywords (``alertname=..., summary=..., labels=...``), or ``content`` with the
        keywords replacing its fields. Raises TypeError for an unknown field."""
        if content is None:
            content = AlertContent(**fields)
        elif fields:
            content = replace(content, **fields)
        if not isinstance(content.failed_calls, tuple):
            content = replace(content, failed_calls=tuple(content.failed_calls))
        events: list[AlertEvent] = []
        severity = severity_of(state)
        if state == "no_data":
            signal: Literal["bad", "ok", "hold"] = "hold"
        elif severity is not None:
            signal = "bad"
        else:
            signal = "ok"
        track, out = _step(
            self._tracks.get(key, _IDLE),
            key,
            signal,
            state,
            severity or "warning",
            now,
            policy.for_s,
            policy.repeat_interval_s,
            content,
        )
        self._store(key, track)
        events += out

        nd_key = f"{key}:no_data"
        nd_track = self._tracks.get(nd_key, _IDLE)
        if policy.no_data_for_s is not None or nd_track.phase != "inactive":
            nd_content = self._no_data_content(content, state, policy)
            nd_track, out = _step(
                nd_track,
                nd_key,
                "bad" if state == "no_data" else "ok",
                state,
                "warning",
                now,
                policy.no_data_for_s if policy.no_data_for_s is not None else 0.0,
                policy.repeat_interval_s,
                nd_content,
            )
            if policy.no_data_for_s is None and nd_track.phase == "pending":
                nd_track = _IDLE  # the policy no longer asks for no-data alerts
            self._store(nd_key, nd_track)
            events += out
        return events

    def update_infrastructure(
        self,
        reachable: bool,
        now: float,
        policy: AlertPolicy,
        *,
        detail: str = "",
        content: AlertContent | None = None,
    ) -> list[AlertEvent]:
        """The monitor's own alert (key :data:`INFRASTRUCTURE_KEY`): "cannot reach the
        agent" is ``failing``, reachable is ``ok``, with the same for/repeat/resolve rules."""
        return self.update(
            INFRASTRUCTURE_KEY,
            "ok" if reachable else "failing",
            now,
            policy,
            content or infrastructure_content(detail),
        )

    def retire(
        self, key: str, now: float, summary: str = "no longer monitored"
    ) -> list[AlertEvent]:
        """Forget ``key`` (a gate removed from the gates file): resolves its alerts that fire."""
        events = []
        for k in (key, f"{key}:no_data"):
            track = self._tracks.pop(k, _IDLE)
            if track.phase == "firing" and track.event is not None:
                ev = track.event
                events.append(
                    replace(ev, status="resolved", ends_at=now, summary=f"{ev.summary} ({summary})")
                )
        return events

    def phase(self, key: str) -> Phase:
        """``inactive``, ``pending`` or ``firing``."""
        return self._tracks.get(key, _IDLE).phase

    def firing(self) -> list[AlertEvent]:
        """Every alert that fires now, with its latest content (what the runner re-sends
        to Alertmanager every cycle)."""
        return [
            t.event for t in self._tracks.values() if t.phase == "firing" and t.event is not None
        ]

    def keys(self) -> list[str]:
        """The keys with a pending or firing alert."""
        return list(self._tracks)

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable state, for :meth:`from_dict` after a restart."""
        return {
            "version": _STATE_VERSION,
            "alerts": {k: t.to_dict() for k, t in self._tracks.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AlertTracker:
        """The tracker :meth:`to_dict` saved (an empty mapping: a fresh tracker). Raises
        ValueError for another version."""
        if not data:
            return cls()
        if data.get("version") != _STATE_VERSION:
            raise ValueError(f"alert state version {data.get('version')!r} is not {_STATE_VERSION}")
        tracker = cls()
        for key, body in (data.get("alerts") or {}).items():
            tracker._store(key, _Track.from_dict(body))
        return tracker

    def _store(self, key: str, track: _Track) -> None:
        if track.phase == "inactive":
            self._tracks.pop(key, None)
        else:
            self._tracks[key] = track

    @staticmethod
    def _no_data_content(
        content: AlertContent, state: GateState, policy: AlertPolicy
    ) -> AlertContent:
        what = content.gate or content.alertname
        where = f" ({content.window} window)" if content.window else ""
        if state == "no_data":
            held = _duration_text(policy.no_data_for_s or 0.0)
            summary = f"{what}{where}: no data for {held}: {content.summary}"
        else:
            summary = f"{what}{where}: data again: {content.summary}"
        return replace(content, alertname=content.alertname + NO_DATA_SUFFIX, summary=summary)
