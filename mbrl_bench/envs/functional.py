"""The pure-JAX environment interface shared by the JAX twins (gymnax / Gymnasium FuncEnv style).

A twin is a frozen dataclass of pure functions over explicit state and parameters:

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

``step`` auto-resets: when the episode ends, the returned ``obs`` and ``state`` are the first of a new
episode (chosen with ``lax.select``-style ``jnp.where``, no Python branching), while ``reward``,
``terminated`` and ``truncated`` describe the transition that ended it, and ``info["final_obs"]`` holds
the true last observation. Everything jits, vmaps over keys/states and runs under ``lax.scan``.
"""

from __future__ import annotations

from typing import Any, Protocol

import jax
import jax.numpy as jnp


class JaxEnv(Protocol):
    """What every pure-JAX twin provides."""

    def default_params(self) -> Any: ...

    def reset(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]: ...

    def step(
        self, key: jax.Array, state: Any, action: jax.Array, params: Any
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]: ...


def select_tree(pred: jax.Array, on_true: Any, on_false: Any) -> Any:
    """Leafwise ``where(pred, on_true, on_false)`` over two pytrees of the same structure."""
    return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)
