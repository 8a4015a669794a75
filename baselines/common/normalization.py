"""Running mean and variance of observations, merged batch by batch (Chan et al.'s parallel update).

Agents keep a ``RunningStats`` in their state and normalise inputs with it; merging a whole batch at once
(instead of one sample per step) lets an agent freeze the statistics while it collects a rollout.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class RunningStats(NamedTuple):
    """Mean, variance and (float) count of everything merged so far."""

    mean: jax.Array
    var: jax.Array
    count: jax.Array


def stats_init(dim: int) -> RunningStats:
    """Mean 0, variance 1 and a tiny count (as Gymnasium's and SB3's running normalisers start)."""
    return RunningStats(jnp.zeros(dim), jnp.ones(dim), jnp.asarray(1e-4))


def stats_merge(stats: RunningStats, batch: jax.Array) -> RunningStats:
    """Stats of everything so far plus ``batch`` (rows are samples), exact for any batch size."""
    batch_mean = batch.mean(axis=0)
    batch_var = batch.var(axis=0)
    n = batch.shape[0]
    total = stats.count + n
    delta = batch_mean - stats.mean
    mean = stats.mean + delta * n / total
    m2 = stats.var * stats.count + batch_var * n + delta**2 * stats.count * n / total
    return RunningStats(mean, m2 / total, total)


def normalize(stats: RunningStats, x: jax.Array, clip: float = 10.0, eps: float = 1e-8) -> jax.Array:
    """(x - mean) / sqrt(var + eps), clipped to [-clip, clip] (the clip of SB3's VecNormalize, 10)."""
    return jnp.clip((x - stats.mean) / jnp.sqrt(stats.var + eps), -clip, clip)
