"""The reference policies that do not learn: ``random`` (uniform actions) and ``zero`` (no action).

``random`` is the floor of every normalised score (SimPLe's formula subtracts the random agent's
return) and the agent the harness is tested with end to end, so it is kept as cheap as an agent can be:
one uniform draw per action and no state, which makes the harness's own overhead measurable.

``zero`` is a guard on the references: on some MuJoCo tasks doing nothing earns a large return (Ant's
healthy reward), so a baseline that barely beats it makes normalised scores meaningless; calibrating
it beside ``random`` lets the leaderboard flag such envs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from mbrl_bench.baselines.api import Agent, AgentState, EnvInfo, Transition, action_kind, register_agent


@dataclass(frozen=True)
class RandomConfig:
    """The random agent has no hyperparameters."""


@register_agent
class RandomAgent(Agent):
    """Uniform over ``Discrete(n)`` and over a bounded ``Box``; a standard normal on any ``Box`` dim
    that lacks a finite bound (a documented choice: such dims have no uniform law)."""

    name: ClassVar[str] = "random"
    Config: ClassVar[type] = RandomConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete", "continuous"})
    description: ClassVar[str] = "uniform random actions (the floor of normalised scores)"

    def __init__(self, config: Any, env: EnvInfo, capacity: str = "full") -> None:
        super().__init__(config, env, capacity)
        space = env.action_space
        self._discrete = action_kind(space) == "discrete"
        if self._discrete:
            assert isinstance(space, gym.spaces.Discrete)
            self._n, self._start = int(space.n), int(space.start)
        else:
            assert isinstance(space, gym.spaces.Box)
            self._low = np.asarray(space.low, dtype=np.float32)
            self._high = np.asarray(space.high, dtype=np.float32)
            self._bounded = np.isfinite(self._low) & np.isfinite(self._high)

    def init(self, key: jax.Array) -> AgentState:
        return {}

    def act(self, state: AgentState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        if self._discrete:
            index = jnp.floor(jax.random.uniform(key) * self._n).astype(jnp.int32)
            return jnp.minimum(index, self._n - 1) + self._start
        if self._bounded.all():
            return jax.random.uniform(key, self._low.shape, minval=self._low, maxval=self._high)
        uniform_key, normal_key = jax.random.split(key)
        low, high = np.where(self._bounded, self._low, 0.0), np.where(self._bounded, self._high, 1.0)
        uniform = jax.random.uniform(uniform_key, self._low.shape, minval=low, maxval=high)
        return jnp.where(self._bounded, uniform, jax.random.normal(normal_key, self._low.shape))

    def update(
        self, state: AgentState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[AgentState, dict[str, jax.Array]]:
        return state, {}


@dataclass(frozen=True)
class ZeroConfig:
    """The zero agent has no hyperparameters."""


@register_agent
class ZeroAgent(Agent):
    """The zero action on a ``Box``, clipped into its bounds (0 where a dim is unbounded), every step.

    Continuous actions only: a ``Discrete`` space has no action that means "do nothing" in general
    (CartPole's two actions both push the cart; the tabular MDPs' actions are unnamed), so action 0
    there would be an arbitrary constant policy, not a no-op; calibration gives no ``zero`` row.
    """

    name: ClassVar[str] = "zero"
    Config: ClassVar[type] = ZeroConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"continuous"})
    description: ClassVar[str] = "the zero action clipped into the bounds (a reference: doing nothing)"

    def __init__(self, config: Any, env: EnvInfo, capacity: str = "full") -> None:
        super().__init__(config, env, capacity)
        space = env.action_space
        if action_kind(space) not in self.action_kinds:
            raise ValueError(f"zero has no no-op action on {space}; supported action kinds: continuous")
        assert isinstance(space, gym.spaces.Box)
        low = np.where(np.isfinite(space.low), space.low, -np.inf)
        high = np.where(np.isfinite(space.high), space.high, np.inf)
        self._action = np.clip(np.zeros(space.shape), low, high).astype(np.float32)

    def init(self, key: jax.Array) -> AgentState:
        return {}

    def act(self, state: AgentState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        return jnp.asarray(self._action)

    def update(
        self, state: AgentState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[AgentState, dict[str, jax.Array]]:
        return state, {}
