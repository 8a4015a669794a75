"""Neural dynamics models: each capacity really restricts, ensembles equal their members, propagation."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mbrl_bench import get_task
from mbrl_bench.models import DynamicsModel, ModelConfig, ModelParams, ModelTrainer, TrainConfig, Transitions
from mbrl_bench.models.tabular import TabularModel, TabularParams

OBS, ACT = 5, 2
SMALL = ModelConfig(hidden_sizes=(8, 8), ensemble_size=3, num_elites=2)


def key(seed: int) -> jax.Array:
    """An rbg PRNG key: XLA compiles its random ops about 4x faster than threefry's, which keeps
    these tests within their time budget; the models are indifferent to the key's implementation."""
    return jax.random.key(seed, impl="rbg")


@functools.lru_cache
def init(m: DynamicsModel | TabularModel, seed: int) -> ModelParams | TabularParams:
    """Jitted init, once per (model, seed) across the tests (models are hashable)."""
    return jax.jit(m.init)(key(seed))


def model(capacity: str = "full", config: ModelConfig = SMALL, discrete: bool = False) -> DynamicsModel:
    return DynamicsModel(config, OBS, ACT, discrete, capacity)


def batch(key: jax.Array, lead: tuple[int, ...], discrete: bool = False) -> Transitions:
    k = jax.random.split(key, 4)
    action = jax.random.randint(k[1], lead, 0, ACT) if discrete else jax.random.normal(k[1], (*lead, ACT))
    return Transitions(
        jax.random.normal(k[0], (*lead, OBS)),
        action,
        jax.random.normal(k[2], lead),
        jax.random.normal(k[3], (*lead, OBS)),
    )


def dense_count(sizes: list[int], rank: int | None = None) -> int:
    total = 0
    for fan_in, fan_out in itertools.pairwise(sizes):
        low = rank is not None and rank < min(fan_in, fan_out)
        total += (fan_in * rank + rank * fan_out if low else fan_in * fan_out) + fan_out
    return total


def test_param_counts_follow_the_capacity() -> None:
    n_in, n_out = OBS + ACT, 2 * (OBS + 1)  # Gaussian head: mean and log-variance
    bounds = 2 * (OBS + 1)
    assert model().param_count() == dense_count([n_in, 8, 8, n_out]) + bounds
    assert model("width:3").param_count() == dense_count([n_in, 3, 3, n_out]) + bounds
    assert model("depth:1").param_count() == dense_count([n_in, 8, n_out]) + bounds
    assert model("depth:4").param_count() == dense_count([n_in, 8, 8, 8, 8, n_out]) + bounds
    assert model("linear").param_count() == dense_count([n_in, n_out]) + bounds
    assert model("rank:2").param_count() == dense_count([n_in, 8, 8, n_out], rank=2) + bounds
    assert model("obs:2").param_count() == dense_count([2 + ACT, 8, 8, n_out]) + bounds
    assert model("norm:1").param_count() == model().param_count()
    assert model("rank:2").param_count() < model().param_count()


def test_rank_bottleneck_bounds_every_layer_rank() -> None:
    params = init(model("rank:2"), 0)
    for i in range(3):
        layer = params.net[f"layer_{i}"]
        product = np.asarray(layer["U"][0] @ layer["V"][0])
        assert np.linalg.matrix_rank(product, tol=1e-6) == 2
    full = init(model(), 0).net["layer_1"]["dense"]["kernel"][0]
    assert np.linalg.matrix_rank(np.asarray(full)) == 8


def jacobians_at(m: DynamicsModel, params: ModelParams, points: jax.Array) -> jax.Array:
    """d mean / d obs of member 0 at each point (one compiled function per model)."""
    mean_at = lambda obs: m.predict(params, obs, jnp.ones(ACT)).mean[0]
    return jax.jit(jax.vmap(jax.jacfwd(mean_at)))(points)


def test_linear_capacity_is_affine() -> None:
    m = model("linear")
    params = init(m, 0)
    params = params._replace(stats=params.stats._replace(std=params.stats.std * 0.5))
    points = jnp.stack([jnp.zeros(OBS), 3.0 * jnp.ones(OBS)])
    jac = jacobians_at(m, params, points)
    np.testing.assert_allclose(jac[0], jac[1], atol=1e-6)
    jac_full = jacobians_at(model(), init(model(), 0), points)  # the default MLP is not affine
    assert not np.allclose(jac_full[0], jac_full[1], atol=1e-4)


def test_hidden_obs_dims_have_no_effect() -> None:
    m = model("obs:2", ModelConfig(hidden_sizes=(8,), ensemble_size=2, num_elites=2))
    params = init(m, 0)
    b = batch(key(1), (6,))
    shifts = jnp.zeros((3, 1, OBS)).at[1, :, 2:].set(100.0).at[2, :, :2].set(1.0)  # none, hidden, visible
    step = jax.jit(jax.vmap(lambda shift: m.step(params, b.obs + shift, b.action, key(2))))
    next_obs, reward = step(shifts)
    assert next_obs.shape == (3, 6, OBS)
    np.testing.assert_allclose(next_obs[1, :, 2:], next_obs[0, :, 2:], atol=1e-5)  # absolute predictions
    np.testing.assert_allclose(next_obs[1, :, :2], next_obs[0, :, :2], atol=1e-5)
    np.testing.assert_allclose(reward[1], reward[0], atol=1e-5)
    assert not np.allclose(next_obs[2, :, 2:], next_obs[0, :, 2:])  # the visible dims do matter
    with pytest.raises(ValueError, match=r"obs:0\.\.obs:5"):
        model("obs:6")


def member_weight_norms(net: dict) -> list[float]:
    layers = {k: v for k, v in net.items() if k.startswith("layer")}
    return [float(optax.tree.norm(jax.tree.map(lambda x, e=e: x[e], layers))) for e in range(3)]


def test_norm_capacity_projects_each_member_but_not_the_variance_bounds() -> None:
    assert min(member_weight_norms(init(model(), 0).net)) > 0.5  # an unrestricted init lies outside
    m = model("norm:0.5")
    params = init(m, 0)
    np.testing.assert_allclose(member_weight_norms(params.net), 0.5, rtol=1e-5)  # projected at init
    trainer = ModelTrainer(m, TrainConfig(learning_rate=0.1))
    opt = trainer.init_optimizer(params)
    stepped, _, _ = jax.jit(trainer.train_step)(params, opt, batch(key(1), (3, 16)))
    assert max(member_weight_norms(stepped.net)) <= 0.5 * (1 + 1e-5)  # each member on its own ball
    assert not np.allclose(
        stepped.net["layer_0"]["dense"]["kernel"], params.net["layer_0"]["dense"]["kernel"]
    )
    assert float(stepped.net["min_logvar"].mean()) < -9.0  # the bounds, not projected, stay near -10


def test_discrete_actions_enter_one_hot() -> None:
    m = model(discrete=True)
    feats = m.features(jnp.zeros((3, OBS)), jnp.array([0, 1, 1]))
    np.testing.assert_array_equal(feats[:, OBS:], [[1, 0], [0, 1], [0, 1]])
    cont = model().features(jnp.zeros((1, OBS)), jnp.array([[0.3, -2.0]]))
    np.testing.assert_allclose(cont[0, OBS:], [0.3, -2.0])
    cartpole = DynamicsModel.for_task(get_task("mbrl_bench/CartPoleDistractor-v0", num_distractors=3))
    assert (cartpole.obs_dim, cartpole.input_dim, cartpole.discrete_actions) == (7, 9, True)


def test_ensemble_forward_equals_members_one_by_one() -> None:
    m = model()
    params = init(m, 0)
    params = params._replace(stats=params.stats._replace(mean=jnp.full(OBS + ACT, 0.3)))
    b = batch(key(1), (4,))
    pred = jax.jit(m.predict)(params, b.obs, b.action)
    x = (m.features(b.obs, b.action) - params.stats.mean) / params.stats.std
    apply = jax.jit(lambda net: m.module.apply({"params": net}, x))
    for e in range(3):
        mean, logvar = apply(jax.tree.map(lambda leaf, e=e: leaf[e], params.net))
        np.testing.assert_allclose(pred.mean[e], mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pred.logvar[e], logvar, rtol=1e-5, atol=1e-6)
    assert not np.allclose(pred.mean[0], pred.mean[1])  # members are initialised independently


def test_ensemble_training_step_equals_separate_member_steps() -> None:
    m = model()
    single = DynamicsModel(ModelConfig(hidden_sizes=(8, 8), ensemble_size=1, num_elites=1), OBS, ACT, False)
    params = init(m, 0)
    b = batch(key(1), (3, 16))
    trainer, single_trainer = ModelTrainer(m), ModelTrainer(single)
    step, single_step = jax.jit(trainer.train_step), jax.jit(single_trainer.train_step)
    opt = trainer.init_optimizer(params)
    members = [m.member(params, e) for e in range(3)]
    member_opts = [single_trainer.init_optimizer(p) for p in members]
    for _ in range(3):
        params, opt, _ = step(params, opt, b)
        for e in range(3):
            members[e], member_opts[e], _ = single_step(
                members[e], member_opts[e], jax.tree.map(lambda x, e=e: x[e : e + 1], b)
            )
    for e in range(3):
        jax.tree.map(
            lambda a, c, e=e: np.testing.assert_allclose(a[e], c[0], rtol=1e-5, atol=1e-6),
            params.net,
            members[e].net,
        )


def test_propagation_uses_only_elites_and_samples_gaussians() -> None:
    m = model(config=ModelConfig(hidden_sizes=(8,), ensemble_size=3, num_elites=1, probabilistic=False))
    params = init(m, 0)._replace(elites=jnp.array([2]))
    b = batch(key(1), (5,))
    (next_obs, reward), pred = jax.jit(
        lambda: (m.step(params, b.obs, b.action, key(2)), m.predict(params, b.obs, b.action))
    )()
    np.testing.assert_allclose(next_obs, b.obs + pred.mean[2, :, :OBS], rtol=1e-5, atol=1e-6)  # a delta model
    np.testing.assert_allclose(reward, pred.mean[2, :, OBS], rtol=1e-5, atol=1e-6)

    gauss = model()
    gp = init(gauss, 0)
    obs, act = jnp.zeros((4000, OBS)), jnp.zeros((4000, ACT))

    @jax.jit
    def outputs() -> tuple:
        sampled, _ = gauss.step(gp, obs, act, key(3))
        mean, _ = gauss.step(gp, obs, act, key(3), sample=False)
        return sampled, mean, gauss.predict(gp, obs[:1], act[:1])

    sampled, mean, pred = outputs()
    # a random elite per sample: the variance is the elites' mean variance plus the spread of their means
    elite_means, elite_vars = pred.mean[gp.elites, 0, :OBS], jnp.exp(pred.logvar[gp.elites, 0, :OBS])
    np.testing.assert_allclose(sampled.var(0), elite_vars.mean(0) + elite_means.var(0), rtol=0.15)
    assert set(np.round(np.asarray(mean[:, 0]), 5)) == set(np.round(np.asarray(elite_means[:, 0]), 5))


def test_tabular_model_supports_full_and_norm_only() -> None:
    m = TabularModel(2, 2, capacity="norm:3")
    params = init(m, 0)
    norm = optax.tree.norm((params.logits / m.config.temperature, params.reward))
    assert float(norm) == pytest.approx(3.0, rel=1e-5)
    for spec in ("width:4", "linear", "obs:1", "rank:1", "depth:2"):
        with pytest.raises(ValueError, match="full, norm:B"):
            TabularModel(2, 2, capacity=spec)
    full = init(TabularModel(2, 2), 0)
    assert float(optax.tree.norm((full.logits / 0.01, full.reward))) > 3.0
