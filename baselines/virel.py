"""The ``virel`` agent: VIREL, the variational actor-critic whose temperature is the critic's Bellman error.

VIREL (Fellows, Mahajan, Rudner, Whiteson, NeurIPS 2019) replaces maximum-entropy RL's fixed temperature
with eps_w = (c/p) ||T_w Q_w - Q_w||_p^p, p = 2: the mean squared Bellman error (MSBE) of the critic
times c / 2. The target policy is the Boltzmann policy pi_w(a|s) ∝ exp(Q_w(s, a) / eps_w), stochastic
while the critic is wrong and near greedy once it is right. A variational policy pi_theta approximates it
through

    L(w, theta) = E_s[ E_{a ~ pi_theta}[Q_w(s, a) / eps_w] + H(pi_theta(.|s)) ],

with the E-step theta += alpha_actor eps_w grad_theta L and the M-step w += alpha_critic eps_w^2 grad_w L
(the seed slides; ``../shared/REFERENCES.md``, "VIREL"). No code from the authors exists; the defaults are
those of a public TF2 reimplementation: eps_w = beta_scale * 0.5 * MSE(TD) on 4096 replay samples
(beta_scale 4e-4), actor loss eps log pi - min(Q1, Q2), a clipped double-Q TD target without entropy term,
lrs 3e-4, tau 5e-3, gamma 0.99.

Built on the shared SAC (``baselines.common.sac``), not a copy of it: ``VirelSAC`` is the SAC learner with
``log_alpha`` holding log eps_w (set from the Bellman error, never learned), so

* the E-step is SAC's ``actor_step`` with alpha = eps_w: its loss E[eps log pi - min Q] is exactly
  -eps_w L(theta), whose gradient is eps_w times that of -L (the slides' E-step scaling);
* the M-step is SAC's ``critic_step`` on the TD loss with VIREL's Bellman operator (no entropy bonus in
  the target), scaled by eps_w^2. The TD loss stands for -L in w as the reimplementation's critic:
  eps^2 grad_w L = eps E_pi[grad Q] - E_pi[Q] grad eps, and grad eps is c times the TD semi-gradient,
  so the step is a TD step once eps is small;
* twin critics, Polyak targets, the tanh-Gaussian actor, replay and action scaling are SAC's.

On discrete actions the Boltzmann policy softmax(min_k Q_k(s, .) / eps_w) is exact, so there is no actor
(the E-step is closed form): acting samples it, evaluation takes the argmax, and the TD target averages
the target critics over it. The critics are the shared ``DiscreteSAC``'s Q(s, .) heads.

With Adam (``optimizer="adam"``, the reimplementation's) a gradient's scale cancels in the step except
against Adam's epsilon (1e-8): the eps in the E-step still weighs entropy against Q, but the eps^2 of the
M-step only slows the critic once eps^2 |grad| falls near 1e-8. ``optimizer="sgd"`` takes the slides'
steps literally (alpha eps grad L, alpha eps^2 grad L).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import optax
from mbrl_bench.baselines.api import Agent, EnvInfo, Transition, action_kind, register_agent
from mbrl_bench.baselines.common.replay import Replay, replay_add, replay_get, replay_init, sample_uniform
from mbrl_bench.baselines.common.sac import (
    SAC,
    Batch,
    DiscreteSAC,
    EnvAdapter,
    SACConfig,
    SACState,
)

OPTIMIZERS: tuple[str, ...] = ("adam", "sgd")


@dataclass(frozen=True)
class VirelConfig:
    """VIREL's hyperparameters: the public reimplementation's where it states them (REFERENCES.md, "VIREL"),
    else jaxrl's SAC defaults (``SACConfig``), so that ``virel`` and ``sac`` differ only in the temperature.
    Discrete actions take OMD's CartPole settings where they differ (``DISCRETE_DEFAULTS``)."""

    beta_scale: float = 4e-4
    """c in eps_w = (c/2) MSBE; the reimplementation's ``beta_scale`` (default 4e-4, searched 1e-4..1)."""
    eps_batch_size: int = 4096
    """Replay samples the MSBE of eps_w is estimated on; the reimplementation's 4096."""
    eps_every: int = 1
    """Env steps between re-estimates of eps_w (held in between); 1 re-estimates before every update.
    Raise it to save compute: on CPU one 4096-sample estimate costs several 256-sample updates."""
    eps_floor: float = 1e-8
    """Smallest eps_w the policy uses (also in place of a non-finite estimate), so log eps and Q / eps stay
    finite when the MSBE reaches 0; at 1e-8 the Boltzmann policy is already greedy in float32 for Q gaps
    above ~1e-6, so the floor changes no action. Our choice (no source states one)."""
    optimizer: str = "adam"
    """"adam" (the reimplementation's) or "sgd" (the slides' steps alpha eps grad L, alpha eps^2 grad L)."""
    hidden_sizes: tuple[int, ...] = (256, 256)
    """Hidden ReLU widths of the actor and of each critic; jaxrl ``hidden_dims`` (as ``sac``)."""
    actor_lr: float = 3e-4
    """alpha_actor, the E-step's step size before the eps scaling; the reimplementation's 3e-4."""
    critic_lr: float = 3e-4
    """alpha_critic, the M-step's step size before the eps^2 scaling; the reimplementation's 3e-4."""
    batch_size: int = 256
    """Minibatch of each E- and M-step; jaxrl ``batch_size``."""
    tau: float = 0.005
    """Polyak coefficient of the target critics; the reimplementation's 5e-3 (jaxrl's too)."""
    discount: float = 0.99
    """gamma; the reimplementation's 0.99."""
    start_steps: int = 10_000
    """Uniformly random env steps before the first update; jaxrl ``start_training`` (as ``sac``)."""
    replay_capacity: int = 1_000_000
    """Replay size, capped at the run's budget as jaxrl sizes it (as ``sac``)."""
    hide_position: bool = True
    """The learner does not read the task's absolute x (Ant: x, y) position (as ``sac``: see SACConfig)."""

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        for name in ("eps_batch_size", "eps_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("beta_scale", "eps_floor"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        self.sac_config()  # SACConfig checks the shared fields

    def sac_config(self) -> SACConfig:
        """The shared learner's config (its temperature fields are unused: eps_w replaces alpha)."""
        return SACConfig(
            hidden_sizes=tuple(self.hidden_sizes),
            actor_lr=self.actor_lr,
            critic_lr=self.critic_lr,
            batch_size=self.batch_size,
            tau=self.tau,
            discount=self.discount,
            start_steps=self.start_steps,
            replay_capacity=self.replay_capacity,
        )


DISCRETE_DEFAULTS: dict[str, Any] = {
    "hidden_sizes": (32, 32),  # OMD CartPole train.py: Q hidden 32, 2 ReLU layers
    "start_steps": 1000,  # OMD CartPole: 1000 initial random steps
    "tau": 0.01,  # OMD CartPole: tau 0.01
}
"""Discrete-action defaults that differ from ``VirelConfig``'s: OMD's CartPole code (REFERENCES.md, "OMD"),
the discrete value learner already used on this benchmark's CartPole (the reimplementation is continuous)."""

METRICS: dict[str, tuple[str, ...]] = {
    "continuous": ("eps_w", "msbe", "critic_loss", "q_mean", "actor_loss", "entropy"),
    "discrete": ("eps_w", "msbe", "critic_loss", "q_mean", "entropy"),
}
"""Per-step metrics (0 before the first update): eps_w as estimated (NaN/inf if the critic diverged, which
stops the seed as diverged; the policy meanwhile uses the floor), the MSBE it came from, the TD loss of
the M-step's batch (sum over the twin critics, unscaled), mean Q, the actor's loss (-eps L) and the
policy's entropy (continuous: -E log pi_theta; discrete: the Boltzmann policy's, exact)."""


@dataclass(frozen=True)
class VirelSAC(SAC):
    """SAC's learner with VIREL's temperature: ``log_alpha`` holds log eps_w and is set, not learned."""

    optimizer: str = "adam"

    def optimizers(self) -> tuple[optax.GradientTransformation, ...]:
        make = optax.adam if self.optimizer == "adam" else optax.sgd
        c = self.config
        return make(c.actor_lr), make(c.critic_lr), make(c.temperature_lr)

    def eps(self, state: SACState) -> jax.Array:
        return jax.lax.stop_gradient(jnp.exp(state.log_alpha))

    def td_target(self, state: SACState, batch: Batch, key: jax.Array) -> jax.Array:
        # VIREL's Bellman operator T Q = r + gamma E_pi Q' has no entropy bonus; SAC's target with
        # alpha = exp(-inf) = 0 is exactly that (the log-prob it multiplies is finite for any action).
        return super().td_target(state._replace(log_alpha=jnp.asarray(-jnp.inf, jnp.float32)), batch, key)

    def msbe(self, state: SACState, batch: Batch, key: jax.Array) -> jax.Array:
        """Mean over samples and both critics of (T Q - Q)^2: half of SAC's summed twin TD loss."""
        return SAC.critic_loss(self, state.critic, state, batch, key)[0] / 2.0

    def critic_loss(
        self, critic: Any, state: SACState, batch: Batch, key: jax.Array
    ) -> tuple[jax.Array, dict[str, jax.Array]]:
        """The M-step's loss: the TD loss times eps_w^2 (so its gradient is scaled by eps_w^2)."""
        loss, info = super().critic_loss(critic, state, batch, key)
        return self.eps(state) ** 2 * loss, info


@dataclass(frozen=True)
class DiscreteVirelSAC(VirelSAC, DiscreteSAC):
    """VIREL on ``action_dim`` discrete actions: the discrete SAC's twin Q(s, .) critics (integer actions in
    batches), VIREL's temperature and M-step, and no actor: the Boltzmann policy is exact."""

    def logits(self, critic: Any, obs: jax.Array, eps: jax.Array) -> jax.Array:
        """min_k Q_k(s, .) / eps: the Boltzmann policy's logits (min over the twins, as SAC's actor)."""
        return jnp.min(self.all_q_values(critic, obs), axis=0) / eps

    def td_target(self, state: SACState, batch: Batch, key: jax.Array) -> jax.Array:
        """r + gamma (1 - terminated) sum_a' pi_w(a'|s') min_k Q'_k(s', a'), pi_w = softmax(Q_w / eps_w)."""
        del key
        probs = jax.nn.softmax(
            self.logits(jax.lax.stop_gradient(state.critic), batch.next_obs, self.eps(state))
        )
        target = jax.lax.stop_gradient(state.critic_target)
        next_q = jnp.min(self.all_q_values(target, batch.next_obs), axis=0)
        value = jnp.sum(jax.lax.stop_gradient(probs) * next_q, axis=-1)
        return batch.reward + self.config.discount * batch.not_done * value


class VirelState(NamedTuple):
    learner: SACState
    """The shared learner's state; ``log_alpha`` = log of the eps_w in use (floored)."""
    replay: Replay
    steps: jax.Array
    """Real transitions received so far (decides the initial random phase in ``act``)."""


@register_agent
class VirelAgent(Agent):
    """VIREL with an adaptive temperature eps_w = (c/2) MSBE, on discrete and continuous actions."""

    name: ClassVar[str] = "virel"
    Config: ClassVar[type] = VirelConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete", "continuous"})
    kind_defaults: ClassVar[dict[str, dict[str, Any]]] = {"discrete": DISCRETE_DEFAULTS}
    description: ClassVar[str] = (
        "VIREL: actor-critic whose temperature is the critic's Bellman error (c/2 MSBE)"
    )

    def __init__(self, config: VirelConfig, env: EnvInfo, capacity: str = "full") -> None:
        super().__init__(config, env, capacity)
        self.kind = action_kind(env.action_space)
        self.io = EnvAdapter.for_spaces(
            env.observation_space, env.action_space, env.task.layout, config.hide_position
        )
        learner_cls: type[VirelSAC] = DiscreteVirelSAC if self.io.discrete else VirelSAC
        self.sac = learner_cls(
            config.sac_config(), self.io.obs_dim, self.io.action_dim, optimizer=config.optimizer
        )
        self.replay_capacity = min(config.replay_capacity, env.budget or config.replay_capacity)
        self.metrics = METRICS[self.kind]

    # ---- state -----------------------------------------------------------------------------------
    def init(self, key: jax.Array) -> VirelState:
        learner = self.sac.init(key)
        if self.kind == "discrete":  # the Boltzmann policy is exact: no actor to keep
            learner = learner._replace(actor={}, actor_opt=self.sac.optimizers()[0].init({}))
        learner = learner._replace(log_alpha=jnp.asarray(math.log(self.config.eps_floor), jnp.float32))
        return VirelState(
            learner, replay_init(self.io.example_item(), self.replay_capacity), jnp.zeros((), jnp.int32)
        )

    # ---- the temperature -------------------------------------------------------------------------
    def temperature(
        self, learner: SACState, batch: Batch, key: jax.Array
    ) -> tuple[jax.Array, jax.Array, jax.Array]:
        """(eps_w as estimated, the eps_w the policy uses, the MSBE) on ``batch``.

        eps_w = (c/p) ||T Q - Q||_p^p with p = 2 and the norm an average over the batch (and the twin
        critics): c/2 MSBE, the reimplementation's beta_scale * 0.5 * MSE(TD). The eps in use is the
        estimate floored at ``eps_floor``, and the floor itself where the estimate is NaN or inf.
        """
        msbe = self.sac.msbe(learner, batch, key)
        eps = 0.5 * self.config.beta_scale * msbe
        used = jnp.where(jnp.isfinite(eps), jnp.maximum(eps, self.config.eps_floor), self.config.eps_floor)
        return eps, used, msbe

    def action_probs(self, state: VirelState, obs: jax.Array) -> jax.Array:
        """Discrete actions: the Boltzmann policy softmax(min_k Q_k(s, .) / eps_w) that ``act`` samples."""
        obs = self.io.view(obs)
        return jax.nn.softmax(self.sac.logits(state.learner.critic, obs, jnp.exp(state.learner.log_alpha)))

    # ---- acting ----------------------------------------------------------------------------------
    def act(self, state: VirelState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        learner = state.learner
        warmup = state.steps < self.config.start_steps
        if not self.io.discrete:
            return self.io.act(self.sac, learner.actor, obs, key, explore, warmup)
        logits = self.sac.logits(learner.critic, self.io.view(obs), jnp.exp(learner.log_alpha))
        if not explore:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        k_policy, k_uniform = jax.random.split(key)
        uniform = jax.random.randint(k_uniform, logits.shape[:-1], 0, self.io.num_actions)
        return jnp.where(warmup, uniform, jax.random.categorical(k_policy, logits)).astype(jnp.int32)

    # ---- learning --------------------------------------------------------------------------------
    def learn(
        self, learner: SACState, replay: Replay, key: jax.Array, step: jax.Array, eps_w: jax.Array
    ) -> tuple[SACState, dict[str, jax.Array]]:
        """One VIREL iteration: eps_w re-estimated (every ``eps_every`` steps), the E-step (continuous), the
        M-step, the target update. ``eps_w`` is the last estimate, carried for the metric in between."""
        cfg = self.config
        k_eps, k_eps_batch, k_batch, k_actor, k_critic = jax.random.split(key, 5)

        def estimate(learner: SACState) -> tuple[SACState, jax.Array, jax.Array]:
            big = Batch(*replay_get(replay, sample_uniform(replay, k_eps_batch, cfg.eps_batch_size)))
            eps, used, msbe = self.temperature(learner, big, k_eps)
            return learner._replace(log_alpha=jnp.log(used)), eps, msbe

        def keep(learner: SACState) -> tuple[SACState, jax.Array, jax.Array]:
            return learner, eps_w, 2.0 * eps_w / cfg.beta_scale

        fresh = (step - cfg.start_steps) % cfg.eps_every == 0  # the first update always estimates
        learner, eps, msbe = jax.lax.cond(fresh, estimate, keep, learner)
        batch = Batch(*replay_get(replay, sample_uniform(replay, k_batch, cfg.batch_size)))
        info: dict[str, jax.Array] = {"eps_w": eps, "msbe": msbe}
        if self.kind == "continuous":  # E-step: SAC's actor step with alpha = eps_w is eps_w grad(-L)
            learner, actor_info = self.sac.actor_step(learner, batch.obs, k_actor)
            info |= {"actor_loss": actor_info["actor_loss"], "entropy": actor_info["entropy"]}
        else:  # the exact E-step: the Boltzmann policy; its entropy on the batch
            log_p = jax.nn.log_softmax(self.sac.logits(learner.critic, batch.obs, jnp.exp(learner.log_alpha)))
            info["entropy"] = -jnp.mean(jnp.sum(jnp.exp(log_p) * log_p, axis=-1))
        learner, critic_info = self.sac.critic_step(learner, batch, k_critic)  # M-step, eps_w^2 grad
        learner = self.sac.target_update(learner)
        return learner, info | {"critic_loss": critic_info["critic_loss"], "q_mean": critic_info["q_mean"]}

    def update(
        self, state: VirelState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[VirelState, dict[str, jax.Array]]:
        replay = replay_add(state.replay, self.io.replay_item(transition))
        last_eps = jnp.exp(state.learner.log_alpha)

        # Only the learner passes through the cond (the replay is read, not returned): a buffer threaded
        # through a cond's outputs is copied every step (see rainbow).
        def learn(learner: SACState) -> tuple[SACState, dict[str, jax.Array]]:
            learner, info = self.learn(learner, replay, key, step, last_eps)
            return learner, {name: info[name] for name in self.metrics}

        def idle(learner: SACState) -> tuple[SACState, dict[str, jax.Array]]:
            return learner, {name: jnp.zeros(()) for name in self.metrics}

        learner, metrics = jax.lax.cond(step >= self.config.start_steps, learn, idle, state.learner)
        return VirelState(learner, replay, state.steps + 1), metrics
