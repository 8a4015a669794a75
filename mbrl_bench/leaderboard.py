"""The leaderboard: per-cell scores and cross-task aggregates from a results directory.

Reads the results layout the harness writes,
``DIR/<algo>/<env label, "/" written as "__">/<capacity>/seed_<k>/{curve.csv,config.json,status.json}``,
and computes, per (algo, env, capacity) cell, the final return over seeds with a bootstrap CI, the
area under the curve and the scores normalised against PPO and Rainbow (``mbrl_bench.scores``,
``mbrl_bench.reference``); then, per (algo, capacity), the IQM and optimality gap of the normalised
scores across envs with stratified bootstrap CIs (``mbrl_bench.stats``).

Definitions (the README's leaderboard section says the same):

* Seeds. A seed's ``status.json`` state decides how it counts: ``diverged`` and ``failed`` seeds count
  with the random reference's return at the cell's reference budget (normalised score 0: a run that
  broke is scored as no better than chance, defined even when it left no curve) and are flagged
  (``n_diverged``, ``n_failed``, the runs table's ``outcome``, a note); without a random reference
  they cannot be scored and are excluded with a note. ``done`` seeds must have a valid curve.csv;
  ``running`` and ``pending`` seeds are used when their curve reaches the budget (rows of a curve are
  written atomically at each evaluation, so a partial curve is trustworthy up to its last row).
* Budget. By default the largest env step that every ``done`` seed of the cell reached (the last
  evaluation of the shortest finished seed; if no seed is done yet, of the shortest seed with a
  curve). ``budget=N`` sets it for every cell. Seeds whose curve stops before the budget are excluded
  and counted in ``n_short`` with a warning, never dropped in silence.
* Final return: a seed's evaluation return at its last evaluation at or before the budget.
  ``return_mean`` is the mean over the cell's used seeds, ``return_ci_*`` its 95% percentile bootstrap
  CI over seeds (NaN with fewer than two seeds).
* AUC: the mean over seeds of each seed's trapezoidal area under its eval-return curve from step 0 to
  its last evaluation at or before the budget, divided by that span: a mean return over training.
* Normalised scores: SimPLe's formula on ``return_mean`` (per seed for the aggregates) against the
  random, PPO and Rainbow references at the smallest reference budget at or above the cell's budget
  (``reference_budget``). A missing reference gives NaN and a sentence in ``notes``.
* Aggregates: per (algo, capacity) and per baseline, over the envs whose normalised score is
  defined, IQM and optimality gap (gamma 1) of all counted runs' normalised scores flattened, with
  stratified bootstrap CIs (seeds resampled within each env) that also draw each env's reference
  means from their calibration uncertainty (``mbrl_bench.stats.normalised_bootstrap``).
* Flags: ``reference_flag`` is True where the zero-action or random reference comes within 20% of
  the PPO reference (``mbrl_bench.reference.reference_flags``, the reason in ``notes``): PPO-normalised
  scores there are shown but not to be trusted.

Any results file that cannot be read raises ``ResultsError`` naming the path and the problem; the CLI
maps it to exit status 2. Every file written here is written atomically.
"""

from __future__ import annotations

import functools
import json
import math
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mbrl_bench.reference import load_reference_scores, match_reference, reference_flags
from mbrl_bench.scores import area_under_curve, final_return, normalised_score
from mbrl_bench.stats import (
    DEFAULT_BOOTSTRAP,
    BootstrapConfig,
    IntervalEstimate,
    NormalisedTask,
    bootstrap_ci,
    iqm,
    normalised_bootstrap,
    optimality_gap,
    run_score_distribution,
)

CURVE_COLUMNS = ("env_step", "eval_return", "eval_return_std", "eval_episodes", "wall_time_s")
"""Columns every curve.csv must have (the harness's results contract)."""
STATES = ("pending", "running", "done", "failed", "diverged")
"""Valid ``state`` values of a status.json."""
BASELINES = ("ppo", "rainbow")
"""The baselines scores are normalised against."""
LEADERBOARD_COLUMNS = (
    "algo", "env", "capacity", "n_seeds", "budget", "return_mean", "return_ci_low", "return_ci_high",
    "auc", "random_score", "ppo_score", "rainbow_score", "ppo_normalised", "rainbow_normalised",
    "return_std", "next_obs_mse", "reward_mse", "transition_kl", "value_equivalence_error",
    "reference_budget", "zero_score", "n_diverged", "n_failed", "n_short", "reference_flag", "notes",
)  # fmt: skip
"""Columns of leaderboard.csv, in order."""
RUN_COLUMNS = (
    "algo", "env", "capacity", "seed", "outcome", "budget", "final_return", "auc", "next_obs_mse",
    "reward_mse", "transition_kl", "value_equivalence_error", "ppo_normalised", "rainbow_normalised",
    "random_score", "random_sem", "ppo_score", "ppo_sem", "rainbow_score", "rainbow_sem",
)  # fmt: skip
"""Columns of the per-seed table (one row per counted seed): ``outcome`` is the seed's state (a
``diverged`` or ``failed`` one has the random reference as ``final_return`` and NaN AUC and model
metrics); the reference means and their standard errors are the inputs of the aggregates' bootstrap."""
MODEL_METRICS = ("next_obs_mse", "reward_mse", "transition_kl", "value_equivalence_error")
"""Model-error metrics reported beside the returns: a model-based agent's curve.csv columns of these
names (the model's next-observation and reward MSE on real data, i.e. its negative log-likelihood up to
constants for a deterministic model; a tabular model's mean KL(P || P_hat); and its value-equivalence
error |B^theta Q - B Q|), taken from the
last evaluation at or before the budget (each a mean over the steps since the evaluation before);
NaN for agents without a model."""
_AGGREGATE_METRICS = ("iqm", "iqm_ci_low", "iqm_ci_high", "optimality_gap", "optimality_gap_ci_low",
                      "optimality_gap_ci_high")  # fmt: skip
AGGREGATE_COLUMNS = (
    "algo",
    "capacity",
    "n_envs",
    *(f"{b}_{m}" for b in BASELINES for m in ("n_envs", "n_runs", *_AGGREGATE_METRICS)),
)
"""Columns of the aggregates CSV: per baseline, the envs and runs aggregated and the two metrics."""


class ResultsError(ValueError):
    """A results directory or file that cannot be read; the message starts with its path."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")


@dataclass(frozen=True, eq=False)
class SeedRun:
    """One seed directory as read from disk."""

    path: Path
    seed: int
    state: str
    """One of ``STATES``."""
    curve: pd.DataFrame | None
    """The checked curve (``CURVE_COLUMNS`` as float64), or None when the seed has not written one."""
    steps: int | None = None
    """The env steps the seed was planned for (config.json's ``steps``), None if unknown."""


@dataclass(frozen=True, eq=False)
class Cell:
    """One (algo, env, capacity) directory and its seeds."""

    path: Path
    algo: str
    env: str
    """The env label (from config.json's ``env_label``, else the directory name with "__" as "/")."""
    capacity: str
    seeds: tuple[SeedRun, ...]


@dataclass(frozen=True, eq=False)
class Leaderboard:
    """Everything ``build_leaderboard`` computed; ``write_leaderboard`` saves it."""

    results_dir: Path
    cells: pd.DataFrame
    """One row per cell, ``LEADERBOARD_COLUMNS``, sorted by env then ppo_normalised descending."""
    runs: pd.DataFrame
    """One row per used seed, ``RUN_COLUMNS``: the inputs of the aggregates."""
    aggregates: pd.DataFrame
    """One row per (algo, capacity), ``AGGREGATE_COLUMNS``."""
    warnings: tuple[str, ...] = field(default=())
    """Seeds excluded, references missing, aggregates over different env sets: one line each."""


@dataclass(frozen=True)
class LeaderboardFiles:
    """Where ``write_leaderboard`` wrote."""

    cells: Path
    aggregates: Path
    runs: Path


def _atomic_write(path: Path, write: Any, suffix: str) -> Path:
    """Write through ``write(tmp_path)`` to a temp file beside ``path``, then ``os.replace`` it in."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def _write_csv(frame: pd.DataFrame, path: Path) -> Path:
    return _atomic_write(path, lambda tmp: frame.to_csv(tmp, index=False), ".csv")


def read_curve(path: Path) -> pd.DataFrame:
    """Read and check one curve.csv.

    Checks: the file exists and parses as CSV with at least one row; it has ``CURVE_COLUMNS`` (further
    columns are the agent's metrics, numbers or blank); their values are numbers (blank or NaN is
    allowed in ``eval_return_std``, ``eval_episodes`` and ``wall_time_s``, not in ``env_step`` or
    ``eval_return``, which must be finite); ``env_step`` holds whole numbers, starts at 0 and strictly
    increases.

    Raises:
        ResultsError: naming ``path`` and the first problem found.
    """
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except FileNotFoundError as err:
        raise ResultsError(path, "missing curve.csv") from err
    except pd.errors.EmptyDataError as err:
        raise ResultsError(path, "empty file") from err
    except (pd.errors.ParserError, UnicodeDecodeError) as err:
        raise ResultsError(path, f"not a readable CSV ({err})") from err
    missing = [c for c in CURVE_COLUMNS if c not in raw.columns]
    if missing:
        raise ResultsError(path, f"missing columns {missing}; curve.csv needs {list(CURVE_COLUMNS)}")
    if raw.empty:
        raise ResultsError(path, "no evaluation rows (header only)")
    curve = pd.DataFrame(index=raw.index)
    metrics = [c for c in raw.columns if c not in CURVE_COLUMNS]
    for column in (*CURVE_COLUMNS, *metrics):
        text = raw[column].str.strip()
        values = pd.to_numeric(text, errors="coerce").astype("float64")
        blank = text.str.lower().isin(["", "nan"])
        bad = values.isna() & ~blank
        if bad.any():
            row = int(bad.idxmax())
            kind = "metric column" if column in metrics else "column"
            raise ResultsError(
                path, f"non-numeric value {raw[column].iloc[row]!r} in {kind} {column!r} at line {row + 2}"
            )
        if column in ("env_step", "eval_return") and not np.isfinite(values.to_numpy()).all():
            row = int((~np.isfinite(values.to_numpy())).argmax())
            raise ResultsError(path, f"missing or non-finite value in column {column!r} at line {row + 2}")
        curve[column] = values
    steps = curve["env_step"].to_numpy()
    if steps[0] != 0:
        raise ResultsError(path, f"the first evaluation must be at env_step 0, got {steps[0]:g}")
    if (steps != np.round(steps)).any():
        raise ResultsError(path, "env_step must hold whole numbers")
    decreasing = np.diff(steps) <= 0
    if decreasing.any():
        row = int(decreasing.argmax()) + 1
        raise ResultsError(
            path,
            f"env_step must strictly increase; line {row + 2} has {steps[row]:g} after {steps[row - 1]:g}",
        )
    return curve


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ResultsError(path, f"not valid JSON ({err})") from err
    except UnicodeDecodeError as err:
        raise ResultsError(path, f"not valid JSON ({err})") from err


def read_status(path: Path) -> str:
    """The ``state`` of a status.json; ResultsError if missing, unreadable or not one of ``STATES``."""
    if not path.is_file():
        raise ResultsError(path, "missing status.json")
    status = _read_json(path)
    state = status.get("state") if isinstance(status, dict) else None
    if state not in STATES:
        raise ResultsError(path, f"state {state!r} is not one of {', '.join(STATES)}")
    return state


def _read_seed(seed_dir: Path) -> tuple[SeedRun, dict[str, Any]]:
    try:
        seed = int(seed_dir.name.removeprefix("seed_"))
    except ValueError as err:
        raise ResultsError(seed_dir, "a seed directory must be named seed_<integer>") from err
    state = read_status(seed_dir / "status.json")
    curve_path = seed_dir / "curve.csv"
    curve = read_curve(curve_path) if state == "done" or curve_path.exists() else None
    config_path = seed_dir / "config.json"
    config = _read_json(config_path) if config_path.is_file() else {}
    if not isinstance(config, dict):
        raise ResultsError(config_path, "config.json must hold a JSON object")
    steps = config.get("steps")
    planned = steps if isinstance(steps, int) and not isinstance(steps, bool) else None
    return SeedRun(seed_dir, seed, state, curve, planned), config


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def scan_results(results_dir: str | os.PathLike[str]) -> list[Cell]:
    """Every cell under ``results_dir`` with its seeds read and checked.

    Seed directories are ``<algo>/<env>/<capacity>/seed_<k>`` below ``results_dir`` (hidden
    directories are ignored). A cell's algo, env label and capacity come from its seeds' config.json
    (``algo``, ``env_label``, ``capacity``), falling back to the directory names; its seeds must agree.

    Raises:
        ResultsError: ``results_dir`` is missing or holds no seed directories, a seed directory is
            misnamed, a status.json is missing or invalid, a curve.csv is malformed (or missing for a
            ``done`` seed), a config.json is not a JSON object, seeds of one cell disagree on the env
            label, or two directories claim one (algo, env, capacity).
    """
    root = Path(results_dir)
    if not root.is_dir():
        raise ResultsError(root, "not a results directory")
    seed_dirs = sorted(p for p in root.glob("*/*/*/seed_*") if p.is_dir() and _visible(p, root))
    if not seed_dirs:
        raise ResultsError(root, "no results: expected <algo>/<env>/<capacity>/seed_<k>/ directories")
    by_cell: dict[Path, list[tuple[SeedRun, dict[str, Any]]]] = {}
    for seed_dir in seed_dirs:
        by_cell.setdefault(seed_dir.parent, []).append(_read_seed(seed_dir))
    cells: dict[tuple[str, str, str], Cell] = {}
    for cell_dir, seeds in by_cell.items():
        fallback = {
            "algo": cell_dir.parent.parent.name,
            "env_label": cell_dir.parent.name.replace("__", "/"),
            "capacity": cell_dir.name,
        }
        keys = {tuple(str(config.get(k, v)) for k, v in fallback.items()) for _, config in seeds}
        if len(keys) > 1:
            raise ResultsError(cell_dir, f"seeds disagree on (algo, env_label, capacity): {sorted(keys)}")
        key = keys.pop()
        if key in cells:
            raise ResultsError(cell_dir, f"same (algo, env, capacity) {key} as {cells[key].path}")
        runs = tuple(sorted((run for run, _ in seeds), key=lambda r: r.seed))
        cells[key] = Cell(cell_dir, key[0], key[1], key[2], runs)
    return list(cells.values())


def _cell_budget(usable: Sequence[SeedRun]) -> int | None:
    done = [s for s in usable if s.state == "done"]
    pool = done or usable
    if not pool:
        return None
    return int(min(s.curve["env_step"].iloc[-1] for s in pool))


def _metric_at(curve: pd.DataFrame, name: str, budget: int | None) -> float:
    """A metric column's value at the last evaluation at or before ``budget`` (NaN if absent)."""
    if name not in curve.columns or budget is None:
        return math.nan
    at = curve.loc[curve["env_step"] <= budget, name]
    return float(at.iloc[-1]) if len(at) else math.nan


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if finite.size else math.nan


def _estimate_or_nan(values: np.ndarray, config: BootstrapConfig) -> IntervalEstimate:
    if values.size == 0:
        nan = np.asarray(math.nan)
        return IntervalEstimate(nan, nan, nan)
    return bootstrap_ci(values, config=config)


def _score_cell(
    cell: Cell, budget: int | None, references: pd.DataFrame, config: BootstrapConfig
) -> tuple[dict[str, Any], list[dict[str, Any]], list[str]]:
    """The leaderboard row of one cell, its per-seed rows and its warnings."""
    broken = [s for s in cell.seeds if s.state in ("diverged", "failed")]
    n_diverged = sum(s.state == "diverged" for s in broken)
    n_failed = len(broken) - n_diverged
    live = [s for s in cell.seeds if s.state in ("pending", "running", "done")]
    with_curve = [s for s in live if s.curve is not None]
    cell_budget = _cell_budget(with_curve) if budget is None else budget
    if cell_budget is None and broken:
        # Every seed broke: score them at the budget they were planned for.
        planned = [s.steps for s in broken if s.steps is not None]
        cell_budget = min(planned) if planned else None
    used = [s for s in with_curve if cell_budget is not None and s.curve["env_step"].iloc[-1] >= cell_budget]
    short = [s for s in live if s not in used]
    ref = match_reference(references, cell.env, cell_budget if (used or broken) else None)
    # A broken seed counts as the random policy; without a random reference it cannot be scored.
    counted_broken = broken if math.isfinite(ref.random) else []
    finals = np.array(
        [final_return(s.curve["env_step"], s.curve["eval_return"], cell_budget) for s in used]
        + [ref.random] * len(counted_broken)
    )
    aucs = np.array(
        [area_under_curve(s.curve["env_step"], s.curve["eval_return"], cell_budget) for s in used]
        + [math.nan] * len(counted_broken)
    )
    metrics = {
        name: np.array(
            [_metric_at(s.curve, name, cell_budget) for s in used] + [math.nan] * len(counted_broken)
        )
        for name in MODEL_METRICS
    }
    counted = [*used, *counted_broken]
    estimate = _estimate_or_nan(finals, config)
    mean = float(estimate.point)
    flags = reference_flags(ref)
    row: dict[str, Any] = {
        "algo": cell.algo,
        "env": cell.env,
        "capacity": cell.capacity,
        "n_seeds": len(counted),
        "budget": cell_budget,
        "return_mean": mean,
        "return_ci_low": float(estimate.low),
        "return_ci_high": float(estimate.high),
        "auc": _nanmean(aucs),
        **{name: _nanmean(values) for name, values in metrics.items()},
        "random_score": ref.random,
        "zero_score": ref.zero,
        "ppo_score": ref.ppo,
        "rainbow_score": ref.rainbow,
        "ppo_normalised": normalised_score(mean, ref.random, ref.ppo),
        "rainbow_normalised": normalised_score(mean, ref.random, ref.rainbow),
        "return_std": float(finals.std(ddof=1)) if len(counted) > 1 else math.nan,
        "reference_budget": ref.budget,
        "n_diverged": n_diverged,
        "n_failed": n_failed,
        "n_short": len(short),
        "reference_flag": bool(flags),
    }
    warnings: list[str] = []
    notes = [*ref.notes, *flags]
    if short:
        reached = ", ".join(
            f"seed_{s.seed} "
            + ("has no curve" if s.curve is None else f"at {int(s.curve['env_step'].iloc[-1])}")
            for s in short
        )
        text = (
            f"{len(short)} seed(s) excluded for not reaching budget {cell_budget} ({reached})"
            if cell_budget is not None
            else f"{len(short)} seed(s) excluded: no curve yet"
        )
        notes.append(text)
        warnings.append(f"{cell.path}: {text}")
    for count, state in ((n_diverged, "diverged"), (n_failed, "failed")):
        if not count:
            continue
        if counted_broken:
            text = f"{count} seed(s) {state}, counted at the random reference's return {ref.random:.4g}"
        else:
            text = f"{count} seed(s) {state}, excluded: no random reference to score them"
        notes.append(text)
        warnings.append(f"{cell.path}: {text}")
    row["notes"] = "; ".join(notes)
    refs = {
        "random_score": ref.random,
        "random_sem": ref.sem.get("random", math.nan),
        "ppo_score": ref.ppo,
        "ppo_sem": ref.sem.get("ppo", math.nan),
        "rainbow_score": ref.rainbow,
        "rainbow_sem": ref.sem.get("rainbow", math.nan),
    }
    runs = [
        {
            "algo": cell.algo,
            "env": cell.env,
            "capacity": cell.capacity,
            "seed": s.seed,
            "outcome": s.state,
            "budget": cell_budget,
            "final_return": float(f),
            "auc": float(a),
            **{name: float(values[i]) for name, values in metrics.items()},
            "ppo_normalised": normalised_score(f, ref.random, ref.ppo),
            "rainbow_normalised": normalised_score(f, ref.random, ref.rainbow),
            **refs,
        }
        for i, (s, f, a) in enumerate(zip(counted, finals, aucs, strict=True))
    ]
    return row, runs, warnings


def tasks_of(runs: pd.DataFrame, baseline: str) -> dict[str, np.ndarray]:
    """Per env, the finite ``<baseline>_normalised`` scores of ``runs`` (the tasks of an aggregate)."""
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline {baseline!r}; valid baselines: {', '.join(BASELINES)}")
    column = f"{baseline}_normalised"
    finite = runs[np.isfinite(runs[column].to_numpy(dtype=np.float64))]
    return {env: group[column].to_numpy(dtype=np.float64) for env, group in finite.groupby("env", sort=True)}


def normalised_tasks_of(runs: pd.DataFrame, baseline: str) -> dict[str, NormalisedTask]:
    """Per env with finite ``<baseline>_normalised`` scores, its runs' raw returns and references, for
    the bootstrap that also draws the references (``mbrl_bench.stats.normalised_bootstrap``)."""
    tasks = {}
    for env, group in runs.groupby("env", sort=True):
        group = group[np.isfinite(group[f"{baseline}_normalised"].to_numpy(dtype=np.float64))]
        if group.empty:
            continue
        first = group.iloc[0]
        # A NaN standard error (a reference row without seeds' spread) counts as exact.
        sem = {name: float(first[name]) for name in ("random_sem", f"{baseline}_sem")}
        sem = {name: value if math.isfinite(value) else 0.0 for name, value in sem.items()}
        tasks[env] = NormalisedTask(
            returns=group["final_return"].to_numpy(dtype=np.float64),
            at_random=group["outcome"].isin(["diverged", "failed"]).to_numpy(),
            random_mean=float(first["random_score"]),
            random_sem=sem["random_sem"],
            baseline_mean=float(first[f"{baseline}_score"]),
            baseline_sem=sem[f"{baseline}_sem"],
        )
    return tasks


def _runs_of(runs: pd.DataFrame, algo: str, capacity: str) -> pd.DataFrame:
    return runs[(runs["algo"] == algo) & (runs["capacity"] == capacity)]


def _aggregate_row(
    algo: str, capacity: str, n_envs: int, runs: pd.DataFrame, config: BootstrapConfig
) -> dict[str, Any]:
    row: dict[str, Any] = {"algo": algo, "capacity": capacity, "n_envs": n_envs}
    statistics = {"iqm": lambda x: iqm(x, axis=-1), "optimality_gap": lambda x: optimality_gap(x, axis=-1)}
    for baseline in BASELINES:
        tasks = list(normalised_tasks_of(runs, baseline).values())
        row[f"{baseline}_n_envs"] = len(tasks)
        row[f"{baseline}_n_runs"] = sum(t.returns.size for t in tasks)
        for name, statistic in statistics.items():
            if tasks:
                value = normalised_bootstrap(tasks, statistic, config)
                point, low, high = float(value.point), float(value.low), float(value.high)
            else:
                point = low = high = math.nan
            row[f"{baseline}_{name}"] = point
            row[f"{baseline}_{name}_ci_low"] = low
            row[f"{baseline}_{name}_ci_high"] = high
    return row


def build_leaderboard(
    results_dir: str | os.PathLike[str],
    budget: int | None = None,
    references: pd.DataFrame | str | os.PathLike[str] | None = None,
    config: BootstrapConfig = DEFAULT_BOOTSTRAP,
) -> Leaderboard:
    """Score every cell of a results directory and aggregate across envs.

    Args:
        results_dir: The ``--out`` directory of ``mbrl-bench run``.
        budget: Env-step budget for every cell; None: per cell, the largest step all its done seeds
            reached (see the module docstring).
        references: A frame from ``mbrl_bench.reference.load_reference_scores``, or a path to a
            reference table; None reads the default table (``$MBRL_BENCH_REFERENCE_SCORES`` or the
            shipped one).
        config: Bootstrap replicates, coverage and seed, for the per-cell and the aggregate CIs.

    Raises:
        ValueError: ``budget`` is not a non-negative int.
        ResultsError: A results file cannot be read (see ``scan_results``).
        ReferenceTableError: The reference table cannot be read.
    """
    if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 0):
        raise ValueError(f"budget must be a non-negative int (env steps) or None, got {budget!r}")
    table = references if isinstance(references, pd.DataFrame) else load_reference_scores(references)
    rows, runs, warnings = [], [], []
    for cell in scan_results(results_dir):
        row, cell_runs, cell_warnings = _score_cell(cell, budget, table, config)
        rows.append(row)
        runs.extend(cell_runs)
        warnings.extend(cell_warnings)
    cells = pd.DataFrame(rows, columns=list(LEADERBOARD_COLUMNS))
    for column in ("budget", "reference_budget"):
        cells[column] = cells[column].astype("Int64")
    cells = cells.sort_values(
        ["env", "ppo_normalised", "algo", "capacity"], ascending=[True, False, True, True], na_position="last"
    ).reset_index(drop=True)
    run_table = pd.DataFrame(runs, columns=list(RUN_COLUMNS))
    run_table["budget"] = run_table["budget"].astype("Int64")
    aggregate_rows = [
        _aggregate_row(algo, capacity, len(group), _runs_of(run_table, algo, capacity), config)
        for (algo, capacity), group in cells.groupby(["algo", "capacity"], sort=True)
    ]
    aggregates = pd.DataFrame(aggregate_rows, columns=list(AGGREGATE_COLUMNS))
    unreferenced = sorted(cells.loc[cells["random_score"].isna() & (cells["n_seeds"] > 0), "env"].unique())
    if unreferenced:
        warnings.append(f"no reference scores (normalised scores are NaN) for: {', '.join(unreferenced)}")
    for baseline in BASELINES:
        env_sets = {
            frozenset(tasks_of(group, baseline)) for _, group in run_table.groupby(["algo", "capacity"])
        }
        if len(env_sets - {frozenset()}) > 1:
            warnings.append(
                f"{baseline} aggregates cover different env sets across (algo, capacity): "
                "compare them with care (see leaderboard.csv)"
            )
    return Leaderboard(Path(results_dir), cells, run_table, aggregates, tuple(warnings))


def default_leaderboard_path(results_dir: str | os.PathLike[str]) -> Path:
    """``DIR/leaderboard.csv``, where the leaderboard goes without ``--out``."""
    return Path(results_dir) / "leaderboard.csv"


def write_leaderboard(board: Leaderboard, out: str | os.PathLike[str] | None = None) -> LeaderboardFiles:
    """Write the leaderboard CSVs atomically.

    ``out`` (default ``DIR/leaderboard.csv``) gets the per-cell table; beside it,
    ``<stem>_aggregates.csv`` gets the per-(algo, capacity) aggregates and ``<stem>_runs.csv`` the
    per-seed final returns and normalised scores the aggregates were computed from.
    """
    path = Path(out) if out is not None else default_leaderboard_path(board.results_dir)
    return LeaderboardFiles(
        cells=_write_csv(board.cells, path),
        aggregates=_write_csv(board.aggregates, path.with_name(f"{path.stem}_aggregates.csv")),
        runs=_write_csv(board.runs, path.with_name(f"{path.stem}_runs.csv")),
    )


def default_aggregate_plot_path(results_dir: str | os.PathLike[str]) -> Path:
    """``DIR/aggregates.png``, where ``plot_aggregates`` draws without an explicit path."""
    return Path(results_dir) / "aggregates.png"


def plot_aggregates(
    board: Leaderboard,
    out: str | os.PathLike[str] | None = None,
    taus: np.ndarray | None = None,
    config: BootstrapConfig = DEFAULT_BOOTSTRAP,
) -> Path:
    """Draw the aggregates with their CIs and a performance profile; write the figure atomically.

    One row of three panels per baseline that has normalised scores: IQM with its 95% CI and
    optimality gap with its CI, one line per (algo, capacity), and the performance profile (fraction
    of runs with normalised score > tau) with pointwise stratified-bootstrap bands. ``taus`` defaults
    to 101 points from ``min(0, lowest score)`` to ``max(1, highest score)``. With no normalised
    score at all (no reference scores yet) the figure says so instead of being blank.

    Returns:
        The path written (default ``DIR/aggregates.png``).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(out) if out is not None else default_aggregate_plot_path(board.results_dir)
    drawn = [b for b in BASELINES if board.aggregates[f"{b}_n_envs"].gt(0).any()]
    fig = Figure(figsize=(15, 3.6 * max(1, len(drawn))), layout="constrained")
    FigureCanvasAgg(fig)
    if not drawn:
        ax = fig.add_subplot()
        ax.set_axis_off()
        ax.text(
            0.5,
            0.5,
            "no normalised scores: no reference scores for these envs\n"
            "(run `mbrl-bench calibrate`, or see leaderboard.csv for raw returns)",
            ha="center",
            va="center",
        )
    axes = fig.subplots(len(drawn), 3, squeeze=False) if drawn else np.empty((0, 3))
    for (ax_iqm, ax_gap, ax_profile), baseline in zip(axes, drawn, strict=True):
        rows = board.aggregates[board.aggregates[f"{baseline}_n_envs"] > 0].reset_index(drop=True)
        labels = [
            f"{a} [{c}] ({n} env{'s' * (n != 1)})"
            for a, c, n in zip(rows["algo"], rows["capacity"], rows[f"{baseline}_n_envs"], strict=True)
        ]
        y = np.arange(len(rows))
        for ax, metric, title in ((ax_iqm, "iqm", "IQM"), (ax_gap, "optimality_gap", "Optimality gap")):
            point = rows[f"{baseline}_{metric}"].to_numpy(dtype=np.float64)
            low = rows[f"{baseline}_{metric}_ci_low"].to_numpy(dtype=np.float64)
            high = rows[f"{baseline}_{metric}_ci_high"].to_numpy(dtype=np.float64)
            err = np.nan_to_num(np.stack([point - low, high - point]), nan=0.0)
            ax.errorbar(point, y, xerr=err, fmt="o", capsize=4)
            ax.set_yticks(y, labels)
            ax.invert_yaxis()
            ax.set_title(f"{title} ({baseline}-normalised, 95% CI)")
            ax.grid(axis="x", alpha=0.3)
        all_scores = board.runs[f"{baseline}_normalised"].to_numpy(dtype=np.float64)
        all_scores = all_scores[np.isfinite(all_scores)]
        grid = (
            taus
            if taus is not None
            else np.linspace(min(0.0, all_scores.min()), max(1.0, all_scores.max()), 101)
        )
        for algo, capacity, label in zip(rows["algo"], rows["capacity"], labels, strict=True):
            tasks = list(normalised_tasks_of(_runs_of(board.runs, algo, capacity), baseline).values())
            profile = normalised_bootstrap(
                tasks, functools.partial(run_score_distribution, taus=grid), config
            )
            (line,) = ax_profile.plot(grid, profile.point, label=label)
            ax_profile.fill_between(grid, profile.low, profile.high, color=line.get_color(), alpha=0.2)
        ax_profile.axvline(1.0, color="grey", linestyle=":")
        ax_profile.set_xlabel(f"{baseline}-normalised score tau")
        ax_profile.set_ylabel("fraction of runs with score > tau")
        ax_profile.set_title("Performance profile")
        ax_profile.legend(fontsize="small")
    return _atomic_write(
        path, lambda tmp: fig.savefig(tmp, format=path.suffix.lstrip(".") or "png"), path.suffix
    )
