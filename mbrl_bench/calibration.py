"""Calibration: measuring the reference scores that normalised scores are computed against.

``mbrl-bench calibrate`` runs the reference agents (random; zero on continuous-action envs; PPO; Rainbow
on discrete-action envs) through the ordinary harness, one run per budget, and turns each run's
final evaluation returns into one row of ``reference_scores.csv``
(``env,budget,agent,mean,std,n_seeds,commit,date,command``). Each budget is a separate run because
the references depend on it: PPO anneals its learning rate to 0 over the run and Rainbow's replay and
importance-weight annealing span it (``EnvInfo.budget``), so a 100K run is not the first half of a
200K one.

The runs are kept in the usual layout under ``OUT/steps_<budget>/``, one results directory per
budget, so every reference number can be traced to its curves and re-derived; re-running resumes them
like any other run. Without ``--env`` every registered id is calibrated with its default kwargs, plus
``CALIBRATION_VARIANTS`` (the CartPole variants the shipped studies use).
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pandas as pd

import mbrl_bench
from mbrl_bench.baselines.api import action_kind, get_agent
from mbrl_bench.harness import store
from mbrl_bench.harness.cells import CellSpec, plan_cell
from mbrl_bench.harness.config import run_metadata
from mbrl_bench.harness.errors import UsageError
from mbrl_bench.reference import REFERENCE_AGENTS, REFERENCE_COLUMNS, load_reference_scores

CALIBRATION_BUDGETS: tuple[int, ...] = (100_000, 200_000)
"""The budgets of SimPLe's Figure 4 (Kaiser et al. 2019): 100K and 200K interactions."""
CALIBRATION_EVAL_EPISODES = 10
"""Evaluation episodes per seed and budget (SimPLe and the OMD code evaluate over 10 episodes too)."""
CALIBRATION_EVAL_EVERY = 10_000
"""Env steps between evaluations, the one default of ``plan_calibration`` and ``mbrl-bench calibrate``
(so the documented command reproduces the runs): only the final evaluation enters the table, the
others make the curves worth plotting."""
CALIBRATION_VARIANTS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("mbrl_bench/CartPoleDistractor-v0", {"num_distractors": 0}),
    ("mbrl_bench/CartPoleDistractor-v0", {"num_distractors": 50}),
)
"""Env variants calibrated besides every id's default one: the CartPole distractor counts of the
shipped misspecification-cartpole suite (0, 10 = the default, 50)."""

Variant = tuple[str, dict[str, Any]]
"""(env id, env kwargs)."""


def default_variants(env_ids: Sequence[str]) -> list[Variant]:
    """Every id with its default kwargs, then ``CALIBRATION_VARIANTS``."""
    return [(env_id, {}) for env_id in env_ids] + [(e, dict(k)) for e, k in CALIBRATION_VARIANTS]


def budget_dir(out: str | Path, budget: int) -> Path:
    """The results directory of the calibration runs of one budget: ``OUT/steps_<budget>``."""
    return Path(out) / f"steps_{budget}"


def plan_calibration(
    variants: Sequence[Variant],
    seeds: int,
    budgets: Sequence[int] = CALIBRATION_BUDGETS,
    eval_every: int = CALIBRATION_EVAL_EVERY,
    eval_episodes: int = CALIBRATION_EVAL_EPISODES,
) -> dict[int, list[CellSpec]]:
    """Per budget, one cell of ``budget`` env steps per (variant, reference agent that supports the
    variant's action space): Rainbow only on discrete actions, zero only on continuous ones."""
    budgets = sorted(set(budgets))
    if not budgets or any(b % eval_every for b in budgets):
        raise UsageError(f"every budget must be a multiple of eval_every={eval_every}, got {budgets}")
    plan: dict[int, list[CellSpec]] = {b: [] for b in budgets}
    for env_id, env_kwargs in variants:
        kind = _action_kind(env_id, env_kwargs)
        # An agent without this action kind has no row: its (normalised) score is NaN there.
        agents = [a for a in REFERENCE_AGENTS if kind is None or kind in get_agent(a).action_kinds]
        for agent in agents:
            for budget in budgets:
                spec = plan_cell(
                    agent,
                    env_id,
                    env_kwargs=env_kwargs,
                    seeds=seeds,
                    steps=budget,
                    eval_every=eval_every,
                    eval_episodes=eval_episodes,
                    # as `mbrl-bench run` by default: a reference then equals a default run's seeds
                    env_backend="auto",
                )
                plan[budget].append(spec)
    return plan


def _action_kind(env_id: str, env_kwargs: dict[str, Any]) -> str | None:
    """The variant's action kind; None if it cannot be made (``plan_cell`` then reports why)."""
    try:
        env = mbrl_bench.make(env_id, **env_kwargs)
    except (ValueError, TypeError, gym.error.Error):
        return None
    try:
        return action_kind(env.action_space)
    finally:
        env.close()


def reference_rows(plan: dict[int, list[CellSpec]], out: str | Path, command: str) -> pd.DataFrame:
    """The reference-table rows measured by the finished calibration cells of ``plan``.

    A row's ``mean`` and ``std`` (sample standard deviation, 0 with one seed) are over the seeds of
    that budget's cell, of each seed's evaluation return at the end of its run (env step = budget).
    A cell with a seed that is not done raises ``RuntimeError``: a reference must not silently rest
    on fewer seeds.
    """
    meta = run_metadata()
    date = datetime.now(UTC).date().isoformat()
    rows = []
    for budget, specs in plan.items():
        for spec in specs:
            cell = spec.cell_dir(budget_dir(out, budget))
            returns = []
            for seed in spec.seeds:
                sd = store.seed_dir(cell, seed)
                state = store.read_json(sd / store.STATUS_FILE).get("state")
                if state != "done":
                    raise RuntimeError(f"{sd}: calibration seed is {state!r}, not done; re-run to finish it")
                by_step = {
                    int(r["env_step"]): float(r["eval_return"])
                    for r in store.read_curve(sd / store.CURVE_FILE)
                }
                if budget not in by_step:
                    raise RuntimeError(f"{sd}: curve.csv has no evaluation at env step {budget}")
                returns.append(by_step[budget])
            values = np.asarray(returns)
            rows.append(
                {
                    "env": spec.env_label,
                    "budget": budget,
                    "agent": spec.algo,
                    "mean": float(values.mean()),
                    "std": float(values.std(ddof=1)) if len(values) > 1 else 0.0,
                    "n_seeds": len(values),
                    "commit": meta["git_commit"] or "unknown",
                    "date": date,
                    "command": command,
                }
            )
    return pd.DataFrame(rows, columns=list(REFERENCE_COLUMNS))


def merge_reference_rows(table_path: str | Path, rows: pd.DataFrame) -> pd.DataFrame:
    """Write ``rows`` into the table at ``table_path`` (created if missing), replacing rows with the same
    (env, budget, agent); the file is written atomically and sorted by env, budget, agent."""
    path = Path(table_path)
    old = load_reference_scores(path) if path.exists() else pd.DataFrame(columns=list(REFERENCE_COLUMNS))
    key = ["env", "budget", "agent"]
    kept = old[~old.set_index(key).index.isin(rows.set_index(key).index)] if len(old) else old
    table = pd.concat([kept, rows], ignore_index=True) if len(kept) else rows.copy()
    table = table.sort_values(key, kind="stable").reset_index(drop=True)
    store.atomic_write_bytes(path, table.to_csv(index=False, float_format="%.6g").encode())
    return table


def command_line(argv: Sequence[str]) -> str:
    """The command as typed, for the table's ``command`` column."""
    return shlex.join(["mbrl-bench", *argv])


def describe(table: pd.DataFrame) -> str:
    """A short human summary of calibrated rows (for the CLI)."""
    lines = []
    for (env, budget), group in table.groupby(["env", "budget"], sort=True):
        parts = [
            f"{r.agent} {r.mean:.1f}±{r.std:.1f}" if math.isfinite(r.mean) else f"{r.agent} n/a"
            for r in group.itertuples()
        ]
        lines.append(f"{env} @ {budget}: " + ", ".join(parts))
    return os.linesep.join(lines)
