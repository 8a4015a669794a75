"""OMD and MLE-Dyna: one Dyna-style soft Q-learning agent whose model is trained either for control or by
maximum likelihood (Nikishin et al. 2022, "Control-Oriented Model-Based RL with Implicit Differentiation").

Both agents learn a dynamics model theta (``mbrl_bench.models``: next observation and reward, deterministic
or Gaussian, under any capacity spec) and a pair of soft Q-networks trained ONLY on model-generated
(r, s') for real (s, a), as the official CartPole code (github.com/evgenii-nikishin/omd, cartpole/).
On continuous actions the same two agents follow the official mujoco/ code instead: SAC on one-step model
targets (``baselines.dyna_continuous``, defaults ``CONTINUOUS_DEFAULTS``). On discrete actions:

- Q-learning (both): soft Q-learning with temperature alpha, targets
  ``r + gamma (1 - terminated) alpha logsumexp(min(Q1', Q2')(s') / alpha)`` from target networks updated
  softly (tau) after every Q step; the termination flag is the real one (bootstrapping continues through
  time-limit truncation).
- ``omd``: per env step, on one real minibatch, the inner solver takes K Adam steps of the Q-loss on the
  model's version of the batch, warm-started from the previous Q and target; the outer loss is the same
  soft TD loss of that inner solution on the REAL minibatch, and its gradient reaches theta through the
  implicit function theorem applied to the stationarity condition grad_Q L_theta(Q) = 0
  (``baselines.implicit``; the inverse Hessian is approximated by ``identity`` (official default),
  ``cg``, ``neumann`` or ``exact``). Q keeps the inner solution.
- ``mle-dyna``: per env step, ``num_model_steps`` model steps on the maximum-likelihood loss (MSE of next
  obs and reward for a deterministic model, Gaussian NLL for a probabilistic one) on fresh real
  minibatches, then K Q steps, each on a fresh minibatch relabelled by the updated model.
- Acting (both): sample softmax(Q / alpha) of the mean of the two Q-networks; while training, a uniform
  random action with probability eps, and only random actions for the first ``init_steps`` env steps.
  Evaluation samples softmax(Q / alpha) without eps, as the official ``evaluate``.

Model: ``mbrl_bench.models.DynamicsModel`` configured as OMD's official CartPole model (cartpole/utils.py):
TWO separate 2 x 32 ReLU MLPs on (obs, one-hot action), one for the next observation itself and one for the
reward, hidden layers orthogonal(sqrt 2), output layers orthogonal(0.01), no input normalisation. Capacity
specs shape each of the two networks (``width:3`` gives each its own 3 units; ``norm:B`` projects each onto
its own ball after every model step). ``separate_reward_model=False`` gives one network with both outputs.

Replay: minibatches are drawn WITHOUT replacement, as the official replay_buffer.py.

Precision: float32 by default; ``float64=True`` runs the cell under ``jax.enable_x64`` with a float64
learner state, as the official code (which enables x64 throughout). A deviation chosen from data
(results/README.md, "Ablations of the faithful agents"): on the 10-distractor CartPole cell float64 did
not prevent OMD's run-aways (2 of 5 seeds reached model errors ~1e16, finite, so never flagged), left
MLE-Dyna's result unchanged, and cost 1.7-1.9x per learner step.

One ``update`` is one jitted call per env step (the harness composes it with ``act``); the replay buffer
lives in the state, so donate the state to the jitted step to keep its writes in place.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax
from mbrl_bench.baselines.api import Agent, EnvInfo, Transition, action_kind, register_agent
from mbrl_bench.baselines.common.networks import MLP
from mbrl_bench.baselines.common.replay import (
    Replay,
    replay_add,
    replay_get,
    replay_init,
    sample_uniform,
    sample_without_replacement,
)
from mbrl_bench.baselines.dyna_continuous import ContinuousDyna, ContinuousDynaState
from mbrl_bench.baselines.implicit import INVERSE_KINDS, InverseConfig, implicit_root

from mbrl_bench.models.capacity import parse_capacity
from mbrl_bench.models.dynamics import DynamicsModel, ModelConfig, ModelParams, Transitions

MODEL_LOSSES: tuple[str, ...] = ("omd", "mle")
"""How the model is trained: for control through the implicit gradient, or by maximum likelihood."""


@dataclass(frozen=True)
class DynaConfig:
    """Hyperparameters of OMD / MLE-Dyna; defaults from the official cartpole/train.py unless noted."""

    batch_size: int = 256
    """Minibatch size of every model and Q step; train.py ``batch_size``."""
    init_steps: int = 1000
    """Uniformly random env steps before the first update; train.py ``init_steps``."""
    replay_capacity: int = 200_000
    """Replay size; train.py sizes it to ``num_train_steps`` (200K) so it holds the whole run."""
    hidden_dim: int = 32
    """Width of the two hidden ReLU layers of each Q-network; train.py ``hidden_dim``."""
    model_hidden_dim: int = 32
    """Width of the two hidden ReLU layers of the model (before any capacity spec); ``model_hidden_dim``."""
    model_out_gain: float = 0.01
    """Orthogonal gain of the model's output layer(s), so it starts predicting ~0; official CartPole
    ``final_init = Orthogonal(scale=1e-2)`` (cartpole/utils.py). On continuous actions sqrt 2: the official
    MuJoCo model uses orthogonal(sqrt 2) on every layer."""
    separate_reward_model: bool = True
    """Two model networks, next observation and reward (official CartPole utils.py); False: one network
    with both outputs (the official MuJoCo DetModel, the continuous default)."""
    sample_without_replacement: bool = True
    """Minibatches of distinct replay items (official CartPole replay_buffer.py); jaxrl's buffer, behind the
    MuJoCo code, samples with replacement (the continuous default)."""
    float64: bool = False
    """Discrete actions: run the learner in float64 (the official CartPole code enables x64; off by
    default, see "Precision" above)."""
    probabilistic_model: bool = False
    """Gaussian model (NLL for MLE, sampled s' for Q-learning) instead of deterministic; ``prob_model``."""
    num_q_steps: int = 1
    """K, Q steps per model step (the inner loop of OMD); train.py ``num_Q_steps``. In our CartPole runs
    OMD with K = 3 learns far faster than with K = 1 (mean eval return 451 vs 79 after 10K steps)."""
    num_model_steps: int = 1
    """Model steps per env step for MLE-Dyna; train.py ``num_T_steps`` (OMD takes one)."""
    eps: float = 0.1
    """Probability of a uniform random action while training; train.py ``eps``."""
    discount: float = 0.99
    """gamma; train.py ``discount``."""
    model_lr: float = 1e-3
    """Adam step size of the model (the outer loop); train.py ``lr``."""
    q_lr: float = 3e-4
    """Adam step size of the Q-networks (the inner loop); train.py ``inner_lr``."""
    alpha: float = 0.01
    """Soft-max temperature of the soft value and the softmax policy; train.py ``alpha``."""
    tau: float = 0.01
    """Soft target-network update coefficient; train.py ``tau``."""
    double_q: bool = True
    """Two Q-networks, min for targets and mean for acting; train.py (``no_double`` False)."""
    warm_start: bool = True
    """OMD's inner loop starts from the previous Q and target (train.py ``no_warm`` False)."""
    warm_q_optimizer: bool = False
    """OMD: carry the inner loop's Adam state from one outer step to the next (train.py ``--warm_opt``,
    default False: a fresh Adam state at every outer step). MLE-Dyna always carries its Q optimiser, as
    the official MLE agent; the official MuJoCo OMD carries its critic's (the continuous default)."""
    inverse: str = "identity"
    """Implicit-gradient inverse: identity (official default) | cg (``--with_inv_jac``) | neumann | exact."""
    cg_damping: float = 1e-5
    """c in (H + c I) for cg; official root_solve_bwd. With it OMD did not learn CartPole in 10K steps in
    our runs (H is indefinite away from the inner optimum) and a step costs up to 100 extra HVPs."""
    cg_maxiter: int = 100
    """CG iteration cap; official root_solve_bwd."""
    neumann_terms: int = 10
    """K of the Neumann series eta * sum_{k<K} (I - eta H)^k (ours)."""
    neumann_step: float = 0.1
    """eta of the Neumann series (ours); needs eta < 2 / lambda_max(H). The soft-Q Hessian grows during
    training: on CartPole eta = 0.1 and 0.01 both diverged within 3K steps, so identity is the stable
    choice there."""
    diagnostics_every: int = 10
    """Env steps between evaluations of the model-error metrics (next_obs_mse, reward_mse,
    value_equivalence_error), which hold their last value in between (ours: computed every step they
    cost a quarter of MLE-Dyna's update)."""
    actor_lr: float = 3e-4
    """Continuous actions only: Adam step size of the SAC actor; official mujoco ``actor_lr``."""
    temperature_lr: float = 3e-4
    """Continuous actions only: Adam step size of SAC's log-temperature; official mujoco ``temp_lr``."""
    init_temperature: float = 1.0
    """Continuous actions only: SAC's initial temperature; official mujoco ``init_temperature``."""
    target_entropy_scale: float = 0.5
    """Continuous actions only: SAC's target entropy is -scale * |A|; official mujoco ``target_entropy``
    None, i.e. jaxrl's -|A| / 2."""
    hide_position: bool = True
    """Continuous actions only: the learner does not read the task's absolute x (Ant: x, y) position,
    which our MuJoCo ids observe and the official code's stock envs hide."""

    def __post_init__(self) -> None:
        positive = (
            "batch_size",
            "replay_capacity",
            "hidden_dim",
            "model_hidden_dim",
            "num_q_steps",
            "num_model_steps",
            "diagnostics_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        if self.init_steps < 0:
            raise ValueError(f"init_steps must be >= 0, got {self.init_steps!r}")
        for name in ("eps", "tau"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 <= self.discount < 1.0:
            raise ValueError(f"discount must be in [0, 1), got {self.discount!r}")
        for name in ("alpha", "model_lr", "q_lr", "actor_lr", "temperature_lr", "init_temperature"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        self.inverse_config()

    def inverse_config(self) -> InverseConfig:
        """The implicit-gradient settings; ValueError lists the valid inverse kinds."""
        if self.inverse not in INVERSE_KINDS:
            raise ValueError(f"unknown inverse {self.inverse!r}; valid choices: {', '.join(INVERSE_KINDS)}")
        return InverseConfig(
            kind=self.inverse,
            damping=self.cg_damping,
            maxiter=self.cg_maxiter,
            neumann_terms=self.neumann_terms,
            neumann_step=self.neumann_step,
        )


class Batch(NamedTuple):
    """A minibatch in the form the soft Q-loss reads (real, or relabelled by the model)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    not_done: jax.Array
    """1 - terminated (real flag): bootstrapping continues through truncation."""


class DynaState(NamedTuple):
    """One seed's learner state."""

    q: Any
    """Q-network parameters, every leaf with a leading axis of 2 (double Q) or 1."""
    q_target: Any
    q_opt: optax.OptState
    model: ModelParams
    model_opt: optax.OptState
    replay: Replay
    steps: jax.Array
    """Real transitions received so far (decides the initial random phase in ``act``)."""
    diagnostics: dict[str, jax.Array]
    """The last model-error metrics (see ``DynaConfig.diagnostics_every``)."""


DIAGNOSTICS: tuple[str, ...] = ("next_obs_mse", "reward_mse", "value_equivalence_error")
METRICS: tuple[str, ...] = ("model_loss", "q_loss", "q_mean", "policy_entropy", *DIAGNOSTICS)
"""Per-step metrics: the model's own training loss (OMD: the outer TD loss on real data), the inner soft
TD loss on model data, mean Q(s, a), entropy of softmax(Q/alpha), the model's next-obs and reward MSE on the
real minibatch, and mean |B^theta Q' - B Q'| on it at the target network Q' (targets with the model's vs
the real (r, s')); the last three are refreshed every ``diagnostics_every`` steps."""


def _scan(f: Any, init: Any, xs: Any, length: int) -> tuple[Any, Any]:
    """``lax.scan``, fully unrolled for short loops (K = 1 by default) so XLA sees straight-line code."""
    return jax.lax.scan(f, init, xs, length=length, unroll=length <= 8)


CONTINUOUS_DEFAULTS: dict[str, Any] = {
    "init_steps": 10_000,
    "replay_capacity": 1_000_000,
    "hidden_dim": 256,
    "model_hidden_dim": 256,
    "model_lr": 3e-4,
    "tau": 0.005,
    "model_out_gain": math.sqrt(2.0),
    "separate_reward_model": False,
    "sample_without_replacement": False,
    "warm_q_optimizer": True,
}
"""The official mujoco/ code's settings where they differ from the CartPole code's (configs/omd_default.py
and train.py: learning starts at 1e4, replay sized to the run, (256, 256) SAC, model hidden 256 (64 in the
misspecification runs: capacity ``width:64``), all lrs 3e-4, tau 0.005, one model network with every
layer orthogonal(sqrt 2), jaxrl's replay sampled with replacement, the critic's Adam state kept across
steps); the replay is capped at the run's budget."""


class DynaAgent(Agent):
    """The shared Dyna agent; subclasses fix ``model_loss`` (see the module docstring).

    On continuous actions the learner is ``baselines.dyna_continuous.ContinuousDyna`` (SAC on one-step
    model targets, the official mujoco/ agent) with the defaults ``CONTINUOUS_DEFAULTS``.
    """

    Config: ClassVar[type] = DynaConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete", "continuous"})
    uses_model: ClassVar[bool] = True
    kind_defaults: ClassVar[dict[str, dict[str, Any]]] = {"continuous": CONTINUOUS_DEFAULTS}
    model_loss: ClassVar[str]

    def __init__(self, config: DynaConfig, env: EnvInfo, capacity: str = "full") -> None:
        kind = action_kind(env.action_space)
        if kind not in self.action_kinds:
            raise ValueError(
                f"{self.name} supports action kinds: {', '.join(sorted(self.action_kinds))}; "
                f"{env.env_id} has {kind} actions"
            )
        if not isinstance(env.observation_space, gym.spaces.Box):
            raise ValueError(
                f"{self.name} needs vector (Box) observations, {env.env_id} has {env.observation_space}; "
                "for tabular MDPs use mbrl_bench.baselines.omd_tabular.tabular_study"
            )
        if self.model_loss not in MODEL_LOSSES:
            raise ValueError(f"unknown model loss {self.model_loss!r}; valid: {', '.join(MODEL_LOSSES)}")
        super().__init__(config, env, str(parse_capacity(capacity)))
        self.continuous = (
            ContinuousDyna(config, env, self.capacity, self.model_loss) if kind == "continuous" else None
        )
        if self.continuous is not None:
            if config.float64:
                raise ValueError("float64 is implemented for discrete actions only")
            self.dynamics = self.continuous.dynamics
            return
        self.float64 = config.float64
        self.dtype = jnp.float64 if config.float64 else jnp.float32
        self.obs_dim = int(env.observation_space.shape[0])
        self.num_actions = int(env.action_space.n)
        self.dynamics = DynamicsModel(
            self._model_config(config), self.obs_dim, self.num_actions, True, parse_capacity(capacity)
        )
        self.q_net = MLP((config.hidden_dim, config.hidden_dim), self.num_actions, out_gain=0.01)
        self.num_q = 2 if config.double_q else 1
        self.q_optimizer = optax.adam(config.q_lr)
        self.model_optimizer = optax.chain(optax.adam(config.model_lr), self.dynamics.capacity_transform())
        self.inverse = config.inverse_config()

    @staticmethod
    def _model_config(config: DynaConfig) -> ModelConfig:
        """OMD's CartPole model: 2 x hidden ReLU, orthogonal(sqrt 2), absolute next obs and reward, two
        networks unless ``separate_reward_model`` is off."""
        base = ModelConfig.omd_cartpole()
        return ModelConfig(
            hidden_sizes=(config.model_hidden_dim, config.model_hidden_dim),
            activation=base.activation,
            probabilistic=config.probabilistic_model,
            predict_delta=base.predict_delta,
            ensemble_size=1,
            num_elites=1,
            kernel_init="orthogonal_relu",
            weight_decays=base.weight_decays,
            separate_reward_net=config.separate_reward_model,
        )

    # ---- networks -------------------------------------------------------------------------------
    def q_values(self, q_params: Any, obs: jax.Array) -> jax.Array:
        """Q of every network, shape [num_q, ..., num_actions]."""
        return jax.vmap(lambda p: self.q_net.apply(p, obs))(q_params)

    def soft_value(self, q: jax.Array) -> jax.Array:
        """alpha * logsumexp(Q / alpha) over the last axis."""
        return self.config.alpha * jax.nn.logsumexp(q / self.config.alpha, axis=-1)

    def td_target(self, q_target: Any, batch: Batch) -> jax.Array:
        """y = r + gamma (1 - terminated) alpha logsumexp(min_k Q'_k(s') / alpha), per transition."""
        target_q = jnp.min(self.q_values(jax.lax.stop_gradient(q_target), batch.next_obs), axis=0)
        return batch.reward + self.config.discount * batch.not_done * self.soft_value(target_q)

    def q_loss(self, q_params: Any, q_target: Any, batch: Batch) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        """Official ``loss_Q``: mean over networks of the soft TD error, targets from min of target nets.

        Returns (loss, (mean Q(s, a), entropy of softmax(Q/alpha), targets y)). The target depends on
        ``batch`` (hence on the model) but not on ``q_params``.
        """
        y = self.td_target(q_target, batch)
        q_all = self.q_values(q_params, batch.obs)
        q_sa = jnp.take_along_axis(q_all, batch.action[None, :, None], axis=-1)[..., 0]
        loss = jnp.mean((q_sa - y[None]) ** 2)
        logp = jax.nn.log_softmax(q_all / self.config.alpha, axis=-1)
        entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1).mean()
        return loss, (q_sa.mean(), entropy, y)

    def model_batch(self, net: Any, model: ModelParams, real: Batch, key: jax.Array) -> Batch:
        """The real batch with (r, s') replaced by the model's (sampled if Gaussian), differentiable."""
        params = ModelParams(net, model.stats, model.elites)
        next_obs, reward = self.dynamics.step(params, real.obs, real.action, key)
        return real._replace(reward=reward, next_obs=next_obs)

    def _init_q(self, key: jax.Array) -> Any:
        """Fresh parameters of the ``num_q`` Q-networks, stacked on a leading axis."""
        dummy = jnp.zeros((1, self.obs_dim))
        return jax.vmap(lambda k: self.q_net.init(k, dummy))(jax.random.split(key, self.num_q))

    def _sample(self, replay: Replay, key: jax.Array) -> Batch:
        sample = sample_without_replacement if self.config.sample_without_replacement else sample_uniform
        return Batch(*replay_get(replay, sample(replay, key, self.config.batch_size)))

    def _scale_output_layer(self, net: dict) -> dict:
        """Give each model network's output layer the orthogonal gain ``model_out_gain``: its kernel (``V``
        of a rank-factorised one) was drawn orthogonal(sqrt 2) like the hidden layers, so rescale it."""
        out = f"layer_{len(self.dynamics.hidden_sizes)}"
        factor = self.config.model_out_gain / math.sqrt(2.0)

        def scale(sub: dict) -> dict:
            layer = dict(sub[out])
            if "dense" in layer:
                layer["dense"] = {**layer["dense"], "kernel": layer["dense"]["kernel"] * factor}
            else:
                layer["V"] = layer["V"] * factor
            return {**sub, out: layer}

        if self.dynamics.config.separate_reward_net:
            return {name: scale(sub) for name, sub in net.items()}
        return scale(net)

    # ---- agent interface ------------------------------------------------------------------------
    def init(self, key: jax.Array) -> DynaState | ContinuousDynaState:
        if self.continuous is not None:
            return self.continuous.init(key, self._scale_output_layer)
        k_q, k_model = jax.random.split(key)
        q = self._init_q(k_q)
        model = self.dynamics.init(k_model)
        model = model._replace(net=self._scale_output_layer(model.net))
        example = Batch(
            jnp.zeros(self.obs_dim),
            jnp.zeros((), jnp.int32),
            jnp.zeros(()),
            jnp.zeros(self.obs_dim),
            jnp.zeros(()),
        )
        state = DynaState(
            q=q,
            q_target=q,
            q_opt=self.q_optimizer.init(q),
            model=model,
            model_opt=self.model_optimizer.init(model.net),
            replay=replay_init(example, self.config.replay_capacity),
            steps=jnp.zeros((), jnp.int32),
            diagnostics={name: jnp.zeros(()) for name in DIAGNOSTICS},
        )
        # Flax and optax create float32 leaves even under x64: cast every float to the learner's dtype.
        floating = lambda x: jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
        return jax.tree.map(lambda x: jnp.asarray(x, self.dtype) if floating(x) else x, state)

    def act(self, state: Any, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        if self.continuous is not None:
            return self.continuous.act(state, obs, key, explore)
        k_policy, k_eps, k_uniform = jax.random.split(key, 3)
        q = jnp.mean(self.q_values(state.q, jnp.asarray(obs, self.dtype)), axis=0)
        action = jax.random.categorical(k_policy, q / self.config.alpha)
        if not explore:
            return action
        uniform = jax.random.randint(k_uniform, (), 0, self.num_actions)
        random = (jax.random.uniform(k_eps) < self.config.eps) | (state.steps < self.config.init_steps)
        return jnp.where(random, uniform, action)

    def update(
        self, state: Any, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[Any, dict[str, jax.Array]]:
        if self.continuous is not None:
            return self.continuous.update(state, transition, key, step)
        item = Batch(
            jnp.asarray(transition.obs, self.dtype),
            jnp.asarray(transition.action, jnp.int32),
            jnp.asarray(transition.reward, self.dtype),
            jnp.asarray(transition.next_obs, self.dtype),
            1.0 - jnp.asarray(transition.terminated, self.dtype),
        )
        state = state._replace(replay=replay_add(state.replay, item), steps=state.steps + 1)
        learn = self._omd_update if self.model_loss == "omd" else self._mle_update
        idle = lambda s, k, t: (s, {name: jnp.zeros(()) for name in METRICS})
        return jax.lax.cond(step >= self.config.init_steps, learn, idle, state, key, step)

    # ---- learning -------------------------------------------------------------------------------
    def _q_step(self, carry: tuple[Any, Any, optax.OptState], batch: Batch) -> tuple[tuple, tuple]:
        """One Adam step of the soft Q-loss on ``batch``, then the soft target update."""
        q, q_target, opt = carry
        (loss, aux), grads = jax.value_and_grad(self.q_loss, has_aux=True)(q, q_target, batch)
        updates, opt = self.q_optimizer.update(grads, opt, q)
        q = optax.apply_updates(q, updates)
        q_target = optax.incremental_update(q, q_target, self.config.tau)
        return (q, q_target, opt), (loss, aux[0], aux[1])

    def _diagnostics(
        self,
        state: DynaState,
        step: jax.Array,
        real: Batch,
        fake: Batch,
        q_target: Any,
        real_y: jax.Array | None,
    ) -> dict[str, jax.Array]:
        """Next-obs and reward MSE of the model and |B^theta Q' - B Q'| on a real batch, every
        ``diagnostics_every`` steps (else the last values).

        Both targets use the target network Q'; ``real_y`` passes the real ones when already computed.
        ``step`` is unbatched, so the ``lax.cond`` skips the work on the other steps even under vmap.
        """

        def compute(_: None) -> dict[str, jax.Array]:
            ry = self.td_target(q_target, real) if real_y is None else real_y
            return {
                "next_obs_mse": jnp.mean(jnp.sum((fake.next_obs - real.next_obs) ** 2, axis=-1)),
                "reward_mse": jnp.mean((fake.reward - real.reward) ** 2),
                "value_equivalence_error": jnp.mean(jnp.abs(self.td_target(q_target, fake) - ry)),
            }

        every = self.config.diagnostics_every
        return jax.lax.cond(step % every == 0, compute, lambda _: state.diagnostics, None)

    def _inner_solver(self) -> Callable[[Any, Any, tuple], tuple[Any, tuple]]:
        """OMD's inner problem as an implicit root: K Q-steps on the model batch; F = grad_Q L_theta(Q)."""
        cfg = self.config

        def solver(q0: Any, net: Any, aux: tuple) -> tuple[Any, tuple]:
            real, model, key, q_target, q_opt = aux
            batch = self.model_batch(net, model, real, key)
            opt = q_opt if cfg.warm_q_optimizer else self.q_optimizer.init(q0)
            (q, q_target, opt), (loss, q_mean, entropy) = _scan(
                lambda c, _: self._q_step(c, batch), (q0, q_target, opt), None, cfg.num_q_steps
            )
            return q, (q_target, opt, loss[-1], q_mean[-1], entropy[-1], batch)

        def residual(q: Any, net: Any, aux: tuple, extras: tuple) -> Any:
            real, model, key, _, _ = aux
            batch = self.model_batch(net, model, real, key)
            return jax.grad(lambda p: self.q_loss(p, extras[0], batch)[0])(q)

        return implicit_root(solver, residual, self.inverse, symmetric=True)

    def _omd_update(
        self, state: DynaState, key: jax.Array, step: jax.Array
    ) -> tuple[DynaState, dict[str, jax.Array]]:
        k_batch, k_model = jax.random.split(key)
        real = self._sample(state.replay, k_batch)
        root = self._inner_solver()
        q0 = state.q if self.config.warm_start else self._init_q(k_model)
        q_target0 = state.q_target if self.config.warm_start else q0

        def outer_loss(net: Any) -> tuple[jax.Array, tuple]:
            q, extras = root(q0, net, (real, state.model, k_model, q_target0, state.q_opt))
            loss, (_, _, real_y) = self.q_loss(q, extras[0], real)
            return loss, (q, extras, real_y)

        (loss, (q, extras, real_y)), grads = jax.value_and_grad(outer_loss, has_aux=True)(state.model.net)
        q_target, q_opt, q_loss, q_mean, entropy, fake = extras
        updates, model_opt = self.model_optimizer.update(grads, state.model_opt, state.model.net)
        model = state.model._replace(net=optax.apply_updates(state.model.net, updates))
        diagnostics = self._diagnostics(state, step, real, fake, q_target, real_y)
        metrics = {
            "model_loss": loss,
            "q_loss": q_loss,
            "q_mean": q_mean,
            "policy_entropy": entropy,
        } | diagnostics
        state = state._replace(q=q, q_target=q_target, q_opt=q_opt, model=model, model_opt=model_opt)
        state = state._replace(diagnostics=diagnostics)
        return state, metrics

    def _mle_update(
        self, state: DynaState, key: jax.Array, step: jax.Array
    ) -> tuple[DynaState, dict[str, jax.Array]]:
        cfg = self.config
        k_model, k_q = jax.random.split(key)

        def model_step(carry: tuple[Any, optax.OptState], k: jax.Array) -> tuple[tuple, jax.Array]:
            net, opt = carry
            b = self._sample(state.replay, k)
            data = Transitions(b.obs[None], b.action[None], b.reward[None], b.next_obs[None])
            loss, grads = jax.value_and_grad(lambda n: self.dynamics.loss(n, state.model.stats, data)[0])(net)
            updates, opt = self.model_optimizer.update(grads, opt, net)
            return (optax.apply_updates(net, updates), opt), loss

        (net, model_opt), model_losses = _scan(
            model_step,
            (state.model.net, state.model_opt),
            jax.random.split(k_model, cfg.num_model_steps),
            cfg.num_model_steps,
        )
        model = state.model._replace(net=net)

        def q_step(carry: tuple, k: jax.Array) -> tuple[tuple, tuple]:
            k_batch, k_sample = jax.random.split(k)
            real = self._sample(state.replay, k_batch)
            fake = self.model_batch(net, model, real, k_sample)
            carry, stats = self._q_step(carry, fake)
            return carry, (*stats, real, fake)

        (q, q_target, q_opt), (q_loss, q_mean, entropy, reals, fakes) = _scan(
            q_step,
            (state.q, state.q_target, state.q_opt),
            jax.random.split(k_q, cfg.num_q_steps),
            cfg.num_q_steps,
        )
        real, fake = jax.tree.map(lambda x: x[-1], (reals, fakes))  # the last Q step's batch
        diagnostics = self._diagnostics(state, step, real, fake, q_target, None)
        metrics = {"model_loss": model_losses[-1], "q_loss": q_loss[-1], "q_mean": q_mean[-1]}
        metrics |= {"policy_entropy": entropy[-1]} | diagnostics
        state = state._replace(q=q, q_target=q_target, q_opt=q_opt, model=model, model_opt=model_opt)
        return state._replace(diagnostics=diagnostics), metrics


@register_agent
class OMDAgent(DynaAgent):
    """Optimal Model Design: the model is trained for control through the implicit gradient."""

    name: ClassVar[str] = "omd"
    model_loss: ClassVar[str] = "omd"
    description: ClassVar[str] = (
        "OMD (Nikishin et al. 2022): model trained for control by implicit differentiation"
    )


@register_agent
class MLEDynaAgent(DynaAgent):
    """The same Dyna agent with the model trained by maximum likelihood (OMD's MLE baseline)."""

    name: ClassVar[str] = "mle-dyna"
    model_loss: ClassVar[str] = "mle"
    description: ClassVar[str] = "Dyna soft Q-learning on a maximum-likelihood model (OMD's MLE baseline)"
