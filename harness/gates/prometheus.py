"""Prometheus alerting rules from the gates file.

**Metric naming scheme.** ``harness monitor`` (:mod:`harness.monitor.metrics`) exports the
harness's scores as Prometheus metrics named from the Score's name and unit, with ``layer``
and ``span`` labels taken from the Score (absent labels are empty), and ``scenario``,
``source`` (``synthetic`` or ``production``), ``agent_version`` and ``environment``:

================  ===========================================  ==============================
Score unit        Prometheus series                            value
================  ===========================================  ==============================
``ms``            histogram ``harness_<metric>_seconds``        the value / 1000 (seconds)
``s``             histogram ``harness_<metric>_seconds``        the value
``bool``          counter ``harness_<metric>_total``            +1 per Score, label
                                                                ``outcome="true"|"false"``
``ratio``         histogram ``harness_<metric>_ratio``          the value
``count``         histogram ``harness_<metric>``                the value
anything else     histogram ``harness_<metric>_<unit>``         the value
================  ===========================================  ==============================

``<metric>`` is the Score name with every character outside ``[a-zA-Z0-9_]`` replaced by
``_``. e.g. ``llm_ttft`` on ``llm_node`` becomes
``harness_llm_ttft_seconds_bucket{layer="conversational",span="llm_node",le="..."}``.

**Statistics.** Over a rate window (``window``, default ``5m``):

- ``p50``…``p99``: ``histogram_quantile(q, sum by (le) (rate(<series>_bucket{…}[w])))``;
- ``mean``: ``sum(rate(<series>_sum{…}[w])) / sum(rate(<series>_count{…}[w]))``; for a
  ``bool`` metric, the share of true (the same as ``rate``);
- ``rate`` (``bool`` metrics only): ``(sum(increase(<series>_total{…,outcome="true"}[w]))
  or on() vector(0)) / sum(increase(<series>_total{…}[w]))``;
- ``min``/``max``: ``histogram_quantile(0 or 1, …)``, which Prometheus can only give to the
  resolution of the histogram's buckets.

Each gate becomes up to two alerts, ``Harness<Name>Warning`` (severity ``warning``, between
the warn and the fail threshold) and ``Harness<Name>Failing`` (severity ``critical``), each
guarded by ``and on() <samples in the window> >= min_samples`` and held for the gate's
``for:``. Baseline rules compare two runs and have no Prometheus form; they are skipped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from harness.gates.model import QUANTILES, Gate, GatesConfig, GatesFileError, duration_seconds

__all__ = ["PromSeries", "prometheus_rules", "prometheus_series", "write_prometheus_rules"]


@dataclass(frozen=True)
class PromSeries:
    """How one Score name is exported: ``kind`` is ``histogram`` or ``counter``; ``scale``
    multiplies the Score value (1/1000 for milliseconds to seconds)."""

    kind: str
    name: str
    scale: float = 1.0


def _sanitize(name: str) -> str:
    out = re.sub(r"[^a-zA-Z0-9_]", "_", name)
    return out if re.match(r"[a-zA-Z_]", out) else f"_{out}"


def prometheus_series(metric: str, unit: str) -> PromSeries:
    """The Prometheus series a Score name and unit map to (see the module docstring)."""
    m = _sanitize(metric)
    if unit == "ms":
        return PromSeries("histogram", f"harness_{m}_seconds", 0.001)
    if unit == "s":
        return PromSeries("histogram", f"harness_{m}_seconds")
    if unit == "bool":
        return PromSeries("counter", f"harness_{m}_total")
    if unit == "count":
        return PromSeries("histogram", f"harness_{m}")
    return PromSeries("histogram", f"harness_{m}_{_sanitize(unit)}")


def _selector(gate: Gate, extra: Mapping[str, str] | None = None) -> str:
    labels = {}
    if gate.layer:
        labels["layer"] = gate.layer
    if gate.span:
        labels["span"] = gate.span
    labels.update(extra or {})
    if not labels:
        return ""
    body = ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items())
    return "{" + body + "}"


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _num(x: float) -> str:
    return format(x, ".10g")


def _camel(name: str) -> str:
    return "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", name) if p)


def _exprs(
    gate: Gate, series: PromSeries, window: str, extra: Mapping[str, str] | None = None
) -> tuple[str, str]:
    """(the statistic's expression, the samples-in-window expression)."""
    sel = _selector(gate, extra)
    w = window
    if series.kind == "counter":
        count = f"sum(increase({series.name}{sel}[{w}]))"
        if gate.statistic in ("rate", "mean"):
            true_sel = _selector(gate, {**(extra or {}), "outcome": "true"})
            # `or on() vector(0)`: with no true outcome in the window the series may not
            # exist, and an all-failing window must still alert
            true_count = f"(sum(increase({series.name}{true_sel}[{w}])) or on() vector(0))"
            return f"{true_count} / {count}", count
        raise ValueError(
            f"statistic {gate.statistic!r} of a bool metric cannot be exported; use rate or mean"
        )
    count = f"sum(increase({series.name}_count{sel}[{w}]))"
    bucket = f"sum by (le) (rate({series.name}_bucket{sel}[{w}]))"
    q = QUANTILES.get(gate.statistic)
    if q is not None:
        return f"histogram_quantile({_num(q)}, {bucket})", count
    if gate.statistic == "mean":
        return (
            f"sum(rate({series.name}_sum{sel}[{w}])) / sum(rate({series.name}_count{sel}[{w}]))",
            count,
        )
    if gate.statistic == "min":
        return f"histogram_quantile(0, {bucket})", count
    if gate.statistic == "max":
        return f"histogram_quantile(1, {bucket})", count
    raise ValueError(
        f"statistic {gate.statistic!r} needs a bool metric (0/1 Scores); this one is a histogram"
    )


def _unit_of(gate: Gate, units: Mapping[str, str] | None) -> str | None:
    if gate.unit:
        return gate.unit
    if units and gate.metric in units:
        return units[gate.metric]
    from harness.evaluators import metric_info

    info = metric_info(gate.metric)
    return info.unit if info is not None else None


def prometheus_rules(
    gates: GatesConfig | Iterable[Gate],
    *,
    window: str = "5m",
    group: str = "harness-gates",
    units: Mapping[str, str] | None = None,
    source: str | None = None,
    monitor_rules: bool = False,
) -> str:
    """Prometheus alerting rules (YAML text) for ``gates``.

    ``source`` (``production`` or ``synthetic``) restricts every expression to the series
    of that source, so synthetic calls stay out of production alerts. ``monitor_rules``
    adds the monitor's own: a dead-man's switch on its heartbeat and "cannot reach the
    agent" (see :mod:`harness.monitor.metrics`).

    ``units`` maps metric names to units for metrics that are not built in and whose gate
    has no ``unit:``. Raises :class:`GatesFileError` for a gate that cannot be exported.
    """
    duration_seconds(window)  # validates
    gates_file = gates.source if isinstance(gates, GatesConfig) else None
    rules: list[dict] = []
    skipped: list[str] = []
    for gate in gates:
        if gate.warn is None and gate.fail is None:
            skipped.append(gate.name)
            continue
        unit = _unit_of(gate, units)
        if unit is None:
            raise GatesFileError(
                f"unknown unit for metric {gate.metric!r}: set `unit:` on the gate",
                file=gates_file,
                field=f"gates.{gate.name}.unit",
            )
        series = prometheus_series(gate.metric, unit)
        try:
            stat, count = _exprs(gate, series, window, {"source": source} if source else None)
        except ValueError as e:
            raise GatesFileError(
                str(e), file=gates_file, field=f"gates.{gate.name}.statistic"
            ) from None
        sign, inverse = (">", "<=") if gate.direction == "above" else ("<", ">=")
        guard = f"and on() ({count}) >= {gate.min_samples}"
        levels = []
        if gate.warn is not None:
            cond = f"({stat}) {sign} {_num(gate.warn * series.scale)}"
            if gate.fail is not None:
                cond = f"({cond}) {inverse} {_num(gate.fail * series.scale)}"
            levels.append(("Warning", "warning", gate.warn, cond))
        if gate.fail is not None:
            cond = f"({stat}) {sign} {_num(gate.fail * series.scale)}"
            levels.append(("Failing", "critical", gate.fail, cond))
        for suffix, severity, threshold, cond in levels:
            rule: dict = {
                "alert": f"Harness{_camel(gate.name)}{suffix}",
                "expr": f"({cond}) {guard}",
            }
            if gate.for_:
                rule["for"] = gate.for_
            rule["labels"] = {
                "severity": severity,
                "gate": gate.name,
                "metric": gate.metric,
                "statistic": gate.statistic,
            }
            scaled = (
                "seconds" if series.scale != 1.0 else ("" if unit in ("bool", "ratio") else unit)
            )
            rule["annotations"] = {
                "summary": (
                    f"{gate.name}: {gate.statistic} of {gate.metric} ({gate.where}) is "
                    f"{{{{ $value }}}}{' ' + scaled if scaled else ''}, {gate.direction} the "
                    f"{severity} threshold {_num(threshold * series.scale)}"
                    f"{' ' + scaled if scaled else ''}"
                ),
                "description": gate.description
                or f"Gate {gate.name} over a {window} window, at least {gate.min_samples} samples.",
            }
            if gate.runbook_url:
                rule["annotations"]["runbook_url"] = gate.runbook_url
            if source:
                rule["labels"]["source"] = source
            rules.append(rule)
    if monitor_rules:
        rules += [dead_mans_switch_rule(), infrastructure_rule()]
    doc = {"groups": [{"name": group, "rules": rules}]}
    header = "# Generated from the harness gates file"
    header += f" ({gates_file})" if gates_file else ""
    header += "; the metric naming scheme is documented in harness.gates.prometheus.\n"
    if skipped:
        header += f"# Skipped (baseline rules only, no Prometheus form): {', '.join(skipped)}\n"
    return header + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, width=1000)


def write_prometheus_rules(
    gates: GatesConfig | Iterable[Gate], path: str | Path, **kwargs: object
) -> Path:
    """Write :func:`prometheus_rules` to ``path``; returns it."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(prometheus_rules(gates, **kwargs), encoding="utf-8")  # type: ignore[arg-type]
    return p


def dead_mans_switch_rule(max_silence: str = "2m", *, severity: str = "critical") -> dict:
    """``HarnessMonitorStopped``: no heartbeat for ``max_silence`` (a Prometheus duration),
    or no heartbeat series at all (the monitor is gone from the scrape)."""
    seconds = duration_seconds(max_silence)
    m = "harness_monitor_heartbeat_timestamp_seconds"
    return {
        "alert": "HarnessMonitorStopped",
        "expr": f"(time() - {m} > {format(seconds, '.10g')}) or absent({m})",
        "labels": {"severity": severity},
        "annotations": {
            "summary": f"The harness monitor has not sent a heartbeat for over {max_silence}",
            "description": (
                "Nothing is watching the agent's quality: the monitor stopped, hangs, or is "
                "no longer scraped. Gate alerts cannot fire while it is down."
            ),
        },
    }


def infrastructure_rule(for_: str = "5m", *, severity: str = "critical") -> dict:
    """``HarnessMonitorCannotReachAgent``: ``harness_monitor_up == 0`` held for ``for_``."""
    duration_seconds(for_)  # validates
    return {
        "alert": "HarnessMonitorCannotReachAgent",
        "expr": "harness_monitor_up == 0",
        "for": for_,
        "labels": {"severity": severity},
        "annotations": {
            "summary": f"The harness monitor cannot reach the agent (for {for_})",
            "description": (
                "Synthetic calls cannot be placed (server unreachable, agent not joining): "
                "see harness_monitor_infrastructure_failures_total by kind. This is not a "
                "quality regression, but no synthetic quality data arrives meanwhile."
            ),
        },
    }
