"""The task registry: true reward and termination functions and observation-layout facts per env id.

Model-based algorithms need the environment's reward and termination as functions of
(obs, action, next_obs). Each registered env id has a ``Task`` factory in the env registry
(``mbrl_bench.envs.registration``); get one with ``mbrl_bench.get_task(env_id, **env_kwargs)``.
The functions are pure JAX, act on the last axis and broadcast over any leading batch dimensions, so
they jit, vmap and run inside model rollouts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import jax.numpy as jnp

TransitionFn = Callable[[jnp.ndarray, jnp.ndarray, jnp.ndarray], jnp.ndarray]


@dataclass(frozen=True)
class Task:
    """What a model-based agent may know about a task besides its transitions."""

    env_id: str
    """The registered id, e.g. ``mbrl_bench/CartPoleDistractor-v0``."""
    obs_dim: int
    """Length of the flat observation vector (1 for tabular tasks, whose observation is a state index)."""
    action_kind: Literal["discrete", "continuous"]
    action_dim: int
    """Number of actions (discrete) or the action vector's length (continuous)."""
    horizon: int
    """Episode length at which the registered env truncates."""
    reward_fn: TransitionFn
    """r(obs, action, next_obs), equal to the env's own reward."""
    termination_fn: TransitionFn
    """terminated(obs, action, next_obs) as a bool array, equal to the env's own termination."""
    signal_dims: tuple[int, ...]
    """Observation dims that carry the task's true state."""
    distractor_dims: tuple[int, ...] = ()
    """Observation dims irrelevant to reward, termination and the signal dims' dynamics."""
    layout: dict[str, Any] = field(default_factory=dict)
    """Further named facts about the observation (e.g. which dims hold positions), per task."""
    true_functions: bool = True
    """False for Gymnasium ids that are not mbrl-bench's (``task_without_functions``): then
    ``reward_fn`` and ``termination_fn`` raise, and an agent must learn or observe them."""


def task_without_functions(
    env_id: str, observation_space: Any, action_space: Any, horizon: int | None
) -> Task:
    """The ``Task`` of a Gymnasium id mbrl-bench has no true task functions for (e.g. CartPole-v1).

    Its reward and termination functions raise a ValueError naming the id when called (an agent calls
    them while it is traced, so the cell fails with that message); ``horizon`` is the registered time
    limit, 0 if none; every observation dim counts as signal.
    """
    import gymnasium as gym
    import numpy as np

    def missing(what: str) -> TransitionFn:
        def fn(obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
            raise ValueError(
                f"{env_id} has no true {what} function in mbrl-bench (only its own ids do, see `mbrl-bench "
                "envs`); use an agent that learns it or reads it from real transitions"
            )

        return fn

    discrete = isinstance(action_space, gym.spaces.Discrete)
    obs_dim = (
        1 if isinstance(observation_space, gym.spaces.Discrete) else int(np.prod(observation_space.shape))
    )
    return Task(
        env_id=env_id,
        obs_dim=obs_dim,
        action_kind="discrete" if discrete else "continuous",
        action_dim=int(action_space.n) if discrete else int(np.prod(action_space.shape)),
        horizon=int(horizon or 0),
        reward_fn=missing("reward"),
        termination_fn=missing("termination"),
        signal_dims=tuple(range(obs_dim)),
        true_functions=False,
    )
