"""MBPO (Janner et al. 2019, "When to Trust Your Model"): SAC on short branched rollouts of a learned
Gaussian ensemble, as the official code (github.com/jannerm/mbpo, ``mbpo/algorithms/mbpo.py`` and
``mbpo/models/bnn.py``; settings in ``examples/config/``).

Per env step (from env step ``start_steps`` on; uniform random actions before it):

1. every ``model_train_every`` (250) env steps, the ensemble (7 members, 4 x 200 swish, per-layer weight
   decay, learned log-variance bounds with their 0.01 penalty) is trained on the whole real buffer to
   early stopping on a held-out split, each member on its own bootstrap resample, and the 5 members with
   the lowest held-out MSE become the elites (``mbrl_bench.models.ModelTrainer``, ``bootstrap=True``);
2. ``rollouts_per_step`` (400: the official 100K per retrain spread over its 250 env steps) branches start
   from states drawn uniformly from the real buffer and run ``k`` model steps with actions sampled from
   the current stochastic policy, each transition from a uniformly random elite with a Gaussian sample,
   the learned reward and the task's TRUE termination function (the official static termination
   functions; on Gymnasium ids without one, a classifier learned at each retrain,
   ``mbrl_bench.models.termination``); a branch stops after its terminal transition. ``k`` follows the
   rollout schedule [start epoch, end epoch, min len, max len] (official ``set_rollout_length``; an epoch is
   ``epoch_length`` env steps counted from the end of the initial random phase, as the official epoch
   loop starts after its initial exploration);
3. ``updates_per_step`` SAC updates (one ``lax.scan``), each on a batch of int(0.05 x 256) = 12 real and
   244 model transitions.

The model pool keeps the last ``model_retain_epochs`` epochs of rollouts at the current length,
``k x rollouts_per_step x epoch_length`` transitions, as the official pool that is reallocated to
``rollout_length x rollouts_per_epoch`` at every retrain. Its static capacity is that size at the longest
rollout the run reaches within its budget (``EnvInfo.budget``), so a 50K-step Hopper run holds 1.2M
model transitions, not the 6M a 15-step schedule would need at the end of the full official run.

Everything runs inside the one jitted, seed-vmappable ``update``: the retrain is a ``lax.cond`` on the
step schedule around ``ModelTrainer.fit``'s ``lax.while_loop``, the rollouts one ``lax.scan`` (steps past
the current length skipped by a ``lax.cond`` on the unbatched step), the G SAC updates one ``lax.scan``.

Per-env presets (``PRESETS``, official ``examples/config/``): Hopper 20 updates per step, target entropy
-1, schedule [20, 150, 1, 15]; HalfCheetah 40, -3, [20, 150, 1, 1]; Walker2d 20, -3, [20, 150, 1, 1];
Ant 20, -4, [20, 100, 1, 25] (the official Ant truncates its observation to 27 dims; ours keeps all 107 but
x, y). As in the official code's gym v2 envs, the SAC and the ensemble do not read the absolute x (Ant: x,
y) position (``hide_position``).
Distractor variants take their base env's preset. Every other env (ours, no official setting): 20 updates
per step, target entropy -|A| (softlearning) on Box actions or 0.5 log|A| on discrete ones (the shared
discrete SAC's, see ``SACConfig.target_entropy_ratio``), schedule [20, 100, 1, 1]. A config field left
at None takes the preset; ``--set`` overrides it.

Discrete actions use the discrete SAC of ``baselines.common.sac`` (categorical policy, exact expectations
over actions); the model sees the action one-hot. Box observations only (the tabular ids' state indices
are no inputs for a Gaussian regression model).

Where this differs from the official code, and why: each member has its own log-variance bounds (the
models' convention, see ``mbrl_bench.models.mlp``); each member's minibatches are drawn with replacement
from its bootstrap resample instead of shuffled passes over it; the rows of a rollout step are dealt to
the elites in equal random shares (``DynamicsModel.step_balanced``) so only the chosen member is computed
for each row; rollouts are spread over env steps rather than made in one batch of 100K per retrain, so
each uses the current policy.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax
from mbrl_bench.baselines.api import Agent, EnvInfo, Transition, register_agent
from mbrl_bench.baselines.common.replay import (
    Replay,
    replay_add,
    replay_get,
    replay_init,
    replay_size,
    sample_uniform,
)
from mbrl_bench.baselines.common.sac import (
    SAC,
    Batch,
    DiscreteSAC,
    EnvAdapter,
    SACConfig,
    SACState,
)

from mbrl_bench.models.capacity import parse_capacity
from mbrl_bench.models.dynamics import DynamicsModel, ModelConfig, ModelParams, Transitions
from mbrl_bench.models.termination import Labelled, TerminationConfig, TerminationModel, TerminationState
from mbrl_bench.models.training import ModelTrainer, TrainConfig

Schedule = tuple[int, int, int, int]


@dataclass(frozen=True)
class MBPOPreset:
    """The official per-env settings (jannerm/mbpo ``examples/config/<env>.py``)."""

    updates_per_step: int
    """``n_train_repeat``: SAC updates per env step."""
    target_entropy: float | None
    """SAC's target entropy; None: -|A| (softlearning's ``'auto'``) or ``target_entropy_ratio`` log|A| for
    discrete actions."""
    rollout_schedule: Schedule
    """``rollout_schedule`` [start epoch, end epoch, min length, max length]."""


PRESETS: dict[str, MBPOPreset] = {
    "Hopper": MBPOPreset(20, -1.0, (20, 150, 1, 15)),
    "HalfCheetah": MBPOPreset(40, -3.0, (20, 150, 1, 1)),
    "Walker2d": MBPOPreset(20, -3.0, (20, 150, 1, 1)),
    "Ant": MBPOPreset(20, -4.0, (20, 100, 1, 25)),
}
DEFAULT_PRESET = MBPOPreset(20, None, (20, 100, 1, 1))
"""Ours, for envs the official code has no setting for: its most common values."""


def preset_for(env_id: str) -> MBPOPreset:
    """The preset of ``env_id``'s base task (``mbrl_bench/HopperDistractor-v0`` -> Hopper), else ours."""
    base = re.sub(r"(Distractor)?-v\d+$", "", env_id.rsplit("/", 1)[-1])
    return PRESETS.get(base, DEFAULT_PRESET)


def rollout_length(schedule: Schedule, epoch: int | jax.Array) -> jax.Array:
    """Official ``set_rollout_length``: min length up to the start epoch, then linear in the epoch up to the
    max length at the end epoch, truncated to an integer."""
    start, end, low, high = schedule
    fraction = jnp.clip((jnp.asarray(epoch, jnp.float32) - start) / max(end - start, 1), 0.0, 1.0)
    return (low + fraction * (high - low)).astype(jnp.int32)


@dataclass(frozen=True)
class MBPOConfig:
    """MBPO's hyperparameters; defaults are the official code's (jannerm/mbpo ``examples/config/``,
    ``mbpo/models/bnn.py``) unless noted; None takes the env's preset (``PRESETS``)."""

    hidden_sizes: tuple[int, ...] = (256, 256)
    """SAC actor and critic hidden widths (softlearning's (256, 256))."""
    actor_lr: float = 3e-4
    """Adam step size of the actor (official 3e-4)."""
    critic_lr: float = 3e-4
    """Adam step size of the critics (official 3e-4)."""
    temperature_lr: float = 3e-4
    """Adam step size of log(alpha) (official 3e-4)."""
    batch_size: int = 256
    """SAC minibatch (official 256)."""
    tau: float = 5e-3
    """Polyak coefficient of the target critics (official 5e-3)."""
    discount: float = 0.99
    """gamma (official 0.99)."""
    init_temperature: float = 1.0
    """Initial alpha (softlearning: 1)."""
    target_entropy: float | None = None
    """SAC's target entropy on Box actions; None: the env's preset (Hopper -1, HalfCheetah -3, ...)."""
    target_entropy_ratio: float = 0.5
    """Discrete actions: target entropy = ratio x log|A|; the shared discrete SAC's default (ours, not
    Christodoulou 2019's 0.98, under which alpha diverged on CartPole: ``SACConfig.target_entropy_ratio``)."""
    updates_per_step: int | None = None
    """G, SAC updates per env step (official ``n_train_repeat``); None: the env's preset."""
    real_ratio: float = 0.05
    """Share of real transitions in each SAC batch, int(ratio x batch) of them (official 0.05)."""
    start_steps: int = 5000
    """Uniform random env steps before any learning (official ``n_initial_exploration_steps``)."""
    replay_capacity: int = 1_000_000
    """Real replay size (official 1e6), capped at the run's budget."""
    rollout_schedule: tuple[int, ...] | None = None
    """[start epoch, end epoch, min length, max length] (official ``rollout_schedule``); None: preset."""
    rollouts_per_step: int = 400
    """Branches started per env step: the official 100K per retrain over 250 env steps."""
    epoch_length: int = 1000
    """Env steps per epoch, the unit of the rollout schedule (official 1000)."""
    model_retain_epochs: int = 1
    """Epochs of rollouts the model pool keeps (official 1)."""
    model_train_every: int = 250
    """Env steps between model retrains (official ``model_train_freq``)."""
    ensemble_size: int = 7
    """Members of the ensemble (official ``num_networks``)."""
    num_elites: int = 5
    """Members used for rollouts, the lowest held-out MSE (official ``num_elites``)."""
    model_hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    """Hidden widths of each member, swish (official 4 x 200)."""
    model_lr: float = 1e-3
    """Adam step size of the ensemble (official 1e-3)."""
    model_batch_size: int = 256
    """Model minibatch per member (official 256)."""
    holdout_ratio: float = 0.2
    """Share of the real buffer held out for early stopping and elites (official 0.2)."""
    max_holdout: int = 5000
    """Cap on held-out transitions (official 5000)."""
    model_patience: int = 5
    """Stop after this many epochs in a row without a 1% held-out improvement (official 5)."""
    model_max_epochs: int | None = None
    """Cap on epochs per retrain (official: none, early stopping only); the metric ``model_hit_limit``
    says when a retrain stopped at it."""
    termination_steps: int = 250
    """On ids without a true termination function (Gymnasium ids not mbrl-bench's): Adam steps per retrain
    of the learned termination classifier that ends rollouts there (``mbrl_bench.models.termination``; ours,
    the official code has a static function per env)."""
    hide_position: bool = True
    """The SAC and the ensemble do not read the task's absolute x (Ant: x, y) position, which the official
    code's gym v2 envs exclude from the observation (``exclude_current_positions_from_observation``); the
    termination functions read heights and angles, never x, so rollouts pass them x = 0."""

    def __post_init__(self) -> None:
        positive = ("batch_size", "rollouts_per_step", "epoch_length", "model_retain_epochs",
                    "model_train_every", "model_batch_size", "replay_capacity")  # fmt: skip
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.updates_per_step is not None and self.updates_per_step < 1:
            raise ValueError(f"updates_per_step must be >= 1 or none, got {self.updates_per_step!r}")
        if self.start_steps < 1:
            raise ValueError(
                f"start_steps must be >= 1 (the first retrain needs data), got {self.start_steps!r}"
            )
        if not 0.0 <= self.real_ratio <= 1.0:
            raise ValueError(f"real_ratio must be in [0, 1], got {self.real_ratio!r}")
        if self.rollout_schedule is not None:
            s = self.rollout_schedule
            if len(s) != 4 or s[0] > s[1] or not 1 <= s[2] <= s[3]:
                raise ValueError(
                    "rollout_schedule must be start_epoch,end_epoch,min_len,max_len with start <= end and "
                    f"1 <= min_len <= max_len, got {s!r}"
                )


class MBPOState(NamedTuple):
    """One seed's state."""

    learner: SACState
    model: ModelParams
    model_opt: optax.OptState
    replay: Replay
    pool: Replay
    """Model transitions (``Batch``); ``count`` = valid transitions ever written."""
    steps: jax.Array
    model_info: dict[str, jax.Array]
    """The last retrain's held-out loss, epochs, limit flag and elite indicators (reported every step)."""
    termination: TerminationState | tuple[()]
    """The learned termination's state; () where the task's true termination is used."""


@register_agent
class MBPOAgent(Agent):
    """Model-based policy optimisation (see the module docstring)."""

    name: ClassVar[str] = "mbpo"
    Config: ClassVar[type] = MBPOConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete", "continuous"})
    uses_model: ClassVar[bool] = True
    description: ClassVar[str] = (
        "MBPO: SAC on branched rollouts of a Gaussian ensemble, official per-env settings"
    )

    def __init__(self, config: MBPOConfig, env: EnvInfo, capacity: str = "full") -> None:
        if not isinstance(env.observation_space, gym.spaces.Box) or len(env.observation_space.shape) != 1:
            raise ValueError(
                f"mbpo needs flat vector (Box) observations, {env.env_id} has {env.observation_space}"
            )
        super().__init__(config, env, capacity)
        self.io = EnvAdapter.for_spaces(
            env.observation_space, env.action_space, env.task.layout, config.hide_position
        )
        self.discrete, self.obs_dim, self.action_dim = self.io.discrete, self.io.obs_dim, self.io.action_dim
        preset = preset_for(env.env_id)
        self.updates_per_step = config.updates_per_step or preset.updates_per_step
        self.schedule: Schedule = tuple(config.rollout_schedule or preset.rollout_schedule)  # type: ignore[assignment]
        self.replay_capacity = min(config.replay_capacity, env.budget or config.replay_capacity)
        sac_config = SACConfig(
            hidden_sizes=tuple(config.hidden_sizes),
            actor_lr=config.actor_lr,
            critic_lr=config.critic_lr,
            temperature_lr=config.temperature_lr,
            batch_size=config.batch_size,
            tau=config.tau,
            discount=config.discount,
            init_temperature=config.init_temperature,
            target_entropy_ratio=config.target_entropy_ratio,
            start_steps=config.start_steps,
            updates_per_step=self.updates_per_step,
            replay_capacity=self.replay_capacity,
        )
        if self.discrete:
            self.sac: SAC = DiscreteSAC(sac_config, self.obs_dim, self.action_dim)
        else:
            target = config.target_entropy if config.target_entropy is not None else preset.target_entropy
            target = -float(self.action_dim) if target is None else target
            scale = -target / self.action_dim  # SACConfig states the target as -scale x |A|
            self.sac = SAC(
                dataclasses.replace(sac_config, target_entropy_scale=scale), self.obs_dim, self.action_dim
            )
        model_config = ModelConfig(
            hidden_sizes=tuple(config.model_hidden_sizes),
            ensemble_size=config.ensemble_size,
            num_elites=config.num_elites,
        )
        self.dynamics = DynamicsModel(
            model_config, self.obs_dim, self.action_dim, self.discrete, parse_capacity(capacity)
        )
        self.trainer = ModelTrainer(
            self.dynamics,
            TrainConfig(
                learning_rate=config.model_lr,
                batch_size=config.model_batch_size,
                holdout_ratio=config.holdout_ratio,
                max_holdout=config.max_holdout,
                patience=config.model_patience,
                max_epochs=config.model_max_epochs,
                bootstrap=True,
            ),
        )
        self.termination = None
        """The learned termination classifier, on ids without a true termination function."""
        if not env.task.true_functions:
            classifier = TerminationConfig(steps=config.termination_steps)
            self.termination = TerminationModel(classifier, self.obs_dim, self.action_dim, self.discrete)
        last_epoch = ((env.budget or 10**9) - config.start_steps) // config.epoch_length
        self.horizon = max(int(rollout_length(self.schedule, max(last_epoch, 0))), 1)
        """Static scan length: the longest rollout the run reaches within its budget."""
        self.pool_capacity = (
            self.horizon * config.rollouts_per_step * config.epoch_length * config.model_retain_epochs
        )
        self.n_real = int(config.batch_size * config.real_ratio)

    # ---- state ----------------------------------------------------------------------------------
    def _empty_model_info(self) -> dict[str, jax.Array]:
        info = {
            "model_holdout_loss": jnp.zeros(()),
            "model_epochs": jnp.zeros(()),
            "model_hit_limit": jnp.zeros(()),
        }
        if self.termination is not None:
            info["termination_loss"] = jnp.zeros(())
        return info | {f"elite_m{i}": jnp.zeros(()) for i in range(self.config.ensemble_size)}

    def init(self, key: jax.Array) -> MBPOState:
        k_sac, k_model = jax.random.split(key)
        model = self.dynamics.init(k_model)
        return MBPOState(
            learner=self.sac.init(k_sac),
            model=model,
            model_opt=self.trainer.init_optimizer(model),
            replay=replay_init(self.io.example_item(), self.replay_capacity),
            pool=replay_init(self.io.example_item(), self.pool_capacity),
            steps=jnp.zeros((), jnp.int32),
            model_info=self._empty_model_info(),
            termination=()
            if self.termination is None
            else self.termination.init(jax.random.fold_in(k_model, 1)),
        )

    # ---- acting ---------------------------------------------------------------------------------
    def act(self, state: MBPOState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        random_phase = state.steps < self.config.start_steps
        return self.io.act(self.sac, state.learner.actor, obs, key, explore, random_phase)

    # ---- pieces ---------------------------------------------------------------------------------
    def epoch(self, step: jax.Array) -> jax.Array:
        """The official epoch counter: whole epochs since the initial random phase ended."""
        return jnp.maximum(step - self.config.start_steps, 0) // self.config.epoch_length

    def retrain(self, state: MBPOState, key: jax.Array) -> MBPOState:
        """Train the ensemble on the whole real buffer to early stopping; new elites and model metrics."""
        data = state.replay.data
        real = Transitions(data.obs, data.action, data.reward, data.next_obs)
        model, model_opt, fit = self.trainer.fit(
            state.model, state.model_opt, real, key, replay_size(state.replay)
        )
        is_elite = jnp.zeros(self.config.ensemble_size).at[model.elites].set(1.0)
        limit = self.config.model_max_epochs
        info = {
            "model_holdout_loss": jnp.mean(fit.holdout_mse[model.elites]),
            "model_epochs": fit.epochs.astype(jnp.float32),
            "model_hit_limit": (fit.epochs >= limit).astype(jnp.float32) if limit else jnp.zeros(()),
        } | {f"elite_m{i}": is_elite[i] for i in range(self.config.ensemble_size)}
        termination = state.termination
        if self.termination is not None:
            labelled = Labelled(data.obs, data.action, data.next_obs, 1.0 - data.not_done)
            key_term = jax.random.fold_in(key, 1)
            termination, info["termination_loss"] = self.termination.fit(
                termination, labelled, replay_size(state.replay), key_term
            )
        return state._replace(model=model, model_opt=model_opt, model_info=info, termination=termination)

    def rollout(self, state: MBPOState, key: jax.Array, length: jax.Array) -> tuple[Batch, jax.Array]:
        """``rollouts_per_step`` branches of up to ``length`` model steps from uniform real states.

        Returns the transitions [horizon, N] (``Batch``, not_done = 1 - the true termination) and which are
        valid [horizon, N]: those taken before ``length`` while the branch had not terminated (its
        terminal transition included). A dead branch stays at its last observation.
        """
        k_start, k_steps = jax.random.split(key)
        starts = replay_get(
            state.replay, sample_uniform(state.replay, k_start, self.config.rollouts_per_step)
        ).obs
        actor, model = state.learner.actor, state.model
        n = self.config.rollouts_per_step
        termination = self.env.task.termination_fn

        def model_step(obs: jax.Array, k: jax.Array) -> tuple[jax.Array, ...]:
            k_act, k_model = jax.random.split(k)
            action, _ = self.sac.sample(actor, obs, k_act)
            next_obs, reward = self.dynamics.step_balanced(model, obs, action, k_model)
            if self.termination is None:
                terminated = termination(
                    self.io.unview(obs), self.io.to_env(action), self.io.unview(next_obs)
                )
            else:
                terminated = self.termination.terminated(state.termination, obs, action, next_obs)
            terminated = terminated.astype(bool)
            return action, reward.astype(jnp.float32), next_obs.astype(jnp.float32), terminated

        def skipped(obs: jax.Array, k: jax.Array) -> tuple[jax.Array, ...]:
            action = self.io.example_item().action
            action = jnp.zeros((n, *action.shape), action.dtype)
            return action, jnp.zeros(n), obs, jnp.ones(n, bool)

        def body(
            carry: tuple[jax.Array, jax.Array], inputs: tuple[jax.Array, jax.Array]
        ) -> tuple[tuple, tuple]:
            obs, alive = carry
            t, k = inputs
            active = t < length
            action, reward, next_obs, terminated = jax.lax.cond(active, model_step, skipped, obs, k)
            valid = alive & active
            still = valid & ~terminated
            item = Batch(obs, action, reward, next_obs, 1.0 - terminated.astype(jnp.float32))
            return (jnp.where(still[:, None], next_obs, obs), still), (item, valid)

        steps = (jnp.arange(self.horizon), jax.random.split(k_steps, self.horizon))
        _, (items, valid) = jax.lax.scan(body, (starts, jnp.ones(n, bool)), steps)
        return items, valid

    def pool_add(self, pool: Replay, items: Batch, valid: jax.Array) -> Replay:
        """Write the valid transitions, in order, after the last written one (ring buffer); drop the rest."""
        flat_valid = valid.reshape(-1)
        rank = jnp.cumsum(flat_valid) - 1
        slot = jnp.where(flat_valid, (pool.count + rank) % self.pool_capacity, self.pool_capacity)
        flat = jax.tree.map(lambda x: x.reshape(-1, *x.shape[2:]), items)
        data = jax.tree.map(
            lambda buf, x: buf.at[slot].set(x.astype(buf.dtype), mode="drop"), pool.data, flat
        )
        return Replay(data, pool.count + flat_valid.sum(dtype=jnp.int32))

    def pool_window(self, pool: Replay, length: jax.Array) -> jax.Array:
        """How many of the latest model transitions are sampled: the official pool at the current length."""
        c = self.config
        official = length * c.rollouts_per_step * c.epoch_length * c.model_retain_epochs
        return jnp.minimum(jnp.minimum(pool.count, self.pool_capacity), official)

    def mixed_batch(self, state: MBPOState, key: jax.Array, length: jax.Array) -> Batch:
        """int(real_ratio x batch) real transitions, then the rest from the latest model transitions."""
        k_real, k_model = jax.random.split(key)
        real = replay_get(state.replay, sample_uniform(state.replay, k_real, self.n_real))
        n_model = self.config.batch_size - self.n_real
        back = jax.random.randint(
            k_model, (n_model,), 0, jnp.maximum(self.pool_window(state.pool, length), 1)
        )
        fake = replay_get(state.pool, state.pool.count - 1 - back)
        return jax.tree.map(lambda a, b: jnp.concatenate([a, b]), real, fake)

    # ---- the env step ---------------------------------------------------------------------------
    def update(
        self, state: MBPOState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[MBPOState, dict[str, jax.Array]]:
        item = self.io.replay_item(transition)
        state = state._replace(replay=replay_add(state.replay, item), steps=state.steps + 1)
        return jax.lax.cond(step >= self.config.start_steps, self._learn, self._idle, state, key, step)

    def _metric_names(self) -> tuple[str, ...]:
        sac = ("critic_loss", "q_mean", "actor_loss", "entropy", "alpha")
        return (*sac, "rollout_length", "rollout_valid_frac", *self._empty_model_info())

    def _idle(
        self, state: MBPOState, key: jax.Array, step: jax.Array
    ) -> tuple[MBPOState, dict[str, jax.Array]]:
        return state, {name: jnp.zeros(()) for name in self._metric_names()}

    def _learn(
        self, state: MBPOState, key: jax.Array, step: jax.Array
    ) -> tuple[MBPOState, dict[str, jax.Array]]:
        k_model, k_rollout, k_sac = jax.random.split(key, 3)
        due = (step - self.config.start_steps) % self.config.model_train_every == 0
        state = jax.lax.cond(due, self.retrain, lambda s, k: s, state, k_model)
        length = jnp.minimum(rollout_length(self.schedule, self.epoch(step)), self.horizon)
        items, valid = self.rollout(state, k_rollout, length)
        state = state._replace(pool=self.pool_add(state.pool, items, valid))
        sample = lambda k: self.mixed_batch(state, k, length)
        learner, info = self.sac.updates(state.learner, sample, k_sac, self.updates_per_step)
        metrics = {name: info[name] for name in ("critic_loss", "q_mean", "actor_loss", "entropy", "alpha")}
        metrics |= {
            "rollout_length": length.astype(jnp.float32),
            "rollout_valid_frac": valid.sum() / (length * self.config.rollouts_per_step),
        }
        return state._replace(learner=learner), metrics | state.model_info
