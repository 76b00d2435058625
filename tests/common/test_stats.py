"""common.stats: paired-difference CI against scipy's paired t-test, smoothed peaks, power against simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from reprozoo.common.stats import (
    final_mean,
    min_detectable_effect,
    moving_average,
    paired_diff,
    power,
    seeds_for_power,
    smoothed_peak,
)


def test_paired_diff_matches_scipys_paired_t_interval():
    rng = np.random.default_rng(0)
    a = {s: float(x) for s, x in enumerate(rng.normal(1.0, 1.0, 8))}
    b = {s: a[s] - 0.3 + float(e) for s, e in enumerate(rng.normal(0.0, 0.2, 8))}
    d = paired_diff(a, b)
    diffs = np.array([a[s] - b[s] for s in range(8)])
    ci = stats.ttest_rel(list(a.values()), list(b.values())).confidence_interval(0.95)
    assert d.mean == pytest.approx(diffs.mean()) and d.n == 8 and d.sd == pytest.approx(diffs.std(ddof=1))
    assert (d.low, d.high) == pytest.approx((ci.low, ci.high))
    obs = d.as_observed("gain")
    assert obs["gain"] == d.mean and obs["gain_low"] == d.low and obs["n_seeds"] == 8


def test_paired_diff_is_paired_and_refuses_unmatched_seeds():
    """A shared per-seed offset cancels in the paired CI (it would not in two separate means)."""
    offset = {s: 10.0 * s for s in range(5)}
    d = paired_diff({s: offset[s] + 1.0 for s in offset}, {s: offset[s] for s in offset})
    assert d.mean == pytest.approx(1.0) and d.ci95 == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="seeds differ"):
        paired_diff({0: 1.0, 1: 2.0}, {0: 1.0, 2: 2.0})
    assert paired_diff({3: 2.0}, {3: 1.0}).ci95 == 0.0


def test_smoothed_peak_is_not_made_by_one_lucky_evaluation():
    curve = [0.0, 0.1, 0.2, 1.0, 0.2, 0.3, 0.3, 0.3]
    assert moving_average(curve, 3) == pytest.approx([0.1, 1.3 / 3, 1.4 / 3, 0.5, 0.8 / 3, 0.3])
    assert smoothed_peak(curve) == pytest.approx(0.5) and max(curve) == 1.0
    assert final_mean(curve, 3) == pytest.approx(0.3)
    assert smoothed_peak([0.4, 0.6]) == pytest.approx(0.5)  # shorter than the window: its mean
    with pytest.raises(ValueError):
        moving_average(curve, 0)


def test_power_matches_simulated_paired_t_tests():
    """power(δ, σ, n) against the rejection rate of scipy's one-sided paired t-test on simulated seeds."""
    rng = np.random.default_rng(1)
    effect, sd, n = 0.5, 1.0, 12
    diffs = rng.normal(effect, sd, size=(20000, n))
    t = diffs.mean(1) / (diffs.std(1, ddof=1) / math.sqrt(n))
    simulated = float((t > stats.t.ppf(0.975, n - 1)).mean())  # the CI's lower end above 0
    assert power(effect, sd, n) == pytest.approx(simulated, abs=0.01)


def test_seeds_for_power_and_the_minimum_detectable_effect_agree():
    n = seeds_for_power(0.5, 1.0)  # at ALPHA = 0.025, the level of a "95% CI above 0" decision
    assert power(0.5, 1.0, n) >= 0.8 > power(0.5, 1.0, n - 1)
    assert n == 34 and seeds_for_power(0.5, 1.0, alpha=0.05) == 27  # the textbook paired t-test at d = 0.5
    mde = min_detectable_effect(1.0, n)
    assert mde <= 0.5 and power(mde, 1.0, n) == pytest.approx(0.8, abs=1e-6)
    assert seeds_for_power(2.0, 0.5) == 3  # a large effect needs few seeds (never fewer than 2)
    with pytest.raises(ValueError, match="more than"):
        seeds_for_power(0.01, 1.0, max_seeds=50)
