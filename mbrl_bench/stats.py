"""Robust aggregates across tasks with stratified bootstrap confidence intervals, as rliable defines them.

rliable (Agarwal et al. 2021, "Deep RL at the Edge of the Statistical Precipice") is the reference, but
its releases fail with today's pandas/arch, so the few pieces mbrl-bench needs are written here on
numpy/scipy, following rliable's definitions:

* IQM: the 25% trimmed mean (``scipy.stats.trim_mean(x, 0.25)``) of the scores of *all runs of all
  tasks flattened together* (rliable's ``aggregate_iqm`` with ``axis=None``).
* Optimality gap: ``mean(max(gamma - x, 0))`` over all runs of all tasks, ``gamma = 1`` (rliable's
  ``gamma - mean(min(x, gamma))``, the same number).
* Performance profile (run-score distribution): the fraction of all runs whose score is ``> tau``,
  on a grid of ``tau``.
* Stratified bootstrap: each task's runs are resampled with replacement independently of the other
  tasks (a task never lends runs to another), the aggregate is recomputed on the resampled runs, and
  the CI is the percentile interval of the replicates.

rliable stores scores as a (runs x tasks) matrix, so every task has the same number of runs. Here a
task may have a different number of runs (seeds that diverged are dropped); the runs are flattened
together as rliable does, so a task with more runs weighs more in the aggregate. With equal run counts
every number equals rliable's.

A statistic here is a function of a ``(reps, n_runs)`` array that reduces the last axis, giving
``(reps,)`` or ``(reps, k)``: all bootstrap replicates are computed in one vectorised call.

Normalised scores divide by reference scores that are themselves means over a few calibration seeds.
``normalised_bootstrap`` carries that uncertainty into the CIs (beyond rliable, which treats the
references as exact): each replicate resamples the runs within each task as above *and* draws the
task's random and baseline reference means from N(mean, sem^2), sem = std / sqrt(n_seeds) from the
reference table (a parametric bootstrap of the reference means: the table keeps their mean, std and
seed count, not the calibration seeds), then normalises the resampled raw returns with the drawn
references. The point estimate uses the table's means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.stats
from numpy.typing import ArrayLike, NDArray

from mbrl_bench.scores import normalised_score

Statistic = Callable[[NDArray[np.float64]], NDArray[np.float64]]


@dataclass(frozen=True)
class BootstrapConfig:
    """How bootstrap confidence intervals are computed."""

    reps: int = 2000
    """Bootstrap replicates; rliable's default for performance profiles (``create_performance_profile``).
    rliable's interval estimates default to 50,000, which moves a percentile CI end by well under its
    own width at the seed counts of RL experiments while costing 25x the time."""
    confidence: float = 0.95
    """Coverage of the percentile interval; rliable's default (``confidence_interval_size``)."""
    seed: int = 0
    """Seed of the numpy generator drawing the resamples, so a leaderboard is reproducible (mbrl-bench)."""

    def __post_init__(self) -> None:
        if not isinstance(self.reps, int) or self.reps < 1:
            raise ValueError(f"reps must be a positive int, got {self.reps!r}")
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must lie in (0, 1), got {self.confidence!r}")


DEFAULT_BOOTSTRAP = BootstrapConfig()
"""The bootstrap settings used unless a caller passes its own."""


@dataclass(frozen=True)
class IntervalEstimate:
    """A point estimate with its percentile bootstrap CI."""

    point: NDArray[np.float64]
    """The statistic on the observed runs (a 0-d array for a scalar statistic)."""
    low: NDArray[np.float64]
    """Lower CI end, same shape as ``point``; NaN when no task has two runs (nothing to resample)."""
    high: NDArray[np.float64]
    """Upper CI end, same shape as ``point``; NaN when no task has two runs."""


def iqm(scores: ArrayLike, axis: int | None = None) -> NDArray[np.float64]:
    """Interquartile mean: the mean of the middle 50% of the scores (25% cut from each end).

    ``scipy.stats.trim_mean`` cuts ``int(0.25 * n)`` scores from each end, so with fewer than 4 scores
    nothing is cut and the IQM is the plain mean. ``axis=None`` flattens, as rliable does across runs
    and tasks.
    """
    return np.asarray(scipy.stats.trim_mean(np.asarray(scores, dtype=np.float64), 0.25, axis=axis))


def optimality_gap(scores: ArrayLike, gamma: float = 1.0, axis: int | None = None) -> NDArray[np.float64]:
    """How far the scores fall short of ``gamma`` on average: ``mean(max(gamma - x, 0))``.

    Scores above ``gamma`` count as ``gamma`` (beating the target by a lot does not make up for
    failing elsewhere). Lower is better; 0 means every run reached ``gamma``. ``gamma = 1`` is the
    baseline's level for normalised scores (rliable's default).
    """
    x = np.asarray(scores, dtype=np.float64)
    return np.asarray(np.mean(np.maximum(gamma - x, 0.0), axis=axis))


def run_score_distribution(scores: ArrayLike, taus: ArrayLike) -> NDArray[np.float64]:
    """The fraction of runs with score strictly above each ``tau`` (rliable's ``run_score_deviation``).

    Args:
        scores: ``(..., n_runs)``; the last axis is reduced.
        taus: 1-D grid of thresholds.

    Returns:
        ``(..., len(taus))``.
    """
    x = np.asarray(scores, dtype=np.float64)
    t = np.asarray(taus, dtype=np.float64)
    if t.ndim != 1:
        raise ValueError(f"taus must be 1-D, got shape {t.shape}")
    return np.mean(x[..., None, :] > t[:, None], axis=-1)


def _checked_tasks(tasks: Sequence[ArrayLike]) -> list[NDArray[np.float64]]:
    if len(tasks) == 0:
        raise ValueError("need at least one task of scores, got none")
    out = []
    for i, task in enumerate(tasks):
        x = np.asarray(task, dtype=np.float64)
        if x.ndim != 1 or x.size == 0:
            raise ValueError(f"task {i}: scores must be a non-empty 1-D array, got shape {x.shape}")
        if not np.all(np.isfinite(x)):
            raise ValueError(f"task {i}: scores must be finite, got {x.tolist()}")
        out.append(x)
    return out


def stratified_resamples(tasks: Sequence[ArrayLike], reps: int, rng: np.random.Generator) -> NDArray:
    """``reps`` stratified resamples of the runs, as a ``(reps, total runs)`` array.

    Columns keep the task order of the input: the first ``len(tasks[0])`` columns are resampled from
    task 0's runs only, and so on (each task's runs drawn with replacement, independently).
    """
    checked = _checked_tasks(tasks)
    return np.concatenate([x[rng.integers(0, x.size, size=(reps, x.size))] for x in checked], axis=1)


def stratified_bootstrap(
    tasks: Sequence[ArrayLike], statistic: Statistic, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> IntervalEstimate:
    """A statistic of all runs of all tasks, with its stratified-bootstrap percentile CI.

    Args:
        tasks: One 1-D array of run scores per task (run counts may differ).
        statistic: Maps ``(reps, n_runs)`` to ``(reps,)`` or ``(reps, k)`` (see the module docstring),
            e.g. ``lambda x: iqm(x, axis=-1)``.
        config: Replicates, coverage and seed.
    """
    checked = _checked_tasks(tasks)
    point = np.asarray(statistic(np.concatenate(checked)[None, :]))[0]
    if all(x.size < 2 for x in checked):
        nan = np.full_like(point, np.nan)
        return IntervalEstimate(point, nan, nan.copy())
    replicates = np.asarray(
        statistic(stratified_resamples(checked, config.reps, np.random.default_rng(config.seed)))
    )
    tail = 100.0 * (1.0 - config.confidence) / 2.0
    low, high = np.percentile(replicates, [tail, 100.0 - tail], axis=0)
    return IntervalEstimate(point, np.asarray(low), np.asarray(high))


def bootstrap_ci(
    samples: ArrayLike, statistic: Statistic | None = None, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> IntervalEstimate:
    """The plain (one-task) bootstrap percentile CI of a statistic of ``samples``; the mean by default."""
    return stratified_bootstrap([samples], statistic or (lambda x: np.mean(x, axis=-1)), config)


def iqm_estimate(tasks: Sequence[ArrayLike], config: BootstrapConfig = DEFAULT_BOOTSTRAP) -> IntervalEstimate:
    """IQM over all runs of all tasks with its stratified bootstrap CI."""
    return stratified_bootstrap(tasks, lambda x: iqm(x, axis=-1), config)


def optimality_gap_estimate(
    tasks: Sequence[ArrayLike], gamma: float = 1.0, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> IntervalEstimate:
    """Optimality gap over all runs of all tasks with its stratified bootstrap CI."""
    return stratified_bootstrap(tasks, lambda x: optimality_gap(x, gamma, axis=-1), config)


def performance_profile(
    tasks: Sequence[ArrayLike], taus: ArrayLike, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> IntervalEstimate:
    """The run-score distribution over ``taus`` with pointwise stratified bootstrap bands.

    Returns an estimate whose ``point``, ``low`` and ``high`` have the shape of ``taus``.
    """
    return stratified_bootstrap(tasks, lambda x: run_score_distribution(x, taus), config)


@dataclass(frozen=True)
class NormalisedTask:
    """One task's raw final returns and the references they are normalised against."""

    returns: NDArray[np.float64]
    """Final return of every run; entries where ``at_random`` is True are ignored."""
    at_random: NDArray[np.bool_]
    """Runs that count with the random reference's return (diverged or failed runs)."""
    random_mean: float
    random_sem: float
    """Standard error of the random reference's mean (0: treated as exact)."""
    baseline_mean: float
    baseline_sem: float

    def __post_init__(self) -> None:
        returns = np.asarray(self.returns, dtype=np.float64)
        at_random = np.asarray(self.at_random, dtype=bool)
        if returns.ndim != 1 or returns.size == 0 or at_random.shape != returns.shape:
            raise ValueError(
                f"returns and at_random must be non-empty 1-D arrays of one length, got shapes "
                f"{returns.shape} and {at_random.shape}"
            )
        if not np.all(np.isfinite(returns[~at_random])):
            raise ValueError(f"returns of counted runs must be finite, got {returns.tolist()}")
        values = (self.random_mean, self.random_sem, self.baseline_mean, self.baseline_sem)
        if not all(np.isfinite(v) for v in values) or self.random_sem < 0 or self.baseline_sem < 0:
            raise ValueError(f"reference means must be finite and sems finite and >= 0, got {values}")
        object.__setattr__(self, "returns", returns)
        object.__setattr__(self, "at_random", at_random)

    def normalised(
        self, idx: NDArray[np.intp], random: NDArray[np.float64], baseline: NDArray[np.float64]
    ) -> NDArray[np.float64]:
        """Normalised scores of the runs ``idx`` (``(reps, n)``) against per-row references ``(reps, 1)``."""
        raw = np.where(self.at_random[idx], random, self.returns[idx])
        return np.asarray(normalised_score(raw, random, baseline), dtype=np.float64)


def normalised_bootstrap(
    tasks: Sequence[NormalisedTask], statistic: Statistic, config: BootstrapConfig = DEFAULT_BOOTSTRAP
) -> IntervalEstimate:
    """A statistic of all runs' normalised scores, with a CI that resamples runs within tasks and draws
    each task's reference means (see the module docstring).

    The CI is NaN only when nothing varies: no task has two runs and every sem is 0.
    """
    if len(tasks) == 0:
        raise ValueError("need at least one task of scores, got none")
    exact = [
        t.normalised(np.arange(t.returns.size)[None, :], np.full((1, 1), t.random_mean),
                     np.full((1, 1), t.baseline_mean))
        for t in tasks
    ]  # fmt: skip
    point = np.asarray(statistic(np.concatenate(exact, axis=1)))[0]
    if all(t.returns.size < 2 and t.random_sem == 0 and t.baseline_sem == 0 for t in tasks):
        nan = np.full_like(point, np.nan)
        return IntervalEstimate(point, nan, nan.copy())
    rng = np.random.default_rng(config.seed)
    blocks = []
    for t in tasks:
        idx = rng.integers(0, t.returns.size, size=(config.reps, t.returns.size))
        random = t.random_mean + t.random_sem * rng.standard_normal((config.reps, 1))
        baseline = t.baseline_mean + t.baseline_sem * rng.standard_normal((config.reps, 1))
        blocks.append(t.normalised(idx, random, baseline))
    replicates = np.asarray(statistic(np.concatenate(blocks, axis=1)))
    tail = 100.0 * (1.0 - config.confidence) / 2.0
    # A draw can put the baseline exactly on random (NaN score): percentiles over the finite replicates.
    low, high = np.nanpercentile(replicates, [tail, 100.0 - tail], axis=0)
    return IntervalEstimate(point, np.asarray(low), np.asarray(high))
