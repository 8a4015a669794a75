"""Per-run scores: SimPLe's normalised score, the final return at a budget, the area under a curve.

These are the numbers the leaderboard reports for each seed before aggregating them. They run on the
host with numpy (results are read from CSV files, far from any jitted code).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray


def normalised_score(
    score: ArrayLike, random_score: ArrayLike, baseline_score: ArrayLike
) -> float | NDArray[np.float64]:
    """SimPLe's normalised score (Kaiser et al. 2019, Figure 4), applied literally.

    ``(score - random_score) / (baseline_score - random_score)``, where, as SimPLe states, "if the
    denominator is smaller than 0, both nominator and denominator are increased by 1". The rule is
    applied as published so that numbers stay comparable with SimPLe's; the cases the published
    formula leaves open are defined here:

    * ``den = baseline - random == 0`` (the baseline is no better than random): NaN, never inf.
    * ``den < 0`` (the baseline is worse than random): numerator and denominator each get ``+1``.
      The result can still have a negative denominator (``den = -5`` becomes ``-4``), in which case a
      score above random gives a negative normalised score; this is the published formula, kept.
    * ``den`` in ``[-1, 0)`` can become 0 after the adjustment (``-1`` becomes ``0``): NaN.
    * A score below random gives a negative numerator and, with a positive denominator, a negative
      normalised score; it is not clipped.
    * A NaN in any input (e.g. a missing reference score) gives NaN.

    Args:
        score: The agent's score(s); the three arguments broadcast like numpy arrays.
        random_score: The random policy's score(s) at the same budget.
        baseline_score: The baseline's (PPO's, Rainbow's) score(s) at the same budget.

    Returns:
        A Python ``float`` when all three inputs are scalars (or 0-d arrays), else a float64 array of
        the broadcast shape.
    """
    s = np.asarray(score, dtype=np.float64)
    r = np.asarray(random_score, dtype=np.float64)
    b = np.asarray(baseline_score, dtype=np.float64)
    num = s - r
    den = b - r
    below = den < 0
    num = np.where(below, num + 1.0, num)
    den = np.where(below, den + 1.0, den)
    zero = den == 0
    out = np.where(zero, np.nan, num / np.where(zero, 1.0, den))
    return float(out) if out.ndim == 0 else out


def _checked_curve(env_step: ArrayLike, eval_return: ArrayLike, budget: int) -> tuple[NDArray, NDArray]:
    steps = np.asarray(env_step, dtype=np.float64)
    returns = np.asarray(eval_return, dtype=np.float64)
    if steps.ndim != 1 or steps.shape != returns.shape or steps.size == 0:
        raise ValueError(
            f"a curve needs two 1-D arrays of equal, non-zero length; got shapes {steps.shape} and "
            f"{returns.shape}"
        )
    if budget < steps[0]:
        raise ValueError(f"budget {budget} is before the curve's first evaluation at env step {steps[0]:g}")
    return steps, returns


def final_return(env_step: ArrayLike, eval_return: ArrayLike, budget: int) -> float:
    """The evaluation return at the last evaluation at or before ``budget`` env steps.

    A curve is a step function of evaluations; the "final return at budget B" is what an evaluation
    run at B would have reported most recently, never an interpolation towards a later evaluation
    (which would use data from beyond the budget).

    Args:
        env_step: Increasing env steps of the evaluations.
        eval_return: Mean evaluation return at each of those steps.
        budget: Env-step budget; must not lie before the first evaluation.
    """
    steps, returns = _checked_curve(env_step, eval_return, budget)
    return float(returns[np.searchsorted(steps, budget, side="right") - 1])


def area_under_curve(env_step: ArrayLike, eval_return: ArrayLike, budget: int) -> float:
    """Mean return over training: the trapezoidal area under the curve up to the budget, per env step.

    The curve is cut at its last evaluation at or before ``budget`` (call that step ``b``); the area
    from the first evaluation (step 0 in mbrl-bench results) to ``b`` is divided by ``b - first`` so
    the number is in units of return, comparable to ``final_return``, and rewards learning early as
    well as learning well. A curve cut at its first evaluation has area 0 over a span of 0: its AUC is
    that evaluation's return.

    Args:
        env_step: Increasing env steps of the evaluations.
        eval_return: Mean evaluation return at each of those steps.
        budget: Env-step budget; must not lie before the first evaluation.
    """
    steps, returns = _checked_curve(env_step, eval_return, budget)
    end = np.searchsorted(steps, budget, side="right")
    steps, returns = steps[:end], returns[:end]
    span = steps[-1] - steps[0]
    if span == 0:
        return float(returns[0])
    return float(np.trapezoid(returns, steps) / span)
