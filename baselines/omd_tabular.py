"""OMD and MLE in the tabular case: the model-misspecification study of OMD's official notebook.

What is exact and what is learned (as in the official ``tabular.ipynb``):

- The model theta = (L, R_hat) is learned: P_hat(.|s,a) = softmax(L[s,a,:] / tau), R_hat a table, both
  initialised uniform(0, 1). Its capacity is restricted by projected Adam: after every Adam step the
  vector (L / tau, R_hat) is projected onto the L2 ball of radius ``norm_bound`` (both methods).
- The inner problem is solved exactly: Q* = B^theta Q* by soft value iteration to a tolerance
  (``mbrl_bench.envs.dp``), warm-started from the previous Q*.
- The objectives use the TRUE MDP, not samples: OMD maximises the exact J(pi) = mu . V^pi of
  pi = softmax(Q*(theta) / tau) by policy evaluation on the true P, R; MLE minimises
  mean_{s,a}(R_hat - R)^2 + mean_{s,a} KL(P(.|s,a) || P_hat(.|s,a)). No transitions are sampled.
- OMD's gradient is the implicit one through Q*(theta) (``baselines.implicit``); by default ``exact``
  (dense solve of the fixed-point adjoint), the notebook's fax ``two_phase_solve`` run to tolerance.

``tabular_study_point`` runs one (method, norm bound, seed) point and returns its J(pi) curve; it is
pure, so ``tabular_study`` jits and vmaps it over a grid of bounds x seeds. Run it under
``jax.enable_x64(True)`` for the notebook's float64 (temperature 0.01 makes float32 logits coarse).

The same loop is registered as the agents ``omd-tabular`` and ``mle-tabular`` so that suites and the
harness run it (``mbrl-bench run --algo omd-tabular --env mbrl_bench/TwoStatePolytope-v0 --capacity
norm:2``): one outer step per env step, the exact J, model errors and value-equivalence error as
metrics, and the policy softmax(Q*/tau) acting in the env for the evaluation returns. As in the
notebook they learn from the env's exact MDP, not from the transitions the harness hands them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import ClassVar, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
import optax
from jax.scipy.special import xlogy
from mbrl_bench.baselines.api import Agent, EnvInfo, Transition, register_agent
from mbrl_bench.baselines.implicit import InverseConfig, implicit_root

from mbrl_bench.envs import dp
from mbrl_bench.envs.registration import make
from mbrl_bench.envs.tabular import TabularMDP
from mbrl_bench.models.capacity import parse_capacity, project_l2_ball

TABULAR_METHODS: tuple[str, ...] = ("omd", "mle")
"""The model losses of the tabular study: OMD (maximise J through Q*) and MLE (reward MSE + KL)."""


PROJECTIONS: tuple[str, ...] = ("joint", "per-array")
"""Valid ``TabularConfig.projection`` values."""


@dataclass(frozen=True)
class TabularConfig:
    """Hyperparameters of the tabular OMD/MLE study."""

    temperature: float = 0.01
    """tau of both softmax(Q/tau) (policy, soft Bellman) and softmax(L/tau) (model); official notebook."""
    learning_rate: float = 0.01
    """Adam step size on theta = (L, R_hat); official notebook (``lr_func = 0.01``)."""
    inner_tol: float = 1e-9
    """Soft value iteration stops once ||Q - Q*||_inf <= inner_tol (ours: 'to convergence' in float64)."""
    inner_max_iter: int = 10_000
    """Cap on soft value-iteration sweeps per outer step (ours; warm starts need a few dozen)."""
    inverse: str = "exact"
    """identity | cg | neumann | exact; exact = the notebook's fixed-point adjoint run to tolerance."""
    neumann_terms: int = 200
    """Neumann terms when inverse = neumann (ours: gamma^200 ~ 7e-10 at gamma = 0.9, i.e. exact)."""
    cg_maxiter: int = 100
    """CG iteration cap when inverse = cg; 100 as the official cartpole code."""
    cg_damping: float = 1e-5
    """CG damping when inverse = cg; 1e-5 as the official cartpole code."""
    inner_noise_std: float = 0.0
    """Std of Gaussian noise added to Q* before the objective (the notebook's noisy-inner-solution study)."""
    projection: str = "joint"
    """How the norm bound is applied: ``joint``, the paper's one ball over (L / tau, R_hat); ``per-array``,
    what the notebook computes (``padam`` runs once per parameter array: see ``project_model``)."""

    def __post_init__(self) -> None:
        if self.projection not in PROJECTIONS:
            raise ValueError(f"unknown projection {self.projection!r}; valid: {', '.join(PROJECTIONS)}")

    def inverse_config(self) -> InverseConfig:
        """The implicit-gradient settings (raises ValueError for an unknown ``inverse``)."""
        return InverseConfig(
            kind=self.inverse,
            damping=self.cg_damping,
            maxiter=self.cg_maxiter,
            neumann_terms=self.neumann_terms,
            neumann_step=1.0,
        )


class TabularModel(NamedTuple):
    """theta: transition logits L[s, a, s'] (P_hat = softmax(L / tau)) and the reward table R_hat[s, a]."""

    logits: jax.Array
    reward: jax.Array


class MDPArrays(NamedTuple):
    """A TabularMDP as JAX arrays (so one jitted study serves every MDP of the same shape)."""

    P: jax.Array
    R: jax.Array
    gamma: jax.Array
    mu: jax.Array


class TabularStudyResult(NamedTuple):
    """One study point's outcome (leading axes added by ``tabular_study``'s vmap)."""

    returns: jax.Array
    """J(pi_k) on the true MDP for the model after k = 0..iterations updates, shape (iterations + 1,)."""
    model: TabularModel
    """The final model."""
    q: jax.Array
    """Q* of the final model, shape (n_states, n_actions)."""
    mle_loss: jax.Array
    """The final model's MLE loss (reward MSE + mean KL): how likely it makes the true dynamics."""
    bellman_error: jax.Array
    """mean (B^true Q* - Q*)^2 at the final Q*: how far the model's Q* is from the true soft Q*."""
    param_norm: jax.Array
    """||(L / tau, R_hat)||, the norm the bound restricts."""


def mdp_arrays(mdp: TabularMDP) -> MDPArrays:
    """The MDP's arrays in JAX's default float dtype (float64 under ``jax.enable_x64(True)``)."""
    dtype = jnp.result_type(float)
    return MDPArrays(
        jnp.asarray(mdp.P, dtype),
        jnp.asarray(mdp.R, dtype),
        jnp.asarray(mdp.gamma, dtype),
        jnp.asarray(mdp.mu, dtype),
    )


def model_dynamics(model: TabularModel, temperature: float) -> tuple[jax.Array, jax.Array]:
    """(P_hat, R_hat) of a model: P_hat = softmax(L / tau) over next states."""
    return jax.nn.softmax(model.logits / temperature, axis=-1), model.reward


def init_model(
    key: jax.Array, n_states: int, n_actions: int, dtype: jnp.dtype
) -> tuple[jax.Array, TabularModel]:
    """Initial Q table and model, all uniform(0, 1) as the notebook (L drawn action-first, transposed)."""
    k_q, k_l, k_r = jax.random.split(key, 3)
    q0 = jax.random.uniform(k_q, (n_states, n_actions), dtype)
    logits = jax.random.uniform(k_l, (n_actions, n_states, n_states), dtype).transpose(1, 0, 2)
    return q0, TabularModel(logits, jax.random.uniform(k_r, (n_states, n_actions), dtype))


def model_norm(model: TabularModel, temperature: float) -> jax.Array:
    """||(L / tau, R_hat)||_2, the quantity the notebook's projected Adam bounds."""
    return optax.tree.norm((model.logits / temperature, model.reward))


def _project_array(x: jax.Array, norm_bound: jax.Array, temperature: float) -> jax.Array:
    """The notebook's ``padam`` projection applied to ONE array x: norm = ||(x[0] / tau, x[1])|| over x's
    first two slices along axis 0 (the code meant the pair (L, R_hat)); x scaled by bound / norm if above."""
    norm = optax.tree.norm((x[0] / temperature, x[1]))
    return jnp.where(norm > norm_bound, x * norm_bound / jnp.maximum(norm, 1e-30), x)


def project_model(
    model: TabularModel, norm_bound: jax.Array, temperature: float, projection: str = "joint"
) -> TabularModel:
    """Project the model onto the norm bound.

    ``joint`` (the paper): (L / tau, R_hat) onto the L2 ball of radius ``norm_bound``. ``per-array`` (the
    notebook's computation: jax.example_libraries' ``@optimizer`` calls ``padam``'s update once per
    parameter array): L and R_hat each scaled onto its own ball, the norm of each taken with its first
    slice divided by tau (L in the notebook's action-first layout: L[a=0] / tau; R_hat: its row s=0 / tau).
    """
    if projection == "per-array":
        logits = _project_array(model.logits.transpose(1, 0, 2), norm_bound, temperature).transpose(1, 0, 2)
        return TabularModel(logits, _project_array(model.reward, norm_bound, temperature))
    scaled, reward = project_l2_ball((model.logits / temperature, model.reward), norm_bound)
    return TabularModel(scaled * temperature, reward)


def mle_loss(model: TabularModel, mdp: MDPArrays, temperature: float) -> jax.Array:
    """mean_{s,a} (R_hat - R)^2 + mean_{s,a} KL(P(.|s,a) || P_hat(.|s,a)), the notebook's MLE objective."""
    log_p_hat = jax.nn.log_softmax(model.logits / temperature, axis=-1)
    kl = jnp.sum(xlogy(mdp.P, mdp.P) - mdp.P * log_p_hat, axis=-1)
    return jnp.mean((model.reward - mdp.R) ** 2) + jnp.mean(kl)


def true_return(q: jax.Array, mdp: MDPArrays, temperature: float) -> jax.Array:
    """J(softmax(Q / tau)) on the true MDP by exact policy evaluation."""
    return dp.expected_return(mdp.P, mdp.R, mdp.gamma, mdp.mu, dp.softmax_policy(q, temperature))


def true_bellman_error(q: jax.Array, mdp: MDPArrays, temperature: float) -> jax.Array:
    """mean (B^true Q - Q)^2 with the true soft Bellman operator (the notebook's ``objective_bellman``)."""
    return jnp.mean((dp.soft_bellman(q, mdp.P, mdp.R, mdp.gamma, temperature) - q) ** 2)


def make_q_star(config: TabularConfig, gamma: jax.Array) -> Callable[[jax.Array, TabularModel], jax.Array]:
    """``q_star(q_init, model) -> Q*(model)``, differentiable in the model by the implicit function theorem.

    The root is F(Q, theta) = Q - B^theta Q (A = I - dB/dQ is not symmetric, so CG runs on the normal
    equations); the forward pass is soft value iteration warm-started at ``q_init``.
    """
    tau = config.temperature

    def solver(q0: jax.Array, model: TabularModel, aux: None) -> tuple[jax.Array, None]:
        p_hat, r_hat = model_dynamics(model, tau)
        sol = dp.soft_value_iteration(
            p_hat, r_hat, gamma, tau, tol=config.inner_tol, max_iter=config.inner_max_iter, q_init=q0
        )
        return sol.q, None

    def residual(q: jax.Array, model: TabularModel, aux: None, extras: None) -> jax.Array:
        p_hat, r_hat = model_dynamics(model, tau)
        return q - dp.soft_bellman(q, p_hat, r_hat, gamma, tau)

    root = implicit_root(solver, residual, config.inverse_config(), symmetric=False)
    return lambda q_init, model: root(q_init, model, None)[0]


def omd_objective(
    model: TabularModel, q_init: jax.Array, mdp: MDPArrays, config: TabularConfig, noise_key: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """(-J(pi_{Q*(theta)}), Q*): OMD's loss, differentiable in theta through the implicit Q*."""
    q = make_q_star(config, mdp.gamma)(q_init, model)
    q = q + config.inner_noise_std * jax.random.normal(noise_key, q.shape, q.dtype)
    return -true_return(q, mdp, config.temperature), q


class OuterStep(NamedTuple):
    """What one outer step of the study returns."""

    model: TabularModel
    opt_state: optax.OptState
    q: jax.Array
    """Q*(theta_k) of the model BEFORE the step (the warm start of the next one)."""
    true_return: jax.Array
    """J(softmax(Q*(theta_k) / tau)) on the true MDP."""


def outer_step(
    model: TabularModel,
    opt_state: optax.OptState,
    q_warm: jax.Array,
    noise_key: jax.Array,
    mdp: MDPArrays,
    method: str,
    norm_bound: jax.Array,
    config: TabularConfig,
) -> OuterStep:
    """One projected-Adam step of the model by ``method`` (the notebook's loop body), Q* warm-started."""
    tau = config.temperature
    if method == "omd":
        (neg_j, q), grads = jax.value_and_grad(omd_objective, has_aux=True)(
            model, q_warm, mdp, config, noise_key
        )
        ret = -neg_j
    else:
        grads = jax.grad(mle_loss)(model, mdp, tau)
        q = make_q_star(config, mdp.gamma)(q_warm, model)
        ret = true_return(q, mdp, tau)
    updates, opt_state = optax.adam(config.learning_rate).update(grads, opt_state, model)
    model = project_model(optax.apply_updates(model, updates), norm_bound, tau, config.projection)
    return OuterStep(model, opt_state, q, ret)


def _study_point(
    mdp: MDPArrays,
    method: str,
    norm_bound: jax.Array,
    seed: jax.Array,
    iterations: int,
    config: TabularConfig,
) -> TabularStudyResult:
    tau = config.temperature
    n_states, n_actions = mdp.R.shape
    q0, model0 = init_model(jax.random.PRNGKey(seed), n_states, n_actions, mdp.R.dtype)
    solve = make_q_star(config, mdp.gamma)
    noise_keys = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(seed), 1), iterations + 1)

    def step(
        carry: tuple[TabularModel, optax.OptState, jax.Array], key: jax.Array
    ) -> tuple[tuple, jax.Array]:
        out = outer_step(*carry, key, mdp, method, norm_bound, config)
        return (out.model, out.opt_state, out.q), out.true_return

    opt_state0 = optax.adam(config.learning_rate).init(model0)
    (model, _, q_warm), returns = jax.lax.scan(step, (model0, opt_state0, q0), noise_keys[:-1])
    q = solve(q_warm, model)
    returns = jnp.concatenate([returns, true_return(q, mdp, tau)[None]])
    return TabularStudyResult(
        returns=returns,
        model=model,
        q=q,
        mle_loss=mle_loss(model, mdp, tau),
        bellman_error=true_bellman_error(q, mdp, tau),
        param_norm=model_norm(model, tau),
    )


_study_point_jit = jax.jit(_study_point, static_argnums=(1, 4, 5))


@partial(jax.jit, static_argnums=(1, 4, 5))
def _study_grid(
    mdp: MDPArrays, method: str, bounds: jax.Array, seeds: jax.Array, iterations: int, config: TabularConfig
) -> TabularStudyResult:
    point = lambda bound, seed: _study_point(mdp, method, bound, seed, iterations, config)
    return jax.vmap(jax.vmap(point, in_axes=(None, 0)), in_axes=(0, None))(bounds, seeds)


def _check_method(method: str) -> None:
    if method not in TABULAR_METHODS:
        raise ValueError(f"unknown tabular method {method!r}; valid methods: {', '.join(TABULAR_METHODS)}")


def tabular_study_point(
    mdp: TabularMDP,
    method: str,
    norm_bound: float | jax.Array,
    seed: int | jax.Array,
    iterations: int,
    config: TabularConfig = TabularConfig(),
) -> TabularStudyResult:
    """One point of the tabular study: train a model by ``method`` under ``norm_bound`` and track J(pi).

    Args:
        mdp: the true MDP (e.g. ``two_state_polytope()`` or a ``garnet(...)``).
        method: "omd" or "mle".
        norm_bound: radius B of the ball that (L / tau, R_hat) is projected onto after each step.
        seed: seeds the uniform(0, 1) initialisation of Q, L and R_hat.
        iterations: Adam steps (the notebook allows up to 10,000 and stops at convergence).
        config: temperature, learning rate, inner tolerance and the implicit-gradient approximation.

    Returns:
        A ``TabularStudyResult``; ``returns[k]`` is J(softmax(Q*(theta_k) / tau)) on the true MDP.
    """
    _check_method(method)
    config.inverse_config()
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations!r}")
    arrays = mdp_arrays(mdp)
    return _study_point_jit(
        arrays, method, jnp.asarray(norm_bound, arrays.R.dtype), jnp.asarray(seed), iterations, config
    )


def tabular_study(
    mdp: TabularMDP,
    method: str,
    norm_bounds: jax.Array,
    seeds: jax.Array,
    iterations: int,
    config: TabularConfig = TabularConfig(),
) -> TabularStudyResult:
    """The study over a grid: one jitted call, vmapped over ``norm_bounds`` (outer) and ``seeds`` (inner).

    Every field of the result gets two leading axes, (len(norm_bounds), len(seeds)); e.g. ``returns`` has
    shape (n_bounds, n_seeds, iterations + 1). The notebook's sweep is ``norm_bounds =
    jnp.linspace(0, 6, 20)`` and ``seeds = jnp.arange(1, 11)`` with up to 10,000 iterations.
    """
    _check_method(method)
    config.inverse_config()
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations!r}")
    arrays = mdp_arrays(mdp)
    return _study_grid(
        arrays, method, jnp.asarray(norm_bounds, arrays.R.dtype), jnp.asarray(seeds), iterations, config
    )


class TabularAgentState(NamedTuple):
    """One seed of the tabular agents."""

    model: TabularModel
    opt_state: optax.OptState
    q: jax.Array
    """Q* of the current model's predecessor (the policy acts on it; the warm start of the next solve)."""


class _TabularAgent(Agent):
    """The tabular study's loop as an agent: one outer step of ``method`` per env step (see the module
    docstring); capacity ``full`` (no projection) or ``norm:B`` (the notebook's projected Adam)."""

    Config: ClassVar[type] = TabularConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete"})
    uses_model: ClassVar[bool] = True
    float64: ClassVar[bool] = True
    method: ClassVar[str]

    def __init__(self, config: TabularConfig, env: EnvInfo, capacity: str = "full") -> None:
        if not isinstance(env.observation_space, gym.spaces.Discrete):
            raise ValueError(
                f"{self.name} needs a tabular env (Discrete observations), {env.env_id} has "
                f"{type(env.observation_space).__name__} observations; for vector observations use omd "
                "or mle-dyna"
            )
        spec = parse_capacity(capacity)
        if spec.kind not in ("full", "norm"):
            raise ValueError(f"{self.name} supports capacities full and norm:B, got {capacity!r}")
        super().__init__(config, env, str(spec))
        config.inverse_config()
        mdp = getattr(make(env.env_id, **env.env_kwargs).unwrapped, "mdp", None)
        if not isinstance(mdp, TabularMDP):
            raise ValueError(
                f"{self.name} needs an env exposing its exact MDP (env.unwrapped.mdp): {env.env_id}"
            )
        self.mdp = mdp
        self.norm_bound = float("inf") if spec.kind == "full" else float(spec.value)

    def _arrays(self) -> tuple[MDPArrays, jax.Array]:
        """The MDP and the bound in the float dtype in force when traced (float64 in the harness)."""
        arrays = mdp_arrays(self.mdp)
        return arrays, jnp.asarray(self.norm_bound, arrays.R.dtype)

    def init(self, key: jax.Array) -> TabularAgentState:
        mdp, _ = self._arrays()
        q0, model = init_model(key, self.mdp.n_states, self.mdp.n_actions, mdp.R.dtype)
        q = make_q_star(self.config, mdp.gamma)(q0, model)
        return TabularAgentState(model, optax.adam(self.config.learning_rate).init(model), q)

    def act(self, state: TabularAgentState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        return jax.random.categorical(key, state.q[obs] / self.config.temperature)

    def update(
        self, state: TabularAgentState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[TabularAgentState, dict[str, jax.Array]]:
        mdp, bound = self._arrays()
        tau = self.config.temperature
        out = outer_step(state.model, state.opt_state, state.q, key, mdp, self.method, bound, self.config)
        p_hat, r_hat = model_dynamics(state.model, tau)
        kl = jnp.sum(xlogy(mdp.P, mdp.P) - xlogy(mdp.P, p_hat), axis=-1)
        true_backup = dp.soft_bellman(out.q, mdp.P, mdp.R, mdp.gamma, tau)
        metrics = {
            "true_return": out.true_return,
            "reward_mse": jnp.mean((r_hat - mdp.R) ** 2),
            "transition_kl": jnp.mean(kl),
            "value_equivalence_error": jnp.mean(jnp.abs(true_backup - out.q)),
            "param_norm": model_norm(state.model, tau),
        }
        return TabularAgentState(out.model, out.opt_state, out.q), metrics


@register_agent
class TabularOMDAgent(_TabularAgent):
    """Exact OMD on a tabular MDP: the model maximises J(pi_{Q*(theta)}) through the implicit gradient."""

    name: ClassVar[str] = "omd-tabular"
    method: ClassVar[str] = "omd"
    description: ClassVar[str] = "OMD, tabular and exact (official notebook): model trained to maximise J"


@register_agent
class TabularMLEAgent(_TabularAgent):
    """The tabular MLE baseline: the model minimises reward MSE + KL to the true transitions."""

    name: ClassVar[str] = "mle-tabular"
    method: ClassVar[str] = "mle"
    description: ClassVar[str] = (
        "MLE model (reward MSE + transition KL) on a tabular MDP, exact Q* (OMD notebook)"
    )
