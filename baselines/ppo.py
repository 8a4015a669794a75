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

Continuous actions follow CleanRL's ppo_continuous_action.py, whose wrappers clip actions to the
bounds, normalise observations (clip 10) and divide rewards by the running standard deviation of the
discounted return (clip 10), and whose learning rate falls linearly to 0 over the run:

- Actions are clipped to the action space's bounds inside ``act`` (the harness steps the env with what
  ``act`` returns, and ``Transition.action`` carries it): the env sees exactly CleanRL's clipped
  actions. The raw Gaussian sample is not recoverable at learning time, so the log-probability is that
  of the clipped action under the censored Gaussian (density inside the box, the Gaussian's tail mass
  at a bound): the clipped-action policy gradient of Fujita & Maeda (ICML 2018), which has the same
  expectation as CleanRL's unclipped-sample estimator and lower variance. This is the one deviation.
- Observation normalisation (``normalize_obs``): running mean and variance, clip 10. The rollout keeps
  raw observations; a learning phase normalises them with the statistics the policy acted with (CleanRL
  stores them normalised at collection time, so PPO's ratio starts at 1) and then merges the rollout
  into the statistics for the next one. CleanRL updates its statistics every step, we once per rollout.
- Reward normalisation (``normalize_reward``) is CleanRL's NormalizeReward (gym 0.23 as CleanRL pins it):
  per step, the discounted return ``R = gamma R + r`` is merged into running statistics, the reward is
  divided by ``sqrt(var(R) + 1e-8)`` and clipped to +-10, and ``R`` restarts at 0 after an episode end.
  The rollout stores the normalised reward, as CleanRL's buffer does.
- Learning-rate annealing (``anneal_lr``): the i-th learning phase (1-based) uses
  ``lr * (1 - (i - 1) / num_iterations)`` with ``num_iterations = total_steps // n_steps``, CleanRL's
  schedule; the budget comes from ``EnvInfo.budget``, which the harness sets from ``--steps``
  (constant lr when it is unknown). So a 100K and a 200K run differ from the first update on.

Kept from before because it is better than CleanRL: truncated steps bootstrap from the true final
observation (CleanRL treats a time limit as a termination).

Discrete actions: the defaults are this benchmark's own compromise, not CleanRL's ppo.py and not the
rl-zoo CartPole entry; each field's docstring says where its value comes from. Against the anchors:
CleanRL ppo.py uses 4 envs x 128 steps, 4 minibatches, 4 epochs, lr 2.5e-4 annealed, entropy 0.01;
rl-zoo CartPole-v1 uses 8 envs x 32 steps, batch 256, 20 epochs, lr and clip range annealed from
1e-3 and 0.2, gamma 0.98, GAE lambda 0.8, entropy 0. Here: zoo's 256 samples per rollout with
CleanRL continuous's optimisation (minibatch 64, 10 epochs, lr 3e-4 annealed, gamma 0.99, lambda 0.95,
entropy 0, no reward normalisation), which reaches 500 on CartPole within 100K steps (README,
Benchmarks).
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
)
from mbrl_bench.baselines.common.networks import MLP, activation
from mbrl_bench.baselines.common.normalization import RunningStats, normalize, stats_init, stats_merge
from mbrl_bench.baselines.common.spaces import encode, feature_dim, raw_observation


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters. Sources: CleanRL ppo_continuous_action.py (CRL-C) and ppo.py (CRL-D), SB3
    rl-zoo's CartPole-v1 entry (ZOO). Continuous defaults are CRL-C's; discrete ones are mixed, as
    each field says (see the module docstring)."""

    n_steps: int | None = None
    """Env steps per rollout (one env); None: 256 for discrete actions (ZOO CartPole: 8 envs x 32;
    CRL-D 4 x 128 = 512), 2048 for continuous (CRL-C: 1 env x 2048)."""
    minibatch_size: int = 64
    """Samples per gradient step: CRL-C (2048 / 32 minibatches); discrete: the same (CRL-D 512 / 4 =
    128, ZOO 256); must divide n_steps."""
    update_epochs: int = 10
    """Passes over each rollout: CRL-C 10; discrete: the same (CRL-D 4, ZOO 20)."""
    learning_rate: float = 3e-4
    """Adam step size at the start: CRL-C 3e-4; discrete: the same (CRL-D 2.5e-4, ZOO 1e-3)."""
    anneal_lr: bool = True
    """Anneal the step size linearly to 0 over the run's budget (``EnvInfo.budget``): CRL-C and
    CRL-D (ZOO anneals too, ``lin_1e-3``). Constant when the budget is unknown."""
    adam_eps: float = 1e-5
    """Adam epsilon: CRL (the PPO implementation details of Huang et al. 2022)."""
    gamma: float = 0.99
    """Discount: CRL-C, CRL-D and the PPO paper's MuJoCo setting (ZOO CartPole 0.98)."""
    gae_lambda: float = 0.95
    """GAE lambda: CRL-C, CRL-D and the PPO paper (ZOO CartPole 0.8)."""
    clip_coef: float = 0.2
    """Ratio clip epsilon: the PPO paper and CRL."""
    clip_value_loss: bool = True
    """Clip the value update around the old values like the ratio: CRL (OpenAI baselines' ppo2)."""
    ent_coef: float = 0.0
    """Entropy bonus weight: CRL-C and ZOO CartPole 0.0 (CRL-D 0.01)."""
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
    """Running observation normalisation, clipped to +-10; None: on for continuous actions (CRL-C's
    NormalizeObservation and clip), off for discrete (CRL-D, ZOO CartPole)."""
    normalize_reward: bool | None = None
    """Divide rewards by the running std of the discounted return and clip to +-``reward_clip``; None:
    on for continuous actions (CRL-C's NormalizeReward and clip), off for discrete (CRL-D, ZOO)."""
    reward_clip: float = 10.0
    """Clip of normalised rewards: CRL-C (TransformReward clip to +-10)."""


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
    return_stats: RunningStats
    """Running statistics of the discounted return, updated every step (reward normalisation)."""
    discounted_return: jax.Array
    """The current episode's discounted return so far, ``R = gamma R + r`` (reward normalisation)."""
    rollout: Transition
    """The current rollout; its rewards are the normalised ones when reward normalisation is on."""
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


def clipped_gaussian_log_prob(
    mean: jax.Array, log_std: jax.Array, action: jax.Array, low: np.ndarray, high: np.ndarray
) -> jax.Array:
    """log-probability of ``action = clip(x, low, high)``, ``x ~ N(mean, exp(log_std)^2)`` per dim, summed
    over the last axis (the censored Gaussian of Fujita & Maeda 2018, "Clipped Action Policy Gradient").

    Inside the box it is the Gaussian log-density; an action component at a finite bound has the
    Gaussian's tail mass beyond that bound, log Phi((low - mean) / std) or log Phi((mean - high) / std).
    Infinite bounds never clip; they are masked out statically so no inf enters the gradient.
    """
    std = jnp.exp(log_std)
    z = (action - mean) / std
    inside = -0.5 * z**2 - log_std - 0.5 * np.log(2.0 * np.pi)
    has_low, has_high = np.isfinite(low), np.isfinite(high)
    low_safe, high_safe = np.where(has_low, low, 0.0), np.where(has_high, high, 0.0)
    at_low = has_low & (action <= low_safe)
    at_high = has_high & (action >= high_safe)
    below = jax.scipy.special.log_ndtr((low_safe - mean) / std)
    above = jax.scipy.special.log_ndtr((mean - high_safe) / std)
    return jnp.sum(jnp.where(at_low, below, jnp.where(at_high, above, inside)), axis=-1)


def normalize_reward(
    return_stats: RunningStats,
    discounted_return: jax.Array,
    reward: jax.Array,
    done: jax.Array,
    gamma: float,
    clip: float,
) -> tuple[RunningStats, jax.Array, jax.Array]:
    """One step of CleanRL's reward normalisation (gym 0.23's NormalizeReward, then a clip).

    ``R = gamma R + r`` is merged into the running statistics, the reward is divided by
    ``sqrt(var(R) + 1e-8)`` and clipped to +-``clip``, and ``R`` restarts at 0 when the episode ended.

    Returns:
        (updated statistics, the new ``R``, the normalised reward).
    """
    ret = discounted_return * gamma + reward
    stats = stats_merge(return_stats, ret.reshape(1, 1))
    scaled = jnp.clip(reward / jnp.sqrt(stats.var[0] + 1e-8), -clip, clip)
    return stats, jnp.where(done, jnp.zeros_like(ret), ret), scaled


def annealed_learning_rate(
    learning_rate: float, step: jax.Array, n_steps: int, total_steps: int | None
) -> jax.Array:
    """CleanRL's linear schedule: the learning phase ending at env ``step`` (phase i = step // n_steps,
    counting from 1) uses ``lr * (1 - (i - 1) / (total_steps // n_steps))``; constant if ``total_steps``
    is None or shorter than one rollout (no phase would run anyway)."""
    iterations = (total_steps or 0) // n_steps
    if iterations < 1:
        return jnp.asarray(learning_rate, jnp.float32)
    phase = step // n_steps
    frac = 1.0 - (phase - 1).astype(jnp.float32) / iterations
    return learning_rate * jnp.clip(frac, 0.0, 1.0)


_METRICS = ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "learning_rate")


@register_agent
class PPO(Agent):
    """Proximal Policy Optimization with GAE, for discrete and continuous (Gaussian) actions."""

    name: ClassVar[str] = "ppo"
    Config: ClassVar[type] = PPOConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete", "continuous"})
    description: ClassVar[str] = "PPO, clipped objective + GAE (model-free reference, CleanRL settings)"

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
        if self.continuous:
            self.action_low = np.asarray(space.low, np.float32)
            self.action_high = np.asarray(space.high, np.float32)
        self.use_obs_norm = self.continuous if config.normalize_obs is None else config.normalize_obs
        self.use_reward_norm = self.continuous if config.normalize_reward is None else config.normalize_reward
        if not config.reward_clip > 0:
            raise ValueError(f"reward_clip must be > 0, got {config.reward_clip}")
        self.total_steps = env.budget
        self.net = ActorCritic(config.hidden_sizes, config.activation, num_outputs, self.continuous)
        # Adam without its step size: the (annealed) learning rate multiplies the update in ``_learn``.
        self.tx = optax.chain(
            optax.clip_by_global_norm(config.max_grad_norm),
            optax.scale_by_adam(eps=config.adam_eps),
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
        return PPOState(
            params,
            self.tx.init(params),
            stats_init(self.obs_dim),
            stats_init(1),
            jnp.zeros(()),
            rollout,
            metrics,
        )

    def _inputs(self, stats: RunningStats, obs: jax.Array) -> jax.Array:
        x = encode(self.obs_space, obs)
        return normalize(stats, x) if self.use_obs_norm else x

    def _log_prob_entropy(
        self, out: jax.Array, log_std: jax.Array, action: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        if self.continuous:
            log_prob = clipped_gaussian_log_prob(out, log_std, action, self.action_low, self.action_high)
            return log_prob, gaussian_entropy(log_std)
        return categorical_log_prob(out, action), categorical_entropy(out)

    def act(self, state: PPOState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        out, log_std, _ = self.net.apply(state.params, self._inputs(state.obs_stats, obs))
        if self.continuous:
            if explore:
                out = out + jnp.exp(log_std) * jax.random.normal(key, out.shape)
            return jnp.clip(out, self.action_low, self.action_high)
        if not explore:
            return jnp.argmax(out).astype(jnp.int32)
        return jax.random.categorical(key, out).astype(jnp.int32)

    def update(
        self, state: PPOState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[PPOState, dict[str, jax.Array]]:
        cfg = self.config
        i = (step - 1) % self.n_steps
        reward = jnp.asarray(transition.reward, jnp.float32)
        return_stats, discounted_return = state.return_stats, state.discounted_return
        if self.use_reward_norm:
            done = jnp.asarray(transition.terminated) | jnp.asarray(transition.truncated)
            return_stats, discounted_return, reward = normalize_reward(
                return_stats, discounted_return, reward, done, cfg.gamma, cfg.reward_clip
            )
        item = Transition(
            transition.obs,
            transition.action,
            reward,
            transition.next_obs,
            transition.terminated,
            transition.truncated,
        )
        rollout = jax.tree.map(lambda buf, x: buf.at[i].set(jnp.asarray(x, buf.dtype)), state.rollout, item)
        # The rollout is an operand, not an output, of the cond: outputs are copied every step.
        learner = (state.params, state.opt_state, state.obs_stats, state.metrics)
        learner = jax.lax.cond(
            step % self.n_steps == 0, self._learn, lambda lr, ro, k, s: lr, learner, rollout, key, step
        )
        params, opt_state, obs_stats, metrics = learner
        state = PPOState(params, opt_state, obs_stats, return_stats, discounted_return, rollout, metrics)
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
        self, learner: tuple[Any, Any, RunningStats, Any], ro: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[Any, ...]:
        cfg = self.config
        params, opt_state, obs_stats, _ = learner
        if cfg.anneal_lr:
            lr = annealed_learning_rate(cfg.learning_rate, step, self.n_steps, self.total_steps)
        else:
            lr = jnp.asarray(cfg.learning_rate, jnp.float32)
        # Train on the inputs the policy acted on (CleanRL stores them normalised at collection time), so
        # the ratio starts at 1; the merged statistics serve the next rollout.
        inputs = self._inputs(obs_stats, ro.obs)
        old_out, old_log_std, old_value = self.net.apply(params, inputs)
        _, _, next_value = self.net.apply(params, self._inputs(obs_stats, ro.next_obs))
        old_log_prob, _ = self._log_prob_entropy(old_out, old_log_std, ro.action)
        advantage = gae(
            ro.reward, old_value, next_value, ro.terminated, ro.truncated, cfg.gamma, cfg.gae_lambda
        )
        stats = stats_merge(obs_stats, encode(self.obs_space, ro.obs)) if self.use_obs_norm else obs_stats
        data = {
            "inputs": inputs,
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
            updates = jax.tree.map(lambda u: -lr * u, updates)
            return (optax.apply_updates(params, updates), opt_state), metrics

        def epoch(carry: tuple[Any, Any], epoch_key: jax.Array) -> tuple[tuple[Any, Any], Any]:
            perm = jax.random.permutation(epoch_key, n)
            batches = jax.tree.map(lambda x: x[perm].reshape((m, n // m, *x.shape[1:])), data)
            return jax.lax.scan(minibatch_step, carry, batches)

        (params, opt_state), metrics = jax.lax.scan(
            epoch, (params, opt_state), jax.random.split(key, cfg.update_epochs)
        )
        metrics = {**jax.tree.map(jnp.mean, metrics), "learning_rate": lr}
        return params, opt_state, stats, metrics
