"""Flax (linen) networks shared by the agents: an MLP, factorised noisy layers and a dueling head.

Agents keep parameters as plain pytrees in their state and call ``module.apply``; nothing here holds
state of its own, so every forward pass jits and vmaps over seeds.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

Activation = Callable[[jax.Array], jax.Array]
Initializer = Callable[..., jax.Array]

ACTIVATIONS: dict[str, Activation] = {"relu": nn.relu, "tanh": nn.tanh, "swish": nn.swish, "elu": nn.elu}
"""Activations selectable by name from agent configs (configs hold strings, not functions)."""


def activation(name: str) -> Activation:
    """The activation called ``name``; ValueError lists the valid names."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid activations: {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]


class MLP(nn.Module):
    """Dense layers with an activation between them; the last layer is linear.

    Orthogonal initialisation with gain sqrt(2) for hidden layers is the PPO implementation detail of
    Engstrom et al. (2020) and CleanRL; the output layer gets its own gain (0.01 for policy logits, 1 for
    values) so that the initial policy is near uniform and the value head starts on the reward's scale.
    """

    hidden_sizes: Sequence[int]
    """Widths of the hidden layers."""
    out_dim: int
    """Width of the linear output layer."""
    activation: Activation = nn.relu
    hidden_gain: float = math.sqrt(2.0)
    """Orthogonal-init gain of the hidden layers."""
    out_gain: float = 1.0
    """Orthogonal-init gain of the output layer."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        for width in self.hidden_sizes:
            x = nn.Dense(width, kernel_init=nn.initializers.orthogonal(self.hidden_gain))(x)
            x = self.activation(x)
        return nn.Dense(self.out_dim, kernel_init=nn.initializers.orthogonal(self.out_gain))(x)


def _scaled_noise(key: jax.Array, n: int) -> jax.Array:
    """f(eps) = sign(eps) sqrt(|eps|) of standard normal eps (Fortunato et al. 2018, eq. 10)."""
    eps = jax.random.normal(key, (n,))
    return jnp.sign(eps) * jnp.sqrt(jnp.abs(eps))


class NoisyDense(nn.Module):
    """A dense layer with factorised Gaussian parameter noise (NoisyNet, Fortunato et al. 2018).

    y = (mu_w + sigma_w * f(eps_in) f(eps_out)^T) x + mu_b + sigma_b * f(eps_out). The noise comes from
    the ``"noise"`` RNG stream (``apply(..., rngs={"noise": key})``), fresh on every call; with
    ``deterministic=True`` the layer uses the mean weights, which is how agents act greedily to evaluate.
    Initialisation follows the paper's factorised case: mu ~ U(-1/sqrt(p), 1/sqrt(p)), sigma = sigma0/sqrt(p)
    for p inputs.
    """

    features: int
    sigma0: float = 0.5
    """Initial noise scale; 0.5 in Fortunato et al. (2018), 0.1 in data-efficient Rainbow."""

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = False) -> jax.Array:
        p = x.shape[-1]
        bound = 1.0 / math.sqrt(p)
        uniform = lambda key, shape: jax.random.uniform(key, shape, minval=-bound, maxval=bound)
        sigma_init = nn.initializers.constant(self.sigma0 / math.sqrt(p))
        mu_w = self.param("mu_w", uniform, (p, self.features))
        mu_b = self.param("mu_b", uniform, (self.features,))
        sigma_w = self.param("sigma_w", sigma_init, (p, self.features))
        sigma_b = self.param("sigma_b", sigma_init, (self.features,))
        if deterministic:
            return x @ mu_w + mu_b
        eps = _scaled_noise(self.make_rng("noise"), p + self.features)  # one RNG call per layer
        eps_in, eps_out = eps[:p], eps[p:]
        # Forming the (p, features) noisy weights once costs less than a second matmul over the batch.
        w = mu_w + sigma_w * (eps_in[:, None] * eps_out[None, :])
        return x @ w + (mu_b + sigma_b * eps_out)


class DuelingHead(nn.Module):
    """Dueling streams (Wang et al. 2016) giving per-action outputs of ``num_atoms`` each.

    Output[a] = V + A[a] - mean_a A[a], of shape ``(num_actions, num_atoms)``: logits of a categorical
    return distribution for C51 (num_atoms > 1), or Q-values with ``num_atoms=1``. Each stream is one
    hidden layer and an output layer, noisy when ``noisy`` (Rainbow puts noise in the fully connected
    layers of both streams).
    """

    num_actions: int
    num_atoms: int = 1
    hidden: int = 256
    """Width of each stream's hidden layer."""
    noisy: bool = True
    sigma0: float = 0.5

    def _layer(self, features: int, name: str) -> nn.Module:
        if self.noisy:
            return NoisyDense(features, sigma0=self.sigma0, name=name)
        return nn.Dense(features, name=name)

    def _apply(self, layer: nn.Module, x: jax.Array, deterministic: bool) -> jax.Array:
        return layer(x, deterministic) if self.noisy else layer(x)

    @nn.compact
    def __call__(self, x: jax.Array, deterministic: bool = False) -> jax.Array:
        v = nn.relu(self._apply(self._layer(self.hidden, "value_hidden"), x, deterministic))
        v = self._apply(self._layer(self.num_atoms, "value_out"), v, deterministic)
        a = nn.relu(self._apply(self._layer(self.hidden, "advantage_hidden"), x, deterministic))
        a = self._apply(self._layer(self.num_actions * self.num_atoms, "advantage_out"), a, deterministic)
        a = a.reshape((*a.shape[:-1], self.num_actions, self.num_atoms))
        v = v[..., None, :]
        return v + a - a.mean(axis=-2, keepdims=True)
