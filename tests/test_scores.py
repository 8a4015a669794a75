"""SimPLe's normalised score (every edge case), the final return at a budget and the AUC."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from mbrl_bench.scores import area_under_curve, final_return, normalised_score


@pytest.fixture(autouse=True)
def _no_numpy_warnings():
    """Division by zero must be handled, not warned about."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        yield


def test_positive_denominator_is_the_plain_ratio():
    assert normalised_score(5.0, 1.0, 3.0) == 2.0  # (5 - 1) / (3 - 1)


def test_score_equal_to_baseline_is_one_and_random_is_zero():
    assert normalised_score(3.0, 1.0, 3.0) == 1.0
    assert normalised_score(1.0, 1.0, 3.0) == 0.0


def test_negative_numerator_is_not_clipped():
    assert normalised_score(0.0, 2.0, 6.0) == -0.5  # (0 - 2) / (6 - 2)


def test_zero_denominator_is_nan_not_inf():
    assert math.isnan(normalised_score(5.0, 2.0, 2.0))


def test_negative_denominator_adds_one_to_both():
    # den = 5 - 10 = -5 -> -4; num = 3 - 10 = -7 -> -6; -6 / -4
    assert normalised_score(3.0, 10.0, 5.0) == 1.5


def test_denominator_still_negative_after_adjustment_inverts_the_sign():
    # den -5 -> -4 stays negative: a score above random gets a negative normalised score (as published)
    assert normalised_score(20.0, 10.0, 5.0) == pytest.approx((10.0 + 1.0) / -4.0)


def test_denominator_minus_one_becomes_zero_and_gives_nan():
    assert math.isnan(normalised_score(7.0, 3.0, 2.0))


def test_denominator_between_minus_one_and_zero_becomes_positive():
    # den = 0.5 - 1 = -0.5 -> 0.5; num = 2 - 1 = 1 -> 2
    assert normalised_score(2.0, 1.0, 0.5) == 4.0


def test_nan_reference_gives_nan():
    assert math.isnan(normalised_score(5.0, math.nan, 3.0))
    assert math.isnan(normalised_score(5.0, 1.0, math.nan))


def test_arrays_mixing_every_case():
    score = np.array([5.0, 5.0, 3.0, 7.0, 0.0, 2.0])
    random = np.array([1.0, 2.0, 10.0, 3.0, 2.0, 1.0])
    baseline = np.array([3.0, 2.0, 5.0, 2.0, 6.0, 0.5])
    out = normalised_score(score, random, baseline)
    assert isinstance(out, np.ndarray)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, [2.0, np.nan, 1.5, np.nan, -0.5, 4.0])


def test_broadcasts_scores_against_scalar_references():
    out = normalised_score(np.array([[1.0, 3.0], [5.0, 7.0]]), 1.0, 3.0)
    np.testing.assert_array_equal(out, [[0.0, 1.0], [2.0, 3.0]])


@pytest.mark.parametrize("scalar", [5, 5.0, np.float32(5.0), np.int64(5), np.array(5.0)])
def test_scalar_in_gives_python_float_out(scalar):
    out = normalised_score(scalar, 1, 3)
    assert type(out) is float
    assert out == 2.0


def test_scalar_nan_result_is_a_python_float():
    assert type(normalised_score(5, 2, 2)) is float


STEPS = [0, 1000, 2000, 3000]
RETURNS = [10.0, 20.0, 30.0, 40.0]


@pytest.mark.parametrize(
    ("budget", "expected"), [(0, 10.0), (999, 10.0), (2500, 30.0), (3000, 40.0), (9000, 40.0)]
)
def test_final_return_is_the_last_evaluation_at_or_before_the_budget(budget, expected):
    assert final_return(STEPS, RETURNS, budget) == expected


def test_final_return_rejects_a_budget_before_the_first_evaluation():
    with pytest.raises(ValueError, match="budget -1"):
        final_return(STEPS, RETURNS, -1)


def test_auc_is_the_trapezoidal_mean_return_up_to_the_budget():
    steps, returns = [0, 1000, 2000], [0.0, 10.0, 30.0]
    # (0.5 * (0 + 10) * 1000 + 0.5 * (10 + 30) * 1000) / 2000
    assert area_under_curve(steps, returns, 2000) == 12.5
    assert area_under_curve(steps, returns, 1999) == 5.0  # cut at 1000: 5000 / 1000
    assert area_under_curve(steps, returns, 0) == 0.0


def test_auc_of_a_constant_curve_is_that_constant():
    assert area_under_curve(STEPS, [7.0] * 4, 3000) == pytest.approx(7.0)


def test_curves_of_mismatched_length_are_rejected():
    with pytest.raises(ValueError, match="equal, non-zero length"):
        area_under_curve([0, 1], [1.0], 1)
    with pytest.raises(ValueError, match="equal, non-zero length"):
        final_return([], [], 0)
