"""Observation spaces as network inputs: flat Box observations as they are, Discrete ones one-hot.

Agents store raw observations (what the harness hands them, e.g. a state index for the tabular tasks)
and encode them only when a network reads them, so replay and rollout buffers stay small.
"""

from __future__ import annotations

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np

SUPPORTED_OBSERVATION_SPACES = "a flat Box or a Discrete"


def _check(space: gym.spaces.Space) -> None:
    if isinstance(space, gym.spaces.Discrete):
        return
    if isinstance(space, gym.spaces.Box) and len(space.shape) == 1:
        return
    raise ValueError(f"unsupported observation space {space}; supported: {SUPPORTED_OBSERVATION_SPACES}")


def raw_observation(space: gym.spaces.Space) -> jax.Array:
    """A zero observation shaped and typed as one is stored: (d,) float32 for a Box, an int32 index."""
    _check(space)
    if isinstance(space, gym.spaces.Discrete):
        return jnp.zeros((), jnp.int32)
    return jnp.zeros(space.shape, jnp.float32)


def feature_dim(space: gym.spaces.Space) -> int:
    """Width of the encoded observation: the Box's length, or the number of discrete states."""
    _check(space)
    return int(space.n) if isinstance(space, gym.spaces.Discrete) else int(np.prod(space.shape))


def encode(space: gym.spaces.Space, obs: jax.Array) -> jax.Array:
    """Network input of raw observations ``obs`` (any leading batch axes): float32, one-hot if Discrete."""
    if isinstance(space, gym.spaces.Discrete):
        return jax.nn.one_hot(obs - int(space.start), int(space.n), dtype=jnp.float32)
    return obs.astype(jnp.float32)


POSITION_KEYS: tuple[str, ...] = ("x_position", "y_position")
"""Task layout keys of the absolute positions our MuJoCo ids observe (so that rewards are functions of
(s, a, s')) and the stock Gymnasium envs, on which the reference agents were tuned, hide."""


def kept_dims(obs_dim: int, layout: dict, hide_position: bool) -> np.ndarray:
    """Indices of the observation dims a learner reads: all of them, or all but the task's absolute
    position dims (``POSITION_KEYS`` in ``Task.layout``) when ``hide_position``."""
    hidden = {layout.get(key) for key in POSITION_KEYS} - {None} if hide_position else set()
    return np.asarray([i for i in range(obs_dim) if i not in hidden], np.int32)
