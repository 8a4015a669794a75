"""Implicit differentiation of a root x*(theta) of F(x, theta) = 0, the machinery behind OMD.

OMD (Nikishin et al. 2022) trains a model theta so that the value function its Bellman operator induces is
good for control. The inner solution x* (a Q-table or Q-network's parameters) is defined implicitly by a
root condition F(x*, theta) = 0: the soft Bellman fixed point ``Q - B^theta Q = 0`` in the tabular case,
the stationarity ``grad_x L(x, theta) = 0`` of the model-based soft Q-learning loss with function
approximation. By the implicit function theorem,

    dx*/dtheta = -A^-1 dF/dtheta,      A = dF/dx at (x*, theta),

so a cotangent g on x* pulls back to ``dJ/dtheta = -(dF/dtheta)^T v`` with ``A^T v = g``. This module
wraps any forward solver in a ``jax.custom_vjp`` that computes exactly that, so the backward pass never
unrolls the inner loop (its memory and time do not grow with the number of inner steps). How ``v`` is
found is selectable (``InverseConfig.kind``):

- ``identity``: ``v = g``, i.e. A is replaced by the identity. The official OMD code's default
  (cartpole/utils.py ``root_solve_bwd`` without ``--with_inv_jac``).
- ``cg``: conjugate gradient (``jax.scipy.sparse.linalg.cg``) on the damped system ``(A^T + c I) v = g``
  with an iteration cap, as the official code's ``--with_inv_jac`` (c = 1e-5, maxiter 100). CG needs a
  symmetric A (true when F is the gradient of a loss: A is its Hessian); for a non-symmetric A (the
  tabular fixed-point form) it runs on the normal equations ``(A A^T + c I) v = A g``.
- ``neumann``: the truncated Neumann series ``A^-1 ~ eta * sum_{k<K} (I - eta A)^k`` (Lorraine et al.
  2020, eq. 6), matrix-free; converges when the spectral radius of I - eta A is below 1 (for
  ``F = Q - B Q`` with eta = 1 that is gamma-contraction, and K = 1 gives back ``identity``).
- ``exact``: a dense solve with the full Jacobian A (``jnp.linalg.solve``): the exact implicit gradient,
  for small x only (the tabular study; cost O(n^3) in the size of x).

Only theta receives a gradient: the warm start x0 and the auxiliary inputs (data, RNG keys, target
networks) get zero cotangents, and the solver's extra outputs (optimiser state, metrics) are treated as
constants, as in the official ``root_solve``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

InverseKind = Literal["identity", "cg", "neumann", "exact"]
INVERSE_KINDS: tuple[str, ...] = ("identity", "cg", "neumann", "exact")
"""The valid ``InverseConfig.kind`` values."""

Solver = Callable[[Any, Any, Any], tuple[Any, Any]]
"""``solver(x0, theta, aux) -> (x_star, extras)``: approximately solves F(x, theta) = 0 from x0."""
Residual = Callable[[Any, Any, Any, Any], Any]
"""``residual(x, theta, aux, extras) -> F(x, theta)``, a pytree shaped like x; ``extras`` is what the
solver returned beside x* (e.g. OMD's target network after the inner steps), held constant."""


@dataclass(frozen=True)
class InverseConfig:
    """How the implicit gradient approximates the inverse Jacobian ``(dF/dx)^-1``."""

    kind: str = "identity"
    """identity | cg | neumann | exact; identity is the official OMD default (cartpole/utils.py)."""
    damping: float = 1e-5
    """c in ``(A + c I)`` for cg; 1e-5 in the official ``root_solve_bwd``."""
    maxiter: int = 100
    """CG iteration cap; 100 in the official ``root_solve_bwd``."""
    tol: float = 1e-5
    """CG relative residual tolerance; jax.scipy's default, which the official code keeps."""
    neumann_terms: int = 20
    """K, the number of Neumann-series terms (ours: 20 terms reach gamma^20 ~ 0.13 at gamma = 0.9)."""
    neumann_step: float = 1.0
    """eta in ``eta * sum (I - eta A)^k`` (Lorraine et al. 2020); 1 is exact for fixed-point forms."""

    def __post_init__(self) -> None:
        if self.kind not in INVERSE_KINDS:
            raise ValueError(
                f"unknown inverse approximation {self.kind!r}; valid kinds: {', '.join(INVERSE_KINDS)}"
            )
        if self.maxiter < 1:
            raise ValueError(f"maxiter must be >= 1, got {self.maxiter!r}")
        if self.neumann_terms < 1:
            raise ValueError(f"neumann_terms must be >= 1, got {self.neumann_terms!r}")
        if not self.neumann_step > 0:
            raise ValueError(f"neumann_step must be > 0, got {self.neumann_step!r}")
        if self.damping < 0:
            raise ValueError(f"damping must be >= 0, got {self.damping!r}")


def _axpy(a: Any, x: Any, y: Any) -> Any:
    """a * x + y over two pytrees of the same structure."""
    return jax.tree.map(lambda xi, yi: a * xi + yi, x, y)


def solve_adjoint(
    residual_x: Callable[[Any], Any], x_star: Any, g: Any, inverse: InverseConfig, symmetric: bool
) -> Any:
    """Approximately solve ``A^T v = g`` for v, with ``A = d residual_x / dx`` at ``x_star``.

    Args:
        residual_x: x -> F(x, theta) with theta and the auxiliary inputs fixed.
        x_star: the point where A is taken (the inner solution).
        g: the cotangent on x* (a pytree shaped like x).
        inverse: which approximation of A^-1 to use.
        symmetric: whether A is symmetric (F is a gradient, A a Hessian), which lets CG run on A itself.

    Returns:
        v, shaped like g.
    """
    if inverse.kind == "identity":
        return g
    _, vjp_fn = jax.vjp(residual_x, x_star)
    at_v = lambda u: vjp_fn(u)[0]  # u -> A^T u
    if inverse.kind == "neumann":
        eta = inverse.neumann_step

        def term(_: int, carry: tuple[Any, Any]) -> tuple[Any, Any]:
            p, acc = carry
            p = _axpy(-eta, at_v(p), p)  # p <- (I - eta A^T) p
            return p, jax.tree.map(jnp.add, acc, p)

        _, acc = jax.lax.fori_loop(1, inverse.neumann_terms, term, (g, g))
        return jax.tree.map(lambda a: eta * a, acc)
    if inverse.kind == "cg":
        c = inverse.damping
        if symmetric:
            op = lambda u: _axpy(c, u, at_v(u))
            rhs = g
        else:
            a_v = lambda u: jax.jvp(residual_x, (x_star,), (u,))[1]  # u -> A u
            op = lambda u: _axpy(c, u, a_v(at_v(u)))
            rhs = a_v(g)
        v, _ = jax.scipy.sparse.linalg.cg(op, rhs, tol=inverse.tol, maxiter=inverse.maxiter)
        return v
    # exact: the dense Jacobian of the flattened residual.
    flat_x, unravel = ravel_pytree(x_star)
    flat_g, _ = ravel_pytree(g)
    jac = jax.jacfwd(lambda fx: ravel_pytree(residual_x(unravel(fx)))[0])(flat_x)
    return unravel(jnp.linalg.solve(jac.T, flat_g))


def implicit_root(
    solver: Solver, residual: Residual, inverse: InverseConfig, symmetric: bool
) -> Callable[[Any, Any, Any], tuple[Any, Any]]:
    """Wrap ``solver`` so that reverse-mode differentiation w.r.t. theta uses the implicit function theorem.

    Args:
        solver: ``(x0, theta, aux) -> (x_star, extras)``; any forward method (fixed-point iteration, a few
            optimiser steps from a warm start...). It is never differentiated.
        residual: ``(x, theta, aux, extras) -> F(x, theta)`` whose root the solver finds; differentiated
            once at the returned solution, with the solver's ``extras`` held constant.
        inverse: the approximation of ``(dF/dx)^-1`` used by the backward pass.
        symmetric: whether dF/dx is symmetric (F a gradient), see ``solve_adjoint``.

    Returns:
        ``f(x0, theta, aux) -> (x_star, extras)`` with the same forward values as ``solver`` whose VJP
        w.r.t. theta is ``-(dF/dtheta)^T v``, ``v ~ A^-T g``; x0 and aux get zero cotangents and
        ``extras`` is treated as a constant. f jits and vmaps.
    """

    @jax.custom_vjp
    def root(x0: Any, theta: Any, aux: Any) -> tuple[Any, Any]:
        return solver(x0, theta, aux)

    def root_fwd(x0: Any, theta: Any, aux: Any) -> tuple[tuple[Any, Any], tuple[Any, Any, Any, Any]]:
        x_star, extras = solver(x0, theta, aux)
        return (x_star, extras), (x_star, theta, aux, extras)

    def root_bwd(res: tuple[Any, Any, Any, Any], cotangent: tuple[Any, Any]) -> tuple[None, Any, None]:
        x_star, theta, aux, extras = res
        g = cotangent[0]
        v = solve_adjoint(lambda x: residual(x, theta, aux, extras), x_star, g, inverse, symmetric)
        _, vjp_theta = jax.vjp(lambda t: residual(x_star, t, aux, extras), theta)
        (g_theta,) = vjp_theta(v)
        return None, jax.tree.map(jnp.negative, g_theta), None

    root.defvjp(root_fwd, root_bwd)
    return root
