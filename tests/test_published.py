"""Published curves: the shipped table names our agents and envs, and the curve plot draws a source's
points beside the algorithm it reports, within the run's steps, unless told not to; its legend says how
many seeds a line holds and how few reach its last point."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import pytest
from mbrl_bench.baselines.api import get_agent

import mbrl_bench  # noqa: F401  (registers the envs)
from mbrl_bench.harness import store
from mbrl_bench.harness.errors import UsageError
from mbrl_bench.harness.plots import plot_results
from mbrl_bench.harness.published import load_published

HOPPER = "mbrl_bench/Hopper-v0"
JAXRL_HOPPER = "sac, published: jaxrl (Hopper-v2, 10 seeds)"


def test_the_shipped_table_names_our_agents_and_envs() -> None:
    curves = load_published()
    assert {c.algo for c in curves} >= {"mbpo", "sac", "pal"}
    for curve in curves:
        get_agent(curve.algo)  # raises on an unknown agent
        gym.spec(curve.env)
        assert list(curve.env_steps) == sorted(set(curve.env_steps)) and curve.env_steps[0] > 0
        assert all(math.isfinite(r) for r in curve.returns)
        assert all(math.isnan(s) or s > 0 for s in curve.spreads)
    mbpo_hopper = next(c for c in curves if (c.algo, c.env) == ("mbpo", HOPPER))
    assert dict(zip(mbpo_hopper.env_steps, mbpo_hopper.returns, strict=True))[50_000] == 1700


def _cell(root: Path, algo: str, last_step: int, seed_index: int = 0) -> None:
    seed = store.seed_dir(store.cell_dir(root, algo, HOPPER, "full"), seed_index)
    seed.mkdir(parents=True)
    rows = [
        {
            "env_step": s,
            "eval_return": s / 100,
            "eval_return_std": 1.0,
            "eval_episodes": 5,
            "wall_time_s": 1.0,
        }
        for s in range(0, last_step + 1, 10_000)
    ]
    store.write_curve(seed / store.CURVE_FILE, rows)


def test_the_plot_draws_a_published_curve_beside_its_algorithm_within_the_run(tmp_path: Path) -> None:
    _cell(tmp_path, "sac", 60_000)
    _cell(tmp_path, "random", 60_000)
    lines = plot_results(tmp_path).lines[HOPPER]
    assert JAXRL_HOPPER in lines  # jaxrl's 50K point lies within the run
    assert not any(line.startswith("random, published") for line in lines)
    assert JAXRL_HOPPER not in plot_results(tmp_path, published=False).lines[HOPPER]


def test_no_published_point_before_the_runs_last_step_draws_nothing(tmp_path: Path) -> None:
    _cell(tmp_path, "sac", 40_000)  # jaxrl's first point is at 50K
    assert plot_results(tmp_path).lines[HOPPER] == ("sac [full] (n=1)",)


def test_the_legend_says_how_many_seeds_reach_a_partial_cells_last_point(tmp_path: Path) -> None:
    _cell(tmp_path, "sac", 40_000)
    _cell(tmp_path, "sac", 40_000, seed_index=1)
    assert plot_results(tmp_path).lines[HOPPER] == ("sac [full] (n=2)",)
    _cell(tmp_path, "sac", 20_000, seed_index=2)  # stopped early: seeds 0 and 1 reach 40K
    assert plot_results(tmp_path).lines[HOPPER] == ("sac [full] (n=3; 2 at 40,000)",)


def test_a_malformed_table_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "published.csv"
    bad.write_text("algo,env,env_step\nsac,mbrl_bench/Hopper-v0,50000\n")
    with pytest.raises(UsageError, match="lack columns return, spread, label, source"):
        load_published(bad)
    bad.write_text("algo,env,env_step,return,spread,label,source\nsac,mbrl_bench/Hopper-v0,soon,1,,a,b\n")
    with pytest.raises(UsageError, match="column 'env_step' must be numeric"):
        load_published(bad)
