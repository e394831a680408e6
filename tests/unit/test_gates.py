"""Gates: the gates file, verdicts, the table, the score store and Prometheus export."""

from __future__ import annotations

import math
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest

from harness.evaluators import Score
from harness.gates import (
    Gate,
    GatesConfig,
    GatesFileError,
    ScoreStore,
    default_gates,
    discover_gates,
    evaluate_gate,
    evaluate_gates,
    load_gates,
    parse_gates,
    prometheus_rules,
    prometheus_series,
    render_table,
)

PROMTOOL = "/usr/bin/promtool"


def store_of(
    name: str, values, unit: str = "ms", span: str | None = None, layer: str | None = None
) -> ScoreStore:
    s = ScoreStore()
    s.add(Score(name, v, unit, span=span, layer=layer) for v in values)
    return s


def gate(**kw) -> Gate:
    base = {"name": "g", "metric": "m", "statistic": "p90", "warn": 100, "fail": 200}
    base.update(kw)
    return Gate.model_validate(base)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


# --- the defaults --------------------------------------------------------------------------------


def test_default_gates_are_the_published_thresholds():
    g = {x.name: x for x in default_gates()}
    published = {
        "llm_ttft_p99",
        "e2e_latency_p90",
        "e2e_latency_p99",
        "wer",
        "tool_success",
        "interruption_rate",
    }
    assert published <= set(g)  # the project's own cross-layer gates: test_default_gates.py
    t = g["llm_ttft_p99"]
    assert (t.metric, t.span, t.statistic, t.warn, t.fail) == (
        "llm_ttft",
        "llm_node",
        "p99",
        800,
        1200,
    )
    assert (
        g["e2e_latency_p90"].statistic,
        g["e2e_latency_p90"].warn,
        g["e2e_latency_p90"].fail,
    ) == ("p90", 3000, 3500)
    assert (
        g["e2e_latency_p99"].statistic,
        g["e2e_latency_p99"].warn,
        g["e2e_latency_p99"].fail,
    ) == ("p99", 4000, 5000)
    assert (g["wer"].warn, g["wer"].fail) == (0.05, 0.08)
    ts = g["tool_success"]
    assert (ts.statistic, ts.direction, ts.warn, ts.fail) == ("rate", "below", 0.99, 0.95)
    ir = g["interruption_rate"]
    assert (ir.metric, ir.statistic, ir.warn, ir.fail) == ("interrupted", "rate", 0.15, 0.25)
    assert all(x.for_ for x in g.values())


def test_every_default_gate_has_a_source_comment():
    text = Path("harness/gates/default_gates.yaml").read_text()
    blocks = text.split("  - name: ")[1:]
    comments = text.split("  - name: ")[:-1]
    assert len(blocks) == len(default_gates())
    for block, before in zip(blocks, comments, strict=True):
        last_comment = before.rstrip().split("\n\n")[-1]
        assert "Source:" in last_comment, block.split("\n")[0]


# --- parsing -------------------------------------------------------------------------------------


def test_yaml_gates_with_percentages_and_mapping_form(tmp_path):
    p = write(
        tmp_path,
        "harness.yaml",
        """\
        calls: 3          # another section's key: not read here
        gates:
          wer_gate:
            metric: wer
            statistic: mean
            warn: 5%
            fail: "8 %"
            for: 1h30m
        """,
    )
    cfg = load_gates(p)
    g = cfg.get("wer_gate")
    assert g is not None and g.warn == pytest.approx(0.05) and g.fail == pytest.approx(0.08)
    assert g.for_seconds == 5400
    assert cfg.source == str(p)


@pytest.mark.parametrize(
    ("body", "line", "field", "message"),
    [
        ("    wran: 800\n", 8, "gates[0].wran", "unknown key"),
        ("    statistic: p97\n", 5, "gates[0].statistic", "'p97'"),
        ("    for: 5 minutes\n", 8, "gates[0].for", "not a duration"),
        ("    min_samples: 0\n", 8, "gates[0].min_samples", "greater than or equal to 1"),
        ("    warn: lots\n", 6, "gates[0].warn", "number"),
    ],
)
def test_gate_errors_name_file_line_and_field(tmp_path, body, line, field, message):
    base = {
        "name": "    name: ttft\n",
        "metric": "    metric: llm_ttft\n",
        "statistic": "    statistic: p99\n",
        "warn": "    warn: 800\n",
        "fail": "    fail: 1200\n",
    }
    key = body.split(":")[0].strip()
    if key in base:
        base[key] = body
    text = "gates:\n  -\n" + "".join(base.values())
    if key not in base:
        text += body
    p = tmp_path / "harness.yaml"
    p.write_text(text)
    with pytest.raises(GatesFileError) as err:
        load_gates(p)
    e = err.value
    assert e.file == str(p)
    assert e.field == field
    assert message in e.reason
    assert e.line == line
    assert str(e).startswith(f"{p}:{line}: {field}: ")


def test_gate_semantic_errors(tmp_path):
    with pytest.raises(GatesFileError, match="warn: 300 is above fail 200"):
        parse_gates(
            {"gates": [{"name": "g", "metric": "m", "statistic": "p90", "warn": 300, "fail": 200}]}
        )
    with pytest.raises(GatesFileError, match="direction `below`"):
        parse_gates(
            {
                "gates": [
                    {
                        "name": "g",
                        "metric": "m",
                        "statistic": "rate",
                        "direction": "below",
                        "warn": 0.9,
                        "fail": 0.95,
                    }
                ]
            }
        )
    with pytest.raises(GatesFileError, match="a rate is between 0 and 1"):
        parse_gates({"gates": [{"name": "g", "metric": "m", "statistic": "rate", "fail": 5}]})
    with pytest.raises(GatesFileError, match="checks nothing"):
        parse_gates({"gates": [{"name": "g", "metric": "m", "statistic": "p90"}]})
    with pytest.raises(GatesFileError, match="two gates are named 'g'"):
        parse_gates({"gates": [{"name": "g", "metric": "m", "statistic": "p90", "fail": 1}] * 2})
    p = write(tmp_path, "gates.yaml", "gate:\n  - name: x\n")
    with pytest.raises(GatesFileError, match="did you mean `gates`"):
        load_gates(p)
    p = write(tmp_path, "bad.yaml", "gates:\n  - name: [unclosed\n")
    with pytest.raises(GatesFileError, match="invalid YAML") as err:
        load_gates(p)
    assert err.value.line is not None


def test_pyproject_gates_array_and_table_forms(tmp_path):
    p = write(
        tmp_path,
        "pyproject.toml",
        """\
        [project]
        name = "x"

        [[tool.harness.gates]]
        name = "ttft"
        metric = "llm_ttft"
        statistic = "p95"
        fail = 900
        """,
    )
    cfg = load_gates(p)
    assert [g.name for g in cfg] == ["ttft"] and cfg.gates[0].fail == 900
    p = write(
        tmp_path,
        "pyproject.toml",
        """\
        [tool.harness.gates.ttft]
        metric = "llm_ttft"
        statistic = "p95"
        fail = 900
        colour = "red"
        """,
    )
    with pytest.raises(GatesFileError) as err:
        load_gates(p)
    assert err.value.field == "tool.harness.gates[0].colour"
    assert "unknown key" in err.value.reason


def test_discover_gates_precedence(tmp_path):
    assert discover_gates(tmp_path).source == "<defaults>"
    write(
        tmp_path,
        "pyproject.toml",
        """\
        [[tool.harness.gates]]
        name = "from_pyproject"
        metric = "e2e_latency"
        statistic = "max"
        fail = 1
        """,
    )
    assert [g.name for g in discover_gates(tmp_path)] == ["from_pyproject"]
    write(tmp_path, "harness.yaml", "other_section: {}\n")  # no gates key: not a gates file
    assert [g.name for g in discover_gates(tmp_path)] == ["from_pyproject"]
    write(
        tmp_path,
        "harness.yaml",
        "gates:\n  - {name: from_yaml, metric: e2e_latency, statistic: min, fail: 1}\n",
    )
    assert [g.name for g in discover_gates(tmp_path)] == ["from_yaml"]


# --- verdicts ------------------------------------------------------------------------------------


def test_pass_warn_fail_on_a_percentile():
    values = [float(v) for v in range(1, 101)]  # p90: the 90th of 100 values, 90
    g = gate(statistic="p90", warn=80, fail=95)
    v = evaluate_gate(g, store_of("m", values))
    assert (v.status, v.value, v.n, v.threshold) == ("warn", 90.0, 100, 80)
    assert v.ci is not None and v.ci[0] <= 90 <= v.ci[1]
    assert v.warning and not v.failed
    assert evaluate_gate(gate(warn=95, fail=96), store_of("m", values)).status == "pass"
    assert evaluate_gate(gate(warn=10, fail=89.5), store_of("m", values)).status == "fail"
    # strictly beyond: equal to the threshold passes
    assert evaluate_gate(gate(warn=90, fail=91), store_of("m", values)).status == "pass"
    q = dict(v.quantiles)
    assert (q["p50"], q["p95"], q["p99"]) == (50.0, 95.0, 99.0)


def test_below_direction_rate_with_wilson_interval():
    g = gate(metric="ok", statistic="rate", direction="below", warn=0.99, fail=0.95, min_samples=20)
    outcomes = [1.0] * 96 + [0.0] * 4
    v = evaluate_gate(g, store_of("ok", outcomes, unit="bool"))
    assert v.status == "warn" and v.value == pytest.approx(0.96)
    assert v.ci[0] < 0.96 < v.ci[1]
    v = evaluate_gate(g, store_of("ok", [1.0] * 90 + [0.0] * 10, unit="bool"))
    assert v.status == "fail"
    assert "< fail" in v.detail


def test_insufficient_samples_is_a_warning_never_a_pass():
    g = gate(min_samples=20, warn=100, fail=200)
    v = evaluate_gate(g, store_of("m", [5.0] * 19))
    assert v.status == "insufficient"
    assert v.warning and not v.passed
    assert v.n == 19 and v.value == 5.0
    assert "n=19 < min_samples=20" in v.detail
    bad = evaluate_gate(g, store_of("m", [500.0] * 3))
    assert bad.status == "insufficient" and "would fail" in bad.detail
    none = evaluate_gate(g, ScoreStore())
    assert none.status == "insufficient" and none.n == 0 and none.value is None
    assert "no samples of m" in none.detail


def test_span_and_layer_filters():
    s = ScoreStore()
    s.add(
        [
            Score("lat", 100, "ms", span="llm_node", layer="conversational"),
            Score("lat", 5000, "ms", span="tts_node", layer="conversational"),
            Score("lat", 9000, "ms", span="llm_node", layer="background"),
        ]
    )
    assert (
        evaluate_gate(
            gate(metric="lat", statistic="max", span="llm_node", layer="conversational"), s
        ).value
        == 100
    )
    assert evaluate_gate(gate(metric="lat", statistic="max", span="llm_node"), s).value == 9000
    assert (
        evaluate_gate(gate(metric="lat", statistic="max", layer="conversational"), s).value == 5000
    )
    assert evaluate_gate(gate(metric="lat", statistic="min"), s).value == 100
    assert evaluate_gate(
        gate(metric="lat", statistic="mean", warn=1e9, fail=2e9), s
    ).value == pytest.approx(14100 / 3)


def test_pass_near_the_threshold_says_the_interval_reaches_it():
    values = [float(v) for v in range(1, 41)]
    v = evaluate_gate(gate(statistic="p90", warn=37, fail=100), store_of("m", values))
    assert v.status == "pass" and "reaches" in v.detail


def test_store_merges_like_xdist_workers_and_round_trips_json():
    workers = [
        store_of("lat", [float(v) for v in range(k, 1000, 3)], span="llm_node") for k in range(3)
    ]
    shipped = [ScoreStore.from_json(w.to_json()) for w in workers]
    merged = ScoreStore.merged(shipped)
    whole = store_of("lat", [float(v) for v in range(0, 1000)], span="llm_node")
    assert merged.calls == 3
    g = gate(metric="lat", statistic="p99", warn=500, fail=2000)
    a, b = evaluate_gate(g, merged), evaluate_gate(g, whole)
    assert (a.status, a.value, a.n) == (b.status, b.value, b.n) == ("warn", 989.0, 1000)
    with pytest.raises(ValueError, match="one metric, one unit"):
        merged.add([Score("lat", 1.0, "s")])


def test_verdict_over_evaluator_scores_from_the_fixture():
    from harness.evaluators import evaluate
    from harness.trace.otlp import load_instance
    from tests.fixtures.instances.build import CLINIC_DIR

    inst = load_instance(CLINIC_DIR)
    store = ScoreStore()
    for _ in range(6):
        store.add(evaluate(inst))
    verdicts = {v.name: v for v in evaluate_gates(default_gates(), store)}
    assert verdicts["e2e_latency_p90"].status == "pass" and verdicts["e2e_latency_p90"].n == 60
    assert verdicts["llm_ttft_p99"].status == "pass" and verdicts["llm_ttft_p99"].n == 66
    assert verdicts["wer"].status == "pass" and verdicts["wer"].n == 6
    assert verdicts["wer"].value == pytest.approx(1 / 46)
    assert verdicts["tool_success"].status == "insufficient"  # 12 tool calls < 20
    assert verdicts["interruption_rate"].status == "pass"


def test_render_table():
    s = ScoreStore()
    s.add([Score("llm_ttft", v, "ms", span="llm_node") for v in (300, 400, 1500)])
    s.add([Score("tool_success", v, "bool", span="function_tool") for v in [1.0] * 30])
    cfg = parse_gates(
        {
            "gates": [
                {
                    "name": "ttft",
                    "metric": "llm_ttft",
                    "span": "llm_node",
                    "statistic": "p99",
                    "warn": 800,
                    "fail": 1200,
                },
                {
                    "name": "tools",
                    "metric": "tool_success",
                    "statistic": "rate",
                    "direction": "below",
                    "warn": "99%",
                    "fail": "95%",
                    "min_samples": 20,
                },
                {
                    "name": "wer",
                    "metric": "wer",
                    "statistic": "mean",
                    "fail": 0.08,
                    "min_samples": 5,
                },
            ]
        }
    )
    text = render_table(evaluate_gates(cfg, s))
    lines = text.splitlines()
    assert lines[0].split() == [
        "gate",
        "layer/span",
        "p50",
        "p90",
        "p95",
        "p99",
        "value",
        "n",
        "threshold",
        "verdict",
    ]
    ttft = next(ln for ln in lines if ln.startswith("ttft"))
    assert "1500 ms" in ttft and "FAIL" in ttft and "warn >800 ms, fail >1200 ms" in ttft
    tools = next(ln for ln in lines if ln.startswith("tools"))
    assert "rate 100.0 % [88.6 %, 100.0 %]" in tools  # Wilson interval of 30 out of 30
    assert "PASS" in tools and "fail <95.0 %" in tools
    assert "INSUFFICIENT" in next(ln for ln in lines if ln.startswith("wer "))
    assert "FAIL ttft: p99 = 1500 ms > fail 1200 ms" in text
    assert lines[-1] == "3 gates: 1 passed, 0 warned, 1 failed, 1 with insufficient samples"


# --- Prometheus ----------------------------------------------------------------------------------


def promtool() -> str:
    path = shutil.which("promtool") or (PROMTOOL if Path(PROMTOOL).exists() else None)
    assert path, "promtool is not installed: `apt-get install prometheus` (the test needs it)"
    return path


def test_metric_naming_scheme():
    assert prometheus_series("llm_ttft", "ms").name == "harness_llm_ttft_seconds"
    assert prometheus_series("llm_ttft", "ms").scale == 0.001
    assert prometheus_series("tool_success", "bool").name == "harness_tool_success_total"
    assert prometheus_series("wer", "ratio").name == "harness_wer_ratio"
    assert prometheus_series("judge.tone", "points").name == "harness_judge_tone_points"


def test_exported_rules_pass_promtool_check(tmp_path):
    cfg = GatesConfig.model_validate(
        {
            "gates": [
                *[g.model_dump(by_alias=True) for g in default_gates()],
                {
                    "name": "unapproved",
                    "metric": "unapproved_mutations",
                    "layer": "background",
                    "statistic": "max",
                    "fail": 0,
                },
                {
                    "name": "judge_score",
                    "metric": "judge",
                    "unit": "points",
                    "statistic": "mean",
                    "direction": "below",
                    "warn": 4,
                    "fail": 3,
                },
                {
                    "name": "p95_vs_baseline",
                    "metric": "e2e_latency",
                    "statistic": "p95",
                    "baseline": {"max_regression": "20%"},
                },
            ]
        }
    )
    text = prometheus_rules(cfg, window="10m")
    path = tmp_path / "rules.yml"
    path.write_text(text)
    out = subprocess.run([promtool(), "check", "rules", str(path)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr
    # one alerting rule per threshold; the baseline-only gate has no Prometheus form
    rules = sum((g.warn is not None) + (g.fail is not None) for g in cfg)
    assert rules == 37
    assert f"SUCCESS: {rules} rules found" in out.stdout
    assert (
        "histogram_quantile(0.99, sum by (le) "
        '(rate(harness_llm_ttft_seconds_bucket{span="llm_node"}[10m])))' in text
    )
    assert "> 1.2" in text and "for: 5m" in text
    skipped = [line for line in text.splitlines() if line.startswith("# Skipped (baseline")]
    assert len(skipped) == 1 and skipped[0].endswith("p95_vs_baseline"), skipped


def _series(name: str, values: str, **labels: str) -> dict:
    body = ",".join(f'{k}="{v}"' for k, v in labels.items())
    return {"series": f"{name}{{{body}}}", "values": values}


def _alert(name: str, labels: dict | None = None, summary: str = "", description: str = "") -> dict:
    expected = []
    if labels is not None:
        expected.append(
            {
                "exp_labels": labels,
                "exp_annotations": {"summary": summary, "description": description},
            }
        )
    return {"eval_time": "20m", "alertname": name, "exp_alerts": expected}


def test_exported_rules_fire_on_synthetic_series(tmp_path):
    import yaml

    (tmp_path / "rules.yml").write_text(prometheus_rules(default_gates()))
    ttft = "harness_llm_ttft_seconds"
    series = [
        # every tool call fails: no outcome="true" series exists at all
        _series("harness_tool_success_total", "0+10x30", span="function_tool", outcome="false"),
        # LLM TTFT: 20 a minute, all between 1.5 s and 2 s
        _series(f"{ttft}_bucket", "0x30", span="llm_node", le="1"),
        _series(f"{ttft}_bucket", "0x30", span="llm_node", le="1.5"),
        _series(f"{ttft}_bucket", "0+20x30", span="llm_node", le="2"),
        _series(f"{ttft}_bucket", "0+20x30", span="llm_node", le="+Inf"),
        _series(f"{ttft}_count", "0+20x30", span="llm_node"),
        # interruptions: 1 in 10, under the 15 % warning
        _series("harness_interrupted_total", "0+1x30", span="agent_turn", outcome="true"),
        _series("harness_interrupted_total", "0+9x30", span="agent_turn", outcome="false"),
    ]
    checks = [
        _alert(
            "HarnessToolSuccessFailing",
            {
                "severity": "critical",
                "gate": "tool_success",
                "metric": "tool_success",
                "statistic": "rate",
            },
            "tool_success: rate of tool_success (span=function_tool) is 0, "
            "below the critical threshold 0.95",
            "Share of function_tool calls that did not fail.",
        ),
        _alert("HarnessToolSuccessWarning"),  # failing, so not also warning
        _alert(
            "HarnessLlmTtftP99Failing",
            {
                "severity": "critical",
                "gate": "llm_ttft_p99",
                "metric": "llm_ttft",
                "statistic": "p99",
            },
            "llm_ttft_p99: p99 of llm_ttft (span=llm_node) is 1.995 seconds, "
            "above the critical threshold 1.2 seconds",
            "LLM time to first token (lk.response.ttft), 99th percentile.",
        ),
        _alert("HarnessInterruptionRateWarning"),
        _alert("HarnessInterruptionRateFailing"),
    ]
    doc = {
        "rule_files": ["rules.yml"],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": series, "alert_rule_test": checks}],
    }
    tests = tmp_path / "tests.yml"
    tests.write_text(yaml.safe_dump(doc, sort_keys=False))
    out = subprocess.run(
        [promtool(), "test", "rules", str(tests)], capture_output=True, text=True, cwd=tmp_path
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "SUCCESS" in out.stdout


def test_export_needs_a_unit_for_unknown_metrics():
    cfg = parse_gates(
        {"gates": [{"name": "custom", "metric": "team_metric", "statistic": "p50", "fail": 1}]}
    )
    with pytest.raises(GatesFileError, match="unknown unit for metric 'team_metric'"):
        prometheus_rules(cfg)
    assert "harness_team_metric_widgets" in prometheus_rules(cfg, units={"team_metric": "widgets"})
    bad = parse_gates(
        {"gates": [{"name": "p", "metric": "interrupted", "statistic": "p90", "fail": 1}]}
    )
    with pytest.raises(GatesFileError, match="bool metric cannot be exported"):
        prometheus_rules(bad)


def test_gate_helpers():
    g = gate(span="llm_node", layer="conversational")
    assert g.where == "span=llm_node layer=conversational"
    assert g.quantile == 0.9
    assert g.crossed(201, g.fail) and not g.crossed(200, g.fail)
    assert not math.isnan(gate(statistic="mean").warn)
