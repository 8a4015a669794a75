"""PPO (Schulman et al. 2017): clipped surrogate, GAE, value loss and entropy bonus, discrete or Gaussian.

The harness gives each seed one environment and calls ``update`` once per env step, so the agent keeps
the last ``n_steps`` transitions of that one env in its state and learns when ``step % n_steps == 0``:
``update_epochs`` passes over the rollout in shuffled minibatches of ``minibatch_size``, all inside one
jitted ``lax.scan``. CleanRL's vectorised rollout of ``num_envs x num_steps`` becomes one env's
``n_steps``; the samples per update are what matter to PPO, not how many envs produced them.

Two choices keep the update exact under this interface:

- The old log-probabilities and values are recomputed at learning time from the stored actions. The
  parameters and the observation statistics are frozen while a rollout is collected, so this equals the
  behaviour policy that ``act`` sampled from; no per-step bookkeeping is needed in ``act``, which cannot
  write to the state.
- Observation normalisation (running mean/var, clipped to +-10, as Gymnasium's NormalizeObservation in
  CleanRL's continuous PPO) merges each rollout into the statistics *after* the old log-probabilities are
  computed with the statistics the rollout was collected under, and trains on inputs normalised with the
  new statistics: the shift of the statistics is part of the policy change that the clipped ratio bounds.

GAE separates ``terminated`` (no bootstrap) from ``truncated`` (bootstrap from the true final observation,
which ``Transition.next_obs`` carries); both cut the advantage trace at the episode boundary.

Continuous actions are the raw Gaussian samples, unclipped, so their log-probability is exact (the
transition carries what ``act`` returned). MuJoCo clamps controls to ``ctrlrange`` itself, but the v5
envs charge their control cost on the action as given, so samples outside the box cost a little more
than under CleanRL, whose ClipAction wrapper clips between agent and env.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from mbrl_bench.baselines.api import Agent, EnvInfo, Transition, action_kind, register_agent
from mbrl_bench.baselines.common.distributions import (
    categorical_entropy,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_log_prob,
)
from mbrl_bench.baselines.common.networks import MLP, activation
from mbrl_bench.baselines.common.normalization import RunningStats, normalize, stats_init, stats_merge
from mbrl_bench.baselines.common.spaces import encode, feature_dim, raw_observation


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters. Sources: CleanRL ppo.py / ppo_continuous_action.py (CRL), SB3 rl-zoo (ZOO)."""

    n_steps: int | None = None
    """Env steps per rollout (one env); None: 256 for discrete actions (ZOO CartPole: 8 envs x 32),
    2048 for continuous (CRL continuous: 1 env x 2048)."""
    minibatch_size: int = 64
    """Samples per gradient step: CRL continuous (2048 / 32 minibatches); must divide n_steps."""
    update_epochs: int = 10
    """Passes over each rollout: CRL continuous 10 (CRL discrete 4, ZOO CartPole 20)."""
    learning_rate: float = 3e-4
    """Adam step size, constant: CRL continuous 3e-4 (CRL anneals to 0 over a known budget, unknown here)."""
    adam_eps: float = 1e-5
    """Adam epsilon: CRL (the PPO implementation details of Huang et al. 2022)."""
    gamma: float = 0.99
    """Discount: CRL and the PPO paper's MuJoCo setting."""
    gae_lambda: float = 0.95
    """GAE lambda: CRL and the PPO paper."""
    clip_coef: float = 0.2
    """Ratio clip epsilon: the PPO paper and CRL."""
    clip_value_loss: bool = True
    """Clip the value update around the old values like the ratio: CRL (OpenAI baselines' ppo2)."""
    ent_coef: float = 0.0
    """Entropy bonus weight: CRL continuous and ZOO CartPole 0.0 (CRL discrete 0.01)."""
    vf_coef: float = 0.5
    """Value loss weight: CRL."""
    max_grad_norm: float = 0.5
    """Global gradient-norm clip: CRL."""
    norm_adv: bool = True
    """Normalise advantages per minibatch: CRL."""
    hidden_sizes: tuple[int, ...] = (64, 64)
    """Hidden widths of the separate actor and critic MLPs: CRL (and the PPO paper's MuJoCo nets)."""
    activation: str = "tanh"
    """Hidden activation: CRL."""
    normalize_obs: bool | None = None
    """Running observation normalisation; None: on for continuous actions (CRL continuous, Gymnasium's
    NormalizeObservation), off for discrete (CRL discrete)."""


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs (CRL); the Gaussian actor adds a state-independent log-std."""

    hidden_sizes: tuple[int, ...]
    act_name: str
    num_outputs: int
    continuous: bool

    @nn.compact
    def __call__(self, obs: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
        act = activation(self.act_name)
        out = MLP(self.hidden_sizes, self.num_outputs, act, out_gain=0.01, name="actor")(obs)
        value = MLP(self.hidden_sizes, 1, act, out_gain=1.0, name="critic")(obs)[..., 0]
        if self.continuous:
            log_std = self.param("log_std", nn.initializers.zeros, (self.num_outputs,))
        else:
            log_std = jnp.zeros((0,))
        return out, log_std, value


class PPOState(NamedTuple):
    """One seed's learner: networks, optimiser, observation statistics, current rollout, metrics."""

    params: Any
    opt_state: Any
    obs_stats: RunningStats
    """Statistics the current policy normalises with; frozen during a rollout."""
    rollout: Transition
    metrics: dict[str, jax.Array]
    """Losses of the latest learning phase, reported at every step."""


def gae(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminated: jax.Array,
    truncated: jax.Array,
    gamma: float,
    gae_lambda: float,
) -> jax.Array:
    """Generalised advantage estimates (Schulman et al. 2016) over one env's time-ordered rollout.

    delta_t = r_t + gamma V(s'_t) (1 - terminated_t) - V(s_t), with s'_t the true next observation, so a
    truncated step still bootstraps; A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}, done = terminated
    or truncated, so no trace crosses an episode boundary; A after the last step is 0 (its delta already
    bootstraps from V(s'_T)).
    """
    not_term = 1.0 - terminated.astype(values.dtype)
    not_done = 1.0 - (terminated | truncated).astype(values.dtype)
    deltas = rewards + gamma * next_values * not_term - values

    def backward(carry: jax.Array, x: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        delta, cont = x
        adv = delta + gamma * gae_lambda * cont * carry
        return adv, adv

    _, adv = jax.lax.scan(backward, jnp.zeros((), values.dtype), (deltas, not_done), reverse=True)
    return adv


_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")


@register_agent
class PPO(Agent):
    """Proximal Policy Optimization with GAE, for discrete and continuous (Gaussian) actions."""

    name: ClassVar[str] = "ppo"
    Config: ClassVar[type] = PPOConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete", "continuous"})
    description: ClassVar[str] = "PPO, clipped objective + GAE (model-free reference, CleanRL defaults)"

    def __init__(self, config: PPOConfig, env: EnvInfo, capacity: str = "full") -> None:
        super().__init__(config, env, capacity)
        self.kind = action_kind(env.action_space)
        self.continuous = self.kind == "continuous"
        # The rollout length in use: ``config.n_steps`` resolved for the action kind.
        self.n_steps = config.n_steps if config.n_steps is not None else (2048 if self.continuous else 256)
        if config.minibatch_size < 1 or self.n_steps < 1 or self.n_steps % config.minibatch_size:
            raise ValueError(
                f"n_steps={self.n_steps} must be a positive multiple of "
                f"minibatch_size={config.minibatch_size}"
            )
        self.num_minibatches = self.n_steps // config.minibatch_size
        activation(config.activation)
        self.obs_space = env.observation_space
        self.obs_dim = feature_dim(self.obs_space)
        space = env.action_space
        self.action_shape: tuple[int, ...] = tuple(space.shape) if self.continuous else ()
        num_outputs = int(np.prod(space.shape)) if self.continuous else int(space.n)
        self.action_dtype = jnp.float32 if self.continuous else jnp.int32
        self.use_obs_norm = self.continuous if config.normalize_obs is None else config.normalize_obs
        self.net = ActorCritic(config.hidden_sizes, config.activation, num_outputs, self.continuous)
        self.tx = optax.chain(
            optax.clip_by_global_norm(config.max_grad_norm),
            optax.adam(config.learning_rate, eps=config.adam_eps),
        )

    def init(self, key: jax.Array) -> PPOState:
        params = self.net.init(key, jnp.zeros((self.obs_dim,)))
        n = self.n_steps
        zero = raw_observation(self.obs_space)
        rollout = Transition(
            obs=jnp.zeros((n, *zero.shape), zero.dtype),
            action=jnp.zeros((n, *self.action_shape), self.action_dtype),
            reward=jnp.zeros((n,)),
            next_obs=jnp.zeros((n, *zero.shape), zero.dtype),
            terminated=jnp.zeros((n,), bool),
            truncated=jnp.zeros((n,), bool),
        )
        metrics = {k: jnp.zeros(()) for k in _METRICS}
        return PPOState(params, self.tx.init(params), stats_init(self.obs_dim), rollout, metrics)

    def _inputs(self, stats: RunningStats, obs: jax.Array) -> jax.Array:
        x = encode(self.obs_space, obs)
        return normalize(stats, x) if self.use_obs_norm else x

    def _log_prob_entropy(
        self, out: jax.Array, log_std: jax.Array, action: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        if self.continuous:
            return gaussian_log_prob(out, log_std, action), gaussian_entropy(log_std)
        return categorical_log_prob(out, action), categorical_entropy(out)

    def act(self, state: PPOState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        out, log_std, _ = self.net.apply(state.params, self._inputs(state.obs_stats, obs))
        if self.continuous:
            if not explore:
                return out
            return out + jnp.exp(log_std) * jax.random.normal(key, out.shape)
        if not explore:
            return jnp.argmax(out).astype(jnp.int32)
        return jax.random.categorical(key, out).astype(jnp.int32)

    def update(
        self, state: PPOState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[PPOState, dict[str, jax.Array]]:
        i = (step - 1) % self.n_steps
        item = Transition(
            transition.obs,
            transition.action,
            transition.reward,
            transition.next_obs,
            transition.terminated,
            transition.truncated,
        )
        rollout = jax.tree.map(lambda buf, x: buf.at[i].set(jnp.asarray(x, buf.dtype)), state.rollout, item)
        # The rollout is an operand, not an output, of the cond: outputs are copied every step.
        learner = (state.params, state.opt_state, state.obs_stats, state.metrics)
        learner = jax.lax.cond(
            step % self.n_steps == 0, self._learn, lambda lr, ro, k: lr, learner, rollout, key
        )
        state = PPOState(*learner[:3], rollout, learner[3])
        return state, state.metrics

    def _loss(self, params: Any, batch: dict[str, jax.Array]) -> tuple[jax.Array, dict[str, jax.Array]]:
        cfg = self.config
        out, log_std, value = self.net.apply(params, batch["inputs"])
        log_prob, entropy = self._log_prob_entropy(out, log_std, batch["action"])
        log_ratio = log_prob - batch["old_log_prob"]
        ratio = jnp.exp(log_ratio)
        adv = batch["advantage"]
        if cfg.norm_adv:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        policy_loss = jnp.maximum(
            -adv * ratio, -adv * jnp.clip(ratio, 1.0 - cfg.clip_coef, 1.0 + cfg.clip_coef)
        ).mean()
        ret = batch["return"]
        if cfg.clip_value_loss:
            clipped = batch["old_value"] + jnp.clip(value - batch["old_value"], -cfg.clip_coef, cfg.clip_coef)
            value_loss = 0.5 * jnp.maximum((value - ret) ** 2, (clipped - ret) ** 2).mean()
        else:
            value_loss = 0.5 * ((value - ret) ** 2).mean()
        entropy = entropy.mean()
        loss = policy_loss + cfg.vf_coef * value_loss - cfg.ent_coef * entropy
        metrics = {
            "policy_loss": policy_loss,
            "value_loss": value_loss,
            "entropy": entropy,
            "approx_kl": ((ratio - 1.0) - log_ratio).mean(),
            "clip_fraction": (jnp.abs(ratio - 1.0) > cfg.clip_coef).mean(),
        }
        return loss, metrics

    def _learn(
        self, learner: tuple[Any, Any, RunningStats, Any], ro: Transition, key: jax.Array
    ) -> tuple[Any, ...]:
        cfg = self.config
        params, opt_state, obs_stats, _ = learner
        old_out, old_log_std, old_value = self.net.apply(params, self._inputs(obs_stats, ro.obs))
        _, _, next_value = self.net.apply(params, self._inputs(obs_stats, ro.next_obs))
        old_log_prob, _ = self._log_prob_entropy(old_out, old_log_std, ro.action)
        advantage = gae(
            ro.reward, old_value, next_value, ro.terminated, ro.truncated, cfg.gamma, cfg.gae_lambda
        )
        stats = stats_merge(obs_stats, encode(self.obs_space, ro.obs)) if self.use_obs_norm else obs_stats
        data = {
            "inputs": self._inputs(stats, ro.obs),
            "action": ro.action,
            "old_log_prob": old_log_prob,
            "old_value": old_value,
            "advantage": advantage,
            "return": advantage + old_value,
        }
        n, m = self.n_steps, self.num_minibatches
        grad_fn = jax.grad(self._loss, has_aux=True)

        def minibatch_step(
            carry: tuple[Any, Any], batch: dict[str, jax.Array]
        ) -> tuple[tuple[Any, Any], Any]:
            params, opt_state = carry
            grads, metrics = grad_fn(params, batch)
            updates, opt_state = self.tx.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), metrics

        def epoch(carry: tuple[Any, Any], epoch_key: jax.Array) -> tuple[tuple[Any, Any], Any]:
            perm = jax.random.permutation(epoch_key, n)
            batches = jax.tree.map(lambda x: x[perm].reshape((m, n // m, *x.shape[1:])), data)
            return jax.lax.scan(minibatch_step, carry, batches)

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(key, cfg.update_epochs)
        )
        return params, opt_state, stats, jax.tree.map(jnp.mean, metrics)
