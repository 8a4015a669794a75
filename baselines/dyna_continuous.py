"""OMD and MLE-Dyna on continuous actions: SAC on one-step model targets, as the official ``mujoco/`` code.

The official MuJoCo agent (github.com/evgenii-nikishin/omd, mujoco/jax_rl/agents/omd/) is jaxrl's SAC
whose critic targets come from a learned model: per env step, ONE real minibatch (s, a, r, s', mask) is
drawn and relabelled with the model's (r_hat, s'_hat) at the real (s, a); no model rollouts.

- ``omd`` (``model.update_omd``): the inner solver takes K (``num_q_steps``, official ``inner_steps`` 1)
  rounds of [critic step on the model batch, target update, actor step on the real s, temperature step]
  (``fwd_solver``); the outer loss is the updated critic's TD loss on the REAL (r, s') with targets from
  the updated target critics, actor and alpha (``model_loss_fn``); its gradient reaches the model through
  the implicit function theorem on grad_critic L_model(critic) = 0, evaluated at the updated learner
  (``constraint_func`` on ``new_omd``), with the identity in place of the inverse Hessian (official
  ``root_solve_bwd``; ``cg``/``neumann``/``exact`` work too, via ``baselines.implicit``); one Adam step on
  the model; no MLE term.
- ``mle-dyna`` (``_update_jit_mle``): one Adam step of the model on the squared error of next obs and
  reward on the same batch (the official sum over dims, here the mean over the obs_dim + 1 outputs,
  which differs by a constant factor Adam does not see), then K SAC updates on that batch relabelled by
  the updated model (actor on the real s).

Termination: the real batch's masks, as the official code (the model predicts no termination); they
equal the task's true termination function at the real next observation.

Observation: the learner (model, critics, actor) does not read the absolute x position our MuJoCo ids
observe (``hide_position``), as the official code runs on the stock envs, which hide it; the model
predicts the reward directly, so it never needs x.

Where this differs from the CartPole agent (``baselines.omd``), it follows the official MuJoCo code and
says so: the critic keeps its Adam state across env steps (jaxrl's ``TrainState``; the CartPole code
resets the inner optimiser) unless ``warm_q_optimizer`` is off; the model is one MLP on (obs, action) with
orthogonal(sqrt 2) init on every layer, the output included (``networks/models.py DetModel``); OMD and
MLE-Dyna each use one batch per env step; acting is SAC's (uniform for ``init_steps``, then sampled;
evaluation with tanh(mean)), with no epsilon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from mbrl_bench.baselines.api import EnvInfo, Transition
from mbrl_bench.baselines.common.replay import (
    Replay,
    replay_add,
    replay_get,
    replay_init,
    sample_uniform,
    sample_without_replacement,
)
from mbrl_bench.baselines.common.sac import (
    SAC,
    Batch,
    EnvAdapter,
    SACConfig,
    SACState,
)
from mbrl_bench.baselines.implicit import implicit_root

from mbrl_bench.models.capacity import parse_capacity
from mbrl_bench.models.dynamics import DynamicsModel, ModelConfig, ModelParams, Transitions

if TYPE_CHECKING:
    from mbrl_bench.baselines.omd import DynaConfig

DIAGNOSTICS: tuple[str, ...] = ("next_obs_mse", "reward_mse", "value_equivalence_error")
METRICS: tuple[str, ...] = ("model_loss", "q_loss", "q_mean", "policy_entropy", "alpha", *DIAGNOSTICS)
"""Per-step metrics: the model's training loss (OMD: the outer TD loss on real data), the critics' TD loss
on model data, mean Q(s, a), the policy's entropy estimate -E[log pi], the temperature, the model's
next-obs and reward MSE on the real batch and mean |y_model - y_real| of the critic targets computed with
the model's vs the real (r, s'); the last three refreshed every ``diagnostics_every`` steps."""


class ContinuousDynaState(NamedTuple):
    """One seed's learner state."""

    learner: SACState
    model: ModelParams
    model_opt: optax.OptState
    replay: Replay
    steps: jax.Array
    """Real transitions received so far (decides the initial random phase in ``act``)."""
    diagnostics: dict[str, jax.Array]


class ContinuousDyna:
    """The learner behind ``omd`` and ``mle-dyna`` on Box actions (see the module docstring)."""

    def __init__(self, config: DynaConfig, env: EnvInfo, capacity: str, model_loss: str) -> None:
        self.config, self.model_loss = config, model_loss
        self.io = EnvAdapter.for_spaces(
            env.observation_space, env.action_space, env.task.layout, config.hide_position
        )
        self.obs_dim, self.action_dim = self.io.obs_dim, self.io.action_dim
        replay_capacity = min(config.replay_capacity, env.budget or config.replay_capacity)
        self.sac = SAC(
            SACConfig(
                hidden_sizes=(config.hidden_dim, config.hidden_dim),
                actor_lr=config.actor_lr,
                critic_lr=config.q_lr,
                temperature_lr=config.temperature_lr,
                batch_size=config.batch_size,
                tau=config.tau,
                discount=config.discount,
                init_temperature=config.init_temperature,
                target_entropy_scale=config.target_entropy_scale,
                start_steps=config.init_steps,
                replay_capacity=replay_capacity,
            ),
            self.obs_dim,
            self.action_dim,
        )
        model_config = ModelConfig(
            hidden_sizes=(config.model_hidden_dim, config.model_hidden_dim),
            activation="relu",
            probabilistic=config.probabilistic_model,
            predict_delta=False,
            ensemble_size=1,
            num_elites=1,
            kernel_init="orthogonal_relu",
            weight_decays=(0.0,),
            separate_reward_net=config.separate_reward_model,
        )
        self.dynamics = DynamicsModel(
            model_config, self.obs_dim, self.action_dim, False, parse_capacity(capacity)
        )
        self.model_optimizer = optax.chain(optax.adam(config.model_lr), self.dynamics.capacity_transform())
        self.inverse = config.inverse_config()

    # ---- agent interface ------------------------------------------------------------------------
    def init(self, key: jax.Array, scale_output: Any) -> ContinuousDynaState:
        k_sac, k_model = jax.random.split(key)
        model = self.dynamics.init(k_model)
        model = model._replace(net=scale_output(model.net))
        return ContinuousDynaState(
            learner=self.sac.init(k_sac),
            model=model,
            model_opt=self.model_optimizer.init(model.net),
            replay=replay_init(self.io.example_item(), self.sac.config.replay_capacity),
            steps=jnp.zeros((), jnp.int32),
            diagnostics={name: jnp.zeros(()) for name in DIAGNOSTICS},
        )

    def act(self, state: ContinuousDynaState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        random_phase = state.steps < self.config.init_steps
        return self.io.act(self.sac, state.learner.actor, obs, key, explore, random_phase)

    def update(
        self, state: ContinuousDynaState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[ContinuousDynaState, dict[str, jax.Array]]:
        state = state._replace(
            replay=replay_add(state.replay, self.io.replay_item(transition)), steps=state.steps + 1
        )
        learn = self._omd_update if self.model_loss == "omd" else self._mle_update
        idle = lambda s, k, t: (s, {name: jnp.zeros(()) for name in METRICS})
        return jax.lax.cond(step >= self.config.init_steps, learn, idle, state, key, step)

    # ---- pieces ---------------------------------------------------------------------------------
    def model_batch(self, net: Any, model: ModelParams, real: Batch, key: jax.Array) -> Batch:
        """The real batch with (r, s') replaced by the model's (sampled if Gaussian), differentiable."""
        next_obs, reward = self.dynamics.step(
            ModelParams(net, model.stats, model.elites), real.obs, real.action, key
        )
        return real._replace(reward=reward, next_obs=next_obs)

    def _sample(self, replay: Replay, key: jax.Array) -> Batch:
        sample = sample_without_replacement if self.config.sample_without_replacement else sample_uniform
        return Batch(*replay_get(replay, sample(replay, key, self.config.batch_size)))

    def _inner_rounds(
        self, learner: SACState, fake: Batch, real: Batch, key: jax.Array
    ) -> tuple[SACState, dict]:
        """K rounds of the official ``fwd_solver`` body (critic on the model batch, target, actor on the
        real s, temperature) as one ``lax.scan``, unrolled when short (K = 1 by default); last metrics."""
        k = self.config.num_q_steps
        body = lambda s, key_: self.sac.update(s, fake, key_, actor_obs=real.obs)
        learner, info = jax.lax.scan(body, learner, jax.random.split(key, k), unroll=k <= 8)
        return learner, jax.tree.map(lambda x: x[-1], info)

    def _fresh_critic_opt(self, learner: SACState) -> SACState:
        if self.config.warm_q_optimizer:
            return learner
        return learner._replace(critic_opt=self.sac.optimizers()[1].init(learner.critic))

    def _diagnostics(
        self,
        state: ContinuousDynaState,
        step: jax.Array,
        learner: SACState,
        real: Batch,
        fake: Batch,
        key: jax.Array,
    ) -> dict[str, jax.Array]:
        """Model errors on the real batch and |y_model - y_real| (same sampled next actions), every
        ``diagnostics_every`` steps (``step`` is unbatched, so the ``lax.cond`` skips the work under vmap)."""

        def compute(_: None) -> dict[str, jax.Array]:
            gap = self.sac.td_target(learner, fake, key) - self.sac.td_target(learner, real, key)
            return {
                "next_obs_mse": jnp.mean(jnp.sum((fake.next_obs - real.next_obs) ** 2, axis=-1)),
                "reward_mse": jnp.mean((fake.reward - real.reward) ** 2),
                "value_equivalence_error": jnp.mean(jnp.abs(gap)),
            }

        every = self.config.diagnostics_every
        return jax.lax.cond(step % every == 0, compute, lambda _: state.diagnostics, None)

    def _metrics(self, model_loss: jax.Array, info: dict, diagnostics: dict) -> dict[str, jax.Array]:
        return {
            "model_loss": model_loss,
            "q_loss": info["critic_loss"],
            "q_mean": info["q_mean"],
            "policy_entropy": info["entropy"],
            "alpha": info["alpha"],
        } | diagnostics

    # ---- OMD ------------------------------------------------------------------------------------
    def _inner_solver(self) -> Any:
        """The inner problem as an implicit root: x = the critics, F = grad_critic L_model(critic)."""

        def solver(critic0: Any, net: Any, aux: tuple) -> tuple[Any, tuple]:
            learner, model, real, key, _ = aux
            fake = self.model_batch(net, model, real, key)
            learner, info = self._inner_rounds(learner._replace(critic=critic0), fake, real, key)
            return learner.critic, (learner, info, fake)

        def residual(critic: Any, net: Any, aux: tuple, extras: tuple) -> Any:
            _, model, real, key, k_residual = aux
            fake = self.model_batch(net, model, real, key)
            loss = lambda c: self.sac.critic_loss(c, extras[0], fake, k_residual)[0]
            return jax.grad(loss)(critic)

        return implicit_root(solver, residual, self.inverse, symmetric=True)

    def omd_gradient(
        self, learner0: SACState, model: ModelParams, real: Batch, keys: jax.Array
    ) -> tuple[tuple[jax.Array, tuple[SACState, dict, Batch]], Any]:
        """The outer loss, the inner solution (learner, metrics, model batch) and the model gradient.

        ``keys`` [3] are the inner rounds', the residual's and the outer loss's sampling keys.
        """
        k_inner, k_residual, k_outer = keys
        root = self._inner_solver()

        def outer_loss(net: Any) -> tuple[jax.Array, tuple]:
            critic, (learner, info, fake) = root(
                learner0.critic, net, (learner0, model, real, k_inner, k_residual)
            )
            loss, _ = self.sac.critic_loss(critic, learner, real, k_outer)
            return loss, (learner, info, fake)

        return jax.value_and_grad(outer_loss, has_aux=True)(model.net)

    def _omd_update(
        self, state: ContinuousDynaState, key: jax.Array, step: jax.Array
    ) -> tuple[ContinuousDynaState, dict[str, jax.Array]]:
        k_batch, k_grad, k_outer = jax.random.split(key, 3)
        real = self._sample(state.replay, k_batch)
        learner0 = self._fresh_critic_opt(state.learner)
        keys = jax.random.split(k_grad, 3)
        (loss, (learner, info, fake)), grads = self.omd_gradient(learner0, state.model, real, keys)
        updates, model_opt = self.model_optimizer.update(grads, state.model_opt, state.model.net)
        model = state.model._replace(net=optax.apply_updates(state.model.net, updates))
        diagnostics = self._diagnostics(state, step, learner, real, fake, k_outer)
        state = state._replace(learner=learner, model=model, model_opt=model_opt, diagnostics=diagnostics)
        return state, self._metrics(loss, info, diagnostics)

    # ---- MLE-Dyna -------------------------------------------------------------------------------
    def _mle_update(
        self, state: ContinuousDynaState, key: jax.Array, step: jax.Array
    ) -> tuple[ContinuousDynaState, dict[str, jax.Array]]:
        k_batch, k_sample, k_sac, k_diag = jax.random.split(key, 4)
        real = self._sample(state.replay, k_batch)
        data = Transitions(real.obs[None], real.action[None], real.reward[None], real.next_obs[None])
        loss_fn = lambda n: self.dynamics.loss(n, state.model.stats, data)[0]
        loss, grads = jax.value_and_grad(loss_fn)(state.model.net)
        updates, model_opt = self.model_optimizer.update(grads, state.model_opt, state.model.net)
        model = state.model._replace(net=optax.apply_updates(state.model.net, updates))
        fake = self.model_batch(model.net, model, real, k_sample)
        learner, info = self._inner_rounds(state.learner, fake, real, k_sac)
        diagnostics = self._diagnostics(state, step, learner, real, fake, k_diag)
        state = state._replace(learner=learner, model=model, model_opt=model_opt, diagnostics=diagnostics)
        return state, self._metrics(loss, info, diagnostics)
