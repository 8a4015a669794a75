"""PAL and MAL (Rajeswaran, Mordatch, Kumar, ICML 2020, "A Game Theoretic Framework for Model Based RL"):
model-based NPG as a Stackelberg game, with the policy (PAL) or the model (MAL) as the leader.

One code, two official configs (aravindr93/mjrl, branch v2, ``projects/model_based_npg/configs/
hopper_v3_{pal,mal}.txt`` run by ``run_model_based_npg.py``; ``../shared/REFERENCES.md``, "PAL / MAL").
One iteration, as the official loop:

1. collect real data with the noisy policy (``init_samples`` env steps before the first iteration,
   ``iter_samples`` before each later one);
2. add each trajectory's first observation to the init-state buffer, never pruned;
3. drop the oldest whole trajectories while the real buffer holds more than ``buffer_size`` transitions;
4. fit each of the ``num_models`` dynamics models (``model_hidden`` ReLU MLPs predicting s' - s, inputs
   and targets shifted by their mean and scaled by their mean absolute deviation, refit every time;
   output dims whose scale is below 1e-8 masked) by MSE, ``fit_epochs`` passes of minibatches of
   ``fit_batch_size``, stopping after the pass that reaches ``max_fit_steps``; the models and their Adam
   moments carry over between fits (``refresh_fit`` False);
5. take ``inner_steps`` NPG steps (``baselines/common/npg.py``), each from ``update_paths`` start states
   drawn with replacement from the init-state buffer and rolled out with the noisy policy in EVERY model
   (``num_models`` x ``update_paths`` paths) for ``horizon`` steps, states clamped to +-``state_clamp``,
   the task's true reward and termination (a terminal transition ends its path), paths shorter than
   ``min_path_length`` dropped; GAE with value 0 after a terminal state, else the baseline's; the
   time-feature baseline refit on those paths after each step.

``pal`` (policy leads: small recent buffer, aggressive model fit, few conservative NPG steps) and
``mal`` (model leads: large buffer, gentle model fit, many NPG steps) differ only in their config defaults.

Under this harness (``update`` once per env step), an iteration runs inside ``update`` at the env step
that completes its samples: a ``lax.cond`` on the unbatched step at ``init_samples``, then every
``iter_samples`` steps. Where this differs from mjrl, and why:

- **Action repeat.** The official Hopper config repeats each action twice (mjrl's ``GymEnv``,
  rewards summed). Here the agent acts at every step of the registered env: an env kwarg would change
  the env every other agent is scored on, and an agent-side repeat cannot hold at evaluation, where
  ``act`` sees batched episodes and no state of them. So ``iter_samples``, ``init_samples``,
  ``buffer_size`` and ``horizon`` count steps of the registered env, i.e. decisions, as mjrl counts them;
  a mjrl Hopper run covers twice the simulated time for the same counts. Budgets are env steps of the
  registered env.
- **Iterations on a step schedule, not on whole trajectories.** mjrl samples whole trajectories until
  it has at least ``iter_samples`` steps; here the episode in progress at an iteration counts with the
  steps it has so far and continues, under the new policy, as the same trajectory (pruned as one).
- **Actions.** ``act`` clips the Gaussian sample to the action bounds (the env clamps them anyway); the
  real buffer and the model see the clipped action, the NPG likelihood the raw sample (mjrl stores the
  raw action and clamps model-rollout actions to +-100). A discrete action space takes a categorical
  policy (no mjrl counterpart).
- **Reward and termination** are the task's functions of (s, a, s') (``EnvInfo.task``), on each model
  transition; a non-terminated path bootstraps from the baseline's value of its last next state
  (mjrl: of its last state, which is all its paths store). Input scales below 1e-8 become 1 (mjrl adds
  1e-8), so a feature constant in the data cannot blow up at rollout time.
  On Gymnasium ids without true task functions both are learned: the reward by the ensemble's reward
  output on (s, a), fitted beside the dynamics on the reward shifted and scaled as the targets are
  (mjrl's ``learn_reward`` fits a separate network of (s, a, s')), and the termination by a classifier
  of (s, a, s') refitted every iteration (``mbrl_bench.models.termination``).
- **Observation.** Our MuJoCo ids observe the x position (rewards are functions of (s, a, s')); mjrl's
  Hopper-v3 does not. The policy and the baseline skip the task's ``x_position``/``y_position`` dims
  (``hide_position_from_policy``); the models predict them.
- **Model init** is MBPO's truncated normal (``mbrl_bench.models``) where torch uses uniform
  +-1/sqrt(fan_in): the same scale up to 25%. The shared network carries a reward output that is never
  trained nor read where the reward is known.
- **Init-state buffer** holds the first ``init_states_capacity`` (default 20K) episodes' starts before
  it overwrites the oldest: never pruned in any run with fewer episodes.

A capacity spec (``--capacity width:64``...) shapes every ensemble member.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from mbrl_bench.baselines.api import Agent, EnvInfo, Transition, action_kind, register_agent
from mbrl_bench.baselines.common.npg import (
    NPGPolicy,
    TimeBaseline,
    discounted_returns,
    gae_paths,
    masked_mean,
    npg_step,
)

from mbrl_bench.models import DynamicsModel, InputStats, ModelConfig, ModelParams
from mbrl_bench.models.termination import Labelled, TerminationConfig, TerminationModel, TerminationState


@dataclass(frozen=True)
class PALConfig:
    """PAL's settings: the official ``hopper_v3_pal.txt`` (H) and mjrl v2's code defaults (C)."""

    init_samples: int = 4000
    """Env steps collected before the first iteration (H: ``init_samples``)."""
    iter_samples: int = 1000
    """Env steps collected per later iteration (H: ``iter_samples``)."""
    buffer_size: int = 10_000
    """Real transitions kept; the oldest whole trajectories go first (H: ``buffer_size`` 1e4)."""
    inner_steps: int = 5
    """NPG steps per iteration (H: ``inner_steps``)."""
    update_paths: int = 50
    """Start states per NPG step; each is rolled out in every model (H: ``update_paths``)."""
    horizon: int = 500
    """Model rollout length (H: ``horizon``)."""
    fit_epochs: int = 25
    """Passes over the buffer per model fit (H: ``fit_epochs``)."""
    max_fit_steps: int = 10_000
    """Gradient steps per model fit after which no further pass starts (H: ``max_steps`` 1e4)."""
    fit_batch_size: int = 200
    """Model minibatch (H: ``fit_mb_size``)."""
    fit_lr: float = 1e-3
    """Model Adam step size, no weight decay (H: ``fit_lr``, ``fit_wd`` 0)."""
    num_models: int = 4
    """Dynamics models in the ensemble (H: ``num_models``)."""
    model_hidden: tuple[int, ...] = (512, 512)
    """Hidden widths of each model, ReLU (H: ``hidden_size``, ``activation``)."""
    policy_hidden: tuple[int, ...] = (64, 64)
    """Policy hidden widths, tanh (H: ``policy_size``; C: mjrl's ``MLP``)."""
    init_log_std: float = 0.0
    """Initial log-std of the Gaussian policy (H: ``init_log_std``)."""
    min_log_std: float = -2.5
    """Floor of the log-std (H: ``min_log_std``)."""
    step_size: float = 0.05
    """NPG normalised step delta (H: ``step_size``)."""
    gamma: float = 0.995
    """Discount (C: ``train_step``'s default; the config's 0.999 is never passed on)."""
    gae_lambda: float = 0.97
    """GAE lambda (H and C)."""
    cg_iters: int = 25
    """Conjugate-gradient iterations (H: ``FIM_invert_args``)."""
    cg_damping: float = 1e-3
    """Fisher damping (H: ``FIM_invert_args``)."""
    state_clamp: float = 100.0
    """Model-rollout states clamped to +-this (C: ``policy_rollout``'s ``large_value``)."""
    min_path_length: int = 5
    """Model paths shorter than this are dropped (C: ``ModelBasedNPG.train_step``)."""
    init_states_capacity: int = 20_000
    """Init-state buffer slots (no mjrl counterpart: its list grows without bound)."""
    termination_steps: int = 250
    """On ids without true task functions (Gymnasium ids not mbrl-bench's): Adam steps per iteration of
    the learned termination classifier (``mbrl_bench.models.termination``; ours)."""
    hide_position_from_policy: bool = True
    """The policy and the baseline do not see the task's ``x_position``/``y_position`` dims, as mjrl's
    Hopper-v3 observation has none (ours keeps them so rewards are functions of (s, a, s')); the
    models still predict them."""

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int" and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{f.name} must be an integer >= 1, got {value!r}")
        for name in ("step_size", "fit_lr", "state_clamp"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if not (0 < self.gamma <= 1 and 0 <= self.gae_lambda <= 1 and self.cg_damping >= 0):
            raise ValueError(
                f"need 0 < gamma <= 1, 0 <= gae_lambda <= 1, cg_damping >= 0; got {self.gamma}, "
                f"{self.gae_lambda}, {self.cg_damping}"
            )
        if any(w < 1 for w in (*self.model_hidden, *self.policy_hidden)):
            raise ValueError("model_hidden and policy_hidden must hold widths >= 1")


@dataclass(frozen=True)
class MALConfig(PALConfig):
    """MAL's settings: the official ``hopper_v3_mal.txt``; the rest as PAL."""

    init_samples: int = 10_000
    """H: ``init_samples``."""
    iter_samples: int = 2000
    """H: ``iter_samples``."""
    buffer_size: int = 100_000
    """H: ``buffer_size`` 1e5."""
    inner_steps: int = 20
    """H: ``inner_steps``."""
    update_paths: int = 25
    """H: ``update_paths``."""
    fit_epochs: int = 10
    """H: ``fit_epochs``."""
    max_fit_steps: int = 100_000
    """H: ``max_steps`` 1e5."""
    init_log_std: float = -0.5
    """H: ``init_log_std``."""


class Replay(NamedTuple):
    """The real buffer: a ring of ``buffer_size`` slots (enough: a kept trajectory lies in the newest
    ``buffer_size`` transitions) and the global start index of each slot's trajectory."""

    obs: jax.Array
    action: jax.Array
    next_obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    """Reward and termination flag: read only on ids without true task functions, which learn them."""
    episode_start: jax.Array
    total: jax.Array
    """Transitions recorded so far."""
    current_start: jax.Array
    """Global index of the first transition of the trajectory in progress."""
    new_episode: jax.Array
    """Whether the next transition starts a trajectory."""
    init_states: jax.Array
    init_count: jax.Array
    """Trajectories started so far (the init-state buffer holds min(this, capacity) of them)."""


class ModelFit(NamedTuple):
    """The ensemble and what its fits carry over."""

    params: ModelParams
    opt_state: Any
    out_shift: jax.Array
    out_scale: jax.Array
    reward_shift: jax.Array
    """The learned reward's shift and scale (mjrl's mean and mean absolute deviation); 0 and 1 where the
    task's true reward is used."""
    reward_scale: jax.Array
    termination: TerminationState | tuple[()]
    """The learned termination's state; () where the task's is used."""


class Learner(NamedTuple):
    policy: Any
    baseline: Any
    baseline_opt: Any
    model: ModelFit
    metrics: dict[str, jax.Array]


class PALState(NamedTuple):
    learner: Learner
    replay: Replay


_METRICS = (
    "model_loss",
    "model_path_return",
    "model_path_length",
    "model_paths_kept",
    "npg_alpha",
    "npg_kl",
    "vf_error",
    "log_std",
)


def kept_mask(replay: Replay, buffer_size: int) -> jax.Array:
    """Slots of the real buffer that survive mjrl's pruning: drop the oldest whole trajectories while
    more than ``buffer_size`` transitions remain, i.e. keep the newest trajectories whose transitions
    number at most ``buffer_size`` together (a slot is kept iff its trajectory and all newer ones fit)."""
    capacity = replay.episode_start.shape[0]
    filled = jnp.arange(capacity) < replay.total
    return filled & (replay.total - replay.episode_start <= buffer_size)


def init_state_pool(replay: Replay) -> tuple[jax.Array, jax.Array]:
    """(init states [capacity, d], how many of them are filled)."""
    return replay.init_states, jnp.minimum(replay.init_count, replay.init_states.shape[0])


def _mean_abs_dev(x: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Mean and mean absolute deviation of the rows of ``x`` where ``mask`` holds (mjrl's shift/scale)."""
    w = mask.astype(x.dtype)[:, None]
    n = jnp.maximum(w.sum(), 1.0)
    mean = (x * w).sum(0) / n
    return mean, (jnp.abs(x - mean) * w).sum(0) / n


@register_agent
class PAL(Agent):
    """PAL: policy as leader (mjrl's model-based NPG with the official PAL config)."""

    name: ClassVar[str] = "pal"
    Config: ClassVar[type] = PALConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete", "continuous"})
    uses_model: ClassVar[bool] = True
    description: ClassVar[str] = (
        "PAL (Rajeswaran et al. 2020): model-based NPG, policy leads (mjrl's official Hopper PAL config)"
    )

    def __init__(self, config: PALConfig, env: EnvInfo, capacity: str = "full") -> None:
        super().__init__(config, env, capacity)
        self.continuous = action_kind(env.action_space) == "continuous"
        task = env.task
        if task.action_kind == "discrete" and not hasattr(env.observation_space, "shape"):
            raise ValueError("pal/mal need a flat Box observation space")
        self.obs_dim = task.obs_dim
        self.action_dim = task.action_dim
        space = env.action_space
        self.action_shape: tuple[int, ...] = tuple(space.shape) if self.continuous else ()
        self.action_dtype = jnp.float32 if self.continuous else jnp.int32
        if self.continuous:
            self.action_low = np.asarray(space.low, np.float32)
            self.action_high = np.asarray(space.high, np.float32)
        hidden = {task.layout.get(k) for k in ("x_position", "y_position")} - {None}
        hidden = hidden if config.hide_position_from_policy else set()
        self.policy_dims = np.asarray([i for i in range(self.obs_dim) if i not in hidden])
        self.policy = NPGPolicy(
            len(self.policy_dims),
            self.action_dim,
            self.continuous,
            config.policy_hidden,
            config.init_log_std,
            config.min_log_std,
        )
        self.baseline = TimeBaseline(len(self.policy_dims))
        model_config = ModelConfig(
            hidden_sizes=config.model_hidden,
            activation="relu",
            probabilistic=False,
            predict_delta=True,
            ensemble_size=config.num_models,
            num_elites=config.num_models,
            kernel_init="truncated_normal",
            weight_decays=(0.0,),
        )
        self.model = DynamicsModel.for_task(task, model_config, capacity)
        # Hidden dims under ``obs:K`` are predicted absolutely, so nothing of them leaks into the input.
        self.delta_dims = np.arange(self.obs_dim) < self.model.visible_dims
        self.model_opt = optax.chain(optax.adam(config.fit_lr), self.model.capacity_transform())
        self.learned = not task.true_functions
        """No true reward and termination (a Gymnasium id not mbrl-bench's): learn them."""
        self.termination = None
        if self.learned:
            classifier = TerminationConfig(steps=config.termination_steps)
            self.termination = TerminationModel(
                classifier, self.obs_dim, self.action_dim, not self.continuous
            )
        self.init_capacity = config.init_states_capacity
        if env.budget is not None:  # no run starts more trajectories than it takes steps
            self.init_capacity = max(1, min(self.init_capacity, env.budget))

    # ---- state --------------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> PALState:
        k_pi, k_b, k_m = jax.random.split(key, 3)
        baseline, baseline_opt = self.baseline.init(k_b)
        params = self.model.init(k_m)
        termination = () if self.termination is None else self.termination.init(jax.random.fold_in(k_m, 1))
        model = ModelFit(
            params,
            self.model_opt.init(params.net),
            jnp.zeros(self.obs_dim),
            jnp.ones(self.obs_dim),
            jnp.zeros(()),
            jnp.ones(()),
            termination,
        )
        metrics = {k: jnp.zeros(()) for k in _METRICS}
        learner = Learner(self.policy.init(k_pi), baseline, baseline_opt, model, metrics)
        c, d = self.config.buffer_size, self.obs_dim
        replay = Replay(
            obs=jnp.zeros((c, d)),
            action=jnp.zeros((c, *self.action_shape), self.action_dtype),
            next_obs=jnp.zeros((c, d)),
            reward=jnp.zeros(c),
            terminated=jnp.zeros(c, bool),
            episode_start=jnp.zeros(c, jnp.int32),
            total=jnp.zeros((), jnp.int32),
            current_start=jnp.zeros((), jnp.int32),
            new_episode=jnp.ones((), bool),
            init_states=jnp.zeros((self.init_capacity, d)),
            init_count=jnp.zeros((), jnp.int32),
        )
        return PALState(learner, replay)

    def act(self, state: PALState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        params = state.learner.policy
        obs = self._policy_obs(jnp.asarray(obs, jnp.float32))
        action = self.policy.sample(params, obs, key) if explore else self.policy.mode(params, obs)
        return self._env_action(action)

    def _policy_obs(self, obs: jax.Array) -> jax.Array:
        """What the policy and the baseline see of observations [..., obs_dim]."""
        return obs[..., self.policy_dims]

    def _env_action(self, action: jax.Array) -> jax.Array:
        """What the env applies: the Gaussian sample clipped to the bounds; a discrete index as is."""
        return jnp.clip(action, self.action_low, self.action_high) if self.continuous else action

    def record(self, replay: Replay, transition: Transition) -> Replay:
        """Add one real transition: to the ring, and its observation to the init-state buffer when it
        starts a trajectory."""
        slot = replay.total % replay.obs.shape[0]
        start = jnp.where(replay.new_episode, replay.total, replay.current_start)
        obs = jnp.asarray(transition.obs, jnp.float32)
        init_slot = replay.init_count % replay.init_states.shape[0]
        init_states = jnp.where(
            replay.new_episode, replay.init_states.at[init_slot].set(obs), replay.init_states
        )
        done = jnp.asarray(transition.terminated) | jnp.asarray(transition.truncated)
        return Replay(
            obs=replay.obs.at[slot].set(obs),
            action=replay.action.at[slot].set(jnp.asarray(transition.action, self.action_dtype)),
            next_obs=replay.next_obs.at[slot].set(jnp.asarray(transition.next_obs, jnp.float32)),
            reward=replay.reward.at[slot].set(jnp.asarray(transition.reward, jnp.float32)),
            terminated=replay.terminated.at[slot].set(jnp.asarray(transition.terminated, bool)),
            episode_start=replay.episode_start.at[slot].set(start),
            total=replay.total + 1,
            current_start=start,
            new_episode=done,
            init_states=init_states,
            init_count=replay.init_count + replay.new_episode.astype(jnp.int32),
        )

    def update(
        self, state: PALState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[PALState, dict[str, jax.Array]]:
        cfg = self.config
        replay = self.record(state.replay, transition)
        due = (step >= cfg.init_samples) & ((step - cfg.init_samples) % cfg.iter_samples == 0)
        # The buffers are operands, not outputs, of the cond: outputs are copied every step.
        learner = jax.lax.cond(due, self.iterate, lambda lr, rp, k: lr, state.learner, replay, key)
        return PALState(learner, replay), learner.metrics

    # ---- one iteration ------------------------------------------------------------------------------
    def iterate(self, learner: Learner, replay: Replay, key: jax.Array) -> Learner:
        """Fit the models on the kept real buffer, then take ``inner_steps`` NPG steps on model paths."""
        k_fit, k_npg = jax.random.split(key)
        model, model_loss = self.fit_models(learner.model, replay, k_fit)

        def npg(carry: tuple, k: jax.Array) -> tuple[tuple, dict[str, jax.Array]]:
            policy, baseline, baseline_opt = carry
            policy, baseline, baseline_opt, info = self.npg_iteration(
                policy, baseline, baseline_opt, model, replay, k
            )
            return (policy, baseline, baseline_opt), info

        carry = (learner.policy, learner.baseline, learner.baseline_opt)
        keys = jax.random.split(k_npg, self.config.inner_steps)
        (policy, baseline, baseline_opt), infos = jax.lax.scan(npg, carry, keys)
        metrics = {k: v[-1] for k, v in infos.items()}
        metrics["model_loss"] = model_loss
        if self.continuous:
            metrics["log_std"] = jnp.mean(policy["params"]["log_std"])
        else:
            metrics["log_std"] = jnp.zeros(())
        return Learner(policy, baseline, baseline_opt, model, metrics)

    def fit_models(self, model: ModelFit, replay: Replay, key: jax.Array) -> tuple[ModelFit, jax.Array]:
        """mjrl's ``WorldModel.fit_dynamics`` for every member at once: refit the shift/scale, then
        ``fit_epochs`` passes (each member its own permutation) of floor(n / batch) minibatches, no pass
        started once ``max_fit_steps`` steps are done. Returns the fit and the mean over members of the
        last pass's mean minibatch MSE (in normalised target space, mjrl's ``dyn_loss``)."""
        cfg, members = self.config, self.config.num_models
        valid = kept_mask(replay, cfg.buffer_size)
        n = jnp.sum(valid)
        feats = self.model.features(replay.obs, replay.action)
        f_mean, f_scale = _mean_abs_dev(feats, valid)
        stats = InputStats(f_mean, jnp.where(f_scale < 1e-8, 1.0, f_scale))
        delta = jnp.where(self.delta_dims, replay.next_obs - replay.obs, replay.next_obs)
        out_shift, out_scale = _mean_abs_dev(delta, valid)
        targets = (delta - out_shift) / (out_scale + 1e-8)
        reward_shift, reward_scale = model.reward_shift, model.reward_scale
        if self.learned:  # the reward output, trained beside the dynamics on the normalised reward
            reward_shift, reward_scale = (x[0] for x in _mean_abs_dev(replay.reward[:, None], valid))
            targets = jnp.concatenate(
                [targets, ((replay.reward - reward_shift) / (reward_scale + 1e-8))[:, None]], -1
            )
        fitted = self.obs_dim + int(self.learned)
        bs = cfg.fit_batch_size
        steps_per_epoch = jnp.maximum(n // bs, 1)
        epochs = jnp.minimum(cfg.fit_epochs, -(-cfg.max_fit_steps // steps_per_epoch))

        def loss_fn(net: dict, idx: jax.Array) -> jax.Array:
            w = valid[idx].astype(jnp.float32)  # only short of data: rows past the valid ones weigh 0
            pred = self.model.forward(net, stats, replay.obs[idx], replay.action[idx], per_member=True)
            sq = jnp.mean((pred.mean[..., :fitted] - targets[idx]) ** 2, axis=-1)
            per_member = jnp.sum(sq * w, axis=-1) / jnp.maximum(jnp.sum(w, axis=-1), 1.0)
            return jnp.sum(per_member)

        def epoch(_: jax.Array, carry: tuple) -> tuple:
            net, opt, k, _loss = carry
            k, k_perm = jax.random.split(k)
            noise = jax.random.uniform(k_perm, (members, valid.shape[0]))
            order = jnp.argsort(jnp.where(valid, noise, 2.0), axis=-1)
            order = jnp.pad(order, ((0, 0), (0, max(bs - valid.shape[0], 0))))

            def step(i: jax.Array, c: tuple) -> tuple:
                net, opt, total = c
                idx = jax.lax.dynamic_slice(order, (0, i * bs), (members, bs))
                loss, grads = jax.value_and_grad(loss_fn)(net, idx)
                updates, opt = self.model_opt.update(grads, opt, net)
                return optax.apply_updates(net, updates), opt, total + loss

            net, opt, total = jax.lax.fori_loop(0, steps_per_epoch, step, (net, opt, jnp.zeros(())))
            return net, opt, k, total / (steps_per_epoch * members)

        init = (model.params.net, model.opt_state, key, jnp.zeros(()))
        net, opt, _, last_loss = jax.lax.fori_loop(0, epochs, epoch, init)
        params = model.params._replace(net=net, stats=stats)
        termination = model.termination
        if self.termination is not None:
            labelled = Labelled(replay.obs, replay.action, replay.next_obs, replay.terminated)
            # the classifier's rows are drawn from the first n slots: the kept ones, ordered by slot
            order = jnp.argsort(~valid)
            labelled = jax.tree.map(lambda x: x[order], labelled)
            termination, _ = self.termination.fit(termination, labelled, n, jax.random.fold_in(key, 1))
        return ModelFit(params, opt, out_shift, out_scale, reward_shift, reward_scale, termination), last_loss

    def model_step(self, model: ModelFit, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Every member's next state from its own ``obs``/``action`` [members, N, ...] (mjrl's
        ``DynamicsNet.forward``: de-normalise, mask near-constant outputs, add the state back)."""
        return self.model_transition(model, obs, action)[0]

    def model_transition(
        self, model: ModelFit, obs: jax.Array, action: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """``model_step``'s next state and the learned reward (de-normalised; meaningful only where the
        reward is learned) from one forward pass."""
        pred = self.model.forward(model.params.net, model.params.stats, obs, action, per_member=True)
        change = pred.mean[..., : self.obs_dim] * (model.out_scale + 1e-8) + model.out_shift
        change = change * (model.out_scale >= 1e-8)
        reward = pred.mean[..., self.obs_dim] * (model.reward_scale + 1e-8) + model.reward_shift
        return jnp.where(self.delta_dims, obs + change, change), reward

    def model_paths(
        self, policy: Any, model: ModelFit, starts: jax.Array, key: jax.Array
    ) -> dict[str, jax.Array]:
        """Roll the noisy policy out from ``starts`` [N, d] in every model for ``horizon`` steps.

        Returns arrays [members, N, horizon, ...]: obs, raw actions, rewards, next_obs, valid (the path's
        prefix up to and including its first terminal transition) and terminated [members, N]."""
        cfg, task = self.config, self.env.task
        s0 = jnp.broadcast_to(starts, (cfg.num_models, *starts.shape))

        def step(carry: tuple, k: jax.Array) -> tuple[tuple, tuple]:
            s, alive = carry
            raw = self.policy.sample(policy, self._policy_obs(s), k)
            a = self._env_action(raw)
            nxt, learned_reward = self.model_transition(model, s, a)
            nxt = jnp.clip(nxt, -cfg.state_clamp, cfg.state_clamp)
            if self.termination is None:
                reward = task.reward_fn(s, a, nxt)
                term = jnp.asarray(task.termination_fn(s, a, nxt), bool)
            else:
                reward = learned_reward
                term = self.termination.terminated(model.termination, s, a, nxt)
            return (nxt, alive & ~term), (s, raw, reward, nxt, alive, alive & term)

        alive0 = jnp.ones(s0.shape[:-1], bool)
        _, out = jax.lax.scan(step, (s0, alive0), jax.random.split(key, cfg.horizon))
        obs, raw, reward, nxt, valid, term = (jnp.moveaxis(x, 0, 2) for x in out)
        terminated = term.any(-1)
        long_enough = valid.sum(-1) >= cfg.min_path_length
        valid = valid & long_enough[..., None]
        return dict(obs=obs, action=raw, reward=reward, next_obs=nxt, valid=valid, terminated=terminated)

    def npg_iteration(
        self, policy: Any, baseline: Any, baseline_opt: Any, model: ModelFit, replay: Replay, key: jax.Array
    ) -> tuple[Any, Any, Any, dict[str, jax.Array]]:
        """One of mjrl's ``ModelBasedNPG.train_step``: paths in every model, GAE, NPG step, baseline refit."""
        cfg = self.config
        k_start, k_roll, k_fit = jax.random.split(key, 3)
        pool, count = init_state_pool(replay)
        starts = pool[jax.random.randint(k_start, (cfg.update_paths,), 0, jnp.maximum(count, 1))]
        paths = self.model_paths(policy, model, starts, k_roll)
        valid = paths["valid"]
        t = jnp.broadcast_to(jnp.arange(cfg.horizon), valid.shape)
        seen = self._policy_obs(paths["obs"])
        values = self.baseline.predict(baseline, seen, t)
        last_obs = self._policy_obs(paths["next_obs"][..., -1, :])
        last_value = self.baseline.predict(baseline, last_obs, jnp.full(valid.shape[:-1], cfg.horizon))
        bootstrap = jnp.where(paths["terminated"], 0.0, last_value)
        adv = gae_paths(paths["reward"], values, bootstrap, valid, cfg.gamma, cfg.gae_lambda)
        returns = discounted_returns(paths["reward"], valid, cfg.gamma)
        flat = lambda x: x.reshape(-1, *x.shape[3:])
        mask = flat(valid)
        policy, info = npg_step(
            self.policy,
            policy,
            flat(seen),
            flat(paths["action"]),
            flat(adv),
            mask,
            cfg.step_size,
            cfg.cg_iters,
            cfg.cg_damping,
        )
        feats = self.baseline.features(flat(seen), flat(t))
        baseline, baseline_opt, vf_error = self.baseline.fit(
            baseline, baseline_opt, feats, flat(returns), mask, k_fit
        )
        kept = valid.any(-1)
        metrics = {
            "model_path_return": masked_mean(jnp.sum(jnp.where(valid, paths["reward"], 0.0), -1), kept),
            "model_path_length": masked_mean(valid.sum(-1).astype(jnp.float32), kept),
            "model_paths_kept": jnp.mean(kept.astype(jnp.float32)),
            "npg_alpha": info.alpha,
            "npg_kl": info.kl,
            "vf_error": vf_error,
        }
        return policy, baseline, baseline_opt, metrics


@register_agent
class MAL(PAL):
    """MAL: model as leader (mjrl's model-based NPG with the official MAL config)."""

    name: ClassVar[str] = "mal"
    Config: ClassVar[type] = MALConfig
    description: ClassVar[str] = (
        "MAL (Rajeswaran et al. 2020): model-based NPG, model leads (mjrl's official Hopper MAL config)"
    )
