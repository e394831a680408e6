"""Baselines: saving a run, and flagging only significant regressions."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.evaluators import Score
from harness.gates import Gate, ScoreStore, evaluate_gate
from harness.gates.baseline import BaselineError, compare, load_baseline, save_baseline
from harness.gates.sketch import exact_quantile

P95_GATE = Gate.model_validate(
    {
        "name": "e2e_p95_vs_baseline",
        "metric": "e2e_latency",
        "span": "agent_turn",
        "statistic": "p95",
        "warn": 10_000,
        "fail": 20_000,
        "baseline": {"max_regression": "20%", "alpha": 0.05},
    }
)


def store_of(values, name="e2e_latency", unit="ms", span="agent_turn") -> ScoreStore:
    s = ScoreStore()
    s.add(Score(name, float(v), unit, span=span) for v in values)
    return s


def baseline_values() -> list[float]:
    rng = np.random.default_rng(42)
    return [float(round(v)) for v in rng.normal(1000, 60, size=60)]


def test_save_and_load_round_trip(tmp_path):
    store = store_of(baseline_values())
    store.add([Score("tool_success", 1.0, "bool", span="function_tool")])
    path = save_baseline(store, tmp_path / "base" / "baseline.json", meta={"git": "abc123"})
    doc = json.loads(path.read_text())
    assert doc["format"] == "harness.gates.baseline/1" and doc["meta"] == {"git": "abc123"}
    back = load_baseline(path)
    assert back.calls == 2
    assert back.select("e2e_latency").exact == store.select("e2e_latency").exact
    assert back.unit("tool_success") == "bool"


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(BaselineError, match="cannot read baseline"):
        load_baseline(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"format": "something"}')
    with pytest.raises(BaselineError, match="not a baseline file") as err:
        load_baseline(bad)
    assert err.value.file == str(bad)
    broken = tmp_path / "broken.json"
    broken.write_text(
        json.dumps({"format": "harness.gates.baseline/1", "scores": {"format": "harness.scores/1"}})
    )
    with pytest.raises(BaselineError):
        load_baseline(broken)


def test_a_real_regression_is_flagged_and_fails_the_gate():
    base = baseline_values()
    current = [v * 1.3 for v in base]
    cmp = compare(P95_GATE, store_of(current), store_of(base))
    assert cmp is not None and cmp.regressed
    assert cmp.change == pytest.approx(0.3, abs=1e-9)
    assert cmp.p_value < 1e-6
    v = evaluate_gate(P95_GATE, store_of(current), baseline=store_of(base))
    assert v.status == "fail"  # under the absolute thresholds, failed by the baseline rule
    assert v.baseline is not None and v.baseline.regressed
    assert v.threshold == pytest.approx(cmp.baseline * 1.2)
    assert "regressed" in v.detail
    # without a baseline the same run passes
    assert evaluate_gate(P95_GATE, store_of(current)).status == "pass"


def test_one_noisy_sample_does_not_flip_the_verdict():
    base = baseline_values()
    ordered = sorted(base)
    # make the tail ragged so a single extra sample moves p95 a lot: the top three values
    # of the baseline are far apart
    base = [*ordered[:-3], 1300.0, 1700.0, 2200.0]
    current = [*base, 30_000.0]  # one call hit a 30 s stall
    p95_before = exact_quantile(base, 0.95)
    p95_after = exact_quantile(current, 0.95)
    assert p95_after > 1.2 * p95_before  # the percentile alone would call it a regression
    cmp = compare(P95_GATE, store_of(current), store_of(base))
    assert cmp is not None
    assert cmp.change > cmp.limit
    assert cmp.p_value > 0.05
    assert not cmp.regressed
    assert "not significant" in cmp.detail
    v = evaluate_gate(P95_GATE, store_of(current), baseline=store_of(base))
    assert v.status == "pass"


def test_an_improvement_is_never_a_regression():
    base = baseline_values()
    cmp = compare(P95_GATE, store_of([v * 0.7 for v in base]), store_of(base))
    assert cmp is not None and cmp.change < 0 and not cmp.regressed


def test_below_direction_uses_the_other_tail():
    g = Gate.model_validate(
        {
            "name": "tools",
            "metric": "tool_success",
            "statistic": "rate",
            "direction": "below",
            "fail": 0.5,
            "baseline": {"max_regression": "5%", "severity": "warn"},
        }
    )
    base = store_of([1.0] * 95 + [0.0] * 5, name="tool_success", unit="bool", span=None)
    worse = store_of([1.0] * 75 + [0.0] * 25, name="tool_success", unit="bool", span=None)
    cmp = compare(g, worse, base)
    assert cmp.regressed and cmp.change == pytest.approx((0.95 - 0.75) / 0.95)
    assert evaluate_gate(g, worse, baseline=base).status == "warn"
    better = store_of([1.0] * 100, name="tool_success", unit="bool", span=None)
    assert not compare(g, better, base).regressed


def test_tiny_samples_are_not_significant():
    cmp = compare(P95_GATE, store_of([3000.0, 3100.0]), store_of([1000.0, 1100.0]))
    assert cmp.change > 1.0 and cmp.p_value > 0.05 and not cmp.regressed


def test_missing_metric_in_baseline_is_reported_not_flagged():
    cmp = compare(P95_GATE, store_of([1000.0] * 10), ScoreStore())
    assert cmp is not None and not cmp.regressed and "no samples" in cmp.detail
    assert (
        compare(
            Gate.model_validate({"name": "x", "metric": "m", "statistic": "p50", "fail": 1}),
            ScoreStore(),
            ScoreStore(),
        )
        is None
    )


def test_identical_runs_are_not_flagged():
    base = store_of([1000.0] * 30)
    cmp = compare(P95_GATE, store_of([1000.0] * 30), base)
    assert cmp.p_value == 1.0 and cmp.change == 0.0 and not cmp.regressed


def test_baseline_beyond_exact_limit_uses_sketch_samples():
    rng = np.random.default_rng(5)
    base_values = rng.normal(1000, 50, size=3000)
    base, cur = ScoreStore(exact_limit=100), ScoreStore(exact_limit=100)
    base.add(Score("e2e_latency", float(v), "ms", span="agent_turn") for v in base_values)
    cur.add(Score("e2e_latency", float(v) * 1.25, "ms", span="agent_turn") for v in base_values)
    assert not base.select("e2e_latency").is_exact
    cmp = compare(P95_GATE, cur, base)
    assert cmp.regressed and cmp.change == pytest.approx(0.25, abs=0.03)


# --- absurd sizes in a baseline file ---------------------------------------------------------


def _absurd_docs(tmp_path):
    good = json.loads(ScoreStore.to_json(store_of([100.0, 200.0, 300.0])))
    series = good["series"][0]["distribution"]

    def doc(mutate):
        d = json.loads(json.dumps(good))
        mutate(d["series"][0]["distribution"])
        return {"format": "harness.gates.baseline/1", "scores": d}

    def huge_bin(dist):
        dist["exact"] = None
        dist["sketch"]["positive"][0][1] = 10**12
        dist["sketch"]["count"] = 10**12

    def consistent_huge(dist):
        # every count agrees with every other: only the size itself is absurd (a loader
        # that trusted it would later expand 10**9 values, about 8 GB)
        dist["exact"] = None
        dist["sketch"]["positive"] = [[dist["sketch"]["positive"][0][0], 10**9]]
        dist["sketch"]["count"] = 10**9

    def huge_range(dist):
        dist["exact"] = None
        dist["sketch"]["positive"] = [[-5_000_000, 1], [5_000_000, 2]]

    def huge_exact(dist):
        dist["exact"] = [1.0] * 200_000

    def many_buckets(dist):
        dist["exact"] = None
        dist["sketch"]["positive"] = [[k, 0] for k in range(100_001)]

    assert series["sketch"]["positive"]
    return {
        "huge_bin": doc(huge_bin),
        "consistent_huge": doc(consistent_huge),
        "huge_range": doc(huge_range),
        "huge_exact": doc(huge_exact),
        "many_buckets": doc(many_buckets),
    }


@pytest.mark.parametrize(
    "case",
    ["huge_bin", "consistent_huge", "huge_range", "huge_exact", "many_buckets", "deep_nesting"],
)
def test_absurd_baseline_is_refused_quickly_and_small(tmp_path, case):
    import time
    import tracemalloc

    docs = _absurd_docs(tmp_path)
    path = tmp_path / "baseline.json"
    expected = {
        "huge_bin": ("scores.series[0].distribution.sketch.count", docs["huge_bin"]),
        "consistent_huge": (
            "scores.series[0].distribution.sketch.count",
            docs["consistent_huge"],
        ),
        "huge_range": ("scores.series[0].distribution.sketch.positive[0]", docs["huge_range"]),
        "huge_exact": ("scores.series[0].distribution.exact", docs["huge_exact"]),
        "many_buckets": ("scores.series[0].distribution.sketch.positive", docs["many_buckets"]),
        "deep_nesting": (None, None),
    }[case]
    field, doc = expected
    if doc is None:
        path.write_text("[" * 100_000)
    else:
        path.write_text(json.dumps(doc))
    tracemalloc.start()
    t0 = time.process_time()  # CPU: other processes' load does not count
    try:
        with pytest.raises(BaselineError) as info:
            load_baseline(path)
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.process_time() - t0 < 1.0
    assert peak < 50 * 2**20
    assert str(path) in str(info.value)
    if field is not None:
        assert info.value.field == field
        assert "regenerate" in str(info.value) or "limit" in str(info.value)


def test_a_run_baseline_is_saved_with_what_could_not_be_read(tmp_path):
    from harness.gates.baseline import save_run_baseline
    from harness.trace.otlp import save_instance
    from tests.fixtures.instances.build import clinic_10_turns

    run = tmp_path / "run"
    for k in range(2):
        inst = clinic_10_turns(f"conv-{k}")
        save_instance(inst.with_caller(inst.caller, "recording.wav"), run / f"call-{k}")
    path, result = save_run_baseline(run, tmp_path / "baseline.json")
    doc = json.loads(path.read_text())
    # neither recording exists: both calls are scored without their audio, and it is said
    assert doc["meta"] == {
        "source": str(run),
        "calls": 2,
        "artifacts_unread": 2,
        "data_error_calls": 0,
    }
    assert load_baseline(path).select("e2e_latency").count == 20
    assert [p.kind for p in result.problems] == ["recording", "recording"]
    with pytest.raises(BaselineError, match="no saved instances"):
        save_run_baseline(tmp_path / "empty", tmp_path / "b2.json")
