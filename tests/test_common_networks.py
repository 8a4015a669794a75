"""Noisy layers, the dueling head and the MLP (baselines/common/networks.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.common.networks import MLP, DuelingHead, NoisyDense, activation

X = jnp.linspace(-1.0, 1.0, 12).reshape(3, 4)


def _init(module, *args):
    # Jitted: eager Flax init dispatches (and compiles) op by op, which dominates these tests' time.
    return jax.jit(module.init)({"params": jax.random.key(0), "noise": jax.random.key(1)}, *args)


def test_noisy_dense_noise_follows_the_key():
    layer = NoisyDense(5, sigma0=0.5)
    params = _init(layer, X)
    apply = jax.jit(lambda k: layer.apply(params, X, rngs={"noise": k}))
    a, b, a_again = apply(jax.random.key(1)), apply(jax.random.key(2)), apply(jax.random.key(1))
    assert not np.allclose(a, b)
    np.testing.assert_array_equal(a, a_again)
    p = params["params"]
    mean = layer.apply(params, X, deterministic=True)
    np.testing.assert_allclose(mean, X @ p["mu_w"] + p["mu_b"], rtol=1e-6)
    # Factorised noise has zero mean: averaging many noisy outputs approaches the mean network.
    many = jax.vmap(apply)(jax.random.split(jax.random.key(3), 4000)).mean(0)
    np.testing.assert_allclose(many, mean, atol=0.05)


def test_noisy_dense_initialisation_follows_fortunato():
    p = _init(NoisyDense(3, sigma0=0.4), jnp.zeros((1, 16)))["params"]
    np.testing.assert_allclose(p["sigma_w"], 0.4 / 4.0)
    assert float(jnp.abs(p["mu_w"]).max()) <= 0.25


@pytest.mark.parametrize("noisy", [True, False])
def test_dueling_head_shapes_and_identity(noisy):
    head = DuelingHead(num_actions=3, num_atoms=7, hidden=16, noisy=noisy, sigma0=0.1)
    params = _init(head, X)
    out = head.apply(params, X, deterministic=True)
    assert out.shape == (3, 3, 7)
    # V + A - mean(A): the mean over actions is the value stream alone.
    p = params["params"]
    dense = (
        (lambda n, x: x @ p[n]["mu_w"] + p[n]["mu_b"])
        if noisy
        else (lambda n, x: x @ p[n]["kernel"] + p[n]["bias"])
    )
    value = dense("value_out", jax.nn.relu(dense("value_hidden", X)))
    np.testing.assert_allclose(out.mean(axis=1), value, rtol=1e-5, atol=1e-6)


def test_mlp_output_gain_and_activation_lookup():
    mlp = MLP((8, 8), 2, activation("tanh"), out_gain=0.01)
    p = _init(mlp, X)["params"]
    assert p["Dense_2"]["kernel"].shape == (8, 2)
    assert float(jnp.abs(p["Dense_2"]["kernel"]).max()) < 0.02
    assert mlp.apply({"params": p}, X).shape == (3, 2)
    with pytest.raises(ValueError, match="valid activations: relu, tanh"):
        activation("sigmoidish")
