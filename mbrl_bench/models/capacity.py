"""Restricted model capacity: the misspecification axis on the model side.

A capacity is named by a short spec string that the harness, the results directories and the
leaderboard carry (``full``, ``width:64``, ``norm:1.5``, ...). ``parse_capacity`` turns a spec into a
frozen ``Capacity``; ``str(capacity)`` gives back the canonical spec, which only uses ``[a-z0-9:._-]``
so it can name a directory. The models (``mbrl_bench.models.dynamics`` and ``.tabular``) read a
``Capacity`` when they are built; ``norm:B`` is enforced after every optimiser step by a
``projection_transform`` (an optax transformation that agents' own optimisers, e.g. OMD's outer loop,
chain in) built from the model's own projection, or by ``project_l2_ball`` applied directly.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
import optax

CapacityKind = Literal["full", "width", "depth", "linear", "norm", "obs", "rank"]

_SPECS: tuple[tuple[str, str], ...] = (
    ("full", "the model class as configured, unrestricted"),
    ("width:N", "every hidden layer has N units (N >= 1)"),
    ("depth:N", "N hidden layers of the configured width (N >= 1)"),
    ("linear", "no hidden layer: outputs are an affine function of the (normalised) inputs"),
    ("norm:B", "the model's weights are projected onto the L2 ball of radius B >= 0 after every update"),
    ("obs:K", "the model sees only the first K observation dims (and the action) yet predicts all of them"),
    ("rank:R", "every layer's weight matrix is factorised through R units (a rank-R bottleneck)"),
)
_VALID_FORMS = ", ".join(form for form, _ in _SPECS)
_INT_KINDS = {"width": 1, "depth": 1, "obs": 0, "rank": 1}
"""Kinds taking an integer, with the smallest valid value (``obs:0`` leaves the model only the action)."""


@dataclass(frozen=True)
class Capacity:
    """A parsed capacity spec: a kind and, for the parametrised kinds, its value.

    Build one with ``parse_capacity``; ``str()`` is the canonical spec, so
    ``parse_capacity(str(c)) == c`` for every valid ``c``.
    """

    kind: CapacityKind
    """Which restriction: full, width, depth, linear, norm, obs or rank."""
    value: int | float | None = None
    """N, K or R (int) for width/depth/obs/rank, the radius B (float) for norm, None for full/linear."""

    def __str__(self) -> str:
        if self.value is None:
            return self.kind
        if self.kind == "norm":
            return f"norm:{_format_radius(float(self.value))}"
        return f"{self.kind}:{self.value}"


def _format_radius(radius: float) -> str:
    """Shortest round-tripping text of a radius with only directory-safe characters ("2", "0.5", "1e20")."""
    if radius.is_integer() and abs(radius) < 1e15:
        return str(int(radius))
    return repr(radius).replace("e+", "e")


def parse_capacity(spec: str | Capacity) -> Capacity:
    """Parse a capacity spec such as ``"width:64"`` (case and surrounding spaces ignored).

    A ``Capacity`` is returned unchanged, so callers may pass either. Raises ValueError naming the bad
    spec and listing the valid forms when the spec is malformed or its value is out of range.
    """
    if isinstance(spec, Capacity):
        return spec
    if not isinstance(spec, str):
        raise ValueError(f"capacity spec must be a string, got {spec!r}; valid forms: {_VALID_FORMS}")
    text = spec.strip().lower()
    kind, sep, arg = text.partition(":")
    if kind in ("full", "linear"):
        if sep:
            raise ValueError(
                f"invalid capacity spec {spec!r}: {kind!r} takes no value; valid forms: {_VALID_FORMS}"
            )
        return Capacity(kind)  # type: ignore[arg-type]
    if kind in _INT_KINDS:
        if not re.fullmatch(r"\d+", arg):
            raise ValueError(
                f"invalid capacity spec {spec!r}: {kind} needs a non-negative integer; "
                f"valid forms: {_VALID_FORMS}"
            )
        value = int(arg)
        if value < _INT_KINDS[kind]:
            raise ValueError(
                f"invalid capacity spec {spec!r}: {kind} needs a value >= {_INT_KINDS[kind]}; "
                f"valid forms: {_VALID_FORMS}"
            )
        return Capacity(kind, value)  # type: ignore[arg-type]
    if kind == "norm":
        try:
            radius = float(arg)
        except ValueError:
            radius = math.nan
        if not (math.isfinite(radius) and radius >= 0.0) or not re.fullmatch(r"[0-9.e+-]+", arg):
            raise ValueError(
                f"invalid capacity spec {spec!r}: norm needs a finite radius >= 0; "
                f"valid forms: {_VALID_FORMS}"
            )
        return Capacity("norm", radius)
    raise ValueError(f"invalid capacity spec {spec!r}; valid forms: {_VALID_FORMS}")


def capacity_specs() -> list[tuple[str, str]]:
    """Every capacity form with a one-line description, for ``mbrl-bench capacities``."""
    return list(_SPECS)


def project_l2_ball(params: optax.Params, radius: float | jax.Array) -> optax.Params:
    """Project a parameter pytree onto the L2 ball of ``radius``, taken over all leaves as one vector.

    This is the Euclidean projection (a rescaling when the norm exceeds the radius, identity inside),
    as in OMD's tabular capacity study, where projected Adam bounds the model's parameter norm.
    """
    norm = optax.tree.norm(params)
    scale = jnp.minimum(1.0, radius / jnp.maximum(norm, jnp.finfo(jnp.result_type(norm)).tiny))
    return jax.tree.map(lambda p: (p * scale).astype(p.dtype), params)


class _EmptyState(NamedTuple):
    pass


def projection_transform(project: Callable[[optax.Params], optax.Params]) -> optax.GradientTransformation:
    """An optax transformation whose update lands the parameters on ``project(params + update)``.

    Chain it last, ``optax.chain(optax.adam(lr), projection_transform(f))``, and apply with
    ``optax.apply_updates``: that is projected gradient descent with the inner optimiser. The models
    build their ``norm:B`` transformation with it from their own projection (per ensemble member, bounds
    of the variance left out), so agents' own optimisers (e.g. OMD's outer loop) can chain the same.
    ``update`` needs ``params``; a call without them raises ValueError.
    """

    def init_fn(params: optax.Params) -> _EmptyState:
        del params
        return _EmptyState()

    def update_fn(
        updates: optax.Updates, state: _EmptyState, params: optax.Params | None = None
    ) -> tuple[optax.Updates, _EmptyState]:
        if params is None:
            raise ValueError("a projection transformation needs params: call update(grads, state, params)")
        projected = project(optax.apply_updates(params, updates))
        return jax.tree.map(lambda new, old: new - old, projected, params), state

    return optax.GradientTransformation(init_fn, update_fn)


def l2_ball_projection(radius: float) -> optax.GradientTransformation:
    """``projection_transform`` onto the L2 ball of ``radius`` over the whole parameter pytree."""
    return projection_transform(lambda params: project_l2_ball(params, radius))
