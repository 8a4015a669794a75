"""Soft actor-critic (Haarnoja et al. 2018), the learner shared by ``sac``, OMD and MLE-Dyna on continuous
actions, MBPO and VIREL, with its discrete-action form (``DiscreteSAC``, Christodoulou 2019).

Written as jaxrl's SAC (Kostrikov 2021, github.com/ikostrikov/jaxrl), the code OMD's official MuJoCo agent
is built on (github.com/evgenii-nikishin/omd, mujoco/jax_rl): a tanh-squashed Gaussian actor with a
state-dependent log-std clipped to [-10, 2], twin Q critics with Polyak-averaged targets, and a learned
temperature alpha = exp(log_alpha) driven toward a target entropy. Every network is a ReLU MLP with
orthogonal(sqrt 2) kernels, the output layers included (jaxrl ``default_init``).

The learner works in the actor's own action space [-1, 1]^|A|; agents map actions to and from the env's
bounds (``to_env_action`` / ``from_env_action``), so replay and critics never see the env's scale.

Each piece of one update is its own pure function, so OMD's inner step can call them one by one:

    state, info = sac.critic_step(state, batch, key)      # Adam on the soft TD loss
    state = sac.target_update(state)                       # Polyak, tau
    state, info = sac.actor_step(state, batch.obs, key)    # Adam on E[alpha log pi - min Q]
    state, info = sac.temperature_step(state, info["entropy"])

``update`` runs all four; ``updates`` runs G of them as one ``lax.scan`` (MBPO takes 20-40 per env step).
The twin critics are one set of stacked parameters evaluated with ``jax.vmap``, so both run as one
batched matmul per layer.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import flax.linen as nn
import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import optax
from mbrl_bench.baselines.common.spaces import encode, feature_dim, kept_dims

LOG_STD_MIN = -10.0
"""Lower clip of the actor's log-std (jaxrl ``policies.LOG_STD_MIN``)."""
LOG_STD_MAX = 2.0
"""Upper clip of the actor's log-std (jaxrl ``policies.LOG_STD_MAX``)."""
_LOG_2PI = math.log(2.0 * math.pi)


@dataclass(frozen=True)
class SACConfig:
    """SAC hyperparameters; defaults are jaxrl's (``configs/sac_default.py``, ``train.py``) unless noted."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden ReLU widths of the actor and of each critic; jaxrl ``hidden_dims``."""
    actor_lr: float = 3e-4
    """Adam step size of the actor; jaxrl ``actor_lr``."""
    critic_lr: float = 3e-4
    """Adam step size of the critics; jaxrl ``critic_lr``."""
    temperature_lr: float = 3e-4
    """Adam step size of log(alpha); jaxrl ``temp_lr``."""
    batch_size: int = 256
    """Minibatch size of every update; jaxrl ``batch_size``."""
    tau: float = 0.005
    """Polyak coefficient of the target critics, applied after every critic step; jaxrl ``tau``."""
    discount: float = 0.99
    """gamma; jaxrl ``discount``."""
    init_temperature: float = 1.0
    """Initial alpha; jaxrl ``init_temperature``."""
    target_entropy_scale: float = 0.5
    """Target entropy = -scale * |A|: 0.5 in jaxrl (``-action_dim / 2``), 1.0 in softlearning, MBPO and
    CleanRL."""
    target_entropy_ratio: float = 0.5
    """Discrete actions (``DiscreteSAC``): target entropy = ratio x log|A|. Ours: Christodoulou 2019's 0.98
    (CleanRL's Atari SAC: 0.89) is out of a 2-action policy's reach on a task that needs decisive actions;
    on CartPole (2 seeds, 40K steps) alpha kept growing under both (0.98: 3.4e4, 0.89: 8e3 at 40K,
    Q means 2e5 and 6e4), while 0.5 held alpha at 0.35-0.40 and reached 500 (results/README.md)."""
    start_steps: int = 10_000
    """Uniformly random env steps before the first update; jaxrl ``start_training`` (CleanRL and MBPO:
    5000)."""
    updates_per_step: int = 1
    """G, SAC updates per env step, run as one ``lax.scan``; jaxrl ``updates_per_step`` (MBPO: 20-40)."""
    replay_capacity: int = 1_000_000
    """Replay size; jaxrl sizes it to the run (``replay_buffer_size`` defaults to ``max_steps``), so agents
    cap it at the run's budget when the harness tells them."""
    hide_position: bool = True
    """The learner does not read the task's absolute x (Ant: x, y) position, which our MuJoCo ids observe
    and the stock envs jaxrl was tuned on hide (``exclude_current_positions_from_observation``). Seeing it
    halved SAC's HalfCheetah return at 40K steps in a one-seed probe (1525 vs 3057, results/README.md)."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "updates_per_step", "replay_capacity"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.start_steps < 0:
            raise ValueError(f"start_steps must be >= 0, got {self.start_steps!r}")
        if not self.hidden_sizes or any(w < 1 for w in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive widths, got {self.hidden_sizes!r}")
        for name in ("actor_lr", "critic_lr", "temperature_lr", "init_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau!r}")
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"discount must be in [0, 1), got {self.discount!r}")
        if not 0.0 <= self.target_entropy_ratio <= 1.0:
            raise ValueError(f"target_entropy_ratio must be in [0, 1], got {self.target_entropy_ratio!r}")


class Batch(NamedTuple):
    """Transitions as the critic loss reads them; actions in the actor's space [-1, 1]^|A|."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    not_done: jax.Array
    """1 - terminated: bootstrapping continues through time-limit truncation."""


class SACState(NamedTuple):
    """The learner's parameters and optimiser states (no replay: agents keep their own)."""

    actor: Any
    critic: Any
    """Both critics' parameters, every leaf with a leading axis of 2."""
    critic_target: Any
    log_alpha: jax.Array
    actor_opt: optax.OptState
    critic_opt: optax.OptState
    alpha_opt: optax.OptState


class _Dense(nn.Module):
    """A ReLU MLP whose every layer, the output included, is orthogonal(sqrt 2) (jaxrl ``MLP``)."""

    hidden_sizes: tuple[int, ...]
    out_dim: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        init = nn.initializers.orthogonal(math.sqrt(2.0))
        for width in self.hidden_sizes:
            x = nn.relu(nn.Dense(width, kernel_init=init)(x))
        return nn.Dense(self.out_dim, kernel_init=init)(x)


def tanh_gaussian_sample(mean: jax.Array, log_std: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """A reparameterised sample tanh(mean + std * eps) and its log-density, summed over the last axis.

    log pi(a) = log N(u; mean, std) - sum log(1 - tanh(u)^2), with the correction written as
    2 (log 2 - u - softplus(-2u)), which is finite for any u (distrax's ``Tanh`` bijector uses the same).
    """
    u = mean + jnp.exp(log_std) * jax.random.normal(key, mean.shape, mean.dtype)
    return jnp.tanh(u), tanh_gaussian_log_prob(mean, log_std, u)


def tanh_gaussian_log_prob(mean: jax.Array, log_std: jax.Array, u: jax.Array) -> jax.Array:
    """log-density of a = tanh(u) for u ~ N(mean, exp(log_std)^2), given the pre-squash u."""
    z = (u - mean) * jnp.exp(-log_std)
    gaussian = jnp.sum(-0.5 * z**2 - log_std - 0.5 * _LOG_2PI, axis=-1)
    log_det = jnp.sum(2.0 * (math.log(2.0) - u - jax.nn.softplus(-2.0 * u)), axis=-1)
    return gaussian - log_det


@dataclass(frozen=True)
class SAC:
    """The SAC learner for ``obs_dim``-dim observations and ``action_dim``-dim actions."""

    config: SACConfig
    obs_dim: int
    action_dim: int

    @property
    def target_entropy(self) -> float:
        return -self.config.target_entropy_scale * self.action_dim

    @property
    def actor_net(self) -> _Dense:
        return _Dense(tuple(self.config.hidden_sizes), 2 * self.action_dim)

    @property
    def critic_net(self) -> _Dense:
        return _Dense(tuple(self.config.hidden_sizes), 1)

    @property
    def critic_input_dim(self) -> int:
        """Width of the critics' input: (s, a) here, s alone where they output Q(s, .) for every a."""
        return self.obs_dim + self.action_dim

    def optimizers(self) -> tuple[optax.GradientTransformation, ...]:
        c = self.config
        return optax.adam(c.actor_lr), optax.adam(c.critic_lr), optax.adam(c.temperature_lr)

    # ---- parameters ------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> SACState:
        k_actor, k_critic = jax.random.split(key)
        actor = self.actor_net.init(k_actor, jnp.zeros((1, self.obs_dim)))
        dummy = jnp.zeros((1, self.critic_input_dim))
        critic = jax.vmap(lambda k: self.critic_net.init(k, dummy))(jax.random.split(k_critic, 2))
        log_alpha = jnp.asarray(math.log(self.config.init_temperature), jnp.float32)
        actor_tx, critic_tx, alpha_tx = self.optimizers()
        return SACState(
            actor=actor,
            critic=critic,
            critic_target=jax.tree.map(jnp.copy, critic),  # its own buffers: states may be donated
            log_alpha=log_alpha,
            actor_opt=actor_tx.init(actor),
            critic_opt=critic_tx.init(critic),
            alpha_opt=alpha_tx.init(log_alpha),
        )

    # ---- networks --------------------------------------------------------------------------------
    def policy(self, actor: Any, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Mean and clipped log-std of the pre-squash Gaussian."""
        out = self.actor_net.apply(actor, obs)
        mean, log_std = jnp.split(out, 2, axis=-1)
        return mean, jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)

    def sample(self, actor: Any, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """A stochastic action in [-1, 1]^|A| and its log-probability."""
        mean, log_std = self.policy(actor, obs)
        return tanh_gaussian_sample(mean, log_std, key)

    def deterministic(self, actor: Any, obs: jax.Array) -> jax.Array:
        """tanh(mean): jaxrl's evaluation action (``temperature=0``)."""
        return jnp.tanh(self.policy(actor, obs)[0])

    def q_values(self, critic: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Both critics' Q(s, a), shape [2, ...]."""
        x = jnp.concatenate([obs, action.astype(obs.dtype)], axis=-1)
        return jax.vmap(lambda p: self.critic_net.apply(p, x)[..., 0])(critic)

    # ---- losses ----------------------------------------------------------------------------------
    def td_target(self, state: SACState, batch: Batch, key: jax.Array) -> jax.Array:
        """r + gamma (1 - terminated) (min_k Q'_k(s', a') - alpha log pi(a'|s')), a' ~ pi(s').

        The actor sees s' under stop_gradient and only the target critics carry a gradient to s' and r,
        as jaxrl's (and OMD's) ``critic.update``; the actor, alpha and target critics are held constant.
        """
        next_action, next_log_prob = self.sample(state.actor, jax.lax.stop_gradient(batch.next_obs), key)
        next_action, next_log_prob = jax.lax.stop_gradient((next_action, next_log_prob))
        target = jax.lax.stop_gradient(state.critic_target)
        next_q = jnp.min(self.q_values(target, batch.next_obs, next_action), axis=0)
        alpha = jax.lax.stop_gradient(jnp.exp(state.log_alpha))
        return batch.reward + self.config.discount * batch.not_done * (next_q - alpha * next_log_prob)

    def critic_loss(
        self, critic: Any, state: SACState, batch: Batch, key: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """jaxrl's ``((q1 - y)^2 + (q2 - y)^2).mean()`` with y from ``td_target``."""
        y = self.td_target(state, batch, key)
        q = self.q_values(critic, batch.obs, batch.action)
        loss = jnp.sum(jnp.mean((q - y[None]) ** 2, axis=-1))
        return loss, {"critic_loss": loss, "q_mean": jnp.mean(q)}

    # ---- the four steps of one update -------------------------------------------------------------
    def critic_step(
        self, state: SACState, batch: Batch, key: jax.Array
    ) -> tuple[SACState, dict[str, jax.Array]]:
        """One Adam step of the critics on ``batch``."""
        grads, info = jax.grad(self.critic_loss, has_aux=True)(state.critic, state, batch, key)
        updates, opt = self.optimizers()[1].update(grads, state.critic_opt, state.critic)
        return state._replace(critic=optax.apply_updates(state.critic, updates), critic_opt=opt), info

    def target_update(self, state: SACState) -> SACState:
        """Polyak averaging: target <- tau critic + (1 - tau) target."""
        target = optax.incremental_update(state.critic, state.critic_target, self.config.tau)
        return state._replace(critic_target=target)

    def actor_step(
        self, state: SACState, obs: jax.Array, key: jax.Array
    ) -> tuple[SACState, dict[str, jax.Array]]:
        """One Adam step of the actor on mean(alpha log pi(a|s) - min_k Q_k(s, a)), a ~ pi(s)."""
        alpha = jnp.exp(state.log_alpha)

        def loss_fn(actor: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
            action, log_prob = self.sample(actor, obs, key)
            q = jnp.min(self.q_values(state.critic, obs, action), axis=0)
            loss = jnp.mean(alpha * log_prob - q)
            return loss, {"actor_loss": loss, "entropy": -jnp.mean(log_prob)}

        grads, info = jax.grad(loss_fn, has_aux=True)(state.actor)
        updates, opt = self.optimizers()[0].update(grads, state.actor_opt, state.actor)
        return state._replace(actor=optax.apply_updates(state.actor, updates), actor_opt=opt), info

    def temperature_step(self, state: SACState, entropy: jax.Array) -> tuple[SACState, dict[str, jax.Array]]:
        """One Adam step of log(alpha) on alpha * (entropy - target) (jaxrl ``temperature.update``): alpha
        falls while the policy's entropy is above the target and rises while it is below."""
        entropy = jax.lax.stop_gradient(entropy)

        def loss_fn(log_alpha: jax.Array) -> jax.Array:
            return jnp.exp(log_alpha) * (entropy - self.target_entropy)

        grad = jax.grad(loss_fn)(state.log_alpha)
        updates, opt = self.optimizers()[2].update(grad, state.alpha_opt, state.log_alpha)
        log_alpha = optax.apply_updates(state.log_alpha, updates)
        return state._replace(log_alpha=log_alpha, alpha_opt=opt), {"alpha": jnp.exp(log_alpha)}

    def update(
        self, state: SACState, batch: Batch, key: jax.Array, actor_obs: jax.Array | None = None
    ) -> tuple[SACState, dict[str, jax.Array]]:
        """One SAC update in jaxrl's order: critic, target, actor (on ``actor_obs``, default the batch's
        observations), temperature."""
        k_critic, k_actor = jax.random.split(key)
        state, critic_info = self.critic_step(state, batch, k_critic)
        state = self.target_update(state)
        obs = batch.obs if actor_obs is None else actor_obs
        state, actor_info = self.actor_step(state, obs, k_actor)
        state, alpha_info = self.temperature_step(state, actor_info["entropy"])
        return state, critic_info | actor_info | alpha_info

    def updates(
        self,
        state: SACState,
        sample_batch: Callable[[jax.Array], Batch],
        key: jax.Array,
        num_updates: int,
    ) -> tuple[SACState, dict[str, jax.Array]]:
        """``num_updates`` updates as one ``lax.scan``, each on ``sample_batch(key)``; the last metrics."""

        def body(s: SACState, k: jax.Array) -> tuple[SACState, dict[str, jax.Array]]:
            k_batch, k_update = jax.random.split(k)
            return self.update(s, sample_batch(k_batch), k_update)

        state, info = jax.lax.scan(body, state, jax.random.split(key, num_updates))
        return state, jax.tree.map(lambda x: x[-1], info)


def action_bounds(low: Any, high: Any) -> tuple[np.ndarray, np.ndarray]:
    """Centre and half-width of a bounded Box; ValueError if a bound is infinite."""
    low, high = np.asarray(low, np.float32), np.asarray(high, np.float32)
    if not (np.isfinite(low).all() and np.isfinite(high).all()):
        raise ValueError("SAC needs a bounded action space (finite low and high)")
    return (high + low) / 2.0, (high - low) / 2.0


def to_env_action(action: jax.Array, centre: np.ndarray, half_width: np.ndarray) -> jax.Array:
    """[-1, 1]^|A| -> the env's [low, high]."""
    return centre + half_width * action


def from_env_action(action: jax.Array, centre: np.ndarray, half_width: np.ndarray) -> jax.Array:
    """The env's [low, high] -> [-1, 1]^|A| (clipped: an env action outside its bounds maps to +-1)."""
    return jnp.clip((action - centre) / half_width, -1.0, 1.0)


@dataclass(frozen=True)
class DiscreteSAC(SAC):
    """Soft actor-critic for ``action_dim`` discrete actions (Christodoulou 2019, "Soft Actor-Critic for
    Discrete Action Settings"), on the same state, optimisers and update order as ``SAC``.

    The actor outputs logits of a categorical policy; each critic outputs Q(s, .) for every action. The
    expectations over actions are exact sums instead of samples: the soft value
    V(s') = sum_a' pi(a'|s') (min_k Q'_k(s', a') - alpha log pi(a'|s')), the actor loss
    sum_a pi(a|s) (alpha log pi(a|s) - min_k Q_k(s, a)) and the entropy -sum_a pi log pi in the
    temperature loss. The target entropy is the config's ``target_entropy_ratio`` x log|A| (the paper:
    0.98; ours 0.5), positive, since a categorical policy's entropy lies in [0, log|A|]. Actions in
    batches are integer indices. The deterministic (evaluation) action is the most probable one.
    """

    def __post_init__(self) -> None:
        if self.action_dim < 2:
            raise ValueError(f"a discrete SAC needs at least 2 actions, got {self.action_dim}")

    @property
    def target_entropy(self) -> float:
        return self.config.target_entropy_ratio * math.log(self.action_dim)

    @property
    def actor_net(self) -> _Dense:
        return _Dense(tuple(self.config.hidden_sizes), self.action_dim)

    @property
    def critic_net(self) -> _Dense:
        return _Dense(tuple(self.config.hidden_sizes), self.action_dim)

    @property
    def critic_input_dim(self) -> int:
        return self.obs_dim

    def log_probs(self, actor: Any, obs: jax.Array) -> jax.Array:
        """log pi(. | s) over the last axis."""
        return jax.nn.log_softmax(self.actor_net.apply(actor, obs), axis=-1)

    def sample(self, actor: Any, obs: jax.Array, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """An action index drawn from pi(. | s) and its log-probability."""
        log_p = self.log_probs(actor, obs)
        action = jax.random.categorical(key, log_p, axis=-1)
        return action, jnp.take_along_axis(log_p, action[..., None], axis=-1)[..., 0]

    def deterministic(self, actor: Any, obs: jax.Array) -> jax.Array:
        return jnp.argmax(self.actor_net.apply(actor, obs), axis=-1)

    def all_q_values(self, critic: Any, obs: jax.Array) -> jax.Array:
        """Both critics' Q(s, .), shape [2, ..., |A|]."""
        return jax.vmap(lambda p: self.critic_net.apply(p, obs))(critic)

    def q_values(self, critic: Any, obs: jax.Array, action: jax.Array) -> jax.Array:
        q = self.all_q_values(critic, obs)
        index = jnp.broadcast_to(action.astype(jnp.int32)[None, ..., None], (*q.shape[:-1], 1))
        return jnp.take_along_axis(q, index, axis=-1)[..., 0]

    def td_target(self, state: SACState, batch: Batch, key: jax.Array) -> jax.Array:
        """r + gamma (1 - terminated) sum_a' pi(a'|s') (min_k Q'_k(s', a') - alpha log pi(a'|s'))."""
        del key  # the expectation over next actions is exact
        log_p = jax.lax.stop_gradient(self.log_probs(state.actor, jax.lax.stop_gradient(batch.next_obs)))
        target = jax.lax.stop_gradient(state.critic_target)
        next_q = jnp.min(self.all_q_values(target, batch.next_obs), axis=0)
        alpha = jax.lax.stop_gradient(jnp.exp(state.log_alpha))
        value = jnp.sum(jnp.exp(log_p) * (next_q - alpha * log_p), axis=-1)
        return batch.reward + self.config.discount * batch.not_done * value

    def actor_step(
        self, state: SACState, obs: jax.Array, key: jax.Array
    ) -> tuple[SACState, dict[str, jax.Array]]:
        """One Adam step of the actor on mean_s sum_a pi(a|s) (alpha log pi(a|s) - min_k Q_k(s, a))."""
        del key
        alpha = jnp.exp(state.log_alpha)
        q = jax.lax.stop_gradient(jnp.min(self.all_q_values(state.critic, obs), axis=0))

        def loss_fn(actor: Any) -> tuple[jax.Array, dict[str, jax.Array]]:
            log_p = self.log_probs(actor, obs)
            p = jnp.exp(log_p)
            loss = jnp.mean(jnp.sum(p * (alpha * log_p - q), axis=-1))
            return loss, {"actor_loss": loss, "entropy": -jnp.mean(jnp.sum(p * log_p, axis=-1))}

        grads, info = jax.grad(loss_fn, has_aux=True)(state.actor)
        updates, opt = self.optimizers()[0].update(grads, state.actor_opt, state.actor)
        return state._replace(actor=optax.apply_updates(state.actor, updates), actor_opt=opt), info


@dataclass(frozen=True)
class EnvAdapter:
    """What a SAC-based agent does at the env boundary: the observation it reads (a Box's kept dims, a
    Discrete state one-hot), actions mapped between the learner's space and the env's ([-1, 1]^|A| and the
    env's bounds for a Box; a Discrete index as it is), uniform actions in the initial random phase.
    Build it with ``for_spaces``."""

    observation_space: gym.spaces.Space
    kept: np.ndarray
    """Columns of the encoded observation the learner reads (``spaces.kept_dims`` for a Box)."""
    num_actions: int
    """|A| of a Discrete action space; 0 for a Box."""
    centre: np.ndarray
    """A Box's action centre and half-width (``action_bounds``); empty for Discrete actions."""
    half_width: np.ndarray

    @classmethod
    def for_spaces(
        cls,
        observation_space: gym.spaces.Space,
        action_space: gym.spaces.Space,
        layout: dict,
        hide_position: bool,
    ) -> EnvAdapter:
        """The adapter of an env with these spaces and task ``layout`` (``hide_position``: see SACConfig)."""
        if isinstance(observation_space, gym.spaces.Discrete):
            kept = np.arange(feature_dim(observation_space), dtype=np.int32)
        else:
            kept = kept_dims(feature_dim(observation_space), layout, hide_position)
        if isinstance(action_space, gym.spaces.Discrete):
            return cls(observation_space, kept, int(action_space.n), np.zeros(0), np.zeros(0))
        return cls(observation_space, kept, 0, *action_bounds(action_space.low, action_space.high))

    @property
    def discrete(self) -> bool:
        return self.num_actions > 0

    @property
    def obs_dim(self) -> int:
        return len(self.kept)

    @property
    def action_dim(self) -> int:
        """|A| for Discrete actions, the Box's dimension otherwise (the learners' ``action_dim``)."""
        return self.num_actions if self.discrete else len(self.centre)

    def view(self, obs: jax.Array) -> jax.Array:
        return encode(self.observation_space, jnp.asarray(obs))[..., self.kept]

    def unview(self, obs: jax.Array) -> jax.Array:
        """Learner observations of a Box back in the env's layout with the hidden dims 0: for task
        functions that never read them (the MuJoCo termination functions read heights and angles, not x)."""
        full = jnp.zeros((*obs.shape[:-1], feature_dim(self.observation_space)), obs.dtype)
        return full.at[..., self.kept].set(obs)

    def to_env(self, action: jax.Array) -> jax.Array:
        return action if self.discrete else to_env_action(action, self.centre, self.half_width)

    def example_item(self) -> Batch:
        """A zero replay item, shaped as ``replay_item`` makes them."""
        obs = jnp.zeros(self.obs_dim)
        action = jnp.zeros((), jnp.int32) if self.discrete else jnp.zeros(self.centre.shape)
        return Batch(obs, action, jnp.zeros(()), obs, jnp.zeros(()))

    def replay_item(self, transition: Any) -> Batch:
        """A real transition as the learner stores it (Box actions in [-1, 1]; bootstraps through
        truncation)."""
        if self.discrete:
            action = jnp.asarray(transition.action, jnp.int32)
        else:
            action = from_env_action(
                jnp.asarray(transition.action, jnp.float32), self.centre, self.half_width
            )
        return Batch(
            self.view(transition.obs),
            action,
            jnp.asarray(transition.reward, jnp.float32),
            self.view(transition.next_obs),
            1.0 - jnp.asarray(transition.terminated, jnp.float32),
        )

    def act(
        self, sac: SAC, actor: Any, obs: jax.Array, key: jax.Array, explore: bool, random_phase: jax.Array
    ) -> jax.Array:
        """An env action: the deterministic one (tanh(mean), or the most probable) to evaluate; while
        training, uniform in the random phase, else sampled from the policy."""
        obs = self.view(obs)
        if not explore:
            return self.to_env(sac.deterministic(actor, obs))
        k_policy, k_uniform = jax.random.split(key)
        policy_action, _ = sac.sample(actor, obs, k_policy)
        if self.discrete:
            uniform = jax.random.randint(
                k_uniform, policy_action.shape, 0, self.num_actions, policy_action.dtype
            )
        else:
            uniform = jax.random.uniform(k_uniform, policy_action.shape, minval=-1.0, maxval=1.0)
        return self.to_env(jnp.where(random_phase, uniform, policy_action))
