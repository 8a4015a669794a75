"""Exact dynamic programming on tabular MDPs, in pure JAX.

Every function takes the model as arrays, ``P[s, a, s']`` and ``R[s, a]`` (a ``TabularMDP``'s fields,
or a learned model's), so the same code scores the true MDP and differentiates through a model:

- ``policy_evaluation`` / ``expected_return``: V^pi = (I - gamma P_pi)^-1 r_pi by a linear solve and
  J(pi) = mu . V^pi, differentiable in P, R, mu and pi.
- ``value_iteration`` (hard max) and ``soft_value_iteration`` (OMD's soft Bellman operator
  B Q(s,a) = R(s,a) + gamma * alpha * sum_s' P(s'|s,a) logsumexp_a'(Q(s',a')/alpha)) iterate to a
  tolerance inside ``lax.while_loop``. Their fixed point is differentiable in P, R (and alpha) through
  ``lax.custom_root``: the gradient is the exact implicit (fixed-point adjoint) one,
  dQ* = (I - dB/dQ)^-1 dB/dtheta, solved with the dense (nS nA x nS nA) Jacobian, which suits tabular
  sizes (up to a few thousand state-action pairs).

All functions jit (the solvers and evaluators are jitted already, so eager calls hit the compilation
cache). The dtype follows the inputs: pass float64 arrays under ``jax.enable_x64(True)``
for 1e-10-level accuracy; float32 reaches about 1e-6 relative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jax import lax


def _check_model(P: jax.Array, R: jax.Array) -> None:
    if P.ndim != 3 or P.shape[0] != P.shape[2] or R.shape != P.shape[:2]:
        raise ValueError(
            f"need P of shape (n_states, n_actions, n_states) and R of shape (n_states, n_actions), "
            f"got P {P.shape} and R {R.shape}"
        )


def _check_policy(pi: jax.Array, R: jax.Array) -> None:
    if pi.shape != R.shape:
        raise ValueError(f"policy must have shape (n_states, n_actions) = {R.shape}, got {pi.shape}")


@jax.jit
def policy_evaluation(P: jax.Array, R: jax.Array, gamma: float | jax.Array, pi: jax.Array) -> jax.Array:
    """V^pi (shape (n_states,)) of the stochastic policy ``pi[s, a]``, solving (I - gamma P_pi) V = r_pi."""
    _check_model(P, R)
    _check_policy(pi, R)
    P_pi = jnp.einsum("sa,sat->st", pi, P)
    r_pi = jnp.sum(pi * R, axis=-1)
    return jnp.linalg.solve(jnp.eye(P.shape[0], dtype=P_pi.dtype) - gamma * P_pi, r_pi)


def q_from_v(P: jax.Array, R: jax.Array, gamma: float | jax.Array, v: jax.Array) -> jax.Array:
    """Q(s, a) = R(s, a) + gamma * sum_s' P(s'|s,a) V(s'), shape (n_states, n_actions)."""
    _check_model(P, R)
    return R + gamma * P @ v


@jax.jit
def expected_return(
    P: jax.Array, R: jax.Array, gamma: float | jax.Array, mu: jax.Array, pi: jax.Array
) -> jax.Array:
    """J(pi) = mu . V^pi, the expected discounted return from s0 ~ mu (a scalar)."""
    return mu @ policy_evaluation(P, R, gamma, pi)


def bellman_optimality(q: jax.Array, P: jax.Array, R: jax.Array, gamma: float | jax.Array) -> jax.Array:
    """B Q(s, a) = R(s, a) + gamma * sum_s' P(s'|s,a) max_a' Q(s', a')."""
    return R + gamma * P @ jnp.max(q, axis=-1)


def soft_value(q: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """V(s) = alpha * logsumexp_a(Q(s, a) / alpha): the soft maximum, -> max_a Q as alpha -> 0."""
    return alpha * jax.nn.logsumexp(q / alpha, axis=-1)


def soft_bellman(
    q: jax.Array, P: jax.Array, R: jax.Array, gamma: float | jax.Array, alpha: float | jax.Array
) -> jax.Array:
    """OMD's soft Bellman operator B Q(s,a) = R(s,a) + gamma * sum_s' P(s'|s,a) soft_value(Q, alpha)(s')."""
    return R + gamma * P @ soft_value(q, alpha)


def softmax_policy(q: jax.Array, alpha: float | jax.Array) -> jax.Array:
    """pi_Q = softmax(Q / alpha) over actions: OMD's policy of a Q table."""
    return jax.nn.softmax(q / alpha, axis=-1)


def greedy_policy(q: jax.Array) -> jax.Array:
    """One-hot argmax_a Q(s, a) (ties go to the lowest action), shape (n_states, n_actions)."""
    return jax.nn.one_hot(jnp.argmax(q, axis=-1), q.shape[-1], dtype=q.dtype)


STALL_PATIENCE = 2.0
"""Value iteration deems itself at the dtype's rounding floor, and stops, after STALL_PATIENCE / (1 -
gamma) updates without a new smallest ||Q_k - Q_{k-1}||_inf. Exact arithmetic shrinks it by e^-2 over
that many updates, so a stall means rounding; the cost is at most ~15% more updates than the
~log(1/tol) / (1 - gamma) that convergence takes (mbrl-bench choice)."""


class FixedPoint(NamedTuple):
    """A value-iteration result."""

    q: jax.Array
    """The last iterate, differentiable as the exact fixed point (implicit function theorem)."""
    iterations: jax.Array
    """Bellman updates applied."""
    error_bound: jax.Array
    """gamma / (1 - gamma) * ||Q_k - Q_{k-1}||_inf, a bound on ||Q_k - Q*||_inf in exact arithmetic."""
    converged: jax.Array
    """Whether error_bound <= tol (False when max_iter ran out or rounding stalled the iteration)."""


def _fixed_point(
    bellman: Callable[[jax.Array], jax.Array],
    q_init: jax.Array,
    gamma: float | jax.Array,
    tol: float | jax.Array,
    max_iter: int | jax.Array,
) -> FixedPoint:
    """Iterate the gamma-contraction ``bellman`` from ``q_init`` until error_bound <= tol.

    In exact arithmetic each update shrinks ||Q_k - Q_{k-1}||_inf by at least gamma, so when it has not
    reached a new minimum for ``STALL_PATIENCE / (1 - gamma)`` updates, rounding has taken over: the
    loop stops there too instead of spinning until ``max_iter`` when ``tol`` lies below the dtype's
    resolution.
    """
    patience = STALL_PATIENCE / (1 - gamma)

    def solve(f: Callable[[jax.Array], jax.Array], q0: jax.Array) -> tuple[jax.Array, tuple[jax.Array, ...]]:
        def update(q: jax.Array) -> jax.Array:
            return f(q) + q  # f(q) = bellman(q) - q

        def keep_going(carry: tuple[jax.Array, ...]) -> jax.Array:
            _, delta, _, stalled, k = carry
            return (gamma * delta > tol * (1 - gamma)) & (stalled < patience) & (k < max_iter)

        def body(carry: tuple[jax.Array, ...]) -> tuple[jax.Array, ...]:
            q, _, best, stalled, k = carry
            q_next = update(q)
            delta = jnp.max(jnp.abs(q_next - q))
            improved = delta < best
            return q_next, delta, jnp.minimum(delta, best), jnp.where(improved, 0, stalled + 1), k + 1

        q1 = update(q0)
        delta = jnp.max(jnp.abs(q1 - q0))
        zero = jnp.zeros((), jnp.int32)
        q, delta, _, _, k = lax.while_loop(keep_going, body, (q1, delta, delta, zero, zero + 1))
        # The aux outputs stay floating point: custom_root gives them zero tangents of their own dtype,
        # which JAX rejects for int and bool (they need float0).
        return q, (k.astype(q.dtype), gamma * delta / (1 - gamma))

    def tangent_solve(g: Callable[[jax.Array], jax.Array], y: jax.Array) -> jax.Array:
        jac = jax.jacobian(g)(y).reshape(y.size, y.size)
        return jnp.linalg.solve(jac, y.ravel()).reshape(y.shape)

    q, (k, bound) = lax.custom_root(lambda q: bellman(q) - q, q_init, solve, tangent_solve, has_aux=True)
    bound = lax.stop_gradient(bound)
    return FixedPoint(q, k.astype(jnp.int32), bound, bound <= tol)


def _initial_q(R: jax.Array, q_init: jax.Array | None) -> jax.Array:
    if q_init is None:
        return jnp.zeros_like(R)
    if q_init.shape != R.shape:
        raise ValueError(f"q_init must have shape (n_states, n_actions) = {R.shape}, got {q_init.shape}")
    return q_init.astype(R.dtype)


@jax.jit
def value_iteration(
    P: jax.Array,
    R: jax.Array,
    gamma: float | jax.Array,
    *,
    tol: float | jax.Array = 1e-6,
    max_iter: int | jax.Array = 100_000,
    q_init: jax.Array | None = None,
) -> FixedPoint:
    """Q* by value iteration with the hard max, to ||Q - Q*||_inf <= tol (see ``FixedPoint``).

    ``greedy_policy(result.q)`` is an optimal deterministic policy once tol is below half the gap
    between the best and second-best action values. Gradients in P, R are those of Q* with the greedy
    policy held fixed (valid away from ties).
    """
    _check_model(P, R)
    return _fixed_point(
        lambda q: bellman_optimality(q, P, R, gamma), _initial_q(R, q_init), gamma, tol, max_iter
    )


@jax.jit
def soft_value_iteration(
    P: jax.Array,
    R: jax.Array,
    gamma: float | jax.Array,
    alpha: float | jax.Array,
    *,
    tol: float | jax.Array = 1e-6,
    max_iter: int | jax.Array = 100_000,
    q_init: jax.Array | None = None,
) -> FixedPoint:
    """The fixed point of ``soft_bellman`` at temperature ``alpha`` > 0, to ||Q - Q*||_inf <= tol.

    This is OMD's inner problem Q = B^theta Q; ``softmax_policy(result.q, alpha)`` is its policy.
    """
    _check_model(P, R)
    return _fixed_point(
        lambda q: soft_bellman(q, P, R, gamma, alpha), _initial_q(R, q_init), gamma, tol, max_iter
    )
