"""DDSketch accuracy and mergeability, exact samples, and the order-statistic intervals."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from harness.gates.sketch import (
    DDSketch,
    Distribution,
    exact_quantile,
    order_statistic_ci,
    quantile_rank,
    wilson_ci,
)

ALPHA = 0.01
QS = (0.0, 0.01, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
# the guarantee is |estimate - exact| <= alpha * |exact|; floating point in log/exp may add
# a few ulps at bucket boundaries
SLACK = 1e-9


def within(estimate: float, exact: float, alpha: float = ALPHA) -> bool:
    return abs(estimate - exact) <= alpha * abs(exact) * (1 + SLACK) + 1e-300


values_strategy = st.lists(
    st.one_of(
        st.floats(min_value=1e-6, max_value=1e9),
        st.floats(min_value=-1e9, max_value=-1e-6),
        st.just(0.0),
        st.integers(min_value=0, max_value=10_000).map(float),
    ),
    min_size=1,
    max_size=300,
)


@settings(max_examples=150, deadline=None)
@given(values=values_strategy, data=st.data())
def test_merged_sketch_percentiles_match_exact_within_alpha(values, data):
    parts = data.draw(st.integers(min_value=1, max_value=6), label="parts")
    assignment = data.draw(
        st.lists(st.integers(0, parts - 1), min_size=len(values), max_size=len(values)),
        label="assignment",
    )
    sketches = [DDSketch(ALPHA) for _ in range(parts)]
    for v, k in zip(values, assignment, strict=True):
        sketches[k].add(v)
    order = data.draw(st.permutations(range(parts)), label="merge order")
    merged = DDSketch(ALPHA)
    for k in order:
        merged.merge(sketches[k])

    whole = DDSketch(ALPHA)
    whole.extend(values)
    assert merged == whole  # merging is exact: the same buckets as the whole
    assert merged.count == len(values)
    extra_q = data.draw(st.floats(min_value=0.0, max_value=1.0), label="q")
    for q in (*QS, extra_q):
        exact = exact_quantile(values, q)
        est = merged.quantile(q)
        assert exact is not None and est is not None
        assert within(est, exact), (q, est, exact)
    assert merged.min == min(values)
    assert merged.max == max(values)


@settings(max_examples=60, deadline=None)
@given(values=values_strategy, data=st.data())
def test_distribution_merge_beyond_exact_limit_stays_within_alpha(values, data):
    cut = data.draw(st.integers(0, len(values)), label="cut")
    a = Distribution.of(values[:cut], exact_limit=8)
    b = Distribution.of(values[cut:], exact_limit=8)
    a.merge(b)
    assert a.count == len(values)
    assert a.is_exact == (len(values) <= 8)
    for q in QS:
        exact = exact_quantile(values, q)
        est = a.quantile(q)
        assert est is not None and exact is not None
        if a.is_exact:
            assert est == exact
        else:
            assert within(est, exact)


@settings(max_examples=60, deadline=None)
@given(values=values_strategy)
def test_sketch_and_distribution_json_round_trip(values):
    d = Distribution.of(values, exact_limit=50)
    text = json.dumps(d.to_dict(), allow_nan=False)
    back = Distribution.from_dict(json.loads(text))
    assert back == d
    assert back.quantile(0.95) == d.quantile(0.95)
    sk = DDSketch.from_dict(json.loads(json.dumps(d.sketch.to_dict())))
    assert sk == d.sketch


def test_percentile_definition_is_the_inverse_empirical_cdf():
    values = [10.0, 20.0, 30.0, 40.0]
    assert exact_quantile(values, 0.5) == 20.0  # at least half the values <= 20
    assert exact_quantile(values, 0.51) == 30.0
    d = Distribution.of(values)
    assert d.quantile(0.5) == 20.0
    assert d.quantile(0.0) == 10.0
    assert d.quantile(1.0) == 40.0
    # the p99 of 20 values is their maximum
    assert Distribution.of(range(20)).quantile(0.99) == 19
    assert quantile_rank(100, 0.07) == 6 and quantile_rank(100, 0.99) == 98


@pytest.mark.parametrize("n", [1, 2, 3, 7, 10, 20, 99, 100, 101, 1000])
def test_quantile_rank_matches_numpy_inverted_cdf(n):
    values = np.arange(n, dtype=float)
    for q in QS:
        assert quantile_rank(n, q) == int(np.quantile(values, q, method="inverted_cdf")), q


def test_sketch_on_a_wide_range_and_first_last_exact():
    sk = DDSketch(ALPHA)
    rng = np.random.default_rng(7)
    values = rng.lognormal(mean=6.0, sigma=2.0, size=20_000)
    sk.extend(values.tolist())
    for q in QS:
        assert within(sk.quantile(q), exact_quantile(values.tolist(), q))
    assert sk.quantile(0) == values.min()
    assert sk.quantile(1) == values.max()
    # buckets are logarithmic: far fewer than values
    assert len(sk.to_dict()["positive"]) < 2000


def test_empty_and_bad_input():
    sk = DDSketch()
    assert sk.quantile(0.5) is None
    assert Distribution().quantile(0.99) is None
    assert Distribution().quantile_ci(0.99) is None
    assert Distribution().rate is None
    with pytest.raises(ValueError, match="finite"):
        sk.add(math.nan)
    with pytest.raises(ValueError, match="finite"):
        sk.add(math.inf)
    with pytest.raises(ValueError, match="between 0 and 1"):
        sk.quantile(95)
    with pytest.raises(ValueError, match="relative_accuracy"):
        DDSketch(0.0)
    with pytest.raises(ValueError, match="same α"):
        DDSketch(0.01).merge(DDSketch(0.02))


def test_from_dict_rejects_inconsistent_counts():
    sk = DDSketch()
    sk.extend([1.0, 2.0, 3.0])
    data = sk.to_dict()
    data["count"] = 7
    with pytest.raises(ValueError, match="count"):
        DDSketch.from_dict(data)
    with pytest.raises(ValueError, match="format"):
        DDSketch.from_dict({"format": "something else"})


def test_rate_counts_non_zero_values():
    d = Distribution.of([1, 0, 1, 1, 0, 1, 1, 1, 1, 1], exact_limit=4)
    assert not d.is_exact
    assert d.rate == pytest.approx(0.8)
    lo, hi = d.rate_ci()
    assert lo < 0.8 < hi


def test_order_statistic_ci_textbook_median():
    # n = 20, median, 95 %: the 6th and 15th order statistics (coverage 95.86 %)
    assert order_statistic_ci(20, 0.5) == (5, 14)
    b = stats.binom(20, 0.5)
    assert b.cdf(14) - b.cdf(5) == pytest.approx(0.9586, abs=1e-4)


@pytest.mark.parametrize("n", [1, 2, 5, 10, 19, 20, 21, 50, 100, 333, 1000])
@pytest.mark.parametrize("q", [0.5, 0.9, 0.95, 0.99])
def test_order_statistic_ci_covers_and_tails_are_bounded(n, q):
    lo, hi = order_statistic_ci(n, q)
    b = stats.binom(n, q)
    lower_tail = b.cdf(lo) if lo is not None else 0.0
    upper = b.cdf(hi) if hi is not None else 1.0
    assert upper - lower_tail >= 0.95 - 1e-12
    assert lower_tail <= 0.025 + 1e-12
    assert 1.0 - upper <= 0.025 + 1e-12
    # tight: moving either end inwards would break its tail bound
    if lo is not None and lo + 1 <= n - 1:
        assert b.cdf(lo + 1) > 0.025
    if hi is not None and hi >= 1:
        assert b.cdf(hi - 1) < 0.975
    if lo is not None and hi is not None:
        assert lo <= hi


def test_order_statistic_ci_small_n_is_unbounded():
    assert order_statistic_ci(50, 0.99)[1] is None  # p99 of 50 values: no upper bound
    assert order_statistic_ci(3, 0.5) == (None, None)
    d = Distribution.of(range(50))
    lo, hi = d.quantile_ci(0.99)
    assert math.isfinite(lo) and hi == math.inf


def test_quantile_ci_coverage_by_simulation():
    rng = np.random.default_rng(11)
    true_median = math.log(2)  # exponential(1)
    covered = 0
    trials = 400
    for _ in range(trials):
        d = Distribution.of(rng.exponential(1.0, size=30).tolist())
        lo, hi = d.quantile_ci(0.5)
        covered += lo <= true_median <= hi
    assert covered / trials >= 0.92  # nominal >= 95 %; binomial noise of 400 trials


def test_sketch_ci_contains_exact_ci():
    rng = np.random.default_rng(3)
    values = rng.gamma(2.0, 300.0, size=5000).tolist()
    exact = Distribution.of(values, exact_limit=10_000)
    sketched = Distribution.of(values, exact_limit=0)
    assert exact.is_exact and not sketched.is_exact
    e_lo, e_hi = exact.quantile_ci(0.95)
    s_lo, s_hi = sketched.quantile_ci(0.95)
    assert s_lo <= e_lo and s_hi >= e_hi
    assert within(s_lo, e_lo, 2.01 * ALPHA) and within(s_hi, e_hi, 2.01 * ALPHA)


def test_wilson_interval_known_values():
    lo, hi = wilson_ci(0, 10)
    assert lo == 0.0
    assert hi == pytest.approx(0.2775, abs=1e-3)
    lo, hi = wilson_ci(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)


def test_samples_without_exact_values_approximate_the_data():
    values = [float(v) for v in range(1, 501)]
    d = Distribution.of(values, exact_limit=10)
    s = d.samples()
    assert len(s) == 500
    assert all(within(a, b) for a, b in zip(sorted(s), values, strict=True))


def test_from_dict_bounds_sizes_and_merge_stays_small():
    import pytest

    from harness.gates.sketch import MAX_COUNT, DDSketch

    good = DDSketch()
    good.extend([1.0, 2.0, 3.0])
    d = good.to_dict()
    for bad, where in (
        ({"count": MAX_COUNT + 1}, "count"),
        ({"positive": [[10**9, 3]]}, "positive[0]"),
        ({"positive": [[1, 10**12]]}, "positive[0]"),
    ):
        with pytest.raises(ValueError, match=r"^" + where.replace("[", r"\[")):
            DDSketch.from_dict({**d, **bad})
    a, b = DDSketch.from_dict(d), DDSketch.from_dict(d)
    a.merge(b)
    assert a.count == 6 and len(a._pos) == len(good._pos)
