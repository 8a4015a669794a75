"""--env-backend jax: the same curves, resume, divergence and files as the Gymnasium backend."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _interrupt import interrupted_run
from mbrl_bench.baselines.api import Agent, register_agent
from scipy import stats

from mbrl_bench.harness import store
from mbrl_bench.harness.cells import adopt_stored_backend, plan_cell, resolve_backend
from mbrl_bench.harness.errors import UsageError
from mbrl_bench.harness.runner import run_cell

CARTPOLE = "mbrl_bench/CartPoleDistractor-v0"
SMALL = {"num_distractors": 2}


@dataclass(frozen=True)
class LearnerConfig:
    """Test-only."""

    flip_every: int = 3
    """Test-only."""
    nan_after: int = -1
    """Test-only: fragile seeds (init key) report a NaN metric after this step (-1: never)."""


@register_agent
class JaxLearner(Agent):
    """Greedy actions depend on every transition it saw, so a wrongly restored state changes the curve."""

    name: ClassVar[str] = "test-jax-learner"
    Config: ClassVar[type] = LearnerConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete"})

    def init(self, key):
        return {"n": jnp.int32(0), "acc": jax.random.normal(key), "fragile": jax.random.uniform(key) < 0.5}

    def act(self, state, obs, key, explore):
        greedy = ((state["acc"] * obs[2] > 0) ^ (state["n"] % self.config.flip_every == 0)).astype(jnp.int32)
        if not explore:
            return greedy
        return jnp.where(jax.random.uniform(key) < 0.5, greedy, 1 - greedy)

    def update(self, state, transition, key, step):
        acc = state["acc"] + transition.reward * transition.next_obs[3] + 0.01 * jax.random.normal(key)
        bad = state["fragile"] & (self.config.nan_after >= 0) & (step > self.config.nan_after)
        metrics = {"step": step.astype(jnp.float32), "loss": jnp.where(bad, jnp.nan, 0.0)}
        return {**state, "n": state["n"] + 1, "acc": acc}, metrics


@register_agent
class UnbatchedJaxLearner(JaxLearner):
    name: ClassVar[str] = "test-jax-learner-unbatched"
    batch_over_seeds: ClassVar[bool] = False


def _cell(algo: str = "test-jax-learner", backend: str = "jax", **kw):
    settings = {"env_kwargs": SMALL, "seeds": 3, "steps": 800, "eval_every": 200, "eval_episodes": 2} | kw
    return plan_cell(algo, CARTPOLE, env_backend=backend, **settings)


def _comparable(curves):
    return {
        s: [{k: ("nan" if v != v else v) for k, v in {**r, "wall_time_s": 0}.items()} for r in rows]
        for s, rows in curves.items()
    }


def test_rows_hold_the_metric_means_and_config_records_the_backend(tmp_path) -> None:
    spec = _cell(seeds=2, steps=250, eval_every=100, eval_episodes=1)
    result = run_cell(spec, tmp_path)
    assert result.state == "done", result.error
    for seed in (0, 1):
        sd = spec.cell_dir(tmp_path) / f"seed_{seed}"
        rows = store.read_curve(sd / store.CURVE_FILE)
        assert [r["env_step"] for r in rows] == [0, 100, 200, 250]
        assert np.isnan(rows[0]["step"])
        assert [r["step"] for r in rows[1:]] == [50.5, 150.5, 225.5]  # steps 1..100, 101..200, 201..250
        assert all(8 <= r["eval_return"] <= 500 for r in rows)
        assert store.read_json(sd / store.CONFIG_FILE)["env_backend"] == "jax"
    assert result.curves[0] != result.curves[1]
    assert run_cell(spec, tmp_path).skipped


def test_a_resumed_jax_run_equals_an_uninterrupted_one(tmp_path) -> None:
    spec = _cell()
    whole = run_cell(spec, tmp_path / "whole")
    interrupted_run(spec, tmp_path / "cut")
    resumed = run_cell(spec, tmp_path / "cut")
    assert resumed.state == "done"
    assert _comparable(resumed.curves) == _comparable(whole.curves)
    unbatched = run_cell(_cell("test-jax-learner-unbatched"), tmp_path / "unbatched")
    assert _comparable(unbatched.curves) == _comparable(whole.curves)


def test_diverged_seeds_stop_on_the_jax_backend_as_on_gymnasium(tmp_path) -> None:
    seeds = (0, 1, 2, 3, 4, 5)
    spec = _cell(seeds=seeds, steps=400, eval_every=100, eval_episodes=1, overrides={"nan_after": 150})
    result = run_cell(spec, tmp_path)
    assert result.state == "diverged"
    states = {}
    for seed in seeds:
        sd = store.seed_dir(spec.cell_dir(tmp_path), seed)
        status = store.read_json(sd / store.STATUS_FILE)
        steps = [r["env_step"] for r in store.read_curve(sd / store.CURVE_FILE)]
        states[seed] = status["state"]
        if status["state"] == "diverged":
            assert status["error"] == "non-finite metric 'loss' at env step 151" and steps == [0, 100]
        else:
            assert status["state"] == "done" and steps == [0, 100, 200, 300, 400]
    assert set(states.values()) == {"done", "diverged"}
    gym_spec = _cell(seeds=seeds, steps=400, eval_every=100, eval_episodes=1, overrides={"nan_after": 150},
                     backend="gymnasium")  # fmt: skip
    gym_states = run_cell(gym_spec, tmp_path / "g")
    assert gym_states.seed_states == states  # the same seeds break (they depend on the init key only)


def test_both_backends_give_statistically_matching_returns(tmp_path) -> None:
    """The same learning agent: per (seed, evaluation) mean returns drawn from one distribution.

    Deterministic (every key derives from the seed index), so this never flakes; a backend that fed
    the agent wrong transitions (obs/next_obs swapped, reset observations as next_obs, no auto-reset)
    shifts the learned policies and the test fails.
    """
    runs = {}
    for backend in ("jax", "gymnasium"):
        spec = _cell(backend=backend, seeds=12, steps=300, eval_every=100, eval_episodes=10)
        result = run_cell(spec, tmp_path / backend)
        assert result.state == "done", result.error
        runs[backend] = np.array([r["eval_return"] for rows in result.curves.values() for r in rows[1:]])
    assert stats.ks_2samp(runs["jax"], runs["gymnasium"]).pvalue > 0.01
    assert abs(runs["jax"].mean() - runs["gymnasium"].mean()) < 0.25 * runs["gymnasium"].mean()


def test_tabular_twins_run_with_scalar_observations(tmp_path) -> None:
    spec = plan_cell(
        "random", "mbrl_bench/TwoStatePolytope-v0", seeds=2, steps=400, eval_every=200, eval_episodes=5,
        env_backend="jax",
    )  # fmt: skip
    result = run_cell(spec, tmp_path)
    assert result.state == "done", result.error
    gym_spec = plan_cell("random", "mbrl_bench/TwoStatePolytope-v0", seeds=2, steps=400, eval_every=200,
                         eval_episodes=5)  # fmt: skip
    gym = run_cell(gym_spec, tmp_path / "g")
    jax_returns = [r["eval_return"] for rows in result.curves.values() for r in rows]
    gym_returns = [r["eval_return"] for rows in gym.curves.values() for r in rows]
    assert abs(np.mean(jax_returns) - np.mean(gym_returns)) < 0.2 * abs(np.mean(gym_returns))


def test_backend_choice_and_errors(tmp_path) -> None:
    assert resolve_backend("auto", [CARTPOLE, "mbrl_bench/Garnet-v0"]) == "jax"
    assert resolve_backend("auto", [CARTPOLE, "mbrl_bench/Hopper-v0"]) == "gymnasium"
    with pytest.raises(
        UsageError, match=r"mbrl_bench/Hopper-v0 lacks; ids with one: mbrl_bench/CartPoleDistractor-v0"
    ):
        resolve_backend("jax", ["mbrl_bench/Hopper-v0"])
    with pytest.raises(
        UsageError, match=r"unknown env backend 'numpy'; valid backends: auto, gymnasium, jax"
    ):
        resolve_backend("numpy", [CARTPOLE])
    assert plan_cell("random", CARTPOLE, steps=10, eval_every=5).env_backend == "gymnasium"
    assert plan_cell("random", CARTPOLE, steps=10, eval_every=5, env_backend="auto").env_backend == "jax"
    # auto resumes a cell on the backend it was begun on, instead of refusing the stored config
    gym_spec = _cell(backend="gymnasium", seeds=1, steps=50, eval_every=50, eval_episodes=1)
    run_cell(gym_spec, tmp_path)
    auto_spec = _cell(seeds=1, steps=50, eval_every=50, eval_episodes=1)
    assert auto_spec.env_backend == "jax" and adopt_stored_backend(auto_spec, tmp_path) == gym_spec


def test_cli_rejects_a_backend_an_env_cannot_use() -> None:
    # The installed console script, not `python -m`: from a source checkout's root that would import the
    # checkout's mbrl_bench/ (without its mapped baselines/) instead of the installed package, as in CI.
    cmd = [str(Path(sys.executable).parent / "mbrl-bench"), "run", "--algo", "random", "--env",
           "mbrl_bench/Hopper-v0", "--env-backend", "jax", "--steps", "10"]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "env backend 'jax' needs a pure-JAX twin, which mbrl_bench/Hopper-v0 lacks" in proc.stderr
