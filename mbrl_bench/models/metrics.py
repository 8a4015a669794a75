"""What a researcher wants to know about a model besides the returns it buys.

- ``one_step_errors``: held-out one-step MSE and NLL (likelihood);
- ``k_step_error``: open-loop error of the predicted observation after 1..k steps;
- ``value_equivalence_error``: E|B^theta Q - B Q|, the model's error *as OMD sees it*: a model can
  have low likelihood yet a small value-equivalence error, i.e. be good for planning.

All are pure and jit; the error functions of neural models use the members in ``params.elites``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple, Protocol

import jax
import jax.numpy as jnp

from mbrl_bench.models.dynamics import DynamicsModel, ModelParams, Transitions

VAR_FLOOR = 1e-12
"""Smallest variance a deterministic model's plug-in likelihood uses (a perfect fit would give -inf)."""


class StepModel(Protocol):
    """Any model that samples a transition: the neural ensembles and the tabular model."""

    def step(
        self, params: object, obs: jax.Array, action: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, jax.Array]: ...


class OneStepErrors(NamedTuple):
    """Held-out one-step errors; targets are (next obs, reward), whatever the model's encoding."""

    mse: jax.Array
    """Mean over elites of each member's mean squared error (per output dim and transition)."""
    nll: jax.Array
    """Mean over transitions of -log p(next_obs, reward | obs, action) under the uniform mixture of elites."""
    member_mse: jax.Array
    """[members] each member's MSE."""
    member_nll: jax.Array
    """[members] each member's own NLL."""


def _weighted_mean(x: jax.Array, weights: jax.Array | None) -> jax.Array:
    """Weighted mean over the last axis."""
    if weights is None:
        return x.mean(-1)
    # where, not a product: rows of weight 0 may hold NaN (unfilled replay slots)
    return jnp.where(weights > 0, x * weights, 0.0).sum(-1) / jnp.maximum(weights.sum(), 1.0)


def one_step_errors(
    model: DynamicsModel, params: ModelParams, data: Transitions, weights: jax.Array | None = None
) -> OneStepErrors:
    """One-step MSE and Gaussian NLL of ``data`` [N, ...] (rows weighted by ``weights`` [N], e.g. a mask).

    The NLL of one transition sums ``0.5 * ((y - mu)^2 / var + log var + log 2 pi)`` over the
    ``obs_dim + 1`` outputs. A Gaussian model uses its predicted variances. A deterministic model has
    none, so each member is given, per output dim, the variance of its own residuals on ``data`` (the
    maximum-likelihood Gaussian around its predictions, floored at ``VAR_FLOOR``): a plug-in, optimistic
    likelihood that still ranks models by how tightly they predict. The ensemble NLL is that of the
    uniform mixture of elite members, the predictive distribution that MBPO's propagation samples.
    """
    pred = model.predict(params, data.obs, data.action)
    targets = model.targets(data.obs, data.next_obs, data.reward)
    sq = (pred.mean - targets) ** 2  # [E, N, D]
    member_mse = _weighted_mean(sq.mean(-1), weights)
    if model.config.probabilistic:
        logvar = pred.logvar
    else:
        var = _weighted_mean(jnp.moveaxis(sq, 1, -1), weights)  # [E, D]
        logvar = jnp.log(jnp.maximum(var, VAR_FLOOR))[:, None, :]
    nll = 0.5 * (sq * jnp.exp(-logvar) + logvar + jnp.log(2 * jnp.pi)).sum(-1)  # [E, N]
    member_nll = _weighted_mean(nll, weights)
    elite_nll = nll[params.elites]
    mixture = -(jax.nn.logsumexp(-elite_nll, axis=0) - jnp.log(elite_nll.shape[0]))
    return OneStepErrors(
        member_mse[params.elites].mean(), _weighted_mean(mixture, weights), member_mse, member_nll
    )


def k_step_error(
    model: DynamicsModel,
    params: ModelParams,
    obs_seq: jax.Array,
    actions: jax.Array,
    mask: jax.Array | None = None,
) -> jax.Array:
    """Open-loop error [k]: MSE over obs dims of the prediction h = 1..k steps after ``obs_seq[:, 0]``.

    Each elite member rolls its mean prediction forward under the real ``actions`` [N, k, ...] from the
    real first observation of ``obs_seq`` [N, k + 1, obs_dim], never seeing later real observations;
    the error at h is averaged over members and windows. ``mask`` [N, k] marks real transitions; a
    window counts at h only while its first h transitions are all real (no episode boundary).
    """
    members = model.config.ensemble_size
    horizon = actions.shape[1]
    start = jnp.broadcast_to(obs_seq[:, 0], (members, *obs_seq[:, 0].shape))

    def one_step(obs: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array]:
        action = jnp.broadcast_to(actions[:, t], (members, *actions[:, t].shape))
        pred = model.predict(params, obs, action, per_member=True)
        next_obs, _ = model.decode(obs, pred.mean)
        return next_obs, ((next_obs - obs_seq[:, t + 1]) ** 2).mean(-1)

    _, errors = jax.lax.scan(one_step, start, jnp.arange(horizon))  # [k, E, N]
    errors = errors[:, params.elites].mean(1)  # [k, N]
    if mask is None:
        return errors.mean(-1)
    alive = jnp.cumprod(mask, axis=1).T.astype(bool)  # [k, N]
    return jnp.where(alive, errors, 0.0).sum(-1) / jnp.maximum(alive.sum(-1), 1)


ValueFn = Callable[[jax.Array, jax.Array], jax.Array]
"""V(obs, key) -> values [...]; the key serves policies that sample actions."""


def soft_value_discrete(q_fn: Callable[[jax.Array], jax.Array], alpha: float) -> ValueFn:
    """OMD's soft value V(s) = alpha * logsumexp_a Q(s, a) / alpha for ``q_fn(obs) -> [..., n_actions]``."""
    return lambda obs, key: alpha * jax.nn.logsumexp(q_fn(obs) / alpha, axis=-1)


def soft_value_continuous(
    q_fn: Callable[[jax.Array, jax.Array], jax.Array],
    policy_fn: Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]],
    alpha: float,
) -> ValueFn:
    """SAC's one-sample soft value V(s) = Q(s, a) - alpha log pi(a|s), a ~ pi(.|s) (``policy_fn(obs, key)
    -> (action, log_prob)``), as in OMD's MuJoCo agent (a modified SAC)."""

    def value(obs: jax.Array, key: jax.Array) -> jax.Array:
        action, log_prob = policy_fn(obs, key)
        return q_fn(obs, action) - alpha * log_prob

    return value


def value_equivalence_error(
    model: StepModel,
    params: object,
    batch: Transitions,
    terminated: jax.Array,
    value_fn: ValueFn,
    gamma: float,
    key: jax.Array,
    num_samples: int = 1,
    termination_fn: Callable[[jax.Array, jax.Array, jax.Array], jax.Array] | None = None,
) -> jax.Array:
    """Mean over real transitions (s, a, r, s', d) of |B^theta Q(s, a) - B Q(s, a)|.

    With the soft value V given by ``value_fn`` (``soft_value_discrete``: V = alpha logsumexp(Q/alpha),
    OMD's; ``soft_value_continuous`` for SAC-style agents):

    - B Q(s, a) = r + gamma (1 - d) V(s'), the one-sample target of the real transition;
    - B^theta Q(s, a) = E_{(r^, s^') ~ model(s, a)} [r^ + gamma (1 - d^) V(s^')], estimated with
      ``num_samples`` draws of ``model.step`` (exact for a deterministic single model), where d^ is
      ``termination_fn(s, a, s^')`` if given, else the real d.

    Q(s, a) itself cancels in the difference, so only V is needed. The real target carries the
    environment's own noise, so even the true model scores above 0 on a stochastic env.
    """
    real_done = terminated.astype(batch.reward.dtype)
    real = batch.reward + gamma * (1.0 - real_done) * value_fn(batch.next_obs, key)

    def model_target(k: jax.Array) -> jax.Array:
        k_step, k_value = jax.random.split(k)
        next_obs, reward = model.step(params, batch.obs, batch.action, k_step)
        done = real_done if termination_fn is None else termination_fn(batch.obs, batch.action, next_obs)
        return reward + gamma * (1.0 - done.astype(reward.dtype)) * value_fn(next_obs, k_value)

    modelled = jax.vmap(model_target)(jax.random.split(key, num_samples)).mean(0)
    return jnp.abs(modelled - real).mean()
