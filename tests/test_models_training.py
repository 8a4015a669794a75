"""MLE training fits known systems; held-out split, early stopping and elites behave as MBPO's."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mbrl_bench.models import DynamicsModel, ModelConfig, ModelTrainer, TrainConfig, Transitions
from mbrl_bench.models.tabular import TabularModel

OBS, ACT, N = 2, 1, 8000
NOISE_STD = np.array([0.3, 0.2, 0.25])
"""Noise of the two next-obs dims and of the reward."""

RNG = np.random.default_rng(0)
A = np.eye(OBS) + 0.2 * RNG.normal(size=(OBS, OBS))
B = RNG.normal(size=(OBS, ACT))
C = RNG.normal(size=OBS + ACT)

# A Gaussian linear model on a linear system with Gaussian noise: MBPO's defaults but a larger batch
# and step (to converge in seconds), a fixed number of epochs (patience = max_epochs), no decay.
MODEL = DynamicsModel(
    ModelConfig(ensemble_size=2, num_elites=1, weight_decays=(0.0,)), OBS, ACT, False, "linear"
)
TRAINER = ModelTrainer(MODEL, TrainConfig(learning_rate=1e-2, batch_size=1024, max_epochs=300, patience=300))
FIT = jax.jit(TRAINER.fit)


def key(seed: int) -> jax.Array:
    """An rbg PRNG key: XLA compiles its random ops about 4x faster than threefry's, which keeps
    these tests within their time budget; the models are indifferent to the key's implementation."""
    return jax.random.key(seed, impl="rbg")


def linear_system(n: int, seed: int) -> Transitions:
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, OBS)) * 2.0 + 1.0
    act = rng.uniform(-1.0, 1.0, size=(n, ACT))
    noise = rng.normal(size=(n, OBS + 1)) * NOISE_STD
    next_obs = obs @ A.T + act @ B.T + noise[:, :OBS]
    reward = np.concatenate([obs, act], axis=1) @ C + noise[:, OBS]
    return Transitions(*(jnp.asarray(x, jnp.float32) for x in (obs, act, reward, next_obs)))


@pytest.fixture(scope="module")
def fitted() -> tuple:
    params = MODEL.init(key(0))
    return FIT(params, TRAINER.init_optimizer(params), linear_system(N, 1), key(1), jnp.asarray(N))


def test_linear_system_matrix_is_recovered(fitted: tuple) -> None:
    params, _, info = fitted
    mean_next = lambda obs, act: MODEL.step(params, obs, act, key(0), sample=False)[0]
    np.testing.assert_allclose(jax.jacfwd(mean_next)(jnp.zeros(OBS), jnp.zeros(ACT)), A, atol=0.02)
    np.testing.assert_allclose(jax.jacfwd(mean_next, argnums=1)(jnp.zeros(OBS), jnp.zeros(ACT)), B, atol=0.02)
    assert int(info.epochs) == 300
    assert int(info.steps) == 300 * int(np.ceil((N - 1600) / 1024))  # 20% held out


def test_gaussian_model_recovers_the_noise_variance(fitted: tuple) -> None:
    params, _, _ = fitted
    data = linear_system(2000, 2)
    pred = MODEL.predict(params, data.obs, data.action)
    variance = np.exp(np.asarray(pred.logvar[params.elites[0]])).mean(0)
    np.testing.assert_allclose(variance, NOISE_STD**2, rtol=0.1)


def test_unfilled_rows_are_never_used() -> None:
    data = linear_system(N, 3)
    garbage = jax.tree.map(lambda x: x.at[N // 2 :].set(jnp.nan), data)
    params = MODEL.init(key(0))
    fitted, _, info = FIT(params, TRAINER.init_optimizer(params), garbage, key(1), jnp.asarray(N // 2))
    assert all(bool(jnp.isfinite(x).all()) for x in jax.tree.leaves(fitted.net))
    assert bool(jnp.isfinite(info.holdout_mse).all())
    np.testing.assert_allclose(fitted.stats.mean[:OBS], 1.0, atol=0.1)  # stats of the valid rows only


def test_early_stopping_and_elites_follow_holdout_error() -> None:
    # Pure noise: after the first epochs nothing improves by 1%, so MBPO's rule (stop when more than
    # `patience` epochs in a row improved no member) ends training long before max_epochs.
    model = DynamicsModel(ModelConfig(hidden_sizes=(8,), ensemble_size=4, num_elites=2), OBS, ACT, False)
    trainer = ModelTrainer(model, TrainConfig(batch_size=64, patience=2, max_epochs=200))
    rng = np.random.default_rng(4)
    noise = Transitions(
        *(jnp.asarray(rng.normal(size=s), jnp.float32) for s in ((300, OBS), (300, ACT), (300,), (300, OBS)))
    )
    params = model.init(key(0))
    params, _, info = jax.jit(trainer.fit)(params, trainer.init_optimizer(params), noise, key(1))
    assert 3 <= int(info.epochs) < 200
    np.testing.assert_array_equal(params.elites, np.argsort(np.asarray(info.holdout_mse))[:2])


def test_tabular_mle_recovers_the_mdp_and_respects_the_norm_bound() -> None:
    transitions = jnp.array([[[0.7, 0.3], [0.99, 0.01]], [[0.2, 0.8], [0.99, 0.01]]])  # OMD's MDP, [s, a, s']
    rewards = jnp.array([[-0.45, -0.1], [0.5, 0.5]])

    def train(model: TabularModel) -> tuple:
        opt = optax.chain(optax.adam(0.01), model.capacity_transform())  # OMD: Adam 0.01, projected
        params = model.init(key(0))

        def step(carry: tuple, _: None) -> tuple:
            p, state = carry
            grads = jax.grad(model.exact_mle_loss)(p, transitions, rewards)
            updates, state = opt.update(grads, state, p)
            return (optax.apply_updates(p, updates), state), None

        (params, _), _ = jax.lax.scan(step, (params, opt.init(params)), None, length=2000)
        return params

    full = TabularModel(2, 2)
    params = jax.jit(lambda: train(full))()
    np.testing.assert_allclose(full.transition_probs(params), transitions, atol=0.02)
    np.testing.assert_allclose(params.reward, rewards, atol=0.02)

    bounded = TabularModel(2, 2, capacity="norm:2")
    small = jax.jit(lambda: train(bounded))()
    assert float(optax.tree.norm((small.logits / 0.01, small.reward))) <= 2.0 + 1e-4
    assert (
        float(bounded.exact_mle_loss(small, transitions, rewards))
        > float(full.exact_mle_loss(params, transitions, rewards)) + 0.01
    )

    # the sample loss is minimised by the same tables: its gradient at the truth vanishes in expectation
    s, a = jnp.meshgrid(jnp.arange(2), jnp.arange(2), indexing="ij")
    keys = jax.random.split(key(5), 4000)
    next_s = jax.vmap(lambda k: jax.random.categorical(k, jnp.log(transitions[s, a])))(keys)
    sample = Transitions(
        jnp.broadcast_to(s, next_s.shape),
        jnp.broadcast_to(a, next_s.shape),
        jnp.broadcast_to(rewards, next_s.shape),
        next_s,
    )
    assert float(full.loss(params, sample)) < float(full.loss(full.init(key(1)), sample))
