"""The pure-JAX CartPoleDistractor twin against Gymnasium's CartPole-v1 and the distractor laws."""

from __future__ import annotations

import dataclasses
from functools import partial

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mbrl_bench
from mbrl_bench.envs.distractors import LINEAR_RHO, DistractorSpec, linear_transition_matrix
from mbrl_bench.envs.jax_cartpole import (
    CartPoleParams,
    CartPoleState,
    JaxCartPoleDistractor,
    make_jax_cartpole,
)

ENV_ID = "mbrl_bench/CartPoleDistractor-v0"


@partial(jax.jit, static_argnames=("env", "num_envs", "num_steps"))
def _rollout(
    key: jax.Array, params: CartPoleParams, *, env: JaxCartPoleDistractor, num_envs: int, num_steps: int
) -> dict[str, jax.Array]:
    """Random-action rollout of ``num_envs`` vmapped twins; every array is (num_steps, num_envs, ...)."""
    k_reset, k_act, k_step = jax.random.split(key, 3)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), params)
    actions = jax.random.bernoulli(k_act, shape=(num_steps, num_envs)).astype(jnp.int32)
    keys = jax.random.split(k_step, (num_steps, num_envs))
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def body(carry, xs):
        obs, state = carry
        step_keys, action = xs
        next_obs, state, reward, terminated, truncated, info = vstep(step_keys, state, action, params)
        out = {
            "obs": obs,
            "action": action,
            "next_obs": next_obs,
            "final_obs": info["final_obs"],
            "reward": reward,
            "terminated": terminated,
            "truncated": truncated,
            "time": state.time,
        }
        return (next_obs, state), out

    _, traj = jax.lax.scan(body, (obs, state), (keys, actions))
    return traj


@pytest.mark.parametrize(("num_distractors", "dtype"), [(0, "float64"), (3, "float64"), (3, "float32")])
def test_matches_gymnasium_cartpole_v1(num_distractors: int, dtype: str) -> None:
    """Same initial state and actions: same observations, rewards and terminations as CartPole-v1."""
    rng = np.random.default_rng(0)
    gym_env = gym.make("CartPole-v1")
    with jax.enable_x64(dtype == "float64"):
        env = JaxCartPoleDistractor(DistractorSpec(num_distractors, "random_walk"), dtype=dtype)
        params = env.default_params()
        step = jax.jit(env.step)
        for episode in range(5):
            key = jax.random.key(episode)
            obs, state = env.reset(key, params)
            assert obs.shape == (4 + num_distractors,) and obs.dtype == np.dtype(dtype)
            gym_env.reset(seed=episode)
            gym_env.unwrapped.state = np.asarray(state.physics, dtype=np.float64)
            for _ in range(500):
                action = int(rng.integers(2))
                key, step_key = jax.random.split(key)
                obs, state, reward, terminated, truncated, info = step(step_key, state, action, params)
                gym_obs, gym_reward, gym_terminated, gym_truncated, _ = gym_env.step(action)
                np.testing.assert_allclose(info["final_obs"][:4], gym_obs, rtol=0, atol=1e-5)
                assert float(reward) == gym_reward
                assert bool(terminated) == gym_terminated and bool(truncated) == gym_truncated
                if gym_terminated:
                    break
                np.testing.assert_array_equal(obs, info["final_obs"])
            else:
                pytest.fail(f"episode {episode} did not terminate within 500 random steps")
            # Auto-reset: a fresh episode starts from CartPole-v1's initial law.
            assert int(state.time) == 0 and np.all(np.abs(np.asarray(obs[:4])) <= 0.05)


@pytest.mark.parametrize("kind", ["gaussian", "random_walk", "linear"])
def test_distractor_laws(kind: str) -> None:
    """Per kind: x_{t+1} = A x_t + N(0, noise_std^2 I) within episodes, resets draw N(0, scale^2 I)."""
    scale, num_distractors, num_envs, num_steps = 2.0, 6, 2048, 40
    env, params = make_jax_cartpole(num_distractors, kind, scale)
    traj = jax.device_get(
        _rollout(jax.random.key(1), params, env=env, num_envs=num_envs, num_steps=num_steps)
    )
    spec = DistractorSpec(num_distractors, kind, scale)
    done = traj["terminated"] | traj["truncated"]
    x = traj["obs"][..., 4:][~done]
    y = traj["final_obs"][..., 4:][~done]
    # Least-squares transition matrix and residual covariance over within-episode transitions.
    a_hat = np.linalg.lstsq(x, y, rcond=None)[0].T
    a_true = {
        "gaussian": np.zeros((num_distractors, num_distractors)),
        "random_walk": np.eye(num_distractors),
        "linear": linear_transition_matrix(num_distractors),
    }[kind]
    np.testing.assert_allclose(a_hat, a_true, atol=0.02)
    residual = y - x @ a_true.T
    np.testing.assert_allclose(residual.mean(0), 0.0, atol=0.03 * spec.noise_std)
    np.testing.assert_allclose(
        np.cov(residual.T), spec.noise_std**2 * np.eye(num_distractors), atol=0.05 * spec.noise_std**2
    )
    # Initial values, at the start and after every auto-reset, are N(0, scale^2).
    fresh = np.concatenate([traj["obs"][0, :, 4:], traj["next_obs"][..., 4:][done]])
    assert len(fresh) > 4000
    np.testing.assert_allclose(fresh.mean(0), 0.0, atol=0.1 * scale)
    np.testing.assert_allclose(fresh.std(0), scale, rtol=0.05)
    if kind == "random_walk":
        at_ten = traj["next_obs"][..., 4:][traj["time"] == 10]
        np.testing.assert_allclose(at_ten.var(0), 11 * scale**2, rtol=0.1)
    else:  # stationary law N(0, scale^2) at every step
        np.testing.assert_allclose(
            traj["next_obs"][..., 4:].reshape(-1, num_distractors).var(0), scale**2, rtol=0.05
        )
    if kind == "linear":
        assert spec.noise_std == pytest.approx(scale * np.sqrt(1 - LINEAR_RHO**2))


def _single_step(
    physics: list[float], time: int, max_episode_steps: int = 500
) -> tuple[jax.Array, CartPoleState, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
    env, params = make_jax_cartpole(4, "random_walk", 1.0)
    params = dataclasses.replace(params, max_episode_steps=max_episode_steps)
    state = CartPoleState(
        jnp.asarray(physics, jnp.float32), jnp.full(4, 100.0, jnp.float32), jnp.asarray(time, jnp.int32)
    )
    return env.step(jax.random.key(3), state, jnp.int32(1), params)


def test_auto_reset_at_termination() -> None:
    obs, state, reward, terminated, truncated, info = _single_step([2.39, 1.0, 0.0, 0.0], time=7)
    assert bool(terminated) and not bool(truncated) and float(reward) == 1.0
    assert float(info["final_obs"][0]) > 2.4
    # The random walk continued from 100 in the final observation, then restarted near 0.
    assert np.all(np.abs(np.asarray(info["final_obs"][4:]) - 100.0) < 6)
    assert np.all(np.abs(np.asarray(obs[4:])) < 6)
    assert np.all(np.abs(np.asarray(obs[:4])) <= 0.05) and int(state.time) == 0
    np.testing.assert_array_equal(obs, jnp.concatenate([state.physics, state.distractors]))


def test_auto_reset_at_horizon() -> None:
    obs, state, _, terminated, truncated, info = _single_step([0.0, 0.0, 0.0, 0.0], time=499)
    assert bool(truncated) and not bool(terminated)
    assert int(state.time) == 0 and np.all(np.abs(np.asarray(obs[:4])) <= 0.05)
    # One right push from rest: x_dot = tau * xacc = 0.02 * (10/1.1) * (1 + 0.05 / (0.55 * (4/3 - 0.1/1.1))).
    assert float(info["final_obs"][1]) == pytest.approx(0.195122, abs=1e-5)
    obs, state, _, terminated, truncated, info = _single_step([0.0, 0.0, 0.0, 0.0], time=498)
    assert not bool(truncated) and not bool(terminated) and int(state.time) == 499
    np.testing.assert_array_equal(obs, info["final_obs"])
    # In a scan, a short horizon truncates exactly every `max_episode_steps` steps of an episode
    # (the horizon is a traced leaf: this reuses the compiled rollout of the task test below).
    env, params = make_jax_cartpole(3, "linear")
    params = dataclasses.replace(params, max_episode_steps=5)
    traj = _rollout(jax.random.key(4), params, env=env, num_envs=256, num_steps=60)
    np.testing.assert_array_equal(traj["truncated"], traj["time"] == 0)
    assert np.all(np.asarray(traj["time"]) <= 4) and bool(traj["truncated"][4].all())


def test_jit_vmap_scan_over_1024_envs() -> None:
    env, params = make_jax_cartpole()
    traj = _rollout(jax.random.key(5), params, env=env, num_envs=1024, num_steps=100)
    assert traj["next_obs"].shape == (100, 1024, 14) and traj["next_obs"].dtype == jnp.float32
    assert bool(jnp.isfinite(traj["next_obs"]).all())
    again = _rollout(jax.random.key(5), params, env=env, num_envs=1024, num_steps=100)
    np.testing.assert_array_equal(traj["next_obs"], again["next_obs"])
    other = _rollout(jax.random.key(6), params, env=env, num_envs=1024, num_steps=100)
    assert not np.allclose(traj["next_obs"], other["next_obs"])
    # Random actions keep CartPole up for about 22 steps on average.
    terminations = int(traj["terminated"].sum())
    assert 17 < 100 * 1024 / terminations < 28
    assert not bool(traj["truncated"].any())


def test_task_functions_agree_with_twin() -> None:
    task = mbrl_bench.get_task(ENV_ID, num_distractors=3, distractor="linear")
    env, params = mbrl_bench.make_jax(ENV_ID, num_distractors=3, distractor="linear")
    assert task.obs_dim == params.obs_dim == 7 and task.horizon == params.max_episode_steps
    traj = _rollout(jax.random.key(7), params, env=env, num_envs=256, num_steps=60)
    args = (traj["obs"], traj["action"], traj["final_obs"])
    np.testing.assert_array_equal(task.termination_fn(*args), traj["terminated"])
    np.testing.assert_array_equal(task.reward_fn(*args), traj["reward"])
    assert int(traj["terminated"].sum()) > 300


def test_registry_default_twin() -> None:
    env, params = mbrl_bench.make_jax(ENV_ID)
    assert env == JaxCartPoleDistractor(DistractorSpec(10, "gaussian", 1.0))
    assert (params.num_distractors, params.distractor_kind, params.dtype) == (10, "gaussian", "float32")
    np.testing.assert_allclose(params.distractor_matrix, linear_transition_matrix(10), atol=1e-7)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"distractor": "uniform"}, r"'uniform'.*gaussian, random_walk, linear"),
        ({"num_distractors": -1}, "-1"),
        ({"distractor_scale": 0.0}, "0.0"),
    ],
)
def test_bad_arguments(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_jax_cartpole(**kwargs)


def test_bad_dtype() -> None:
    with pytest.raises(ValueError, match=r"'float16'.*float32, float64"):
        CartPoleParams.create(dtype="float16")
    with jax.enable_x64(False), pytest.raises(ValueError, match="enable_x64"):
        CartPoleParams.create(dtype="float64")


def test_gym_env_seeded_episode_replays_after_unseeded_ones() -> None:
    """Unseeded resets keep the NumPy env's leftover distractor noise (for speed); seeded ones drop it."""
    env = gym.make(ENV_ID, num_distractors=3)

    def episode(seed: int | None) -> np.ndarray:
        observations = [env.reset(seed=seed)[0]]
        for t in range(40):
            obs, _, terminated, truncated, _ = env.step(t % 2)
            observations.append(obs)
            if terminated or truncated:
                break
        return np.array(observations)

    first = episode(1)
    unseeded = [episode(None) for _ in range(3)]
    np.testing.assert_array_equal(episode(1), first)
    assert not np.allclose(unseeded[0][0, 4:], first[0, 4:])
