"""The MuJoCo tasks' pure-JAX reward and termination reproduce what the envs return.

Each id is rolled out with seeded random actions (terminations included for Hopper, Walker2d and Ant,
which fall or jump out of range within a few hundred random steps); the task's functions must give the
env's reward and ``terminated`` on the collected transitions, batched and one at a time.
"""

from __future__ import annotations

import functools
import pickle

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mbrl_bench
from mbrl_bench.envs.mujoco import MUJOCO_ENTRIES, mujoco_distractor_task, mujoco_task

ALL_IDS = [e.env_id for e in MUJOCO_ENTRIES]
DISTRACTOR_IDS = [i for i in ALL_IDS if "Distractor" in i]
TERMINATING = ("Hopper", "Walker2d", "Ant")
STEPS = 300


@functools.cache
def rollout(env_id: str) -> dict[str, np.ndarray]:
    """Transitions from seeded random actions, resetting after each termination or truncation."""
    env = gym.make(env_id)
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    out: dict[str, list] = {k: [] for k in ("obs", "action", "next_obs", "reward", "terminated")}
    for _ in range(STEPS):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        for key, value in zip(out, (obs, action, next_obs, reward, terminated), strict=True):
            out[key].append(value)
        obs = env.reset()[0] if terminated or truncated else next_obs
    env.close()
    return {k: np.asarray(v) for k, v in out.items()}


def _is_terminating(env_id: str) -> bool:
    return any(f"/{name}" in env_id for name in TERMINATING)


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_reward_and_termination_match_env(env_id: str) -> None:
    task = mbrl_bench.get_task(env_id)
    data = rollout(env_id)
    terminated = data["terminated"]
    if _is_terminating(env_id):
        assert terminated.any() and not terminated.all(), "the rollout must cross a termination"
    else:
        assert not terminated.any()
    args = (data["obs"], data["action"], data["next_obs"])
    with jax.enable_x64(True):
        reward = jax.jit(task.reward_fn)(*args)
        done = jax.jit(task.termination_fn)(*args)
        assert reward.shape == done.shape == (STEPS,)
        assert done.dtype == jnp.bool_
        np.testing.assert_allclose(reward, data["reward"], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(done, terminated)
        # One transition, unbatched: the terminating one where there is one.
        i = int(np.argmax(terminated))
        one = tuple(a[i] for a in args)
        assert task.reward_fn(*one).shape == task.termination_fn(*one).shape == ()
        assert abs(float(task.reward_fn(*one)) - data["reward"][i]) < 1e-5
        assert bool(task.termination_fn(*one)) == terminated[i]


@pytest.mark.parametrize("env_id", ["mbrl_bench/Hopper-v0", "mbrl_bench/Ant-v0", "mbrl_bench/Pusher-v0"])
def test_float32_reward_is_close(env_id: str) -> None:
    """In JAX's default float32 the functions still agree up to float32 rounding of x / dt."""
    task = mbrl_bench.get_task(env_id)
    data = rollout(env_id)
    args = (data["obs"], data["action"], data["next_obs"])
    reward = task.reward_fn(*args)
    assert reward.dtype == jnp.float32
    np.testing.assert_allclose(reward, data["reward"], rtol=1e-4, atol=1e-3)
    np.testing.assert_array_equal(task.termination_fn(*args), data["terminated"])


@pytest.mark.parametrize("env_id", ALL_IDS)
def test_task_shapes_match_env(env_id: str) -> None:
    task = mbrl_bench.get_task(env_id)
    env = gym.make(env_id)
    assert task.env_id == env_id
    assert task.action_kind == "continuous"
    assert task.obs_dim == env.observation_space.shape[0]
    assert task.action_dim == env.action_space.shape[0]
    assert task.horizon == env.spec.max_episode_steps
    assert task.layout["dt"] == pytest.approx(env.unwrapped.dt)
    assert set(task.signal_dims) | set(task.distractor_dims) == set(range(task.obs_dim))
    assert len(task.distractor_dims) == (10 if env_id in DISTRACTOR_IDS else 0)
    if "x_position" in task.layout:  # the x position is observed, so x_velocity is a function of obs
        obs, _ = env.reset(seed=1)
        assert obs[task.layout["x_position"]] == env.unwrapped.data.qpos[0]
    env.close()


@pytest.mark.parametrize("env_id", DISTRACTOR_IDS)
def test_distractor_dims_are_the_appended_ones(env_id: str) -> None:
    """Base dims equal the plain env's observation (same seed and actions); the rest are distractors."""
    task = mbrl_bench.get_task(env_id)
    base_id = env_id.replace("Distractor", "")
    with_d, plain = rollout(env_id), rollout(base_id)
    # Both take the same actions from the same seed until the first reset; after it the distractor
    # draws have advanced the shared generator, so only the first episode is compared.
    first = int(np.argmax(plain["terminated"])) + 1 if plain["terminated"].any() else STEPS
    np.testing.assert_array_equal(with_d["action"][:first], plain["action"][:first])
    signal, distract = list(task.signal_dims), list(task.distractor_dims)
    np.testing.assert_array_equal(with_d["next_obs"][:first, signal], plain["next_obs"][:first])
    assert np.std(with_d["next_obs"][:, distract]) == pytest.approx(1.0, abs=0.1)


@pytest.mark.parametrize("env_id", DISTRACTOR_IDS)
def test_distractor_dims_leave_reward_unchanged(env_id: str) -> None:
    task = mbrl_bench.get_task(env_id)
    data = rollout(env_id)
    obs, next_obs = data["obs"].copy(), data["next_obs"].copy()
    rng = np.random.default_rng(0)
    distract = list(task.distractor_dims)
    obs[:, distract] = rng.normal(0.0, 1e3, size=(STEPS, len(distract)))
    next_obs[:, distract] = np.nan
    reward = task.reward_fn(obs, data["action"], next_obs)
    done = task.termination_fn(obs, data["action"], next_obs)
    np.testing.assert_array_equal(reward, task.reward_fn(data["obs"], data["action"], data["next_obs"]))
    np.testing.assert_array_equal(done, data["terminated"])


@pytest.mark.parametrize("num_distractors", [0, 3])
def test_num_distractors_sets_obs_dim(num_distractors: int) -> None:
    env_id = "mbrl_bench/HopperDistractor-v0"
    env = gym.make(env_id, num_distractors=num_distractors, distractor="linear", distractor_scale=2.0)
    task = mbrl_bench.get_task(env_id, num_distractors=num_distractors)
    assert env.observation_space.shape == (task.obs_dim,) == (12 + num_distractors,)
    assert task.distractor_dims == tuple(range(12, 12 + num_distractors))
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_distractors": -1}, "-1"),
        ({"num_distractors": 2.5}, "2.5"),
        ({"distractor": "uniform"}, "gaussian, random_walk, linear"),
        ({"distractor_scale": 0.0}, "0.0"),
    ],
)
@pytest.mark.parametrize("env_id", ["mbrl_bench/HalfCheetahDistractor-v0", "mbrl_bench/AntDistractor-v0"])
def test_bad_distractor_kwargs_raise(env_id: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        mbrl_bench.get_task(env_id, **kwargs)
    with pytest.raises(ValueError, match=message):
        gym.make(env_id, **kwargs)


def test_factories_reject_ids_they_do_not_serve() -> None:
    with pytest.raises(ValueError, match="mbrl_bench/Hopper-v0"):
        mujoco_task("mbrl_bench/HopperDistractor-v0")
    with pytest.raises(ValueError, match="mbrl_bench/HopperDistractor-v0"):
        mujoco_distractor_task("mbrl_bench/Pusher-v0")


def test_ant_reports_the_velocity_its_reward_uses() -> None:
    """Ant's info x/y velocity is the observed position difference over dt (the stock env's lags)."""
    env = gym.make("mbrl_bench/Ant-v0")
    env.action_space.seed(0)
    obs, _ = env.reset(seed=0)
    next_obs, reward, *_, info = env.step(env.action_space.sample())
    dt = env.unwrapped.dt
    assert info["x_velocity"] == pytest.approx((next_obs[0] - obs[0]) / dt, abs=1e-12)
    assert info["y_velocity"] == pytest.approx((next_obs[1] - obs[1]) / dt, abs=1e-12)
    terms = info["reward_forward"] + info["reward_ctrl"] + info["reward_contact"] + info["reward_survive"]
    assert reward == pytest.approx(terms)
    env.close()


def test_pickle_round_trip_keeps_distractor_config() -> None:
    env = gym.make("mbrl_bench/Walker2dDistractor-v0", num_distractors=4)
    copy = pickle.loads(pickle.dumps(env.unwrapped))
    assert copy.observation_space.shape == (22,)
    assert copy.distractor_spec == env.unwrapped.distractor_spec
    obs, _ = copy.reset(seed=0)
    np.testing.assert_array_equal(obs, env.unwrapped.reset(seed=0)[0])
    env.close()
