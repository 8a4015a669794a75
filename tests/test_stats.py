"""IQM, optimality gap, run-score distributions and the stratified bootstrap, against hand-computed values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from mbrl_bench.stats import (
    DEFAULT_BOOTSTRAP,
    BootstrapConfig,
    NormalisedTask,
    bootstrap_ci,
    iqm,
    iqm_estimate,
    normalised_bootstrap,
    optimality_gap,
    optimality_gap_estimate,
    performance_profile,
    run_score_distribution,
    stratified_bootstrap,
    stratified_resamples,
)


def test_iqm_of_eight_scores_is_the_mean_of_the_middle_four():
    assert iqm(np.arange(1.0, 9.0)) == 4.5  # mean(3, 4, 5, 6)


def test_iqm_cuts_int_quarter_from_each_end_and_ignores_order():
    x = [100.0, 3.0, 0.0, 7.0, 1.0, 9.0, 2.0, 8.0, 4.0, -50.0]
    # sorted: -50 0 | 1 2 3 4 7 8 | 9 100 -> int(2.5) = 2 cut each end
    assert iqm(x) == pytest.approx(25.0 / 6.0)


def test_iqm_of_fewer_than_four_scores_is_the_mean():
    assert iqm([1.0, 2.0, 10.0]) == pytest.approx(13.0 / 3.0)


def test_iqm_flattens_runs_and_tasks_like_rliable():
    matrix = np.array([[1.0, 8.0], [2.0, 7.0], [3.0, 6.0], [4.0, 5.0]])  # runs x tasks
    assert iqm(matrix) == 4.5


def test_iqm_along_an_axis_reduces_each_row():
    rows = np.stack([np.arange(1.0, 9.0), 10 * np.arange(1.0, 9.0)])
    np.testing.assert_allclose(iqm(rows, axis=-1), [4.5, 45.0])


def test_optimality_gap_by_hand():
    assert optimality_gap([0.5, 1.5, -1.0, 1.0]) == pytest.approx(0.625)  # mean(0.5, 0, 2, 0)
    assert optimality_gap([0.5, 1.5, -1.0, 1.0], gamma=2.0) == pytest.approx(1.5)  # mean(1.5, .5, 3, 1)


def test_optimality_gap_equals_rliables_formula():
    x = np.random.default_rng(3).normal(1.0, 1.0, size=50)
    assert optimality_gap(x) == pytest.approx(1.0 - np.mean(np.minimum(x, 1.0)))


def test_run_score_distribution_counts_strictly_above():
    out = run_score_distribution([0.0, 0.5, 1.0, 2.0], [-1.0, 0.0, 0.5, 1.5, 2.0])
    np.testing.assert_array_equal(out, [1.0, 0.75, 0.5, 0.25, 0.0])


def test_stratified_resamples_never_mix_tasks():
    res = stratified_resamples([[1.0, 2.0, 3.0], [10.0, 20.0]], 500, np.random.default_rng(0))
    assert res.shape == (500, 5)
    assert set(np.unique(res[:, :3])) == {1.0, 2.0, 3.0}
    assert set(np.unique(res[:, 3:])) == {10.0, 20.0}


def test_stratified_bootstrap_of_constant_tasks_has_no_spread():
    # pooled resampling would draw [0, 0, 0, 0] or [10, 10, 10, 10]; stratified always keeps two of each
    est = bootstrap_ci([0.0, 0.0, 10.0, 10.0])
    assert est.low < est.high  # the plain bootstrap does mix
    est = stratified_bootstrap([[0.0, 0.0], [10.0, 10.0]], lambda x: np.mean(x, axis=-1))
    assert (float(est.point), float(est.low), float(est.high)) == (5.0, 5.0, 5.0)


def test_stratified_replicates_follow_the_enumerated_distribution():
    # Task A runs (0, 1), task B runs (0, 3). Each task's resample sum is 0/1/2 resp. 0/3/6 with
    # probabilities 1/4, 1/2, 1/4; the mean over 4 runs has the distribution enumerated below.
    tasks = [[0.0, 1.0], [0.0, 3.0]]
    probs: dict[float, float] = {}
    for a, b in itertools.product(
        itertools.product([0.0, 1.0], repeat=2), itertools.product([0.0, 3.0], repeat=2)
    ):
        key = (sum(a) + sum(b)) / 4.0
        probs[key] = probs.get(key, 0.0) + 1.0 / 16.0
    reps = 20_000
    means = stratified_resamples(tasks, reps, np.random.default_rng(1)).mean(axis=1)
    values, counts = np.unique(means, return_counts=True)
    assert set(values) == set(probs)  # a pooled bootstrap could reach 3.0; stratified never exceeds 2.0
    for v, c in zip(values, counts, strict=True):
        assert c / reps == pytest.approx(probs[v], abs=0.015)
    est = stratified_bootstrap(tasks, lambda x: np.mean(x, axis=-1), BootstrapConfig(reps=reps))
    # P(mean = 0) = 1/16 > 2.5% and P(mean = 2) = 1/16 > 2.5%: the 95% CI is [0, 2], the point is 1
    assert (float(est.point), float(est.low), float(est.high)) == (1.0, 0.0, 2.0)


def test_percentile_interval_matches_the_replicates_quantiles():
    x = np.array([1.0, 4.0, 2.0, 8.0, 5.0, 7.0])
    config = BootstrapConfig(reps=3000, confidence=0.9, seed=5)
    est = bootstrap_ci(x, config=config)
    replicates = stratified_resamples([x], 3000, np.random.default_rng(5)).mean(axis=1)
    assert float(est.low) == pytest.approx(np.percentile(replicates, 5.0))
    assert float(est.high) == pytest.approx(np.percentile(replicates, 95.0))
    wide = bootstrap_ci(x, config=BootstrapConfig(reps=3000, confidence=0.99, seed=5))
    assert wide.low < est.low < est.point < est.high < wide.high


def test_bootstrap_is_reproducible_from_its_seed():
    tasks = [[0.1, 0.9, 1.3, 0.4], [2.0, 0.2, 0.7]]
    a = iqm_estimate(tasks, BootstrapConfig(seed=7))
    b = iqm_estimate(tasks, BootstrapConfig(seed=7))
    c = iqm_estimate(tasks, BootstrapConfig(seed=8))
    assert (a.low, a.high) == (b.low, b.high)
    assert (a.low, a.high) != (c.low, c.high)


def test_aggregate_estimates_point_values_by_hand():
    tasks = [[0.5, 1.0, 1.5], [0.5, 0.7]]
    # flattened sorted 0.5 0.5 0.7 1.0 1.5, int(1.25) = 1 cut each end -> mean(0.5, 0.7, 1.0)
    est = iqm_estimate(tasks)
    assert float(est.point) == pytest.approx(2.2 / 3.0)
    assert est.low <= est.point <= est.high
    gap = optimality_gap_estimate(tasks)
    assert float(gap.point) == pytest.approx(0.26)  # mean(0.5, 0, 0, 0.5, 0.3)
    assert gap.low <= gap.point <= gap.high


def test_single_run_tasks_have_no_ci():
    est = iqm_estimate([[1.0], [2.0], [3.0]])
    assert float(est.point) == 2.0
    assert np.isnan(est.low) and np.isnan(est.high)


def test_performance_profile_point_and_bands():
    tasks = [[0.0, 0.5, 1.0], [2.0, 3.0]]
    taus = np.array([-1.0, 0.25, 1.0, 2.5, 4.0])
    prof = performance_profile(tasks, taus)
    np.testing.assert_allclose(prof.point, [1.0, 0.8, 0.4, 0.2, 0.0])
    assert prof.low.shape == prof.high.shape == taus.shape
    assert np.all(prof.low <= prof.point) and np.all(prof.point <= prof.high)
    # every resample keeps 2 runs of task 2 above 1.0 and 3 runs of task 1 at or below it
    assert prof.low[2] == prof.high[2] == 0.4


@pytest.mark.parametrize(
    ("tasks", "match"),
    [([], "at least one task"), ([[1.0], []], "task 1"), ([[1.0, np.nan]], "task 0: scores must be finite")],
)
def test_bad_tasks_are_rejected(tasks, match):
    with pytest.raises(ValueError, match=match):
        iqm_estimate(tasks)


@pytest.mark.parametrize(("kwargs", "match"), [({"reps": 0}, "reps"), ({"confidence": 1.0}, "confidence")])
def test_bad_bootstrap_config_is_rejected(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BootstrapConfig(**kwargs)


def test_normalised_bootstrap_with_exact_references_is_the_stratified_bootstrap():
    returns = np.array([12.0, 40.0, 55.0, 70.0, 90.0])
    task = NormalisedTask(returns, np.zeros(5, bool), 10.0, 0.0, 110.0, 0.0)
    mean = lambda x: np.mean(x, axis=-1)
    carried = normalised_bootstrap([task], mean, DEFAULT_BOOTSTRAP)
    plain = stratified_bootstrap([(returns - 10.0) / 100.0], mean, DEFAULT_BOOTSTRAP)
    for got, want in ((carried.point, plain.point), (carried.low, plain.low), (carried.high, plain.high)):
        assert float(got) == pytest.approx(float(want))


def test_reference_uncertainty_widens_the_ci_and_broken_runs_score_as_random():
    returns = np.array([60.0, 70.0, 80.0, np.nan])
    broken = np.array([False, False, False, True])
    exact = NormalisedTask(returns, broken, 10.0, 0.0, 110.0, 0.0)
    noisy = NormalisedTask(returns, broken, 10.0, 5.0, 110.0, 20.0)
    mean = lambda x: np.mean(x, axis=-1)
    a, b = normalised_bootstrap([exact], mean), normalised_bootstrap([noisy], mean)
    # The broken run counts as the random reference: normalised 0 beside 0.5, 0.6, 0.7.
    assert float(a.point) == pytest.approx(0.45) and float(b.point) == pytest.approx(0.45)
    assert float(b.high - b.low) > float(a.high - a.low)
    # One run and exact references: nothing varies, no CI; a noisy reference alone gives one.
    single = NormalisedTask(np.array([60.0]), np.array([False]), 10.0, 0.0, 110.0, 0.0)
    assert np.isnan(normalised_bootstrap([single], mean).low)
    single_noisy = NormalisedTask(np.array([60.0]), np.array([False]), 10.0, 0.0, 110.0, 20.0)
    ci = normalised_bootstrap([single_noisy], mean)
    assert float(ci.low) < 0.5 < float(ci.high)
    with pytest.raises(ValueError, match="must be finite"):
        NormalisedTask(np.array([np.nan]), np.array([False]), 10.0, 0.0, 110.0, 0.0)
