"""The reference-score table: random, zero-action, PPO and Rainbow returns per (env label, budget).

Normalised scores need the scores of a random policy and of a baseline at a matching budget.
``mbrl-bench calibrate`` measures them and writes ``reference_scores.csv`` with the columns
``env,budget,agent,mean,std,n_seeds,commit,date,command``; the package ships one
(``mbrl_bench/data/reference_scores.csv``). ``env`` is the env *label* of the results layout (the id
plus its non-default kwargs), so a variant is normalised against references measured on that variant.

Which table is read: an explicit path argument, else the file named by the environment variable
``MBRL_BENCH_REFERENCE_SCORES``, else the shipped table.

A reference is only worth dividing by if the baseline clearly beats doing nothing: ``reference_flags``
names the envs where the zero-action or random policy comes within 20% of the PPO reference, and the
leaderboard flags their normalised scores.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import pandas as pd

from mbrl_bench.scores import normalised_score

REFERENCE_ENV_VAR = "MBRL_BENCH_REFERENCE_SCORES"
"""Environment variable naming a reference table to use instead of the shipped one."""
REFERENCE_COLUMNS = ("env", "budget", "agent", "mean", "std", "n_seeds", "commit", "date", "command")
REFERENCE_AGENTS = ("random", "zero", "ppo", "rainbow")
"""Agents a reference row may name: the random policy, the zero-action policy (continuous actions
only; a guard, never a denominator) and the two baselines of SimPLe's Figure 4."""
TRIVIAL_MARGIN = 0.2
"""How close (as a fraction) a trivial policy may come to the PPO reference before the env is flagged."""


class ReferenceTableError(ValueError):
    """A reference table that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class ReferenceMatch:
    """The reference scores that one leaderboard cell is normalised against."""

    budget: int | None
    """The reference budget used: the smallest one at or above the cell's budget; None if none."""
    random: float
    """The random policy's mean return at ``budget`` (NaN if missing)."""
    ppo: float
    """PPO's mean return at ``budget`` (NaN if missing)."""
    rainbow: float
    """Rainbow's mean return at ``budget`` (NaN if missing, e.g. on continuous-action envs)."""
    notes: tuple[str, ...]
    """Why a score above is NaN, one sentence each."""
    zero: float = math.nan
    """The zero-action policy's mean return at ``budget`` (NaN if missing: discrete-action envs, or a
    table calibrated before the zero agent existed)."""
    sem: Mapping[str, float] = field(default_factory=dict)
    """Per agent, the standard error of its mean over the calibration seeds, ``std / sqrt(n_seeds)``
    (0 with one seed): the references' own uncertainty, which the aggregates' bootstrap carries."""


def reference_path(path: str | os.PathLike[str] | None = None) -> Path:
    """The reference table to read: ``path``, else ``$MBRL_BENCH_REFERENCE_SCORES``, else the shipped one."""
    if path is not None:
        return Path(path)
    override = os.environ.get(REFERENCE_ENV_VAR)
    if override:
        return Path(override)
    return Path(str(files("mbrl_bench") / "data" / "reference_scores.csv"))


def _numeric(table: pd.DataFrame, column: str, source: Path, integer: bool) -> pd.Series:
    values = pd.to_numeric(table[column], errors="coerce")
    bad = values.isna() | ~values.map(math.isfinite) | (values < 0)
    if integer:
        bad |= values != values.round()
    if bad.any():
        row = int(bad.idxmax())
        kind = "a non-negative integer" if integer else "a finite, non-negative number"
        raise ReferenceTableError(
            f"{source}: row {row + 2}, column {column!r} must be {kind}, got {table[column].iloc[row]!r}"
        )
    return values.astype("int64") if integer else values.astype("float64")


def load_reference_scores(path: str | os.PathLike[str] | None = None) -> pd.DataFrame:
    """Read and check a reference table (see ``reference_path`` for which one).

    Returns:
        A frame with ``REFERENCE_COLUMNS``; ``budget`` and ``n_seeds`` as int64, ``mean`` and ``std``
        as float64, the rest as strings. A header-only table is valid (no references yet).

    Raises:
        ReferenceTableError: The file is missing or unreadable, lacks a column, has a non-numeric or
            negative budget/std/n_seeds, a non-finite mean, an agent outside ``REFERENCE_AGENTS``,
            or two rows for one (env, budget, agent). Row numbers count the header as line 1.
    """
    source = reference_path(path)
    try:
        table = pd.read_csv(source, dtype=str, keep_default_na=False)
    except FileNotFoundError as err:
        raise ReferenceTableError(f"{source}: reference table not found (set ${REFERENCE_ENV_VAR})") from err
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ReferenceTableError(f"{source}: not a readable CSV ({err})") from err
    missing = [c for c in REFERENCE_COLUMNS if c not in table.columns]
    if missing:
        raise ReferenceTableError(
            f"{source}: missing columns {missing}; a reference table has {list(REFERENCE_COLUMNS)}"
        )
    table = table[list(REFERENCE_COLUMNS)].copy()
    table["budget"] = _numeric(table, "budget", source, integer=True)
    table["n_seeds"] = _numeric(table, "n_seeds", source, integer=True)
    table["std"] = _numeric(table, "std", source, integer=False)
    mean = pd.to_numeric(table["mean"], errors="coerce")
    bad_mean = mean.isna() | ~mean.map(math.isfinite)
    if bad_mean.any():
        row = int(bad_mean.idxmax())
        raise ReferenceTableError(
            f"{source}: row {row + 2}, column 'mean' must be a finite number, got {table['mean'].iloc[row]!r}"
        )
    table["mean"] = mean.astype("float64")
    bad_agent = ~table["agent"].isin(REFERENCE_AGENTS)
    if bad_agent.any():
        row = int(bad_agent.idxmax())
        raise ReferenceTableError(
            f"{source}: row {row + 2}, unknown agent {table['agent'].iloc[row]!r}; "
            f"valid agents: {', '.join(REFERENCE_AGENTS)}"
        )
    duplicated = table.duplicated(["env", "budget", "agent"], keep="first")
    if duplicated.any():
        row = int(duplicated.idxmax())
        env, budget, agent = table.loc[row, ["env", "budget", "agent"]]
        raise ReferenceTableError(
            f"{source}: row {row + 2} repeats (env={env!r}, budget={budget}, agent={agent!r})"
        )
    return table.reset_index(drop=True)


def match_reference(table: pd.DataFrame, env: str, budget: int | None) -> ReferenceMatch:
    """The random, PPO and Rainbow scores a cell of ``env`` at ``budget`` env steps is normalised against.

    The matching reference budget is the smallest reference budget at or above the cell's budget
    among ``env``'s rows, so a baseline never had fewer env steps than the algorithm it is compared
    with (a cell at 100K uses the 100K references; one stopped at 90K also uses them, which is
    conservative for the algorithm; one at 150K uses 200K). All three scores are read at that one
    budget. Anything missing gives NaN with the reason in ``notes``, never an error: references for
    an env may simply not have been calibrated yet.

    Args:
        table: A frame from ``load_reference_scores``.
        env: The cell's env label.
        budget: The cell's env-step budget; None when the cell has no usable seeds.
    """
    nan = math.nan
    if budget is None:
        return ReferenceMatch(None, nan, nan, nan, ("no budget: the cell has no usable seeds",))
    rows = table[table["env"] == env]
    if rows.empty:
        return ReferenceMatch(
            None, nan, nan, nan, (f"no reference scores for {env} (run `mbrl-bench calibrate`)",)
        )
    above = rows[rows["budget"] >= budget]
    if above.empty:
        budgets = ", ".join(str(b) for b in sorted(rows["budget"].unique()))
        return ReferenceMatch(
            None, nan, nan, nan, (f"no reference budget >= {budget} for {env} (has: {budgets})",)
        )
    matched = int(above["budget"].min())
    at_budget = rows[rows["budget"] == matched].set_index("agent")
    at = at_budget["mean"]
    # The zero agent is a guard, not a denominator: its absence (discrete actions) is no note.
    notes = tuple(
        f"no {agent} reference for {env} at budget {matched}"
        for agent in REFERENCE_AGENTS
        if agent not in at.index and agent != "zero"
    )
    scores = {agent: float(at[agent]) if agent in at.index else nan for agent in REFERENCE_AGENTS}
    sem = {
        agent: float(r.std) / math.sqrt(r.n_seeds) if r.n_seeds > 1 else 0.0
        for agent, r in zip(at_budget.index, at_budget.itertuples(), strict=True)
    }
    return ReferenceMatch(
        matched, scores["random"], scores["ppo"], scores["rainbow"], notes, scores["zero"], sem
    )


def reference_flags(match: ReferenceMatch, margin: float = TRIVIAL_MARGIN) -> tuple[str, ...]:
    """Why PPO-normalised scores on this env are not to be trusted, one sentence each (empty if fine).

    A trivial policy T (zero action, random) is "within 20% of the PPO reference" when either
    ``ppo - T <= 0.2 |ppo|`` (PPO's own score barely above T, or below it), or T's PPO-normalised
    score is >= 0.8 (T earns 80% of the credit between random and PPO: the zero action on Pusher and
    Reacher). The second test is void for random (0 by definition), the first catches it.
    """
    if not (math.isfinite(match.ppo) and math.isfinite(match.random)):
        return ()
    flags = []
    for name, score in (("zero-action", match.zero), ("random", match.random)):
        if not math.isfinite(score):
            continue
        close = match.ppo - score <= margin * abs(match.ppo)
        credit = normalised_score(score, match.random, match.ppo) if name != "random" else 0.0
        if close or credit >= 1.0 - margin:
            flags.append(
                f"{name} reference {score:.4g} is within {margin:.0%} of PPO's {match.ppo:.4g} at budget "
                f"{match.budget} ({credit:.2f} PPO-normalised): PPO-normalised scores here are unreliable"
            )
    return tuple(flags)
