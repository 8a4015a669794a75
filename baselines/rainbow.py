"""Rainbow (Hessel et al. 2018) for discrete actions, in its data-efficient form (van Hasselt et al. 2019).

All six components: double Q-learning (online net picks the bootstrap action, target net scores it),
proportional prioritised replay (sum tree, importance weights annealed to 1), dueling heads, n-step
returns, the C51 distributional loss and factorised noisy nets (no epsilon-greedy). The Atari CNN torso
becomes an MLP for vector observations.

n-step returns are built at sampling time from single transitions stored in order (one env per seed),
as Dopamine does: the window of n stored steps after a sampled slot is cut at the first episode end, a
terminated end stops bootstrapping and a truncated one bootstraps from the true final observation that
the transition carries. A slot becomes sampleable (gets the running maximum priority) only once the n-1
steps after it are written; until then its priority is 0, which also keeps the ring buffer from
stitching old and new data into one window.

The C51 support is sized per env (``return_bounds``): [min(0, r_min), max(0, r_max)] / (1 - gamma),
the range of any discounted return of rewards in [r_min, r_max], infinite-horizon because truncated
episodes bootstrap (the value learned is the discounted return beyond the time limit). The reward
range is exact for envs with a discrete observation space (the true reward function evaluated on every
(s, a, s')) and read from ``REWARD_RANGES`` for the others; an env in neither needs explicit ``v_min``
and ``v_max``. CartPole gives DER's shape scaled to [0, 100]; TwoStatePolytope (R in [-0.45, 0.5])
gives [-45, 50], so its negative returns no longer pile up on the lowest atom.

The replay and the importance-weight annealing span the whole run (``EnvInfo.budget``) as in
data-efficient Rainbow, whose 100K-step runs keep every transition and anneal over the run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax
from mbrl_bench.baselines.api import Agent, EnvInfo, Transition, action_kind, register_agent
from mbrl_bench.baselines.common.distributions import categorical_projection
from mbrl_bench.baselines.common.networks import DuelingHead
from mbrl_bench.baselines.common.replay import (
    Replay,
    SumTree,
    importance_weights,
    replay_add,
    replay_get,
    replay_init,
    sumtree_get,
    sumtree_init,
    sumtree_sample,
    sumtree_set,
    sumtree_total,
)
from mbrl_bench.baselines.common.spaces import encode, feature_dim, raw_observation


@dataclass(frozen=True)
class RainbowConfig:
    """Rainbow hyperparameters. DER = data-efficient Rainbow (van Hasselt et al. 2019, Table 1);
    changes for CartPole-scale vector tasks are marked "tuned" with the reason."""

    learning_rate: float = 1e-4
    """Adam step size: DER 1e-4."""
    adam_eps: float = 1.5e-4
    """Adam epsilon: DER (Rainbow's 1.5e-4)."""
    max_grad_norm: float = 10.0
    """Global gradient-norm clip: DER / Dopamine 10."""
    batch_size: int = 32
    """Transitions per update: DER 32."""
    gamma: float = 0.99
    """Discount: DER 0.99."""
    n_step: int = 20
    """Multi-step return length: DER 20."""
    learning_starts: int = 1600
    """Env steps before the first update: DER 1600."""
    update_period: int = 1
    """Env steps between updates: DER 1."""
    target_update_period: int = 2000
    """Env steps between target-network copies: DER 2000 (one update per step)."""
    replay_capacity: int | None = None
    """Transitions kept; None: the run's budget (``EnvInfo.budget``, 100K when unknown), as DER keeps
    its whole 100K-step run."""
    priority_exponent: float = 0.5
    """omega, priority = loss^omega: DER / Rainbow 0.5."""
    priority_weight_start: float = 0.4
    """Importance-sampling exponent beta at the start: DER / Rainbow 0.4."""
    priority_weight_steps: int | None = None
    """Env steps over which beta rises linearly to 1; None: the run's budget (100K when unknown), as DER
    anneals over its whole run."""
    num_atoms: int = 51
    """C51 support size: DER / Rainbow 51."""
    v_min: float | None = None
    """Lowest return atom; None: per env, min(0, r_min) / (1 - gamma) (module docstring). DER's -10 is
    this rule for Atari's clipped rewards with an effective horizon of 10; CartPole gets 0."""
    v_max: float | None = None
    """Highest return atom; None: per env, max(0, r_max) / (1 - gamma). DER 10; CartPole gets 100, its
    largest discounted return: at 10 the support saturates for every state more than ~10 steps from
    failure and greedy actions stop being distinguishable (seeds stuck at ~9 steps)."""
    noisy_sigma0: float = 0.1
    """Initial noisy-net scale: DER 0.1 (Rainbow 0.5)."""
    torso_sizes: tuple[int, ...] = (128,)
    """Hidden widths of the ReLU MLP torso replacing DER's Atari CNN; tuned from DER's 256 (its head
    width) to 128: enough for a vector observation, and it cuts an update's CPU cost about threefold."""
    head_hidden: int = 128
    """Width of each dueling stream's hidden layer: DER 256; tuned to 128 (as ``torso_sizes``)."""


class RainbowNet(nn.Module):
    """MLP torso, then noisy dueling streams giving C51 logits of shape (num_actions, num_atoms)."""

    torso_sizes: tuple[int, ...]
    num_actions: int
    num_atoms: int
    head_hidden: int
    sigma0: float

    @nn.compact
    def __call__(self, obs: jax.Array, deterministic: bool = False) -> jax.Array:
        x = obs
        for width in self.torso_sizes:
            x = nn.relu(nn.Dense(width)(x))
        head = DuelingHead(self.num_actions, self.num_atoms, self.head_hidden, noisy=True, sigma0=self.sigma0)
        return head(x, deterministic)


class RainbowState(NamedTuple):
    """One seed's learner: networks, optimiser, replay with its priorities, latest metrics."""

    params: Any
    target_params: Any
    opt_state: Any
    replay: Replay
    priorities: SumTree
    max_priority: jax.Array
    """Largest priority seen; new transitions get it, so each is replayed at least about once."""
    metrics: dict[str, jax.Array]
    """Values of the latest update, reported at every step."""


class NStepTargets(NamedTuple):
    """n-step return, bootstrap observation and its discount, per sampled slot."""

    returns: jax.Array
    bootstrap_obs: jax.Array
    discount: jax.Array


def n_step_targets(window: Transition, gamma: float) -> NStepTargets:
    """n-step returns of windows of consecutive steps (shape (B, n, ...)), cut at the first episode end.

    G = sum_{k<K} gamma^k r_k with K the steps up to and including the first terminated/truncated one
    (or n); bootstrap from next_obs_{K-1} with discount gamma^K, or 0 if step K-1 terminated.
    """
    n = window.reward.shape[1]
    done = (window.terminated | window.truncated).astype(jnp.float32)
    alive = jnp.cumprod(jnp.concatenate([jnp.ones_like(done[:, :1]), 1.0 - done[:, :-1]], axis=1), axis=1)
    powers = gamma ** jnp.arange(n, dtype=jnp.float32)
    returns = jnp.sum(window.reward * alive * powers, axis=1)
    length = jnp.sum(alive, axis=1).astype(jnp.int32)
    last = length - 1
    rows = jnp.arange(window.reward.shape[0])
    discount = gamma ** length.astype(jnp.float32) * (1.0 - window.terminated[rows, last].astype(jnp.float32))
    return NStepTargets(returns, window.next_obs[rows, last], discount)


_METRICS = ("loss", "q_mean", "priority_weight")

REWARD_RANGES: dict[str, tuple[float, float]] = {
    "mbrl_bench/CartPoleDistractor-v0": (1.0, 1.0),
}
"""Per-step reward range of the discrete-action envs whose observation space is not discrete (those
get theirs exactly from the true reward function): CartPole-v1 pays +1 on every step."""

DEFAULT_BUDGET = 100_000
"""Replay size and annealing span when the run's budget is unknown: DER's 100K-step run."""


def reward_range(env: EnvInfo) -> tuple[float, float] | None:
    """(r_min, r_max) of one env step: exact on a discrete observation space (the true reward function
    on every (s, a, s')), else from ``REWARD_RANGES``; None if unknown."""
    obs_space, action_space = env.observation_space, env.action_space
    if isinstance(obs_space, gym.spaces.Discrete) and isinstance(action_space, gym.spaces.Discrete):
        s, a, s2 = np.meshgrid(
            np.arange(obs_space.n) + obs_space.start,
            np.arange(action_space.n) + action_space.start,
            np.arange(obs_space.n) + obs_space.start,
            indexing="ij",
        )
        rewards = np.asarray(env.task.reward_fn(s.ravel()[:, None], a.ravel(), s2.ravel()[:, None]))
        return float(rewards.min()), float(rewards.max())
    return REWARD_RANGES.get(env.env_id)


def return_bounds(r_min: float, r_max: float, gamma: float) -> tuple[float, float]:
    """[min(0, r_min), max(0, r_max)] / (1 - gamma): every discounted return of such rewards, over any
    horizon (an episode that ends early adds 0s), lies in it."""
    return min(0.0, r_min) / (1.0 - gamma), max(0.0, r_max) / (1.0 - gamma)


@register_agent
class Rainbow(Agent):
    """Data-efficient Rainbow: double Q, prioritised replay, dueling, n-step, C51, noisy nets."""

    name: ClassVar[str] = "rainbow"
    Config: ClassVar[type] = RainbowConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete"})
    description: ClassVar[str] = "Data-efficient Rainbow, all six components (model-free reference, discrete)"

    def __init__(self, config: RainbowConfig, env: EnvInfo, capacity: str = "full") -> None:
        super().__init__(config, env, capacity)
        kind = action_kind(env.action_space)
        if kind not in self.action_kinds:
            raise ValueError(
                f"rainbow does not support {kind} action spaces ({env.action_space}); "
                f"supported action kinds: {', '.join(sorted(self.action_kinds))}"
            )
        budget = env.budget or DEFAULT_BUDGET
        # The resolved replay size, support and annealing span (``None`` config fields filled in).
        self.replay_capacity = config.replay_capacity if config.replay_capacity is not None else budget
        self.priority_weight_steps = (
            config.priority_weight_steps if config.priority_weight_steps is not None else budget
        )
        if self.replay_capacity < max(config.n_step, config.batch_size):
            raise ValueError(
                f"replay_capacity={self.replay_capacity} must be >= n_step ({config.n_step}) "
                f"and batch_size ({config.batch_size})"
            )
        if self.priority_weight_steps < 1:
            raise ValueError(f"priority_weight_steps must be >= 1, got {self.priority_weight_steps}")
        if config.v_min is None or config.v_max is None:
            rewards = reward_range(env)
            if rewards is None:
                raise ValueError(
                    f"the reward range of {env.env_id} is unknown, so the C51 support cannot be sized; "
                    "set v_min and v_max (--set rainbow.v_min=... --set rainbow.v_max=...)"
                )
            bounds = return_bounds(*rewards, config.gamma)
        self.v_min = config.v_min if config.v_min is not None else bounds[0]
        self.v_max = config.v_max if config.v_max is not None else bounds[1]
        if config.n_step < 1 or config.num_atoms < 2 or not self.v_min < self.v_max:
            raise ValueError(
                f"need n_step >= 1, num_atoms >= 2 and v_min < v_max; got n_step={config.n_step}, "
                f"num_atoms={config.num_atoms}, v_min={self.v_min}, v_max={self.v_max}"
            )
        self.obs_space = env.observation_space
        self.obs_dim = feature_dim(self.obs_space)
        self.num_actions = int(env.action_space.n)
        self.support = jnp.linspace(self.v_min, self.v_max, config.num_atoms)
        self.net = RainbowNet(
            config.torso_sizes, self.num_actions, config.num_atoms, config.head_hidden, config.noisy_sigma0
        )
        self.tx = optax.chain(
            optax.clip_by_global_norm(config.max_grad_norm),
            optax.adam(config.learning_rate, eps=config.adam_eps),
        )

    def init(self, key: jax.Array) -> RainbowState:
        params_key, noise_key = jax.random.split(key)
        params = self.net.init({"params": params_key, "noise": noise_key}, jnp.zeros((self.obs_dim,)))
        obs = raw_observation(self.obs_space)
        example = Transition(
            obs, jnp.zeros((), jnp.int32), jnp.zeros(()), obs, jnp.zeros((), bool), jnp.zeros((), bool)
        )
        return RainbowState(
            params=params,
            # A copy, not the same arrays: a harness that donates the state must not see one buffer twice.
            target_params=jax.tree.map(jnp.copy, params),
            opt_state=self.tx.init(params),
            replay=replay_init(example, self.replay_capacity),
            priorities=sumtree_init(self.replay_capacity),
            max_priority=jnp.ones(()),
            metrics={k: jnp.zeros(()) for k in _METRICS},
        )

    def _logits(self, params: Any, obs: jax.Array, key: jax.Array | None) -> jax.Array:
        x = encode(self.obs_space, obs)
        if key is None:
            return self.net.apply(params, x, deterministic=True)
        return self.net.apply(params, x, rngs={"noise": key})

    def q_values(self, params: Any, obs: jax.Array, key: jax.Array | None) -> jax.Array:
        """Expected returns per action; noisy with ``key``, the mean network with ``None``."""
        return jnp.sum(jax.nn.softmax(self._logits(params, obs, key), axis=-1) * self.support, axis=-1)

    def act(self, state: RainbowState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        q = self.q_values(state.params, obs, key if explore else None)
        return jnp.argmax(q, axis=-1).astype(jnp.int32)

    def update(
        self, state: RainbowState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[RainbowState, dict[str, jax.Array]]:
        cfg = self.config
        replay, tree = self.insert(state.replay, state.priorities, state.max_priority, transition)
        # Only the small learner pieces pass through the cond: a buffer threaded through a cond's
        # outputs is copied every step, while outside it the donated state is updated in place.
        learn = (step >= cfg.learning_starts) & (step % cfg.update_period == 0)
        operands = (
            state.params,
            state.target_params,
            state.opt_state,
            state.metrics,
            replay,
            tree,
            key,
            step,
        )
        params, opt_state, metrics, idx, new_priorities = jax.lax.cond(
            learn, self._learn, self._skip, *operands
        )
        # Skipping rewrites one leaf with its own value, so the priority update can stay unconditional.
        tree = sumtree_set(tree, idx, new_priorities)
        target = jax.lax.cond(
            step % cfg.target_update_period == 0, lambda: params, lambda: state.target_params
        )
        max_priority = jnp.maximum(state.max_priority, jnp.max(new_priorities))
        state = RainbowState(params, target, opt_state, replay, tree, max_priority, metrics)
        return state, metrics

    def insert(
        self, replay: Replay, tree: SumTree, max_priority: jax.Array, transition: Transition
    ) -> tuple[Replay, SumTree]:
        """Store one step. The newest slot waits (priority 0) for the n-1 steps after it; the slot n-1
        steps back now has its whole window and becomes sampleable with the running maximum priority."""
        cfg = self.config
        slot = replay.count % self.replay_capacity
        replay = replay_add(replay, Transition(*transition))
        if cfg.n_step == 1:
            return replay, sumtree_set(tree, slot, max_priority)
        ready = (slot - (cfg.n_step - 1)) % self.replay_capacity
        ready_priority = jnp.where(replay.count > cfg.n_step - 1, max_priority, 0.0)
        return replay, sumtree_set(tree, jnp.stack([slot, ready]), jnp.stack([0.0, ready_priority]))

    def _loss(
        self,
        params: Any,
        target_params: Any,
        batch: Transition,
        targets: NStepTargets,
        weights: jax.Array,
        key: jax.Array,
    ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
        k_online, k_target = jax.random.split(key)
        rows = jnp.arange(batch.obs.shape[0])
        # One online pass (one noise sample) over s and the bootstrap states: half the RNG draws and
        # dispatches of two passes, which dominate a small network's update on CPU.
        both = self._logits(params, jnp.concatenate([batch.obs, targets.bootstrap_obs]), k_online)
        logits, next_logits = jnp.split(both, 2)
        log_p = jax.nn.log_softmax(logits[rows, batch.action], axis=-1)
        # Double Q: the online net picks a*, the target net (its own noise sample) scores it.
        next_q = jnp.sum(jax.nn.softmax(jax.lax.stop_gradient(next_logits), axis=-1) * self.support, axis=-1)
        next_action = jnp.argmax(next_q, axis=-1)
        target_logits = self._logits(target_params, targets.bootstrap_obs, k_target)
        target_probs = jax.nn.softmax(target_logits[rows, next_action], axis=-1)
        atoms = targets.returns[:, None] + targets.discount[:, None] * self.support
        projected = jax.lax.stop_gradient(categorical_projection(self.support, atoms, target_probs))
        cross_entropy = -jnp.sum(projected * log_p, axis=-1)
        q_mean = jnp.sum(jnp.exp(log_p) * self.support, axis=-1).mean()
        return jnp.mean(weights * cross_entropy), (cross_entropy, q_mean)

    def _skip(
        self,
        params: Any,
        target_params: Any,
        opt_state: Any,
        metrics: dict[str, jax.Array],
        replay: Replay,
        tree: SumTree,
        key: jax.Array,
        step: jax.Array,
    ) -> tuple[Any, Any, dict[str, jax.Array], jax.Array, jax.Array]:
        idx = jnp.zeros((self.config.batch_size,), jnp.int32)
        return params, opt_state, metrics, idx, jnp.broadcast_to(sumtree_get(tree, idx[0]), idx.shape)

    def _learn(
        self,
        params: Any,
        target_params: Any,
        opt_state: Any,
        metrics: dict[str, jax.Array],
        replay: Replay,
        tree: SumTree,
        key: jax.Array,
        step: jax.Array,
    ) -> tuple[Any, Any, dict[str, jax.Array], jax.Array, jax.Array]:
        cfg = self.config
        sample_key, loss_key = jax.random.split(key)
        idx = sumtree_sample(tree, sample_key, cfg.batch_size)
        num_items = jnp.maximum(jnp.minimum(replay.count, self.replay_capacity) - (cfg.n_step - 1), 1)
        frac = jnp.minimum(step / self.priority_weight_steps, 1.0)
        beta = cfg.priority_weight_start + (1.0 - cfg.priority_weight_start) * frac
        weights = importance_weights(sumtree_get(tree, idx), sumtree_total(tree), num_items, beta)
        window = replay_get(replay, idx[:, None] + jnp.arange(cfg.n_step))
        targets = n_step_targets(window, cfg.gamma)
        batch = jax.tree.map(lambda x: x[:, 0], window)
        grads, (cross_entropy, q_mean) = jax.grad(self._loss, has_aux=True)(
            params, target_params, batch, targets, weights, loss_key
        )
        updates, opt_state = self.tx.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        # Dopamine's Rainbow: priority = sqrt(cross-entropy + 1e-10), i.e. loss^omega with omega = 0.5.
        new_priorities = (cross_entropy + 1e-10) ** cfg.priority_exponent
        metrics = {"loss": jnp.mean(weights * cross_entropy), "q_mean": q_mean, "priority_weight": beta}
        return params, opt_state, metrics, idx, new_priorities
