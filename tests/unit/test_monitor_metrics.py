"""The monitor's /metrics: every series the exported rules select, from the first scrape;
scores, gate windows and the monitor's health in the exposition format."""

from __future__ import annotations

import inspect
import math
import re
import urllib.request
from collections.abc import Iterator

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from harness.evaluators.base import Score
from harness.gates.model import Gate, GatesConfig, default_gates
from harness.gates.prometheus import prometheus_rules
from harness.gates.verdict import Verdict
from harness.monitor.metrics import (
    SECONDS_BUCKETS,
    MonitorMetrics,
    dead_mans_switch_rule,
    histogram_buckets,
    infrastructure_rule,
)
from harness.monitor.model import CallRecord

GATES = default_gates()

# PromQL words that are not metric names (functions are recognised by their "(")
_KEYWORDS = {
    "and",
    "or",
    "unless",
    "on",
    "ignoring",
    "by",
    "without",
    "group_left",
    "group_right",
    "bool",
    "offset",
    "inf",
    "nan",
}


def samples(m: MonitorMetrics) -> list[Sample]:
    text = m.exposition().decode()
    return [s for fam in text_string_to_metric_families(text) for s in fam.samples]


def find(m: MonitorMetrics, name: str, **labels: str) -> list[Sample]:
    return [
        s
        for s in samples(m)
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]


def one(m: MonitorMetrics, name: str, **labels: str) -> float:
    found = find(m, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0].value


def selected_series(expr: str) -> Iterator[tuple[str, dict[str, str]]]:
    """(metric name, equality matchers) of every vector selector in a PromQL expression."""
    for name, body in re.findall(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}", expr):
        yield name, dict(re.findall(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"', body))
    # bare names (`harness_monitor_up == 0`, `absent(x)`): drop strings, matchers, ranges
    # and groupings, then every identifier that is not a function call or a keyword
    rest = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    rest = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", rest)
    rest = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", rest)
    for name in re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", rest):
        if name.lower() not in _KEYWORDS:
            yield name, {}


def _rule_sets() -> list[dict]:
    sets: list[dict] = [{}]
    if "source" in inspect.signature(prometheus_rules).parameters:
        sets.append({"source": "production"})
    return sets


@pytest.mark.parametrize("kwargs", _rule_sets(), ids=lambda k: ",".join(k) or "default")
def test_every_series_a_rule_selects_is_exposed_before_any_call(kwargs: dict) -> None:
    doc = yaml.safe_load(prometheus_rules(GATES, **kwargs))
    rules = doc["groups"][0]["rules"] + [dead_mans_switch_rule(), infrastructure_rule()]
    m = MonitorMetrics(GATES)
    exposed = samples(m)
    names = {s.name for s in exposed}
    checked = set()
    for rule in rules:
        used = list(selected_series(rule["expr"]))
        assert used, rule["expr"]
        for name, matchers in used:
            assert name.startswith("harness_"), (name, rule["expr"])
            assert name in names, f"{name} (rule {rule['alert']}) is not in /metrics"
            assert any(
                s.name == name and all(s.labels.get(k) == v for k, v in matchers.items())
                for s in exposed
            ), f"{name}{matchers} (rule {rule['alert']}) has no sample with those labels"
            checked.add(name)
    # the default gates' families, by the naming scheme
    assert {
        "harness_llm_ttft_seconds_bucket",
        "harness_e2e_latency_seconds_count",
        "harness_wer_ratio_sum",
        "harness_tool_success_total",
        "harness_interrupted_total",
        "harness_monitor_heartbeat_timestamp_seconds",
        "harness_monitor_up",
    } <= checked
    # the gates' label values, for both sources, at zero
    for source in ("synthetic", "production"):
        assert one(m, "harness_llm_ttft_seconds_count", span="llm_node", source=source) == 0
        for outcome in ("true", "false"):
            labels = {"span": "function_tool", "source": source, "outcome": outcome}
            assert one(m, "harness_tool_success_total", **labels) == 0


def test_observe_call_exports_scores_and_the_verdict() -> None:
    m = MonitorMetrics(GATES)
    rec = CallRecord(
        conversation_id="c1",
        source="synthetic",
        ended_at=1000.0,
        scores=(
            Score("e2e_latency", 1200, "ms", span="agent_turn", layer="conversational"),
            Score("tool_success", 1.0, "bool", span="function_tool", layer="conversational"),
            Score("tool_success", 0.0, "bool", span="function_tool", layer="conversational"),
            Score("wer", 0.04, "ratio"),
            Score("repeated_utterances", 2, "count"),
        ),
        passed=True,
        scenario="booking",
        agent_version="1.4.0",
        environment="staging",
    )
    m.observe_call(rec)
    base = {"scenario": "booking", "agent_version": "1.4.0", "environment": "staging"}
    lat = {**base, "span": "agent_turn", "layer": "conversational", "source": "synthetic"}
    assert one(m, "harness_e2e_latency_seconds_count", **lat) == 1
    assert one(m, "harness_e2e_latency_seconds_sum", **lat) == pytest.approx(1.2)
    assert one(m, "harness_e2e_latency_seconds_bucket", **lat, le="1.0") == 0
    assert one(m, "harness_e2e_latency_seconds_bucket", **lat, le="1.5") == 1
    tool = {**base, "span": "function_tool", "layer": "conversational", "source": "synthetic"}
    assert one(m, "harness_tool_success_total", **tool, outcome="true") == 1
    assert one(m, "harness_tool_success_total", **tool, outcome="false") == 1
    wer = {**base, "span": "", "layer": "", "source": "synthetic"}
    assert one(m, "harness_wer_ratio_bucket", **wer, le="0.02") == 0
    assert one(m, "harness_wer_ratio_bucket", **wer, le="0.05") == 1
    assert one(m, "harness_wer_ratio_sum", **wer) == pytest.approx(0.04)
    assert one(m, "harness_repeated_utterances_sum", **wer) == 2
    assert one(m, "harness_calls_total", **base, source="synthetic", outcome="pass") == 1

    # a production call without scenario or version: empty labels
    m.observe_call(
        CallRecord("c2", "production", 1001.0, (Score("e2e_latency", 2.0, "s"),), passed=False)
    )
    empty = {"scenario": "", "agent_version": "", "environment": "", "source": "production"}
    assert one(m, "harness_e2e_latency_seconds_sum", **empty, span="", layer="") == 2.0
    assert one(m, "harness_calls_total", **empty, outcome="fail") == 1


def test_conflicting_scores_are_counted_not_raised() -> None:
    m = MonitorMetrics(GATES)
    scores = (
        Score("x", 5, "ms"),  # harness_x_seconds, a histogram of seconds
        Score("x_seconds", 5, "count"),  # the same name, a count
        Score("y_total", 1, "count"),  # harness_y_total, a histogram
        Score("y", 1, "bool"),  # harness_y_total, a counter
        Score("calls", 1, "bool"),  # harness_calls_total: the monitor's own
        Score("x", 0.5, "s"),  # seconds too: the same series, fine
    )
    m.observe_call(CallRecord("c", "synthetic", 0.0, scores, passed=True))
    assert one(m, "harness_monitor_scores_dropped_total", reason="unit_mismatch") == 1
    assert one(m, "harness_monitor_scores_dropped_total", reason="kind_mismatch") == 1
    assert one(m, "harness_monitor_scores_dropped_total", reason="name_collision") == 1
    assert one(m, "harness_x_seconds_count", source="synthetic") == 2
    assert one(m, "harness_x_seconds_sum", source="synthetic") == pytest.approx(0.505)
    assert one(m, "harness_calls_total", outcome="pass") == 1


def test_gate_thresholds_are_bucket_boundaries() -> None:
    m = MonitorMetrics(GATES)
    les = {s.labels["le"] for s in find(m, "harness_e2e_latency_seconds_bucket")}
    assert {"3.0", "3.5", "4.0", "5.0"} <= les  # e2e_latency_p90 fails at 3500 ms
    les = {s.labels["le"] for s in find(m, "harness_llm_ttft_seconds_bucket")}
    assert {"0.8", "1.2"} <= les
    les = {s.labels["le"] for s in find(m, "harness_wer_ratio_bucket")}
    assert {"0.05", "0.08"} <= les

    gates = GatesConfig(
        gates=(
            Gate(name="slow", metric="e2e_latency", statistic="p90", warn=3700, fail=4321),
            Gate(name="ttft", metric="llm_ttft", statistic="p99", fail=1200),
        )
    )
    m = MonitorMetrics(gates)
    les = [
        s.labels["le"] for s in find(m, "harness_e2e_latency_seconds_bucket", source="synthetic")
    ]
    assert "3.7" in les and "4.321" in les
    # a value at the threshold is not beyond it: it lands in the threshold's bucket
    scores = (Score("llm_ttft", 1200, "ms"), Score("e2e_latency", 3700, "ms"))
    m.observe_call(CallRecord("c", "synthetic", 0.0, scores, passed=True))
    at = {"source": "synthetic", "span": "", "layer": "", "scenario": ""}
    assert one(m, "harness_llm_ttft_seconds_bucket", **at, le="1.2") == 1
    assert one(m, "harness_e2e_latency_seconds_bucket", **at, le="3.7") == 1
    assert one(m, "harness_e2e_latency_seconds_bucket", **at, le="3.5") == 0

    assert histogram_buckets("ms") == tuple(float(b) for b in SECONDS_BUCKETS)
    assert histogram_buckets("count", [-1.0, 4.0])[:5] == (0, 1, 2, 3, 4)


def _verdict(gate: Gate, value: float | None, ci: tuple[float, float] | None) -> Verdict:
    return Verdict(
        gate,
        "warn",
        value,
        42,
        ci,
        3000.0,
        "",
        "ms",
        (("p50", 1500.0), ("p90", 3200.0), ("p95", 3400.0), ("p99", None)),
    )


def test_set_window_gauges_and_one_hot_state() -> None:
    m = MonitorMetrics(GATES)
    gate = GATES.get("e2e_latency_p90")
    assert gate is not None
    m.set_window(
        gate,
        "15m",
        "production",
        _verdict(gate, 3200.0, (2900.0, 3600.0)),
        "degraded",
        agent_version="1.4.0",
    )
    labels = {"gate": "e2e_latency_p90", "window": "15m", "source": "production"}
    full = {**labels, "statistic": "p90", "agent_version": "1.4.0", "environment": ""}
    assert one(m, "harness_gate_value", **full) == pytest.approx(3.2)
    assert one(m, "harness_gate_ci_low", **full) == pytest.approx(2.9)
    assert one(m, "harness_gate_ci_high", **full) == pytest.approx(3.6)
    assert one(m, "harness_gate_samples", **full) == 42
    assert one(m, "harness_gate_quantile", **full, quantile="0.5") == pytest.approx(1.5)
    assert one(m, "harness_gate_quantile", **full, quantile="0.95") == pytest.approx(3.4)
    assert math.isnan(one(m, "harness_gate_quantile", **full, quantile="0.99"))

    def states() -> dict[str, float]:
        return {s.labels["state"]: s.value for s in find(m, "harness_gate_state", **labels)}

    assert states() == {"ok": 0, "degraded": 1, "failing": 0, "no_data": 0}
    m.set_window(gate, "15m", "production", _verdict(gate, 3600.0, (-math.inf, 4000.0)), "failing")
    assert states() == {"ok": 0, "degraded": 0, "failing": 1, "no_data": 0}
    latest = {**full, "agent_version": ""}
    assert math.isnan(one(m, "harness_gate_ci_low", **latest))
    assert one(m, "harness_gate_ci_high", **latest) == 4.0
    m.set_window(gate, "15m", "production", None, "no_data")
    assert states() == {"ok": 0, "degraded": 0, "failing": 0, "no_data": 1}
    assert math.isnan(one(m, "harness_gate_value", **latest))
    assert one(m, "harness_gate_samples", **latest) == 0
    with pytest.raises(ValueError):
        m.set_window(gate, "15m", "production", None, "broken")  # type: ignore[arg-type]

    m.set_window_rate("mutating_actions", "background", "1h", "production", 0.25)
    m.set_window_rate("unapproved_mutations", "background", "1h", "production", None)
    m.set_window_rate("mutating_actions", "workflow", "1h", "production", 1.5)
    rate = {"window": "1h", "source": "production"}
    name = "harness_window_mutating_actions_per_call"
    assert one(m, name, **rate, layer="background") == 0.25
    assert one(m, name, **rate, layer="workflow") == 1.5
    assert math.isnan(
        one(m, "harness_window_unapproved_mutations_per_call", **rate, layer="background")
    )


def test_monitor_health_and_its_rules() -> None:
    m = MonitorMetrics(GATES)
    assert one(m, "harness_monitor_heartbeat_timestamp_seconds") > 0  # set at construction
    assert one(m, "harness_monitor_up") == 0  # unknown is not up
    m.heartbeat(1234.5)
    m.cycle("ok", now=1200.0)
    m.cycle("ok", now=1260.0)
    m.cycle("failed", now=1300.0)
    m.infra_failure("agent_not_joined")
    m.set_reachable(True)
    m.alert_delivery("slack", True)
    m.alert_delivery("slack", False)
    m.alert_delivery("webhook", "ok")
    assert one(m, "harness_monitor_heartbeat_timestamp_seconds") == 1234.5
    assert one(m, "harness_monitor_cycles_total", status="ok") == 2
    assert one(m, "harness_monitor_last_cycle_timestamp_seconds", status="ok") == 1260.0
    assert one(m, "harness_monitor_last_cycle_timestamp_seconds", status="failed") == 1300.0
    assert one(m, "harness_monitor_infrastructure_failures_total", kind="agent_not_joined") == 1
    assert one(m, "harness_monitor_infrastructure_failures_total", kind="other") == 0
    assert one(m, "harness_monitor_up") == 1
    deliveries = "harness_monitor_alert_deliveries_total"
    assert one(m, deliveries, channel="slack", result="ok") == 1
    assert one(m, deliveries, channel="slack", result="failed") == 1
    assert one(m, deliveries, channel="webhook", result="ok") == 1

    rule = dead_mans_switch_rule("2m")
    assert rule["alert"] == "HarnessMonitorStopped"
    assert "time() - harness_monitor_heartbeat_timestamp_seconds > 120" in rule["expr"]
    assert "absent(harness_monitor_heartbeat_timestamp_seconds)" in rule["expr"]
    rule = infrastructure_rule("10m")
    assert rule == {**rule, "alert": "HarnessMonitorCannotReachAgent", "for": "10m"}
    assert rule["expr"] == "harness_monitor_up == 0"
    yaml.safe_dump({"rules": [dead_mans_switch_rule(), rule]})  # plain data
    with pytest.raises(ValueError):
        dead_mans_switch_rule("two minutes")


def test_serve_on_localhost() -> None:
    m = MonitorMetrics(GATES)
    m.observe_call(
        CallRecord("c", "synthetic", 0.0, (Score("llm_ttft", 640, "ms", span="llm_node"),), True)
    )
    server, port = m.serve()
    try:
        assert port > 0 and server.host == "127.0.0.1"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain")
            body = resp.read().decode()
        fams = {f.name for f in text_string_to_metric_families(body)}
        assert {"harness_llm_ttft_seconds", "harness_calls", "harness_monitor_up"} <= fams
    finally:
        server.close()
    server.close()  # idempotent
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.floats(min_value=0, max_value=120_000, exclude_min=True, allow_nan=False),
        min_size=1,
        max_size=60,
    )
)
def test_buckets_are_cumulative_and_inf_counts_every_call(values: list[float]) -> None:
    m = MonitorMetrics(GATES)
    scores = tuple(Score("e2e_latency", v, "ms", span="agent_turn") for v in values)
    m.observe_call(CallRecord("c", "production", 0.0, scores, passed=True))
    at = {"source": "production", "span": "agent_turn", "layer": "", "scenario": ""}
    mine = {  # one parse per example
        (s.name, s.labels.get("le")): s.value
        for s in samples(m)
        if s.name.startswith("harness_e2e_latency_seconds_")
        and all(s.labels.get(k) == v for k, v in at.items())
    }
    buckets = sorted((float(le), c) for (name, le), c in mine.items() if name.endswith("_bucket"))
    counts = [c for _, c in buckets]
    assert counts == sorted(counts)  # cumulative
    assert buckets[-1] == (math.inf, len(values))
    assert mine[("harness_e2e_latency_seconds_count", None)] == len(values)
    total = mine[("harness_e2e_latency_seconds_sum", None)]
    assert total == pytest.approx(sum(values) / 1000)
    for le, count in buckets[:-1]:
        # away from the boundary (where rounding decides), the count is exact
        below = sum(v / 1000 < le * (1 - 1e-9) for v in values)
        above = sum(v / 1000 > le * (1 + 1e-9) for v in values)
        assert below <= count <= len(values) - above
