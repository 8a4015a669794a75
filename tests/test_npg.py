"""The shared NPG learner: Fisher-vector products, CG, the KL budget of a step, GAE and the baseline."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from mbrl_bench.baselines.common.npg import (
    NPGPolicy,
    TimeBaseline,
    conjugate_gradient,
    discounted_returns,
    fisher_vector_product,
    gae_paths,
    masked_mean,
    npg_step,
)


def _tiny(continuous: bool) -> tuple[NPGPolicy, object, jax.Array, jax.Array]:
    policy = NPGPolicy(obs_dim=3, action_dim=2, continuous=continuous, hidden_sizes=(4,), init_log_std=-0.3)
    params = policy.init(jax.random.PRNGKey(0))
    # Scale the output layer up from mjrl's 0.01 so the logits/means depend visibly on the obs.
    params = jax.tree.map(lambda x: x * 30.0 if x.ndim == 2 and x.shape[-1] == 2 else x, params)
    obs = jax.random.normal(jax.random.PRNGKey(1), (6, 3))
    mask = jnp.array([True, True, False, True, True, True])
    return policy, params, obs, mask


@pytest.mark.parametrize("continuous", [True, False])
def test_fisher_vector_product_equals_explicit_fisher(continuous: bool) -> None:
    policy, params, obs, mask = _tiny(continuous)
    flat, unravel = ravel_pytree(params)
    old = jax.lax.stop_gradient(policy.dist(params, obs))

    def mean_kl(p: jax.Array) -> jax.Array:  # KL(old || new): its Hessian at new = old is the Fisher
        return masked_mean(policy.kl(old, policy.dist(unravel(p), obs)), mask)

    fisher = jax.jit(jax.hessian(mean_kl))(flat)
    assert (
        np.linalg.matrix_rank(np.asarray(fisher), tol=1e-6) >= 4
    )  # non-trivial: rank 5 (categorical), 12 (Gaussian)
    for seed in range(3):
        v = jax.random.normal(jax.random.PRNGKey(10 + seed), flat.shape)
        got = jax.jit(fisher_vector_product, static_argnums=0)(policy, params, obs, mask, v, 1e-3)
        np.testing.assert_allclose(got, fisher @ v + 1e-3 * v, rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("continuous", [True, False])
def test_fisher_is_the_expected_outer_product_of_scores(continuous: bool) -> None:
    """A second, independent definition: E_{a ~ pi}[grad log pi grad log pi^T], by exact enumeration
    (discrete) or many samples (Gaussian), on one observation."""
    policy, params, obs, _ = _tiny(continuous)
    flat, unravel = ravel_pytree(params)
    one = obs[:1]
    score = jax.grad(lambda p, a: policy.log_prob(unravel(p), one, a[None])[0])
    if continuous:
        actions = jax.vmap(lambda k: policy.sample(params, one, k)[0])(
            jax.random.split(jax.random.PRNGKey(3), 40000)
        )
        grads = jax.vmap(score, in_axes=(None, 0))(flat, actions)
        explicit = grads.T @ grads / grads.shape[0]
        tol = dict(rtol=0.05, atol=5e-3 * float(jnp.abs(explicit).max()))
    else:
        probs = jax.nn.softmax(policy.dist(params, one)[0][0])
        grads = jax.vmap(score, in_axes=(None, 0))(flat, jnp.arange(2))
        explicit = (grads * probs[:, None]).T @ grads
        tol = dict(rtol=1e-4, atol=1e-6)
    v = jax.random.normal(jax.random.PRNGKey(4), flat.shape)
    got = fisher_vector_product(policy, params, one, jnp.ones(1, bool), v, damping=0.0)
    np.testing.assert_allclose(got, explicit @ v, **tol)


def test_conjugate_gradient_solves_a_known_spd_system() -> None:
    rng = np.random.default_rng(0)
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    a = jnp.asarray(q @ np.diag(np.linspace(0.5, 20.0, 8)) @ q.T, jnp.float32)
    x_true = jnp.asarray(rng.normal(size=8), jnp.float32)
    b = a @ x_true
    x = conjugate_gradient(lambda v: a @ v, b, iters=25)
    np.testing.assert_allclose(x, x_true, rtol=1e-4, atol=1e-4)
    # The iteration cap binds: two iterations leave a residual far above the converged one.
    x2 = conjugate_gradient(lambda v: a @ v, b, iters=2)
    assert jnp.linalg.norm(a @ x2 - b) > 100 * jnp.linalg.norm(a @ x - b)


@pytest.mark.parametrize("continuous", [True, False])
def test_npg_step_meets_its_kl_budget_to_first_order(continuous: bool) -> None:
    # A linear policy on 60 samples: a well-conditioned Fisher, so damping 1e-3 and CG's 25 iterations
    # (the official settings) solve F x = g to float32 precision and only the step's size is tested.
    policy = NPGPolicy(obs_dim=3, action_dim=2, continuous=continuous, hidden_sizes=(), init_log_std=-0.3)
    params = policy.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (64, 3))
    mask = jnp.arange(64) < 60
    keys = jax.random.split(jax.random.PRNGKey(5), 64)
    actions = jax.vmap(policy.sample, in_axes=(None, 0, 0))(params, obs, keys)
    advantages = jax.random.normal(jax.random.PRNGKey(6), (64,))
    errors = []
    for delta in (1e-2, 1e-4):
        _, info = npg_step(policy, params, obs, actions, advantages, mask, step_size=delta)
        # delta is "twice the desired KL" (mjrl): 0.5 alpha^2 x.F.x = delta / 2 to first order.
        errors.append(abs(float(info.kl) / (delta / 2) - 1.0))
        assert float(info.surrogate_gain) > 0.0
    assert errors[0] < 0.08 and errors[1] < 0.01  # the budget holds, better as the step shrinks
    assert errors[1] < errors[0]


def test_log_std_is_clamped_to_its_floor() -> None:
    policy = NPGPolicy(obs_dim=3, action_dim=2, continuous=True, init_log_std=-5.0, min_log_std=-2.5)
    params = policy.init(jax.random.PRNGKey(0))
    np.testing.assert_array_equal(params["params"]["log_std"], [-2.5, -2.5])


def test_gae_matches_a_hand_computed_terminal_and_truncated_path() -> None:
    gamma, lam = 0.9, 0.5
    rewards = jnp.array([[1.0, 2.0, 3.0, 0.0], [1.0, 1.0, 1.0, 1.0]])
    values = jnp.array([[0.5, 1.0, 1.5, 9.0], [2.0, 2.0, 2.0, 2.0]])
    valid = jnp.array([[True, True, True, False], [True, True, True, True]])
    # Path 0 terminated after 3 steps (value 0 after it; the padded 4th entry is ignored);
    # path 1 was truncated at 4 steps and bootstraps from the baseline's value 4.0.
    bootstrap = jnp.array([0.0, 4.0])
    adv = gae_paths(rewards, values, bootstrap, valid, gamma, lam)
    # Path 0: deltas 1 + .9*1 - .5 = 1.4, 2 + .9*1.5 - 1 = 2.35, 3 + 0 - 1.5 = 1.5; (gamma lam) = 0.45.
    a2 = 1.5
    a1 = 2.35 + 0.45 * a2
    a0 = 1.4 + 0.45 * a1
    # Path 1: deltas 1 + 1.8 - 2 = 0.8 three times, then 1 + .9*4 - 2 = 2.6.
    b3 = 2.6
    b2 = 0.8 + 0.45 * b3
    b1 = 0.8 + 0.45 * b2
    b0 = 0.8 + 0.45 * b1
    np.testing.assert_allclose(adv, [[a0, a1, a2, 0.0], [b0, b1, b2, b3]], rtol=1e-6)
    ret = discounted_returns(rewards, valid, gamma)
    np.testing.assert_allclose(ret[0], [1 + 0.9 * 2 + 0.81 * 3, 2 + 0.9 * 3, 3, 0], rtol=1e-6)


def test_time_baseline_fit_reduces_its_error() -> None:
    baseline = TimeBaseline(obs_dim=2, epochs=20)
    params, opt = baseline.init(jax.random.PRNGKey(0))
    obs = jax.random.normal(jax.random.PRNGKey(1), (600, 2))
    t = jnp.arange(600) % 100
    feats = baseline.features(obs, t)
    targets = 3.0 * obs[:, 0] + t / 50.0
    mask = jnp.arange(600) < 550
    before = jnp.sum(jnp.where(mask, targets - baseline.net.apply(params, feats), 0.0) ** 2) / jnp.sum(
        jnp.where(mask, targets, 0.0) ** 2
    )
    params, opt, after = jax.jit(baseline.fit)(params, opt, feats, targets, mask, jax.random.PRNGKey(2))
    assert float(after) < 0.2 * float(before)
