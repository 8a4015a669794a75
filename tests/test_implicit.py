"""Correctness of the implicit gradients behind OMD (baselines/implicit.py, baselines/omd_tabular.py).

Tabular: the implicit dJ/dtheta through Q*(theta) against central finite differences of J computed by exact
policy evaluation, and against reverse-mode through value iteration unrolled to convergence. Function
approximation: on a small soft-Q problem the ``cg`` implicit gradient against differentiation through
thousands of unrolled inner steps, and ``identity`` against its closed form. All in float64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from mbrl_bench.baselines import omd_tabular as tab
from mbrl_bench.baselines.implicit import INVERSE_KINDS, InverseConfig, implicit_root

from mbrl_bench.envs import dp
from mbrl_bench.envs.tabular import garnet, two_state_polytope

# (mdp, temperature, init seed): OMD's MDP at the notebook's temperature, and a Garnet at a temperature
# where the policy is far from deterministic, so that (I - dB/dQ)^-1 differs clearly from the identity.
CASES = [
    pytest.param(two_state_polytope, 0.01, 1, id="polytope-tau0.01"),
    pytest.param(lambda: garnet(5, 3, 3, seed=0, gamma=0.9), 0.1, 0, id="garnet5x3-tau0.1"),
]


def _flat(tree: object) -> jax.Array:
    return ravel_pytree(tree)[0]


def _rel(a: jax.Array, b: jax.Array) -> float:
    return float(jnp.linalg.norm(a - b) / jnp.linalg.norm(b))


def _tabular_problem(make_mdp, tau: float, seed: int, inverse: str = "exact", **kw: float):
    mdp = make_mdp()
    config = tab.TabularConfig(temperature=tau, inner_tol=1e-13, inverse=inverse, **kw)
    arrays = tab.mdp_arrays(mdp)
    q0, model = tab.init_model(jax.random.PRNGKey(seed), *mdp.R.shape, jnp.float64)
    loss = lambda m: tab.omd_objective(m, q0, arrays, config, jax.random.PRNGKey(0))[0]
    return arrays, config, q0, model, loss


@pytest.mark.parametrize(("make_mdp", "tau", "seed"), CASES)
def test_tabular_gradient_matches_finite_differences_and_unrolled_iteration(make_mdp, tau, seed) -> None:
    """dJ/dtheta (exact implicit) vs central differences of J (exact policy evaluation, Q* by soft value
    iteration to 1e-13) and vs reverse mode through 600 unrolled soft Bellman updates."""
    with jax.enable_x64(True):
        arrays, _, q0, model, loss = _tabular_problem(make_mdp, tau, seed)
        flat, unravel = ravel_pytree(model)
        h = 1e-6
        steps = h * jnp.eye(flat.size)

        def unrolled(m: tab.TabularModel) -> jax.Array:
            p_hat, r_hat = tab.model_dynamics(m, tau)
            # gamma^600 = 1e-28 at gamma = 0.9: the iteration has converged to machine precision.
            q = jax.lax.fori_loop(
                0, 600, lambda _, q: dp.soft_bellman(q, p_hat, r_hat, arrays.gamma, tau), q0
            )
            return -tab.true_return(q, arrays, tau)

        @jax.jit
        def everything(m: tab.TabularModel) -> tuple[jax.Array, ...]:
            losses = jax.vmap(lambda f: loss(unravel(f)))
            fd = (losses(flat + steps) - losses(flat - steps)) / (2 * h)
            return _flat(jax.grad(loss)(m)), fd, _flat(jax.grad(unrolled)(m)), unrolled(m) - loss(m)

        grad, fd, grad_unrolled, gap = everything(model)
        assert float(jnp.linalg.norm(fd)) > 1e-2  # a real signal, not two vanishing gradients
        assert _rel(grad, fd) < 1e-3
        assert abs(float(gap)) < 1e-10
        assert _rel(grad, grad_unrolled) < 1e-6


def test_tabular_inverse_approximations() -> None:
    """neumann (200 terms) and cg (normal equations) reach the exact gradient; identity is its closed form."""
    make_mdp, tau, seed = CASES[1].values
    with jax.enable_x64(True):
        arrays, config, q0, model, _ = _tabular_problem(make_mdp, tau, seed)
        kinds = ("exact", "neumann", "cg", "identity")
        losses = [
            _tabular_problem(make_mdp, tau, seed, kind, cg_damping=0.0, cg_maxiter=200)[-1] for kind in kinds
        ]

        @jax.jit
        def gradients(m: tab.TabularModel) -> tuple[list[jax.Array], jax.Array]:
            grads = [_flat(jax.grad(loss)(m)) for loss in losses]
            # Closed form of the identity approximation: (dB^theta Q / dtheta)^T dJ/dQ at Q*.
            q_star = tab.make_q_star(config, arrays.gamma)(q0, m)
            g = jax.grad(lambda q: -tab.true_return(q, arrays, tau))(q_star)
            bellman = lambda m_: dp.soft_bellman(q_star, *tab.model_dynamics(m_, tau), arrays.gamma, tau)
            return grads, _flat(jax.vjp(bellman, m)[1](g)[0])

        (exact, neumann, cg, identity), closed = gradients(model)
        assert _rel(neumann, exact) < 1e-6
        assert _rel(cg, exact) < 1e-4
        assert _rel(identity, closed) < 1e-8
        assert _rel(identity, exact) > 0.1  # away from a deterministic policy it is a real approximation


def test_quadratic_closed_forms() -> None:
    """x*(theta) = argmin 0.5 ||A x - theta||^2: every kind against dJ/dtheta = A (A^T A)^-1 c."""
    with jax.enable_x64(True):
        a = jax.random.normal(jax.random.PRNGKey(0), (8, 4))
        c = jnp.arange(1.0, 5.0)
        theta = jax.random.normal(jax.random.PRNGKey(1), (8,))
        solver = lambda x0, th, aux: (jnp.linalg.solve(a.T @ a, a.T @ th), None)
        residual = lambda x, th, aux, extras: a.T @ (a @ x - th)
        exact = a @ jnp.linalg.solve(a.T @ a, c)
        step = 1.0 / float(jnp.linalg.eigvalsh(a.T @ a)[-1])
        cases = [(kind, symmetric) for kind in INVERSE_KINDS for symmetric in (True, False)]

        @jax.jit
        def gradients(th: jax.Array) -> list[tuple[jax.Array, jax.Array]]:
            out = []
            for kind, symmetric in cases:
                inverse = InverseConfig(
                    kind, damping=0.0, maxiter=50, tol=1e-12, neumann_terms=3000, neumann_step=step
                )
                root = implicit_root(solver, residual, inverse, symmetric)
                loss = lambda t, x0, root=root: c @ root(x0, t, None)[0]
                out.append(jax.grad(loss, argnums=(0, 1))(th, jnp.ones(4)))
            return out

        for (kind, symmetric), (grad_theta, grad_x0) in zip(cases, gradients(theta), strict=True):
            expected = a @ c if kind == "identity" else exact
            np.testing.assert_allclose(grad_theta, expected, rtol=1e-6, err_msg=f"{kind} {symmetric}")
            np.testing.assert_array_equal(grad_x0, 0.0)  # the warm start is not differentiated


def test_inverse_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="valid kinds: identity, cg, neumann, exact"):
        InverseConfig("newton")
    with pytest.raises(ValueError, match="neumann_terms"):
        InverseConfig("neumann", neumann_terms=0)
    with pytest.raises(ValueError, match="valid methods: omd, mle"):
        tab.tabular_study_point(two_state_polytope(), "vep", 1.0, 0, 1)


# ---- function approximation: the OMD agent's own soft-Q loss -----------------------------------------


@pytest.fixture(scope="module")
def fa_problem():
    """A small OMD inner problem in float64: 2 Q-nets of width 4, a width-8 model, 256 transitions."""
    with jax.enable_x64(True):
        yield _fa_problem()


def _fa_problem():
    from mbrl_bench.baselines.omd import Batch, DynaConfig, OMDAgent
    from test_omd import env_info

    info = env_info("mbrl_bench/CartPoleDistractor-v0", num_distractors=0)
    agent = OMDAgent(DynaConfig(hidden_dim=4, model_hidden_dim=8, batch_size=256, replay_capacity=1), info)
    state = jax.jit(agent.init)(jax.random.key(0))
    state = jax.tree.map(
        lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, state
    )
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    real = Batch(
        jax.random.normal(k1, (256, 4)),
        jax.random.randint(k2, (256,), 0, 2),
        jnp.ones(256),
        jax.random.normal(k3, (256, 4)),
        jnp.ones(256),
    )
    key = jax.random.key(2)
    q_target = state.q

    def inner_grad(q: object, net: object) -> object:
        batch = agent.model_batch(net, state.model, real, key)
        return jax.grad(lambda p: agent.q_loss(p, q_target, batch)[0])(q)

    def gradient_descent(q0: object, net: object, lr: float = 0.8, steps: int = 1500) -> object:
        body = lambda q, _: (jax.tree.map(lambda w, g: w - lr * g, q, inner_grad(q, net)), None)
        return jax.lax.scan(body, q0, None, length=steps)[0]

    outer = lambda q: agent.q_loss(q, q_target, real)[0]
    return agent, state, real, key, q_target, inner_grad, gradient_descent, outer


def test_function_approximation_cg_matches_unrolled_inner_loop(fa_problem) -> None:
    """1500 full-batch gradient steps (to a gradient norm ~1e-3) differentiated by reverse mode vs ``cg``."""
    with jax.enable_x64(True):
        _, state, _, _, _, inner_grad, gradient_descent, outer = fa_problem
        unrolled = _flat(
            jax.jit(jax.grad(lambda net: outer(gradient_descent(state.q, net))))(state.model.net)
        )
        q_star = jax.jit(gradient_descent)(state.q, state.model.net)
        root = implicit_root(
            lambda q0, net, aux: (q_star, None),  # the same inner solution, computed once
            lambda q, net, aux, extras: inner_grad(q, net),
            InverseConfig("cg", damping=0.0, maxiter=1000, tol=1e-10),
            symmetric=True,
        )
        implicit = _flat(jax.jit(jax.grad(lambda net: outer(root(state.q, net, None)[0])))(state.model.net))
        assert float(implicit @ unrolled / (jnp.linalg.norm(implicit) * jnp.linalg.norm(unrolled))) > 0.99


def test_function_approximation_identity_matches_closed_form(fa_problem) -> None:
    """identity: -(dF/dtheta)^T g = grad_theta (2 / (n N)) sum_i c_i y_i(theta), c_i = sum_k dQ_k(s_i,a_i)[g].

    n = 2 Q-networks, N transitions; y_i(theta) are the soft TD targets built from the model's (r, s').
    """
    with jax.enable_x64(True):
        agent, state, real, key, q_target, inner_grad, _, outer = fa_problem
        q = state.q
        root = implicit_root(
            lambda q0, net, aux: (q0, None),
            lambda q_, net, aux, extras: inner_grad(q_, net),
            InverseConfig("identity"),
            symmetric=True,
        )
        via_root = _flat(jax.jit(jax.grad(lambda net: outer(root(q, net, None)[0])))(state.model.net))
        g = jax.grad(outer)(q)
        actions = real.action[None, :, None]
        q_sa = lambda p: jnp.take_along_axis(agent.q_values(p, real.obs), actions, -1)[..., 0]
        c = jax.jvp(q_sa, (q,), (g,))[1].sum(0)  # [N]
        n_nets, n = 2, real.obs.shape[0]

        def weighted_targets(net: object) -> jax.Array:
            fake = agent.model_batch(net, state.model, real, key)
            v = agent.soft_value(jnp.min(agent.q_values(q_target, fake.next_obs), axis=0))
            y = fake.reward + agent.config.discount * fake.not_done * v
            return 2.0 / (n_nets * n) * jnp.sum(c * y)

        closed = _flat(jax.jit(jax.grad(weighted_targets))(state.model.net))
        assert float(jnp.linalg.norm(closed)) > 1e-3
        assert _rel(via_root, closed) < 1e-8
