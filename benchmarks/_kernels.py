"""Shared by the kernel benchmarks: XLA's FLOP count of a compiled call, the median wall time of a call,
and this machine's matmul rate now (the practical peak the achieved GFLOP/s is read against)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp


def flops(compiled: Any) -> float:
    """XLA's FLOP count of one call (``jax.jit(f).lower(...).compile()``); a loop body counts once."""
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list | tuple) else cost
    return float(cost.get("flops", float("nan")))


def median_s(fn: Callable[[], Any], repeats: int) -> float:
    """Median seconds of ``repeats`` calls of ``fn`` (each waited for), after one warm-up call."""
    jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    """GFLOP/s of an n x n float32 ``jnp.dot`` on this machine now."""
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    dot = jax.jit(jnp.dot).lower(a, a).compile()
    return 2 * n**3 / median_s(lambda: dot(a, a), repeats) / 1e9
