"""The monitor's ``/metrics``: scores, gate windows and the monitor's own health, in the
Prometheus text exposition format (through ``prometheus_client``, on a registry of its own).

Every series the rules of ``harness gates export --prometheus`` select is here, by the
naming scheme of :mod:`harness.gates.prometheus` (:func:`~harness.gates.prometheus.
prometheus_series`). Absent labels are empty strings.

**Scores** (one sample per Score of each observed call):

``harness_<metric>_seconds`` histogram (unit ``ms`` or ``s``), ``harness_<metric>_ratio``
(``ratio``), ``harness_<metric>`` (``count``), ``harness_<metric>_<unit>`` (anything else)
    labels ``scenario, layer, span, source, agent_version, environment``; the Score's value,
    milliseconds as seconds. ``source`` is ``synthetic`` or ``production``.
``harness_<metric>_total`` counter (unit ``bool``)
    the same labels and ``outcome="true"|"false"`` (true: a non-zero value); +1 per Score.
``harness_calls_total`` counter
    ``scenario, source, agent_version, environment, outcome="pass"|"fail"``: one per call,
    by the call's own verdict (:attr:`~harness.monitor.model.CallRecord.passed`).
``harness_monitor_scores_dropped_total`` counter
    ``reason``: Scores not exported because their series name is taken by a series of
    another kind (``kind_mismatch``), of another unit (``unit_mismatch``, e.g. a ``count``
    Score ``x_seconds`` against an ``ms`` Score ``x``), or by another metric's samples
    (``name_collision``).

**Histogram buckets** are chosen per unit for voice calls: seconds 0.05 … 60 (sub-second
LLM and TTS latencies up to minute-long workflows), ratios 0 … 1 (0.05 and 0.08: the WER
gates), counts 0 … 55 (Fibonacci), anything else the client's default. Every gate threshold
(warn and fail, in the series' unit) is added as a boundary. ``histogram_quantile``
interpolates linearly inside a bucket, so a quantile is only exact at a boundary; with the
threshold a boundary, "is p90 above 3.5 s" is answered by counting the observations at or
below 3.5 s, the same question the gate asks of its samples, and not by an interpolation
between, say, 3 s and 4 s. Buckets are fixed when a series is registered: from the gates at
construction (negative thresholds excepted: a histogram with a negative bucket has no
``_sum`` in ``prometheus_client``, and ``mean`` rules need it).

Every gate's series is created at construction with the gate's ``layer``/``span`` labels
for both sources (and both ``outcome`` values of a counter) at zero, so ``/metrics`` names
every metric a rule uses before the first call.

**Windows** (set by the monitor after each evaluation of a rolling window):

``harness_gate_value`` gauge
    ``gate, window, source, statistic, agent_version, environment``: the gate's statistic
    over the window, scaled like its series (seconds for ``ms``); NaN without samples.
``harness_gate_ci_low``, ``harness_gate_ci_high`` gauges
    the same labels: the statistic's 95 % confidence interval; NaN for an unbounded end.
``harness_gate_samples`` gauge
    the same labels: the number of samples the verdict rests on.
``harness_gate_quantile`` gauge
    the same labels and ``quantile="0.5"|"0.9"|"0.95"|"0.99"``: the window's quantiles as
    the gate computed them (the merged sketches, not a bucket interpolation).
``harness_gate_state`` gauge
    ``gate, window, source, state``: 1 for the current state (``ok``, ``degraded``,
    ``failing``, ``no_data``), 0 for the other three.
``harness_window_<metric>_per_call`` gauges
    ``layer, window, source``: a per-call rate over the window, e.g.
    ``harness_window_mutating_actions_per_call`` and
    ``harness_window_unapproved_mutations_per_call`` (risk per agent layer).

**The monitor itself:**

``harness_monitor_heartbeat_timestamp_seconds`` gauge
    epoch seconds of the monitor loop's last heartbeat (set at construction too); see
    :func:`dead_mans_switch_rule`.
``harness_monitor_last_cycle_timestamp_seconds`` gauge, ``status``
    epoch seconds of the last synthetic cycle that ended with that status.
``harness_monitor_cycles_total`` counter, ``status``
    synthetic cycles by how they ended.
``harness_monitor_infrastructure_failures_total`` counter, ``kind``
    calls the monitor could not place (``server_unreachable``, ``agent_not_joined``,
    ``other``): never a quality regression, counted apart.
``harness_monitor_up`` gauge
    1 while the monitor can reach the agent, 0 otherwise, and 0 until it is first told
    (unknown is not up); see :func:`infrastructure_rule`.
``harness_monitor_alert_deliveries_total`` counter, ``channel, result``
    notifications sent (``result="ok"``) or failed (``result="failed"``) per channel.

Counters and histograms also expose ``prometheus_client``'s ``_created`` samples (set
``PROMETHEUS_DISABLE_CREATED_SERIES=true`` to drop them).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, get_args

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import start_http_server

from harness.gates.model import QUANTILES, Gate, GatesConfig, GatesFileError
from harness.gates.prometheus import (
    PromSeries,
    _unit_of,
    dead_mans_switch_rule,
    infrastructure_rule,
    prometheus_series,
)
from harness.monitor.model import SOURCES, CallRecord, GateState, InfraFailure

if TYPE_CHECKING:
    from harness.gates.verdict import Verdict

__all__ = [
    "COUNT_BUCKETS",
    "RATIO_BUCKETS",
    "SECONDS_BUCKETS",
    "MetricsServer",
    "MonitorMetrics",
    "dead_mans_switch_rule",
    "histogram_buckets",
    "infrastructure_rule",
]

SECONDS_BUCKETS: tuple[float, ...] = (
    0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 2.5, 3, 3.5, 4, 5, 6, 8, 10, 15, 30, 60,
)  # fmt: skip
RATIO_BUCKETS: tuple[float, ...] = (0, 0.01, 0.02, 0.05, 0.08, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1)
COUNT_BUCKETS: tuple[float, ...] = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55)
_DEFAULT_BUCKETS: tuple[float, ...] = tuple(b for b in Histogram.DEFAULT_BUCKETS if b != math.inf)

SCORE_LABELS = ("scenario", "layer", "span", "source", "agent_version", "environment")
CALL_LABELS = ("scenario", "source", "agent_version", "environment")
GATE_LABELS = ("gate", "window", "source", "statistic", "agent_version", "environment")
STATES: tuple[str, ...] = get_args(GateState)
DROP_REASONS = ("kind_mismatch", "unit_mismatch", "name_collision")
INFRA_KINDS = ("server_unreachable", "agent_not_joined", "other")
_QUANTILE_LABEL = {k: format(q, "g") for k, q in QUANTILES.items()}


def _unit_key(unit: str) -> str:
    """What a series holds: ``ms`` and ``s`` Scores both fill a seconds series."""
    return "seconds" if unit in ("ms", "s") else unit


def _scaled(value: float, scale: float) -> float:
    """``value * scale`` without the binary noise of the product (1200 * 0.001 is
    1.2000000000000002, which would land above a 1.2 s bucket boundary)."""
    return value if scale == 1.0 else float(f"{value * scale:.15g}")


def _threshold(value: float, scale: float) -> float:
    """A threshold as the exported rule writes it (``format(x, ".10g")``), so the bucket
    boundary is the very number the rule compares with."""
    return float(format(value * scale, ".10g"))


def histogram_buckets(unit: str, thresholds: Iterable[float] = ()) -> tuple[float, ...]:
    """The buckets of a histogram of ``unit`` (a Score unit), with ``thresholds`` (already
    in the series' unit) added; negative thresholds are left out (see the module doc)."""
    key = _unit_key(unit)
    base = {"seconds": SECONDS_BUCKETS, "ratio": RATIO_BUCKETS, "count": COUNT_BUCKETS}.get(
        key, _DEFAULT_BUCKETS
    )
    extra = (t for t in thresholds if math.isfinite(t) and t >= 0)
    return tuple(sorted({float(b) for b in base} | set(extra)))


def _gate_unit(gate: Gate, units: Mapping[str, str] | None) -> str | None:
    return _unit_of(gate, units)  # the unit the exported rules use


def _help(metric: str, unit: str) -> str:
    from harness.evaluators import metric_info

    info = metric_info(metric)
    text = info.description if info is not None and info.description else f"Score {metric}"
    return f"{text} (Score unit {unit}; see harness.monitor.metrics)"


def _nan(value: float | None, scale: float = 1.0) -> float:
    if value is None or not math.isfinite(value):
        return math.nan
    return _scaled(value, scale)


@dataclass(frozen=True)
class _Series:
    kind: str  # "histogram" or "counter"
    unit: str  # _unit_key of the Score unit
    metric: Histogram | Counter


class MetricsServer:
    """The HTTP server :meth:`MonitorMetrics.serve` started (a daemon thread)."""

    def __init__(self, httpd: object, thread: threading.Thread, host: str, port: int) -> None:
        self._httpd = httpd
        self._thread = thread
        self.host = host
        self.port = port
        self._closed = False

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        """Stop serving and release the port (idempotent)."""
        if self._closed:
            return
        self._closed = True
        self._httpd.shutdown()  # type: ignore[attr-defined]
        self._httpd.server_close()  # type: ignore[attr-defined]
        self._thread.join(timeout=5)

    def __enter__(self) -> MetricsServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class MonitorMetrics:
    """The monitor's metrics on a registry of their own (never the global one).

    ``gates`` fixes the histogram buckets (every threshold a boundary) and the series
    created up front; ``units`` gives the unit of a gate's metric that is neither built in
    nor set on the gate (as for :func:`~harness.gates.prometheus.prometheus_rules`).
    A gate whose unit is unknown gets its series, with its thresholds as boundaries, from
    its first Score. Two gates that map one series name to two kinds or units raise
    :class:`~harness.gates.model.GatesFileError`. Thread-safe.
    """

    def __init__(
        self,
        gates: GatesConfig | Iterable[Gate],
        *,
        registry: CollectorRegistry | None = None,
        units: Mapping[str, str] | None = None,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._lock = threading.Lock()
        self._series: dict[str, _Series] = {}
        self._rates: dict[str, Gauge] = {}
        self._servers: list[MetricsServer] = []
        self._gates = tuple(gates)
        self._units = dict(units or {})
        source = gates.source if isinstance(gates, GatesConfig) else None
        r = self.registry

        self._calls = Counter(
            "harness_calls", "Calls by their own verdict.", [*CALL_LABELS, "outcome"], registry=r
        )
        self._dropped = Counter(
            "harness_monitor_scores_dropped",
            "Scores not exported: their series name is taken by another kind, unit or metric.",
            ["reason"],
            registry=r,
        )
        self._heartbeat = Gauge(
            "harness_monitor_heartbeat_timestamp_seconds",
            "Epoch seconds of the monitor loop's last heartbeat.",
            registry=r,
        )
        self._last_cycle = Gauge(
            "harness_monitor_last_cycle_timestamp_seconds",
            "Epoch seconds of the last synthetic cycle that ended with this status.",
            ["status"],
            registry=r,
        )
        self._cycles = Counter(
            "harness_monitor_cycles", "Synthetic cycles by how they ended.", ["status"], registry=r
        )
        self._infra = Counter(
            "harness_monitor_infrastructure_failures",
            "Calls the monitor could not place, by kind (never a quality regression).",
            ["kind"],
            registry=r,
        )
        self._up = Gauge(
            "harness_monitor_up",
            "1 while the monitor can reach the agent, 0 otherwise (and until known).",
            registry=r,
        )
        self._deliveries = Counter(
            "harness_monitor_alert_deliveries",
            "Alert notifications by channel and result (ok, failed).",
            ["channel", "result"],
            registry=r,
        )
        self._gate_value = Gauge(
            "harness_gate_value", "A gate's statistic over a window.", GATE_LABELS, registry=r
        )
        self._gate_ci_low = Gauge(
            "harness_gate_ci_low", "Low end of the statistic's 95 % CI.", GATE_LABELS, registry=r
        )
        self._gate_ci_high = Gauge(
            "harness_gate_ci_high", "High end of the statistic's 95 % CI.", GATE_LABELS, registry=r
        )
        self._gate_samples = Gauge(
            "harness_gate_samples",
            "Samples the window's verdict rests on.",
            GATE_LABELS,
            registry=r,
        )
        self._gate_quantile = Gauge(
            "harness_gate_quantile",
            "The window's quantiles as the gate computed them (merged sketches).",
            [*GATE_LABELS, "quantile"],
            registry=r,
        )
        self._gate_state = Gauge(
            "harness_gate_state",
            "1 for the gate's current state over the window, 0 for the others.",
            ["gate", "window", "source", "state"],
            registry=r,
        )
        for reason in DROP_REASONS:
            self._dropped.labels(reason=reason)
        for kind in INFRA_KINDS:
            self._infra.labels(kind=kind)
        self._heartbeat.set(time.time())

        # thresholds per series (known unit) or per metric (unit known from its first Score)
        bounds: dict[str, set[float]] = {}
        kinds: dict[str, tuple[PromSeries, str, Gate]] = {}  # name -> (series, unit, gate)
        self._pending: dict[str, list[float]] = {}
        for gate in self._gates:
            limits = [t for t in (gate.warn, gate.fail) if t is not None]
            unit = _gate_unit(gate, self._units)
            if unit is None:
                self._pending.setdefault(gate.metric, []).extend(limits)
                continue
            series = prometheus_series(gate.metric, unit)
            seen = kinds.get(series.name)
            if seen is not None and (seen[0].kind, _unit_key(seen[1])) != (
                series.kind,
                _unit_key(unit),
            ):
                raise GatesFileError(
                    f"gates {seen[2].name!r} and {gate.name!r} both map to the Prometheus series "
                    f"{series.name} with different units ({seen[1]}, {unit})",
                    file=source,
                    field=f"gates.{gate.name}.unit",
                )
            kinds.setdefault(series.name, (series, unit, gate))
            scaled = (_threshold(t, series.scale) for t in limits)
            bounds.setdefault(series.name, set()).update(scaled)
        for name, (series, unit, gate) in kinds.items():
            try:
                self._register(gate.metric, series, unit, bounds[name])
            except ValueError:
                raise GatesFileError(
                    f"gate {gate.name!r}: the Prometheus series {series.name} clashes with "
                    "another of the monitor's metrics; rename the metric",
                    file=source,
                    field=f"gates.{gate.name}.metric",
                ) from None
        for gate in self._gates:
            unit = _gate_unit(gate, self._units)
            if unit is not None:
                self._precreate(gate, unit)

    # --- scores ----------------------------------------------------------------------------

    def _register(
        self, metric: str, series: PromSeries, unit: str, bounds: Iterable[float]
    ) -> _Series:
        """Register the series of Score ``metric`` (the caller holds the lock or is the
        constructor); raises ValueError if its samples' names are taken."""
        if series.kind == "counter":
            metric: Histogram | Counter = Counter(
                series.name.removesuffix("_total"),
                _help(metric, unit),
                [*SCORE_LABELS, "outcome"],
                registry=self.registry,
            )
        else:
            metric = Histogram(
                series.name,
                _help(metric, unit),
                SCORE_LABELS,
                registry=self.registry,
                buckets=histogram_buckets(unit, bounds),
            )
        out = _Series(series.kind, _unit_key(unit), metric)
        self._series[series.name] = out
        return out

    def _precreate(self, gate: Gate, unit: str) -> None:
        entry = self._series[prometheus_series(gate.metric, unit).name]
        for source in SOURCES:
            labels = dict.fromkeys(SCORE_LABELS, "")
            labels.update(source=source, layer=gate.layer or "", span=gate.span or "")
            if entry.kind == "counter":
                for outcome in ("true", "false"):
                    entry.metric.labels(**labels, outcome=outcome)
            else:
                entry.metric.labels(**labels)

    def _series_for(self, metric: str, unit: str) -> _Series | None:
        """The registered series of a Score name and unit; None (counted) if it conflicts."""
        series = prometheus_series(metric, unit)
        with self._lock:
            entry = self._series.get(series.name)
            if entry is None:
                raw = self._pending.get(metric, ())
                try:
                    entry = self._register(
                        metric, series, unit, (_threshold(t, series.scale) for t in raw)
                    )
                except ValueError:  # "Duplicated timeseries in CollectorRegistry"
                    self._dropped.labels(reason="name_collision").inc()
                    return None
                return entry
        if entry.kind != series.kind:
            self._dropped.labels(reason="kind_mismatch").inc()
            return None
        if entry.unit != _unit_key(unit):
            self._dropped.labels(reason="unit_mismatch").inc()
            return None
        return entry

    def observe_call(self, rec: CallRecord) -> None:
        """Export one scored call: each Score into its series, and the call's verdict."""
        base = {
            "scenario": rec.scenario or "",
            "source": rec.source,
            "agent_version": rec.agent_version or "",
            "environment": rec.environment or "",
        }
        for score in rec.scores:
            entry = self._series_for(score.name, score.unit)
            if entry is None:
                continue
            labels = {**base, "layer": score.layer or "", "span": score.span or ""}
            if isinstance(entry.metric, Counter):
                outcome = "true" if score.value != 0 else "false"
                entry.metric.labels(**labels, outcome=outcome).inc()
            else:
                scale = prometheus_series(score.name, score.unit).scale
                entry.metric.labels(**labels).observe(_scaled(score.value, scale))
        self._calls.labels(**base, outcome="pass" if rec.passed else "fail").inc()

    # --- the monitor itself ----------------------------------------------------------------

    def heartbeat(self, now: float | None = None) -> None:
        """The monitor loop is alive (``now``: epoch seconds, default the clock)."""
        self._heartbeat.set(time.time() if now is None else now)

    def cycle(self, status: str, now: float | None = None) -> None:
        """A synthetic cycle ended with ``status`` (e.g. ``ok``, ``failed``)."""
        self._cycles.labels(status=status).inc()
        self._last_cycle.labels(status=status).set(time.time() if now is None else now)

    def infra_failure(self, kind: str | InfraFailure) -> None:
        """The monitor could not place a call (``kind`` as :class:`InfraFailure`'s)."""
        self._infra.labels(kind=kind.kind if isinstance(kind, InfraFailure) else kind).inc()

    def set_reachable(self, reachable: bool) -> None:
        """Whether the monitor can reach the agent (``harness_monitor_up``)."""
        self._up.set(1.0 if reachable else 0.0)

    def alert_delivery(self, channel: str, result: bool | str) -> None:
        """One notification to ``channel``: delivered (True, ``"ok"``) or not (False,
        ``"failed"``); another string is taken as the result label as is."""
        if isinstance(result, bool):
            result = "ok" if result else "failed"
        self._deliveries.labels(channel=channel, result=result).inc()

    # --- windows ---------------------------------------------------------------------------

    def set_window(
        self,
        gate: Gate,
        window: str,
        source: str,
        verdict: Verdict | None,
        state: GateState,
        *,
        agent_version: str = "",
        environment: str = "",
    ) -> None:
        """Publish one gate's verdict over one window (``verdict`` None: no data)."""
        if state not in STATES:
            raise ValueError(f"state {state!r} is not one of {', '.join(STATES)}")
        unit = _gate_unit(gate, self._units) or (verdict.unit if verdict else None)
        scale = prometheus_series(gate.metric, unit).scale if unit else 1.0
        labels = {
            "gate": gate.name,
            "window": window,
            "source": source,
            "statistic": gate.statistic,
            "agent_version": agent_version,
            "environment": environment,
        }
        value = verdict.value if verdict else None
        ci = verdict.ci if verdict else None
        self._gate_value.labels(**labels).set(_nan(value, scale))
        self._gate_ci_low.labels(**labels).set(_nan(ci[0] if ci else None, scale))
        self._gate_ci_high.labels(**labels).set(_nan(ci[1] if ci else None, scale))
        self._gate_samples.labels(**labels).set(verdict.n if verdict else 0)
        quantiles = dict(verdict.quantiles) if verdict else {}
        for key, label in _QUANTILE_LABEL.items():
            q = quantiles.get(key)
            self._gate_quantile.labels(**labels, quantile=label).set(_nan(q, scale))
        for s in STATES:
            self._gate_state.labels(gate=gate.name, window=window, source=source, state=s).set(
                1.0 if s == state else 0.0
            )

    def set_window_rate(
        self, metric: str, layer: str, window: str, source: str, value: float | None
    ) -> None:
        """``harness_window_<metric>_per_call{layer,window,source}``: e.g. mutating actions
        per call of one agent layer over the window; None (no calls) is NaN."""
        # prometheus_series(…, "count") is harness_<sanitized metric>
        name = f"{prometheus_series(metric, 'count').name}_per_call".replace(
            "harness_", "harness_window_", 1
        )
        with self._lock:
            gauge = self._rates.get(name)
            if gauge is None:
                gauge = Gauge(
                    name,
                    f"{metric} per call over the window, by agent layer.",
                    ["layer", "window", "source"],
                    registry=self.registry,
                )
                self._rates[name] = gauge
        gauge.labels(layer=layer, window=window, source=source).set(_nan(value))

    # --- exposition ------------------------------------------------------------------------

    def exposition(self) -> bytes:
        """``/metrics`` as the Prometheus text format (0.0.4)."""
        return generate_latest(self.registry)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> tuple[MetricsServer, int]:
        """Serve ``/metrics`` on ``host:port`` (port 0: a free one) in a daemon thread;
        returns the server (``close()`` it, or :meth:`close` this) and the bound port."""
        httpd, thread = start_http_server(port, addr=host, registry=self.registry)
        server = MetricsServer(httpd, thread, host, int(httpd.server_port))
        with self._lock:
            self._servers.append(server)
        return server, server.port

    def close(self) -> None:
        """Stop every server :meth:`serve` started."""
        with self._lock:
            servers, self._servers = self._servers, []
        for s in servers:
            s.close()


# --- the monitor's own alerting rules -------------------------------------------------------
