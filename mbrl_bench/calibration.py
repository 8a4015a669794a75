"""Calibration: measuring the reference scores that normalised scores are computed against.

``mbrl-bench calibrate`` runs the reference agents (random, PPO and, on discrete-action envs, Rainbow)
through the ordinary harness, ``max(budgets)`` env steps per seed with an evaluation at every budget,
and turns each agent's evaluation returns at each budget into one row of ``reference_scores.csv``
(``env,budget,agent,mean,std,n_seeds,commit,date,command``). The 100K row of an agent is read off its
200K run: none of the reference agents' defaults depends on the total budget (no annealing to the end
of training), so that row is what a 100K run would have given.

The runs are kept under the calibration results directory in the usual layout, so every reference
number can be traced to its curves and re-derived; re-running resumes them like any other run.
"""

from __future__ import annotations

import math
import os
import shlex
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mbrl_bench.baselines.api import get_agent
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
"""Evaluations in between the budgets are not needed for the table but make the curves worth plotting."""


def plan_calibration(
    env_ids: Sequence[str],
    seeds: int,
    env_kwargs: dict[str, Any] | None = None,
    budgets: Sequence[int] = CALIBRATION_BUDGETS,
    eval_every: int = CALIBRATION_EVAL_EVERY,
    eval_episodes: int = CALIBRATION_EVAL_EPISODES,
) -> list[CellSpec]:
    """One cell per (env, reference agent that supports the env's action space)."""
    budgets = sorted(set(budgets))
    if not budgets or any(b % eval_every for b in budgets):
        raise UsageError(f"every budget must be a multiple of eval_every={eval_every}, got {budgets}")
    specs = []
    for env_id in env_ids:
        for agent in REFERENCE_AGENTS:
            try:
                spec = plan_cell(
                    agent,
                    env_id,
                    env_kwargs=env_kwargs,
                    seeds=seeds,
                    steps=budgets[-1],
                    eval_every=eval_every,
                    eval_episodes=eval_episodes,
                )
            except UsageError:
                # Rainbow on a continuous-action env: no row, so its normalised score is NaN there.
                if agent == "rainbow" and "continuous" not in get_agent(agent).action_kinds:
                    continue
                raise
            specs.append(spec)
    return specs


def reference_rows(
    specs: Sequence[CellSpec],
    results_dir: str | Path,
    command: str,
    budgets: Sequence[int] = CALIBRATION_BUDGETS,
) -> pd.DataFrame:
    """The reference-table rows measured by the finished calibration cells ``specs``.

    A row's ``mean`` and ``std`` (sample standard deviation, 0 with one seed) are over the seeds whose
    status is ``done``, of each seed's evaluation return at exactly that budget. A cell with a seed
    that is not done raises ``RuntimeError``: a reference must not silently rest on fewer seeds.
    """
    meta = run_metadata()
    date = datetime.now(UTC).date().isoformat()
    rows = []
    for spec in specs:
        cell = spec.cell_dir(Path(results_dir))
        returns: dict[int, list[float]] = {b: [] for b in budgets}
        for seed in spec.seeds:
            sd = store.seed_dir(cell, seed)
            state = store.read_json(sd / store.STATUS_FILE).get("state")
            if state != "done":
                raise RuntimeError(f"{sd}: calibration seed is {state!r}, not done; re-run to finish it")
            by_step = {
                int(r["env_step"]): float(r["eval_return"]) for r in store.read_curve(sd / store.CURVE_FILE)
            }
            for b in budgets:
                if b not in by_step:
                    raise RuntimeError(f"{sd}: curve.csv has no evaluation at env step {b}")
                returns[b].append(by_step[b])
        for b in budgets:
            values = np.asarray(returns[b])
            rows.append(
                {
                    "env": spec.env_label,
                    "budget": b,
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
