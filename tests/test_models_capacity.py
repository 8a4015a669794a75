"""Capacity specs: parsing, canonical names, and the norm-ball projection."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mbrl_bench.models.capacity import (
    Capacity,
    capacity_specs,
    l2_ball_projection,
    parse_capacity,
    project_l2_ball,
)


@pytest.mark.parametrize(
    ("spec", "canonical", "kind", "value"),
    [
        ("full", "full", "full", None),
        (" Linear ", "linear", "linear", None),
        ("width:064", "width:64", "width", 64),
        ("depth:3", "depth:3", "depth", 3),
        ("obs:0", "obs:0", "obs", 0),
        ("rank:2", "rank:2", "rank", 2),
        ("norm:2.0", "norm:2", "norm", 2.0),
        ("norm:0", "norm:0", "norm", 0.0),
        ("norm:0.3157894736842105", "norm:0.3157894736842105", "norm", 0.3157894736842105),
        ("norm:1e+20", "norm:1e20", "norm", 1e20),
        ("NORM:2.5E-3", "norm:0.0025", "norm", 0.0025),
    ],
)
def test_parse_gives_canonical_round_tripping_names(
    spec: str, canonical: str, kind: str, value: float
) -> None:
    cap = parse_capacity(spec)
    assert (cap.kind, cap.value) == (kind, value)
    assert str(cap) == canonical
    assert parse_capacity(str(cap)) == cap
    assert re.fullmatch(r"[a-z0-9:._-]+", str(cap))


@pytest.mark.parametrize(
    "spec",
    [
        "",
        "fulll",
        "full:1",
        "linear:2",
        "width",
        "width:",
        "width:0",
        "width:1.5",
        "width:-2",
        "depth:0",
        "rank:0",
        "obs:-1",
        "obs:x",
        "norm:",
        "norm:-1",
        "norm:inf",
        "norm:nan",
        "norm:1_0",
        "width:3:4",
    ],
)
def test_malformed_specs_raise_listing_the_valid_forms(spec: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(spec))) as err:
        parse_capacity(spec)
    for form, _ in capacity_specs():
        assert form in str(err.value)


def test_non_string_spec_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="valid forms"):
        parse_capacity(3)  # type: ignore[arg-type]


def test_capacity_specs_cover_every_kind_and_parse_once_filled_in() -> None:
    specs = capacity_specs()
    kinds = {
        parse_capacity(form.replace("N", "2").replace("K", "2").replace("R", "2").replace("B", "2")).kind
        for form, _ in specs
    }
    assert kinds == {"full", "width", "depth", "linear", "norm", "obs", "rank"}
    assert all(desc and "\n" not in desc for _, desc in specs)
    assert parse_capacity(Capacity("width", 4)) == Capacity("width", 4)


def test_projection_rescales_outside_and_keeps_inside() -> None:
    params = {"a": jnp.array([3.0, 0.0]), "b": jnp.array([[4.0]])}
    projected = project_l2_ball(params, 2.5)
    assert float(optax.tree.norm(projected)) == pytest.approx(2.5, rel=1e-6)
    np.testing.assert_allclose(projected["a"], [1.5, 0.0], rtol=1e-6)  # same direction, half length
    inside = project_l2_ball(params, 10.0)
    np.testing.assert_array_equal(inside["a"], params["a"])
    zero = project_l2_ball(params, 0.0)
    assert float(optax.tree.norm(zero)) == 0.0


def test_projection_transform_makes_projected_gradient_descent() -> None:
    opt = optax.chain(optax.sgd(0.2), l2_ball_projection(1.0))
    params = {"w": jnp.zeros(3)}
    state = opt.init(params)
    loss = lambda p: jnp.sum((p["w"] - jnp.array([3.0, 4.0, 0.0])) ** 2)
    for _ in range(50):
        updates, state = opt.update(jax.grad(loss)(params), state, params)
        params = optax.apply_updates(params, updates)
        assert float(optax.tree.norm(params)) <= 1.0 + 1e-6
    # the constrained optimum is the target's direction on the unit sphere
    np.testing.assert_allclose(params["w"], [0.6, 0.8, 0.0], atol=1e-4)
    with pytest.raises(ValueError, match="needs params"):
        opt.update(jax.grad(loss)(params), state)
