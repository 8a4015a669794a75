"""Log-probabilities, entropies and the categorical (C51) projection, as small pure functions.

Written out rather than taken from a distributions library so that every agent shares one tested
definition that broadcasts over leading batch axes and jits inside ``lax.scan``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_LOG_2PI = math.log(2.0 * math.pi)


def categorical_log_prob(logits: jax.Array, action: jax.Array) -> jax.Array:
    """log pi(action) of a categorical over the last axis of ``logits``; ``action`` holds integer indices."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return jnp.take_along_axis(log_p, action[..., None].astype(jnp.int32), axis=-1)[..., 0]


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """Entropy of a categorical over the last axis of ``logits``, in nats."""
    log_p = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(log_p) * log_p, axis=-1)


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, x: jax.Array) -> jax.Array:
    """log N(x; mean, diag(exp(log_std))^2), summed over the last (action) axis."""
    z = (x - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * z**2 - log_std - 0.5 * _LOG_2PI, axis=-1)


def gaussian_entropy(log_std: jax.Array) -> jax.Array:
    """Entropy of a diagonal Gaussian, summed over the last (action) axis."""
    return jnp.sum(log_std + 0.5 * (_LOG_2PI + 1.0), axis=-1)


def categorical_projection(support: jax.Array, target_values: jax.Array, probs: jax.Array) -> jax.Array:
    """Project a distribution with atoms at ``target_values`` onto the fixed ``support`` (C51).

    Bellemare et al. (2017), Algorithm 1: each target atom, clipped to the support's range, splits its
    mass between the two nearest support atoms in proportion to closeness. Written as the equivalent
    dense form sum_j clip(1 - |clip(Tz_j) - z_i| / dz, 0, 1) p_j, which needs no scatter and vectorises
    over batch axes. ``support`` is (K,) and evenly spaced; ``target_values`` and ``probs`` are (..., K).
    """
    v_min, v_max = support[0], support[-1]
    delta = (v_max - v_min) / (support.shape[0] - 1)
    tz = jnp.clip(target_values, v_min, v_max)
    weights = jnp.clip(1.0 - jnp.abs(tz[..., None, :] - support[:, None]) / delta, 0.0, 1.0)
    return jnp.sum(weights * probs[..., None, :], axis=-1)
