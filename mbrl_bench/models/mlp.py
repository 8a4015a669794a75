"""The Flax (linen) network behind the dynamics models: an MLP with optional rank-R layers and a
Gaussian head with learned soft bounds on the log-variance.

Linen keeps parameters as plain nested dicts returned by ``init`` and applies them with a pure
``apply``, so an ensemble is ``jax.vmap`` over stacked parameter dicts, seeds are one more vmap, and
OMD can differentiate (or define a custom VJP) through ``apply`` with no split/merge of module state,
which nnx's mutable objects would need at every jit/vmap boundary.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Literal

import flax.linen as nn
import jax
import jax.numpy as jnp

Activation = Literal["swish", "relu", "tanh", "elu"]
KernelInit = Literal["truncated_normal", "orthogonal", "orthogonal_relu"]

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "swish": nn.swish,
    "relu": nn.relu,
    "tanh": jnp.tanh,
    "elu": nn.elu,
}

BOUND_NAMES = ("max_logvar", "min_logvar")
"""Parameters of the Gaussian head's soft log-variance bounds (no weight decay, no norm projection)."""


def mbpo_truncated_normal(key: jax.Array, shape: Sequence[int], dtype: jnp.dtype = jnp.float32) -> jax.Array:
    """MBPO's kernel init: truncated normal (at 2 std) with std 1/(2 sqrt(fan_in)), as in its TF FC layer."""
    std = 1.0 / (2.0 * jnp.sqrt(shape[0]))
    return jax.random.truncated_normal(key, -2.0, 2.0, shape, dtype) * std


def kernel_initializer(name: KernelInit) -> nn.initializers.Initializer:
    """The kernel initialiser named ``name``: MBPO's truncated normal, orthogonal with gain 1, or
    orthogonal with gain sqrt 2 (jaxrl's ``default_init``, which OMD's MuJoCo model uses on every layer)."""
    if name == "truncated_normal":
        return mbpo_truncated_normal
    return nn.initializers.orthogonal(math.sqrt(2.0) if name == "orthogonal_relu" else 1.0)


class MaybeLowRankDense(nn.Module):
    """A Dense layer whose kernel is ``U @ V`` through ``rank`` units when that restricts it.

    With ``rank`` None, or at least min(fan_in, features) (where a factorisation restricts nothing and
    only adds parameters), this is a plain Dense with params ``kernel`` and ``bias``; otherwise its params
    are ``U`` [fan_in, rank], ``V`` [rank, features] and ``bias``. ``V``'s std 1/sqrt(rank) keeps the
    product's scale that of ``U``'s initialiser.
    """

    features: int
    rank: int | None
    kernel_init: KernelInit

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        init = kernel_initializer(self.kernel_init)
        if self.rank is None or self.rank >= min(fan_in, self.features):
            return nn.Dense(self.features, kernel_init=init, name="dense")(x)
        u = self.param("U", init, (fan_in, self.rank))
        v = self.param("V", nn.initializers.lecun_normal(), (self.rank, self.features))
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        return (x @ u) @ v + bias


class DynamicsMLP(nn.Module):
    """Inputs (normalised features) -> (mean, log-variance) of ``out_dim`` targets.

    Deterministic nets return a log-variance of zeros. Gaussian nets bound it softly between learned
    ``min_logvar`` and ``max_logvar`` vectors, as in PETS (Chua et al. 2018) and MBPO:
    ``logvar = max - softplus(max - raw); logvar = min + softplus(logvar - min)``. Each member has its
    own pair of bounds, where MBPO's code shares one pair across the ensemble: that keeps the members
    independent, so an ensemble is exactly its members vmapped and one member can be sliced out.
    """

    hidden_sizes: tuple[int, ...]
    out_dim: int
    activation: Activation
    probabilistic: bool
    kernel_init: KernelInit
    rank: int | None
    max_logvar_init: float
    min_logvar_init: float

    @nn.compact
    def __call__(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
        act = ACTIVATIONS[self.activation]
        for i, width in enumerate(self.hidden_sizes):
            x = act(MaybeLowRankDense(width, self.rank, self.kernel_init, name=f"layer_{i}")(x))
        width = 2 * self.out_dim if self.probabilistic else self.out_dim
        name = f"layer_{len(self.hidden_sizes)}"
        out = MaybeLowRankDense(width, self.rank, self.kernel_init, name=name)(x)
        if not self.probabilistic:
            return out, jnp.zeros_like(out)
        mean, raw_logvar = out[..., : self.out_dim], out[..., self.out_dim :]
        max_logvar = self.param("max_logvar", nn.initializers.constant(self.max_logvar_init), (self.out_dim,))
        min_logvar = self.param("min_logvar", nn.initializers.constant(self.min_logvar_init), (self.out_dim,))
        logvar = max_logvar - nn.softplus(max_logvar - raw_logvar)
        logvar = min_logvar + nn.softplus(logvar - min_logvar)
        return mean, logvar
