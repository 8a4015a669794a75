"""Pure-JAX twin of the tabular envs (the ``mbrl_bench.envs.functional`` protocol).

The observation is the state index as an int32 vector of length 1 (the Task's ``obs_dim`` = 1), so it
feeds ``Task.reward_fn`` directly; the Gymnasium env returns the same index as a scalar (its space is
``Discrete``). Episodes never terminate and truncate after ``params.horizon`` steps, where ``step``
auto-resets to a fresh s0 ~ mu.
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from mbrl_bench.envs.functional import select_tree
from mbrl_bench.envs.tabular import (
    TABULAR_HORIZON,
    GarnetSpec,
    TabularMDP,
    garnet,
    two_state_polytope,
)


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class TabularParams:
    """The MDP as arrays; every field is a pytree leaf, so params can be vmapped over (e.g. models)."""

    P: jax.Array
    """Transition tensor P[s, a, s'], shape (n_states, n_actions, n_states)."""
    R: jax.Array
    """Reward R[s, a], shape (n_states, n_actions)."""
    mu: jax.Array
    """Initial-state distribution, shape (n_states,)."""
    horizon: jax.Array
    """Steps after which an episode truncates (int32 scalar)."""


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class TabularState:
    """Where an episode is."""

    s: jax.Array
    """Current state index (int32 scalar)."""
    t: jax.Array
    """Steps taken in this episode (int32 scalar)."""


def _obs(s: jax.Array) -> jax.Array:
    return jnp.reshape(s, (1,)).astype(jnp.int32)


@dataclass(frozen=True)
class JaxTabularEnv:
    """Pure-JAX tabular env over explicit ``TabularParams``; see the module docstring."""

    mdp: TabularMDP
    """The MDP ``default_params`` returns."""
    horizon: int = TABULAR_HORIZON
    """Truncation horizon of ``default_params``; the Gymnasium registration's horizon by default."""

    def default_params(self) -> TabularParams:
        """The MDP's arrays in JAX's default float dtype (float64 only under ``jax.enable_x64``)."""
        return TabularParams(
            P=jnp.asarray(self.mdp.P),
            R=jnp.asarray(self.mdp.R),
            mu=jnp.asarray(self.mdp.mu),
            horizon=jnp.asarray(self.horizon, dtype=jnp.int32),
        )

    def reset(self, key: jax.Array, params: TabularParams) -> tuple[jax.Array, TabularState]:
        """Draw s0 ~ mu; the observation is ``[s0]``."""
        s = jax.random.choice(key, params.mu.shape[0], p=params.mu).astype(jnp.int32)
        return _obs(s), TabularState(s=s, t=jnp.zeros((), jnp.int32))

    def step(
        self, key: jax.Array, state: TabularState, action: jax.Array, params: TabularParams
    ) -> tuple[jax.Array, TabularState, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
        """Pay R[s, a], draw s' ~ P[s, a, :], truncate at the horizon and then auto-reset."""
        step_key, reset_key = jax.random.split(key)
        a = jnp.asarray(action, jnp.int32)
        next_s = jax.random.choice(step_key, params.P.shape[0], p=params.P[state.s, a]).astype(jnp.int32)
        reward = params.R[state.s, a]
        t = state.t + 1
        truncated = t >= params.horizon
        reset_obs, reset_state = self.reset(reset_key, params)
        final_obs = _obs(next_s)
        obs, next_state = select_tree(
            truncated, (reset_obs, reset_state), (final_obs, TabularState(s=next_s, t=t))
        )
        terminated = jnp.zeros((), dtype=bool)
        return obs, next_state, reward, terminated, truncated, {"final_obs": final_obs}


def make_jax_tabular(mdp: TabularMDP, horizon: int = TABULAR_HORIZON) -> tuple[JaxTabularEnv, TabularParams]:
    """Twin of ``TabularEnv(mdp)`` under a TimeLimit of ``horizon`` steps, as ``(env, params)``."""
    if isinstance(horizon, bool) or not isinstance(horizon, int | np.integer) or horizon < 1:
        raise ValueError(f"horizon must be an integer >= 1, got {horizon!r}")
    env = JaxTabularEnv(mdp, int(horizon))
    return env, env.default_params()


def make_jax_two_state_polytope(horizon: int = TABULAR_HORIZON) -> tuple[JaxTabularEnv, TabularParams]:
    """Twin of ``mbrl_bench/TwoStatePolytope-v0``."""
    return make_jax_tabular(two_state_polytope(), horizon)


def make_jax_garnet(
    n_states: int = GarnetSpec.n_states,
    n_actions: int = GarnetSpec.n_actions,
    branching: int = GarnetSpec.branching,
    seed: int = GarnetSpec.seed,
    gamma: float = GarnetSpec.gamma,
    horizon: int = TABULAR_HORIZON,
) -> tuple[JaxTabularEnv, TabularParams]:
    """Twin of ``mbrl_bench/Garnet-v0`` with the same kwargs (the same seed gives the same MDP)."""
    return make_jax_tabular(garnet(n_states, n_actions, branching, seed, gamma), horizon)
