"""CartPoleDistractor-v0: CartPole-v1 underneath, distractors with the documented laws, honest spaces."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import mbrl_bench
from mbrl_bench.envs.distractors import LINEAR_RHO, AppendDistractors, linear_transition_matrix

ENV_ID = "mbrl_bench/CartPoleDistractor-v0"


def _rollout(env, seed, actions):
    obs, _ = env.reset(seed=seed)
    observations, rewards, terms = [obs], [], []
    for a in actions:
        obs, r, terminated, truncated, _ = env.step(a)
        observations.append(obs)
        rewards.append(r)
        terms.append(terminated)
        if terminated or truncated:
            break
    return np.array(observations), np.array(rewards), np.array(terms)


def test_zero_distractors_is_exactly_cartpole_v1():
    actions = np.random.default_rng(0).integers(0, 2, size=500)
    for seed in range(5):
        ref = _rollout(gym.make("CartPole-v1"), seed, actions)
        ours = _rollout(gym.make(ENV_ID, num_distractors=0), seed, actions)
        for a, b in zip(ref, ours, strict=True):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["gaussian", "random_walk", "linear"])
def test_distractors_leave_cartpole_dims_unchanged_and_are_seeded(kind):
    actions = np.random.default_rng(1).integers(0, 2, size=500)
    ref, _, _ = _rollout(gym.make("CartPole-v1"), 3, actions)
    a, _, _ = _rollout(gym.make(ENV_ID, num_distractors=6, distractor=kind, distractor_scale=0.5), 3, actions)
    b, _, _ = _rollout(gym.make(ENV_ID, num_distractors=6, distractor=kind, distractor_scale=0.5), 3, actions)
    c, _, _ = _rollout(gym.make(ENV_ID, num_distractors=6, distractor=kind, distractor_scale=0.5), 4, actions)
    np.testing.assert_array_equal(a[:, :4], ref)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a[0, 4:], c[0, 4:])


def _distractor_series(kind, scale, steps=4000, n=8):
    env = gym.make(
        ENV_ID, num_distractors=n, distractor=kind, distractor_scale=scale, max_episode_steps=steps + 1
    ).unwrapped
    obs, _ = env.reset(seed=0)
    series = [obs[4:]]
    for _ in range(steps):
        env.state = np.zeros(4)  # keep the pole up: only the distractors matter here
        obs, *_ = env.step(0)
        series.append(obs[4:])
    return np.array(series, dtype=np.float64)


def test_gaussian_distractors_are_iid_with_the_given_scale():
    x = _distractor_series("gaussian", 2.0)
    assert abs(x.mean()) < 0.1
    assert x.std() == pytest.approx(2.0, rel=0.05)
    lag1 = np.corrcoef(x[:-1].ravel(), x[1:].ravel())[0, 1]
    assert abs(lag1) < 0.05


def test_random_walk_increments_have_the_given_scale():
    x = _distractor_series("random_walk", 0.3)
    assert np.diff(x, axis=0).std() == pytest.approx(0.3, rel=0.05)


def test_linear_distractors_follow_their_stable_system():
    x = _distractor_series("linear", 1.5)
    a = linear_transition_matrix(8)
    assert max(abs(np.linalg.eigvals(a))) == pytest.approx(LINEAR_RHO)
    residual = x[1:] - x[:-1] @ a.T
    assert residual.std() == pytest.approx(1.5 * np.sqrt(1 - LINEAR_RHO**2), rel=0.05)
    assert x.std() == pytest.approx(1.5, rel=0.1)  # stationary scale


def test_observation_space_states_unbounded_distractors():
    env = gym.make(ENV_ID, num_distractors=3)
    space = env.observation_space
    assert space.shape == (7,)
    base = gym.make("CartPole-v1").observation_space
    np.testing.assert_array_equal(space.low[:4], base.low)
    assert np.all(np.isinf(space.low[4:])) and np.all(np.isinf(space.high[4:]))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_distractors": -1}, "num_distractors must be an integer >= 0, got -1"),
        ({"num_distractors": 2.5}, "num_distractors must be an integer >= 0, got 2.5"),
        (
            {"distractor": "uniform"},
            "unknown distractor kind 'uniform'; valid kinds: gaussian, random_walk, linear",
        ),
        ({"distractor_scale": 0.0}, "distractor_scale must be a finite number > 0, got 0.0"),
        ({"distractor_scale": -1}, "distractor_scale must be a finite number > 0, got -1"),
    ],
)
def test_bad_kwargs_raise_value_errors_at_make_time(kwargs, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        gym.make(ENV_ID, **kwargs)


def test_wrapper_appends_distractors_to_any_box_env_without_touching_it():
    actions = np.random.default_rng(2).integers(0, 2, size=200)
    ref, ref_r, _ = _rollout(gym.make("CartPole-v1"), 5, actions)
    wrapped = AppendDistractors(gym.make("CartPole-v1"), num_distractors=3, distractor="linear")
    obs, rewards, _ = _rollout(wrapped, 5, actions)
    again, _, _ = _rollout(AppendDistractors(gym.make("CartPole-v1"), 3, "linear"), 5, actions)
    np.testing.assert_array_equal(obs[:, :4], ref)
    np.testing.assert_array_equal(rewards, ref_r)
    np.testing.assert_array_equal(obs, again)
    assert wrapped.observation_space.shape == (7,)
    assert wrapped.observation_space.contains(obs[-1])


def test_task_reward_and_termination_match_the_env():
    env = gym.make(ENV_ID, num_distractors=4)
    task = mbrl_bench.get_task(ENV_ID, num_distractors=4)
    assert task.distractor_dims == (4, 5, 6, 7) and task.signal_dims == (0, 1, 2, 3)
    rng = np.random.default_rng(0)
    obs_l, act_l, next_l, rew_l, term_l = [], [], [], [], []
    obs, _ = env.reset(seed=0)
    for _ in range(600):
        a = int(rng.integers(2))
        nxt, r, terminated, truncated, _ = env.step(a)
        obs_l.append(obs), act_l.append(a), next_l.append(nxt), rew_l.append(r), term_l.append(terminated)
        obs = env.reset()[0] if terminated or truncated else nxt
    obs_b, act_b, next_b = np.array(obs_l), np.array(act_l), np.array(next_l)
    assert any(term_l)
    np.testing.assert_allclose(task.reward_fn(obs_b, act_b, next_b), rew_l, atol=1e-5)
    np.testing.assert_array_equal(task.termination_fn(obs_b, act_b, next_b), term_l)
    assert bool(task.termination_fn(obs_b[0], act_b[0], next_b[0])) == term_l[0]
