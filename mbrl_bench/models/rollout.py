"""The model as an environment: pure-JAX k-step rollouts from a batch of start states.

This is MBPO's branched rollout (Janner et al. 2019): start from real states, act with the agent's
policy, step the model, and keep each branch until it terminates. Reward and termination come from
the model or from the task's true functions, as the algorithm asks.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import jax
import jax.numpy as jnp

from mbrl_bench.models.metrics import StepModel
from mbrl_bench.tasks import Task, TransitionFn

PolicyFn = Callable[[jax.Array, jax.Array], jax.Array]
"""policy(obs [N, ...], key) -> actions [N, ...]: a closure over the agent's current policy params."""


class Rollout(NamedTuple):
    """Model transitions, time-major: [horizon, N, ...]."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    valid: jax.Array
    """True for transitions taken before the branch terminated (the ones to keep); [horizon, N]."""


@dataclass(frozen=True)
class ModelEnv:
    """Steps a learned model, with reward and termination from the model or the true task.

    ``reward_fn`` None uses the model's predicted reward; a function r(obs, action, next_obs) (the task's
    true one) is evaluated on the model's predicted next obs instead. The neural and tabular models
    predict no termination, so ``termination_fn`` None means branches never terminate (a continuing
    model), and a function (the task's true one) ends a branch on the predicted next obs.
    """

    model: StepModel
    reward_fn: TransitionFn | None = None
    termination_fn: TransitionFn | None = None

    @classmethod
    def from_task(
        cls, model: StepModel, task: Task, true_reward: bool = False, true_termination: bool = True
    ) -> ModelEnv:
        """MBPO's defaults: the model's reward, the task's true termination."""
        return cls(
            model,
            task.reward_fn if true_reward else None,
            task.termination_fn if true_termination else None,
        )

    def step(
        self, params: object, obs: jax.Array, action: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(next_obs, reward, terminated) of one model step for a batch."""
        next_obs, reward = self.model.step(params, obs, action, key)
        if self.reward_fn is not None:
            reward = self.reward_fn(obs, action, next_obs).astype(reward.dtype)
        if self.termination_fn is None:
            terminated = jnp.zeros(reward.shape, bool)
        else:
            terminated = self.termination_fn(obs, action, next_obs).astype(bool)
        return next_obs, reward, terminated

    def rollout(
        self, params: object, start_obs: jax.Array, policy: PolicyFn, key: jax.Array, horizon: int
    ) -> Rollout:
        """``horizon`` (static) model steps from each start state ``start_obs`` [N, ...] under ``lax.scan``.

        A branch that terminates keeps its terminating transition (valid) and is frozen after it: later
        transitions are marked invalid (and not terminated) and restart from its last observation, so
        the arrays stay finite. Only ``valid`` transitions are model data.
        """

        def one_step(carry: tuple[jax.Array, jax.Array], k: jax.Array) -> tuple[tuple, Rollout]:
            obs, alive = carry
            k_act, k_model = jax.random.split(k)
            action = policy(obs, k_act)
            next_obs, reward, terminated = self.step(params, obs, action, k_model)
            still = alive & ~terminated
            frozen = jnp.where(still.reshape(still.shape + (1,) * (obs.ndim - still.ndim)), next_obs, obs)
            return (frozen, still), Rollout(obs, action, reward, next_obs, terminated & alive, alive)

        alive = jnp.ones(start_obs.shape[:1], bool)
        _, out = jax.lax.scan(one_step, (start_obs, alive), jax.random.split(key, horizon))
        return out
