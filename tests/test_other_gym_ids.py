"""Any registered Gymnasium id runs: model-free agents on it, tasks without true functions, the listing."""

from __future__ import annotations

import numpy as np
import pytest

import mbrl_bench
from mbrl_bench.cli import main
from mbrl_bench.harness.cells import plan_cell
from mbrl_bench.harness.errors import UsageError
from mbrl_bench.harness.runner import run_cell
from mbrl_bench.leaderboard import build_leaderboard


def test_gymnasium_ids_make_and_have_tasks_without_true_functions() -> None:
    env = mbrl_bench.make("CartPole-v1")
    assert env.spec.id == "CartPole-v1"
    env.close()
    task = mbrl_bench.get_task("Pendulum-v1")
    assert not task.true_functions and task.obs_dim == 3 and task.action_kind == "continuous"
    assert task.action_dim == 1 and task.horizon == 200 and task.signal_dims == (0, 1, 2)
    with pytest.raises(ValueError, match="Pendulum-v1 has no true reward function in mbrl-bench"):
        task.reward_fn(np.zeros(3), np.zeros(1), np.zeros(3))
    assert mbrl_bench.get_task("mbrl_bench/CartPoleDistractor-v0").true_functions
    with pytest.raises(
        ValueError, match=r"unknown environment 'Nope-v0'; valid ids: .* or any registered Gymnasium id"
    ):
        mbrl_bench.make("Nope-v0")


def test_a_model_free_agent_runs_on_a_gymnasium_id_and_scores_nan(tmp_path) -> None:
    spec = plan_cell("random", "CartPole-v1", seeds=2, steps=200, eval_every=100, eval_episodes=3)
    assert spec.env_label == "CartPole-v1" and spec.env_backend == "gymnasium"
    result = run_cell(spec, tmp_path)
    assert result.state == "done", result.error
    assert all(8 <= r["eval_return"] <= 200 for rows in result.curves.values() for r in rows)
    board = build_leaderboard(tmp_path).cells
    row = board[board["env"] == "CartPole-v1"].iloc[0]
    assert np.isnan(row["ppo_normalised"]) and "no reference scores for CartPole-v1" in row["notes"]
    sutton = plan_cell(
        "random", "CartPole-v1", env_kwargs={"sutton_barto_reward": "true"}, steps=10, eval_every=5
    )
    assert sutton.env_label == "CartPole-v1(sutton_barto_reward=true)"
    with pytest.raises(
        UsageError, match="unknown env kwarg 'num_distractors' for CartPole-v1; valid kwargs: "
    ):
        plan_cell("random", "CartPole-v1", env_kwargs={"num_distractors": 3}, steps=10, eval_every=5)
    with pytest.raises(UsageError, match="env backend 'jax' needs a pure-JAX twin, which CartPole-v1 lacks"):
        plan_cell("random", "CartPole-v1", steps=10, eval_every=5, env_backend="jax")


def test_envs_lists_twins_and_says_which_ids_have_true_task_functions(capsys) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    assert "JAX twin" in out and "Any other registered Gymnasium id" in out
    assert "Every id above has true reward and termination functions" in out
