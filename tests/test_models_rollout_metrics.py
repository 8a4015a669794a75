"""Model rollouts (branched, true or model reward/termination) and the model metrics."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_bench import get_task
from mbrl_bench.models import (
    DynamicsModel,
    InputStats,
    ModelConfig,
    ModelEnv,
    ModelParams,
    TabularModel,
    TabularParams,
    Transitions,
    k_step_error,
    one_step_errors,
    soft_value_continuous,
    soft_value_discrete,
    value_equivalence_error,
)

CARTPOLE = get_task("mbrl_bench/CartPoleDistractor-v0", num_distractors=0)


def key(seed: int) -> jax.Array:
    """An rbg PRNG key: XLA compiles its random ops about 4x faster than threefry's."""
    return jax.random.key(seed, impl="rbg")


class Drift(NamedTuple):
    """A toy model: the cart position moves by ``params`` times the velocity (obs[1]); reward -1."""

    def step(self, params: jax.Array, obs: jax.Array, action: jax.Array, key: jax.Array) -> tuple:
        return obs.at[..., 0].add(params * obs[..., 1]), -jnp.ones(obs.shape[:-1])


def test_rollout_stops_branches_at_the_true_termination() -> None:
    env = ModelEnv.from_task(Drift(), CARTPOLE, true_reward=True)  # cart leaves [-2.4, 2.4] at x = 3
    start = jnp.zeros((2, 4)).at[:, 1].set(jnp.array([1.0, -0.2]))  # branch 1 stays inside for 5 steps
    policy = lambda obs, k: jnp.zeros(obs.shape[0], jnp.int32)
    out = jax.jit(lambda s: env.rollout(1.0, s, policy, key(0), horizon=5))(start)
    np.testing.assert_array_equal(out.terminated[:, 0], [False, False, True, False, False])
    np.testing.assert_array_equal(out.valid[:, 0], [True, True, True, False, False])
    assert bool(out.valid[:, 1].all()) and not bool(out.terminated[:, 1].any())
    np.testing.assert_allclose(out.obs[3:, 0, 0], 2.0)  # frozen at the last pre-termination state
    np.testing.assert_allclose(out.next_obs[:, 1, 0], [-0.2, -0.4, -0.6, -0.8, -1.0], rtol=1e-6)
    np.testing.assert_allclose(out.reward, 1.0)  # CartPole's true reward, not the model's -1

    own = ModelEnv(Drift())  # the model's reward; no termination model: branches never end
    out = own.rollout(1.0, start, policy, key(0), horizon=5)
    assert bool(out.valid.all()) and not bool(out.terminated.any())
    np.testing.assert_allclose(out.reward, -1.0)


def test_neural_model_env_rolls_out_under_jit() -> None:
    model = DynamicsModel.for_task(CARTPOLE, ModelConfig.omd_cartpole())
    params = jax.jit(model.init)(key(0))
    env = ModelEnv.from_task(model, CARTPOLE)
    policy = lambda obs, k: jax.random.randint(k, obs.shape[:1], 0, 2)
    out = jax.jit(lambda p: env.rollout(p, jnp.zeros((8, 4)), policy, key(1), horizon=3))(params)
    assert out.obs.shape == (3, 8, 4) and out.action.shape == (3, 8) and out.reward.shape == (3, 8)
    np.testing.assert_array_equal(
        out.obs[1:], out.next_obs[:-1] * out.valid[1:, :, None] + out.obs[1:] * ~out.valid[1:, :, None]
    )


DIM = 2
A_TRUE = np.array([[0.9, 0.2], [-0.1, 0.95]])
B_TRUE = np.array([[0.5], [1.0]])


def linear_model(a: np.ndarray, members: int = 1) -> tuple[DynamicsModel, ModelParams]:
    """A deterministic linear delta model whose weights encode next = a obs + B act, reward = obs[0]."""
    model = DynamicsModel(
        ModelConfig(probabilistic=False, ensemble_size=members, num_elites=members), DIM, 1, False, "linear"
    )
    kernel = np.zeros((DIM + 1, DIM + 1))
    kernel[:DIM, :DIM] = (a - np.eye(DIM)).T
    kernel[DIM:, :DIM] = B_TRUE.T
    kernel[0, DIM] = 1.0
    net = {
        "layer_0": {
            "dense": {
                "kernel": jnp.tile(jnp.asarray(kernel, jnp.float32), (members, 1, 1)),
                "bias": jnp.zeros((members, DIM + 1)),
            }
        }
    }
    return model, ModelParams(net, InputStats(jnp.zeros(DIM + 1), jnp.ones(DIM + 1)), jnp.arange(members))


def trajectories(n: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    obs = np.zeros((n, horizon + 1, DIM))
    obs[:, 0] = rng.normal(size=(n, DIM))
    actions = rng.uniform(-1, 1, size=(n, horizon, 1))
    for t in range(horizon):
        obs[:, t + 1] = obs[:, t] @ A_TRUE.T + actions[:, t] @ B_TRUE.T
    return obs, actions


def test_k_step_error_is_zero_for_the_true_model_and_grows_open_loop() -> None:
    obs, actions = trajectories(16, 4)
    model, params = linear_model(A_TRUE)
    np.testing.assert_allclose(
        k_step_error(model, params, jnp.asarray(obs), jnp.asarray(actions)), 0.0, atol=1e-10
    )

    a_wrong = A_TRUE + 0.05
    model, params = linear_model(a_wrong)
    pred = obs[:, 0]
    expected = []
    for t in range(4):
        pred = pred @ a_wrong.T + actions[:, t] @ B_TRUE.T  # open loop: from its own predictions
        expected.append(((pred - obs[:, t + 1]) ** 2).mean())
    errors = k_step_error(model, params, jnp.asarray(obs), jnp.asarray(actions))
    np.testing.assert_allclose(errors, expected, rtol=1e-4)
    assert np.all(np.diff(np.asarray(errors)) > 0)

    # windows crossing an episode end count only up to it, even with garbage after it
    mask = np.ones((16, 4), bool)
    mask[8:, 1] = False
    garbage = obs.copy()
    garbage[8:, 2:] = np.nan
    masked = k_step_error(model, params, jnp.asarray(garbage), jnp.asarray(actions), jnp.asarray(mask))
    first_half = k_step_error(model, params, jnp.asarray(obs[:8]), jnp.asarray(actions[:8]))
    np.testing.assert_allclose(masked[1:], first_half[1:], rtol=1e-5)
    np.testing.assert_allclose(masked[0], errors[0], rtol=1e-5)


def test_one_step_nll_matches_the_gaussian_formula() -> None:
    obs, actions = trajectories(64, 1)
    rng = np.random.default_rng(1)
    noise = rng.normal(size=(64, DIM)) * np.array([0.1, 0.3])
    data = Transitions(
        jnp.asarray(obs[:, 0]),
        jnp.asarray(actions[:, 0]),
        jnp.asarray(obs[:, 0, 0] + 0.2),
        jnp.asarray(obs[:, 1] + noise),
    )
    model, params = linear_model(A_TRUE, members=2)
    errors = jax.jit(one_step_errors, static_argnums=0)(model, params, data)
    residual = np.concatenate([noise, np.full((64, 1), 0.2)], axis=1)
    np.testing.assert_allclose(errors.mse, (residual**2).mean(), rtol=1e-4)
    var = (residual**2).mean(0)  # a deterministic model's plug-in variance: its residuals' on the data
    np.testing.assert_allclose(errors.nll, 0.5 * np.sum(1.0 + np.log(2 * np.pi * var)), rtol=1e-4)
    np.testing.assert_allclose(errors.member_nll, errors.nll, rtol=1e-5)  # two identical members

    gauss = DynamicsModel(ModelConfig(hidden_sizes=(4,), ensemble_size=3, num_elites=2), DIM, 1, False)
    gparams = jax.jit(gauss.init)(key(0))
    g, pred = jax.jit(lambda p: (one_step_errors(gauss, p, data), gauss.predict(p, data.obs, data.action)))(
        gparams
    )
    y = np.asarray(gauss.targets(data.obs, data.next_obs, data.reward))
    mean, logvar = np.asarray(pred.mean, np.float64), np.asarray(pred.logvar, np.float64)
    member = 0.5 * ((y - mean) ** 2 / np.exp(logvar) + logvar + np.log(2 * np.pi)).sum(-1)  # [E, N]
    np.testing.assert_allclose(g.member_nll, member.mean(-1), rtol=1e-4)
    elite_density = np.exp(-member[np.asarray(gparams.elites)]).mean(0)
    np.testing.assert_allclose(g.nll, -np.log(elite_density).mean(), rtol=1e-4)


CHAIN_P = jnp.array(
    [
        [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]],
        [[0.0, 0.0, 1.0], [1.0, 0.0, 0.0]],
        [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]],
    ]
)  # a deterministic 3-state chain, [s, a, s']
CHAIN_R = jnp.array([[0.0, 0.1], [0.5, 0.0], [1.0, 0.2]])
Q = jnp.array([[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]])


def chain_batch() -> tuple[Transitions, jax.Array]:
    s, a = jnp.meshgrid(jnp.arange(3), jnp.arange(2), indexing="ij")
    s, a = s.ravel(), a.ravel()
    next_s = jnp.argmax(CHAIN_P[s, a], axis=-1)
    return Transitions(s, a, CHAIN_R[s, a], next_s), jnp.zeros(6, bool)


def test_value_equivalence_error_of_exact_and_biased_models() -> None:
    model = TabularModel(3, 2)
    exact = TabularParams(CHAIN_P * 1.0, CHAIN_R)  # logits / 0.01 = 100 margin: deterministic
    batch, terminated = chain_batch()
    value = soft_value_discrete(lambda s: Q[s], alpha=0.1)
    always = lambda s, a, s2: jnp.ones(jnp.shape(s2), bool)

    @jax.jit
    def errors() -> tuple:
        ve = lambda params, **kw: value_equivalence_error(
            model, params, batch, terminated, value, 0.9, key(0), **kw
        )
        biased = exact._replace(reward=CHAIN_R + 0.3)
        return (
            ve(exact, num_samples=4),
            ve(biased),
            ve(exact, termination_fn=always),
            value(batch.next_obs, key(0)),
        )

    exact_error, biased_error, terminating_error, v_next = errors()
    assert float(exact_error) == pytest.approx(0.0, abs=1e-5)
    assert float(biased_error) == pytest.approx(0.3, abs=1e-5)
    # a model that always terminates drops gamma V(s') from its target
    np.testing.assert_allclose(terminating_error, jnp.abs(0.9 * v_next).mean(), rtol=1e-5)
    # alpha * logsumexp(Q / alpha): the soft maximum, close to the max for small alpha
    np.testing.assert_allclose(value(jnp.arange(3), key(0)), [2.0, 0.5, 3.0], atol=1e-3)


def test_soft_value_continuous_is_q_minus_alpha_log_pi() -> None:
    q_fn = lambda obs, act: (obs * act).sum(-1)
    policy = lambda obs, k: (jnp.ones_like(obs), jnp.full(obs.shape[:-1], -1.5))
    value = soft_value_continuous(q_fn, policy, alpha=0.2)
    np.testing.assert_allclose(value(jnp.array([[1.0, 2.0]]), key(0)), [3.0 + 0.3])
