"""Every registered id: Gymnasium conformance, seeded make/reset/step, vector envs, listing, bad input."""

from __future__ import annotations

import subprocess
import sys
import warnings

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mbrl_bench
from mbrl_bench.envs.registration import all_entries, entry

ENV_IDS = [e.env_id for e in all_entries()]


def test_every_id_is_namespaced_and_listed():
    assert ENV_IDS, "no environments registered"
    for env_id in ENV_IDS:
        assert env_id.startswith("mbrl_bench/")
        assert env_id in gym.registry


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_check_env(env_id):
    env = gym.make(env_id)
    with warnings.catch_warnings():
        # Distractor dims are honestly unbounded; the checker warns about infinite bounds.
        warnings.filterwarnings("ignore", message=".*infinity.*")
        # MuJoCo's "human" render mode opens a window and aborts the process on a headless machine.
        check_env(env.unwrapped, skip_render_check=entry(env_id).group in {"control", "manipulation"})
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_seeded_rollouts_are_deterministic(env_id):
    def rollout():
        env = gym.make(env_id)
        env.action_space.seed(7)
        obs, _ = env.reset(seed=123)
        trace = [np.asarray(obs, dtype=np.float64).ravel()]
        for _ in range(20):
            obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            trace.append(np.append(np.asarray(obs, dtype=np.float64).ravel(), reward))
            if terminated or truncated:
                obs, _ = env.reset()
        env.close()
        return trace

    first, second = rollout(), rollout()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id", ENV_IDS)
def test_make_vec(env_id, mode):
    # spawn, not fork: the test process has JAX (multithreaded) loaded, and fork after threads can deadlock.
    vector_kwargs = {"context": "spawn"} if mode == "async" else {}
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, vector_kwargs=vector_kwargs)
    obs, _ = envs.reset(seed=[1, 2])
    assert obs.shape[0] == 2
    assert envs.single_observation_space.contains(obs[0].astype(envs.single_observation_space.dtype))
    envs.action_space.seed(0)
    for _ in range(5):
        obs, rewards, terminated, truncated, _ = envs.step(envs.action_space.sample())
    assert rewards.shape == (2,) and terminated.shape == (2,) and truncated.shape == (2,)
    envs.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_task_matches_spaces(env_id):
    env = gym.make(env_id)
    task = mbrl_bench.get_task(env_id)
    assert task.env_id == env_id
    assert task.horizon == env.spec.max_episode_steps == entry(env_id).max_episode_steps
    if isinstance(env.action_space, gym.spaces.Discrete):
        assert task.action_kind == "discrete" and task.action_dim == env.action_space.n
    else:
        assert task.action_kind == "continuous" and task.action_dim == env.action_space.shape[0]
    if isinstance(env.observation_space, gym.spaces.Box):
        assert task.obs_dim == env.observation_space.shape[0]
    assert set(task.signal_dims).isdisjoint(task.distractor_dims)
    env.close()


def test_make_from_fresh_interpreter_without_import():
    code = (
        "import gymnasium as gym\n"
        "env = gym.make('mbrl_bench:mbrl_bench/CartPoleDistractor-v0', num_distractors=3)\n"
        "obs, _ = env.reset(seed=0)\n"
        "print(obs.shape[0])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "7"


def test_unknown_id_is_a_value_error_listing_valid_ids():
    with pytest.raises(ValueError, match=r"unknown environment 'mbrl_bench/Nope-v0'.*CartPoleDistractor"):
        mbrl_bench.make("mbrl_bench/Nope-v0")
    with pytest.raises(ValueError, match="valid ids"):
        mbrl_bench.get_task("Nope-v0")
    assert not mbrl_bench.get_task("CartPole-v1").true_functions  # any Gymnasium id, without true functions


def test_envs_cli_lists_every_id(tmp_path):
    # Run from elsewhere: `python -m` in a checkout would import its source tree, not the install.
    out = subprocess.run(
        [sys.executable, "-m", "mbrl_bench.cli", "envs"],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    for env_id in ENV_IDS:
        assert env_id in out.stdout
