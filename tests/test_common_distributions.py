"""Log-probabilities, entropies and the C51 projection (baselines/common/distributions.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.common import distributions as d
from scipy import stats

# Jitted: eager op-by-op dispatch would dominate these tests' time.
categorical_entropy = jax.jit(d.categorical_entropy)
categorical_log_prob = jax.jit(d.categorical_log_prob)
categorical_projection = jax.jit(d.categorical_projection)
gaussian_entropy = jax.jit(d.gaussian_entropy)
gaussian_log_prob = jax.jit(d.gaussian_log_prob)


def test_categorical_log_prob_and_entropy_match_numpy():
    logits = jnp.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]])
    p = np.exp(np.asarray(logits))
    p /= p.sum(-1, keepdims=True)
    np.testing.assert_allclose(
        categorical_log_prob(logits, jnp.array([2, 1])), np.log([p[0, 2], p[1, 1]]), rtol=1e-5
    )
    np.testing.assert_allclose(categorical_entropy(logits), -(p * np.log(p)).sum(-1), rtol=1e-5)


def test_gaussian_log_prob_and_entropy_match_scipy():
    mean, log_std = jnp.array([0.5, -1.0]), jnp.array([0.0, np.log(2.0)])
    x = jnp.array([[1.0, 0.0], [0.5, -3.0]])
    expected = stats.norm(np.asarray(mean), np.exp(np.asarray(log_std))).logpdf(np.asarray(x)).sum(-1)
    np.testing.assert_allclose(gaussian_log_prob(mean, log_std, x), expected, rtol=1e-5)
    np.testing.assert_allclose(
        gaussian_entropy(log_std), stats.norm(0, [1.0, 2.0]).entropy().sum(), rtol=1e-5
    )


SUPPORT = jnp.linspace(0.0, 4.0, 5)


@pytest.mark.parametrize(
    ("target", "probs", "expected"),
    [
        # Atoms on the support stay put.
        (SUPPORT, [0.1, 0.2, 0.3, 0.4, 0.0], [0.1, 0.2, 0.3, 0.4, 0.0]),
        # 2 + 0.25 z = [2, 2.25, 2.5, 2.75, 3] with uniform mass splits between atoms 2 and 3 by closeness:
        # atom 2 gets .2 (1 + .75 + .5 + .25) = .5, atom 3 the rest.
        (2.0 + 0.25 * SUPPORT, [0.2] * 5, [0.0, 0.0, 0.5, 0.5, 0.0]),
        # Everything past the support's ends is clipped onto the end atoms.
        (jnp.array([-3.0, -1.0, 1.5, 6.0, 9.0]), [0.1, 0.2, 0.3, 0.15, 0.25], [0.3, 0.15, 0.15, 0.0, 0.4]),
    ],
)
def test_categorical_projection_hand_computed(target, probs, expected):
    got = categorical_projection(SUPPORT, jnp.asarray(target), jnp.asarray(probs))
    np.testing.assert_allclose(got, expected, atol=1e-6)
    assert float(got.sum()) == pytest.approx(1.0)


def test_categorical_projection_broadcasts_over_batches():
    rng = np.random.default_rng(0)
    targets = jnp.asarray(rng.uniform(-2.0, 6.0, (3, 4, 5)), jnp.float32)
    probs = jax.nn.softmax(jnp.asarray(rng.normal(size=(3, 4, 5)), jnp.float32))
    got = categorical_projection(SUPPORT, targets, probs)
    assert got.shape == (3, 4, 5)
    np.testing.assert_allclose(got.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        got[1, 2], categorical_projection(SUPPORT, targets[1, 2], probs[1, 2]), rtol=1e-6
    )
