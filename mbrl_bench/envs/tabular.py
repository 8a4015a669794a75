"""Tabular MDPs with exact dynamics: OMD's two-state polytope MDP and seeded Garnets.

A ``TabularMDP`` holds the whole model (transition tensor ``P[s, a, s']``, reward ``R[s, a]``,
discount and initial distribution), so exact dynamic programming (``mbrl_bench.envs.dp``) gives the
ground truth a learned tabular model is judged against. ``TabularEnv`` samples the same MDP as a
Gymnasium env (observation = state index) and ``mbrl_bench.envs.jax_tabular`` is its pure-JAX twin.

Both registered tasks are discounted continuing tasks: the env never terminates and the registration's
TimeLimit truncates after ``TABULAR_HORIZON`` steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import jax.numpy as jnp
import numpy as np

from mbrl_bench.envs.registration import NAMESPACE, EnvEntry
from mbrl_bench.tasks import Task

TABULAR_HORIZON = 200
"""Truncation horizon of the registered tabular envs. The discounted weight of everything after step 200
is gamma^200 / (1 - gamma): 7e-9 at OMD's gamma = 0.9 and 7e-4 at the Garnet default gamma = 0.95, so an
episode's discounted return estimates the infinite-horizon value V(s0) with negligible bias. For gamma
closer to 1 pass a larger ``max_episode_steps`` to ``gymnasium.make``."""

PROB_ATOL = 1e-6
"""Tolerance on the sums of probability vectors (rows of P, mu): loose enough for float32 inputs."""


def _readonly(x: Any, name: str) -> np.ndarray:
    arr = np.array(x, dtype=np.float64)
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr!r}")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class TabularMDP:
    """A finite discounted MDP, stored as read-only float64 NumPy arrays.

    Index order is ``P[s, a, s']`` (state, action, next state) and ``R[s, a]``. ``eq=False``: two MDPs
    compare by identity, since elementwise array equality has no single truth value.
    """

    P: np.ndarray
    """Transition tensor, shape (n_states, n_actions, n_states); each P[s, a, :] is a distribution."""
    R: np.ndarray
    """Expected reward of taking action a in state s, shape (n_states, n_actions)."""
    gamma: float
    """Discount factor in [0, 1): the tasks are continuing, so gamma < 1 keeps values finite."""
    mu: np.ndarray
    """Initial-state distribution, shape (n_states,)."""

    def __post_init__(self) -> None:
        P, R, mu = _readonly(self.P, "P"), _readonly(self.R, "R"), _readonly(self.mu, "mu")
        if P.ndim != 3 or P.shape[0] != P.shape[2] or P.shape[0] < 1 or P.shape[1] < 1:
            raise ValueError(
                f"P must have shape (n_states, n_actions, n_states) with sizes >= 1, got {P.shape}"
            )
        n_states, n_actions = P.shape[:2]
        if R.shape != (n_states, n_actions):
            raise ValueError(
                f"R must have shape (n_states, n_actions) = {(n_states, n_actions)}, got {R.shape}"
            )
        if mu.shape != (n_states,):
            raise ValueError(f"mu must have shape (n_states,) = {(n_states,)}, got {mu.shape}")
        if np.any(P < 0) or not np.allclose(P.sum(-1), 1.0, rtol=0.0, atol=PROB_ATOL):
            bad = np.argwhere(np.any(P < 0, axis=-1) | ~np.isclose(P.sum(-1), 1.0, rtol=0.0, atol=PROB_ATOL))
            s, a = bad[0]
            raise ValueError(
                f"P[{s}, {a}, :] = {P[s, a]} is not a distribution (entries must be >= 0 and sum to 1)"
            )
        if np.any(mu < 0) or not np.isclose(mu.sum(), 1.0, rtol=0.0, atol=PROB_ATOL):
            raise ValueError(f"mu = {mu} is not a distribution (entries must be >= 0 and sum to 1)")
        gamma = self.gamma
        if isinstance(gamma, bool) or not isinstance(gamma, int | float | np.number) or not 0 <= gamma < 1:
            raise ValueError(f"gamma must be a number in [0, 1), got {gamma!r}")
        object.__setattr__(self, "P", P)
        object.__setattr__(self, "R", R)
        object.__setattr__(self, "mu", mu)
        object.__setattr__(self, "gamma", float(gamma))

    @property
    def n_states(self) -> int:
        return self.P.shape[0]

    @property
    def n_actions(self) -> int:
        return self.P.shape[1]


def two_state_polytope() -> TabularMDP:
    """The 2-state, 2-action MDP of OMD's tabular study (Dadashi et al. 2019, "The Value Function
    Polytope in RL", App. A(d)), with OMD's gamma = 0.9 and uniform start.

    OMD's official notebook stores the transition tensor action-first, T[a][s][s']; here it is
    transposed to ``P[s, a, s']``: P(.|s0,a0) = [.7, .3], P(.|s0,a1) = [.99, .01],
    P(.|s1,a0) = [.2, .8], P(.|s1,a1) = [.99, .01]. Optimal value under the uniform start: 1.0272727
    (read as [s, a, s'] by mistake, the tensor gives 1.70 instead).
    """
    t_action_first = np.array([[[0.7, 0.3], [0.2, 0.8]], [[0.99, 0.01], [0.99, 0.01]]])
    return TabularMDP(
        P=t_action_first.transpose(1, 0, 2),
        R=np.array([[-0.45, -0.1], [0.5, 0.5]]),
        gamma=0.9,
        mu=np.full(2, 0.5),
    )


def _check_int(name: str, value: Any, low: int, high: int | None = None) -> int:
    in_range = isinstance(value, int | np.integer) and not isinstance(value, bool)
    in_range = in_range and value >= low and (high is None or value <= high)
    if not in_range:
        valid = f"{low} <= {name}" + (f" <= {high}" if high is not None else "")
        raise ValueError(f"{name} must be an integer with {valid}, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class GarnetSpec:
    """Validated Garnet parameters G(n_states, n_actions, branching), plus seed and discount.

    Defaults are the "small" Garnet G(30, 2, 2) with gamma = 0.95 of Geist & Scherrer (2014),
    "Off-policy learning with eligibility traces: a survey", JMLR 15, Sec. 6.
    """

    n_states: int = 30
    """Number of states; 30 as in Geist & Scherrer (2014)'s small Garnet."""
    n_actions: int = 2
    """Number of actions; 2 as in Geist & Scherrer (2014)'s small Garnet."""
    branching: int = 2
    """Successor states per (s, a), in [1, n_states]; 2 as in Geist & Scherrer (2014)'s small Garnet."""
    seed: int = 0
    """Seed of the generator (NumPy PCG64): the same seed gives the same MDP (mbrl-bench choice)."""
    gamma: float = 0.95
    """Discount factor in [0, 1); 0.95 as in Geist & Scherrer (2014)."""

    def __post_init__(self) -> None:
        n_states = _check_int("n_states", self.n_states, 1)
        object.__setattr__(self, "n_states", n_states)
        object.__setattr__(self, "n_actions", _check_int("n_actions", self.n_actions, 1))
        object.__setattr__(self, "branching", _check_int("branching", self.branching, 1, n_states))
        object.__setattr__(self, "seed", _check_int("seed", self.seed, 0))
        gamma = self.gamma
        if isinstance(gamma, bool) or not isinstance(gamma, int | float | np.number) or not 0 <= gamma < 1:
            raise ValueError(f"gamma must be a number in [0, 1), got {gamma!r}")
        object.__setattr__(self, "gamma", float(gamma))


def garnet(
    n_states: int = GarnetSpec.n_states,
    n_actions: int = GarnetSpec.n_actions,
    branching: int = GarnetSpec.branching,
    seed: int = GarnetSpec.seed,
    gamma: float = GarnetSpec.gamma,
) -> TabularMDP:
    """A seeded random Garnet MDP (Archibald, McKinnon & Thomas 1995, "On the generation of Markov
    decision processes", J. Oper. Res. Soc. 46), as defined by Geist & Scherrer (2014), Sec. 6.

    For each (s, a), ``branching`` distinct successors are drawn uniformly without replacement and their
    probabilities are the gaps between ``branching - 1`` sorted uniform cut points of [0, 1] (i.e. a
    uniform draw from the simplex). The reward is state-dependent: r(s) ~ U[0, 1] for each state, so
    R[s, a] = r(s) for every action. The initial distribution is uniform.

    Raises:
        ValueError: a size is not an integer, is < 1, ``branching`` > ``n_states``, ``seed`` < 0, or
            ``gamma`` is outside [0, 1); the message names the value and the valid range.
    """
    spec = GarnetSpec(n_states, n_actions, branching, seed, gamma)
    n, m, b = spec.n_states, spec.n_actions, spec.branching
    rng = np.random.default_rng(spec.seed)
    # argsort of uniform keys per (s, a) = a uniform random permutation; its first b entries are a
    # uniform b-subset of the states.
    successors = np.argsort(rng.random((n, m, n)), axis=-1)[..., :b]
    cuts = np.sort(rng.random((n, m, b - 1)), axis=-1)
    edges = np.concatenate([np.zeros((n, m, 1)), cuts, np.ones((n, m, 1))], axis=-1)
    P = np.zeros((n, m, n))
    np.put_along_axis(P, successors, np.diff(edges, axis=-1), axis=-1)
    reward = rng.random(n)
    return TabularMDP(P=P, R=np.repeat(reward[:, None], m, axis=1), gamma=spec.gamma, mu=np.full(n, 1.0 / n))


class TabularEnv(gym.Env[np.int64, np.int64]):
    """A ``TabularMDP`` as a Gymnasium env: observation and action are indices.

    reset draws s0 ~ mu; step pays R[s, a] and draws s' ~ P[s, a, :], both with ``self.np_random``. The
    task is continuing: ``terminated`` is always False and only a TimeLimit (the registration's
    ``TABULAR_HORIZON``) truncates. ``env.unwrapped.mdp`` is the exact model.
    """

    def __init__(self, mdp: TabularMDP, render_mode: str | None = None) -> None:
        if render_mode is not None:
            raise ValueError(f"render_mode {render_mode!r} is not supported; valid choices: None")
        self.mdp = mdp
        self.observation_space = gym.spaces.Discrete(mdp.n_states)
        self.action_space = gym.spaces.Discrete(mdp.n_actions)
        # Inverse-CDF sampling: one uniform draw and a binary search per step, far cheaper than
        # Generator.choice(p=...), which re-validates p on every call.
        self._cdf = np.cumsum(mdp.P, axis=-1)
        self._mu_cdf = np.cumsum(mdp.mu)
        self._state = 0

    def _sample(self, cdf: np.ndarray) -> np.int64:
        index = np.searchsorted(cdf, self.np_random.random(), side="right")
        return np.int64(min(index, len(cdf) - 1))  # guards a cdf whose rounding ends below 1

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.int64, dict[str, Any]]:
        super().reset(seed=seed)
        self._state = self._sample(self._mu_cdf)
        return self._state, {}

    def step(self, action: Any) -> tuple[np.int64, float, bool, bool, dict[str, Any]]:
        if not self.action_space.contains(action):
            raise ValueError(f"action {action!r} is invalid; valid actions: 0..{self.mdp.n_actions - 1}")
        s, a = int(self._state), int(action)
        reward = float(self.mdp.R[s, a])
        self._state = self._sample(self._cdf[s, a])
        return self._state, reward, False, False, {}


class TwoStatePolytopeEnv(TabularEnv):
    """``TabularEnv`` of ``two_state_polytope()``."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(two_state_polytope(), render_mode=render_mode)


class GarnetEnv(TabularEnv):
    """``TabularEnv`` of ``garnet(n_states, n_actions, branching, seed, gamma)``."""

    def __init__(
        self,
        n_states: int = GarnetSpec.n_states,
        n_actions: int = GarnetSpec.n_actions,
        branching: int = GarnetSpec.branching,
        seed: int = GarnetSpec.seed,
        gamma: float = GarnetSpec.gamma,
        render_mode: str | None = None,
    ) -> None:
        super().__init__(garnet(n_states, n_actions, branching, seed, gamma), render_mode=render_mode)


def tabular_task(env_id: str, mdp: TabularMDP, horizon: int = TABULAR_HORIZON) -> Task:
    """The ``Task`` of a tabular env: observation = the state index as a length-1 vector.

    ``reward_fn(obs, action, next_obs) = R[obs[..., 0], action]``: ``obs`` has shape (..., 1), ``action``
    shape (...); both may be integer or integral float arrays (replay buffers often store floats) and
    broadcast over leading dims. ``termination_fn`` is always False (continuing task).
    """
    reward_table = mdp.R

    def reward_fn(obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        s = jnp.asarray(obs)[..., 0].astype(jnp.int32)
        return jnp.asarray(reward_table)[s, jnp.asarray(action).astype(jnp.int32)]

    def termination_fn(obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        return jnp.zeros(jnp.shape(next_obs)[:-1], dtype=bool)

    return Task(
        env_id=env_id,
        obs_dim=1,
        action_kind="discrete",
        action_dim=mdp.n_actions,
        horizon=horizon,
        reward_fn=reward_fn,
        termination_fn=termination_fn,
        signal_dims=(0,),
        layout={"n_states": mdp.n_states, "n_actions": mdp.n_actions, "gamma": mdp.gamma},
    )


def two_state_polytope_task(env_id: str) -> Task:
    return tabular_task(env_id, two_state_polytope())


def garnet_task(
    env_id: str,
    n_states: int = GarnetSpec.n_states,
    n_actions: int = GarnetSpec.n_actions,
    branching: int = GarnetSpec.branching,
    seed: int = GarnetSpec.seed,
    gamma: float = GarnetSpec.gamma,
) -> Task:
    return tabular_task(env_id, garnet(n_states, n_actions, branching, seed, gamma))


_TABULAR = "mbrl_bench.envs.tabular"
_JAX_TABULAR = "mbrl_bench.envs.jax_tabular"

TABULAR_ENTRIES: tuple[EnvEntry, ...] = (
    EnvEntry(
        f"{NAMESPACE}/TwoStatePolytope-v0",
        f"{_TABULAR}:TwoStatePolytopeEnv",
        TABULAR_HORIZON,
        f"{_TABULAR}:two_state_polytope_task",
        "OMD's 2-state, 2-action MDP (gamma 0.9; 200 steps leave gamma^200/(1-gamma) = 7e-9 of the "
        "return): exact DP for model-capacity studies",
        jax_twin=f"{_JAX_TABULAR}:make_jax_two_state_polytope",
        group="tabular",
    ),
    EnvEntry(
        f"{NAMESPACE}/Garnet-v0",
        f"{_TABULAR}:GarnetEnv",
        TABULAR_HORIZON,
        f"{_TABULAR}:garnet_task",
        "Seeded random Garnet MDP G(n_states, n_actions, branching), default G(30, 2, 2), gamma 0.95 "
        "(200 steps leave gamma^200/(1-gamma) = 7e-4 of the return)",
        jax_twin=f"{_JAX_TABULAR}:make_jax_garnet",
        group="tabular",
    ),
)
