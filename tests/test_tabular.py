"""Tabular MDPs: builders, the Gymnasium env, its task, exact DP and the pure-JAX twin."""

from __future__ import annotations

import itertools

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import mbrl_bench
from mbrl_bench.envs import dp
from mbrl_bench.envs.jax_tabular import make_jax_tabular
from mbrl_bench.envs.registration import entry
from mbrl_bench.envs.tabular import TABULAR_HORIZON, TabularEnv, TabularMDP, garnet, two_state_polytope

POLYTOPE = "mbrl_bench/TwoStatePolytope-v0"
GARNET = "mbrl_bench/Garnet-v0"
OMD_OPTIMAL_VALUE = 1.0272727
OMD_SOFT_Q = np.array([[0.16363807, 0.06282009], [1.89091046, 0.66282009]])
OMD_ALPHA = 0.01


def _arrays(mdp: TabularMDP) -> tuple[jax.Array, jax.Array, jax.Array]:
    return jnp.asarray(mdp.P), jnp.asarray(mdp.R), jnp.asarray(mdp.mu)


def _chain_mdp(mu: list[float]) -> TabularMDP:
    """3 states; action 0 moves s -> s+1 (mod 3), action 1 stays; reward 10 s + a."""
    P = np.zeros((3, 2, 3))
    for s in range(3):
        P[s, 0, (s + 1) % 3] = 1.0
        P[s, 1, s] = 1.0
    R = 10.0 * np.arange(3)[:, None] + np.arange(2)[None, :]
    return TabularMDP(P=P, R=R, gamma=0.9, mu=np.array(mu))


# ---------------------------------------------------------------- MDPs


def test_two_state_polytope_is_stored_state_action_next_state() -> None:
    mdp = two_state_polytope()
    np.testing.assert_allclose(mdp.P[0, 0], [0.7, 0.3])
    np.testing.assert_allclose(mdp.P[0, 1], [0.99, 0.01])
    np.testing.assert_allclose(mdp.P[1, 0], [0.2, 0.8])
    np.testing.assert_allclose(mdp.P[1, 1], [0.99, 0.01])
    np.testing.assert_allclose(mdp.R, [[-0.45, -0.1], [0.5, 0.5]])
    assert mdp.gamma == 0.9
    np.testing.assert_allclose(mdp.mu, [0.5, 0.5])
    with pytest.raises(ValueError, match="read-only"):
        mdp.P[0, 0, 0] = 1.0


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"P": np.full((2, 2, 2), 0.4)}, r"P\[0, 0, :\]"),
        ({"P": np.array([[[1.5, -0.5]] * 2] * 2)}, "not a distribution"),
        ({"P": np.full((2, 2, 3), 1 / 3)}, "P must have shape"),
        ({"R": np.zeros((2, 3))}, r"R must have shape .* \(2, 2\)"),
        ({"mu": np.array([0.2, 0.2])}, "mu = "),
        ({"mu": np.ones(3) / 3}, "mu must have shape"),
        ({"gamma": 1.0}, r"gamma must be a number in \[0, 1\), got 1.0"),
        ({"R": np.array([[np.nan, 0.0], [0.0, 0.0]])}, "R must be finite"),
    ],
)
def test_tabular_mdp_rejects_bad_input(change: dict, match: str) -> None:
    mdp = two_state_polytope()
    fields = {"P": mdp.P, "R": mdp.R, "gamma": mdp.gamma, "mu": mdp.mu} | change
    with pytest.raises(ValueError, match=match):
        TabularMDP(**fields)


def test_garnet_structure_and_seeding() -> None:
    mdp = garnet(n_states=12, n_actions=3, branching=4, seed=7, gamma=0.8)
    assert mdp.P.shape == (12, 3, 12) and mdp.R.shape == (12, 3) and mdp.gamma == 0.8
    np.testing.assert_allclose(mdp.P.sum(-1), 1.0, atol=1e-12)
    assert np.all((mdp.P > 0).sum(-1) == 4)
    np.testing.assert_array_equal(mdp.R, np.repeat(mdp.R[:, :1], 3, axis=1))  # state-dependent reward
    assert np.all((mdp.R >= 0) & (mdp.R < 1))
    np.testing.assert_allclose(mdp.mu, np.full(12, 1 / 12))
    same = garnet(12, 3, 4, seed=7, gamma=0.8)
    np.testing.assert_array_equal(mdp.P, same.P)
    np.testing.assert_array_equal(mdp.R, same.R)
    assert not np.array_equal(mdp.P, garnet(12, 3, 4, seed=8, gamma=0.8).P)
    assert np.all((garnet(5, 2, branching=1, seed=0).P == 1).sum(-1) == 1)  # deterministic Garnet


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_states": 0}, "n_states must be an integer with 1 <= n_states, got 0"),
        ({"n_states": 2.5}, "n_states .* got 2.5"),
        ({"n_states": True}, "n_states .* got True"),
        ({"n_actions": 0}, "n_actions must be an integer with 1 <= n_actions, got 0"),
        ({"n_states": 3, "branching": 4}, "branching must be an integer with 1 <= branching <= 3, got 4"),
        ({"branching": 0}, "branching .* got 0"),
        ({"seed": -1}, "seed must be an integer with 0 <= seed, got -1"),
        ({"gamma": 1.2}, r"gamma must be a number in \[0, 1\)"),
    ],
)
def test_garnet_rejects_bad_sizes(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        garnet(**kwargs)


# ---------------------------------------------------------------- Gymnasium env and task


@pytest.mark.parametrize("env_id", [POLYTOPE, GARNET])
def test_registered_env_spaces_mdp_and_checker(env_id: str) -> None:
    env = gym.make(env_id)
    mdp = env.unwrapped.mdp
    assert isinstance(mdp, TabularMDP)
    assert env.observation_space == gym.spaces.Discrete(mdp.n_states)
    assert env.action_space == gym.spaces.Discrete(mdp.n_actions)
    assert env.spec.max_episode_steps == TABULAR_HORIZON
    assert entry(env_id).group == "tabular"
    check_env(env.unwrapped, skip_render_check=True)
    with pytest.raises(ValueError, match="valid actions"):
        env.reset(seed=0)
        env.step(mdp.n_actions)


def test_garnet_kwargs_reach_env_task_and_twin() -> None:
    kwargs = {"n_states": 7, "n_actions": 3, "branching": 2, "seed": 4, "gamma": 0.7}
    ref = garnet(**kwargs)
    env = gym.make(GARNET, **kwargs)
    np.testing.assert_array_equal(env.unwrapped.mdp.P, ref.P)
    task = mbrl_bench.get_task(GARNET, **kwargs)
    assert task.layout == {"n_states": 7, "n_actions": 3, "gamma": 0.7}
    assert (task.obs_dim, task.action_kind, task.action_dim) == (1, "discrete", 3)
    _, params = mbrl_bench.make_jax(GARNET, **kwargs)
    np.testing.assert_allclose(params.P, ref.P, atol=1e-7)
    np.testing.assert_allclose(params.R, ref.R, atol=1e-7)


def test_env_follows_p_and_r_truncates_at_horizon_and_never_terminates() -> None:
    # Deterministic dynamics and a one-hot start make the whole trajectory known in advance.
    env = gym.wrappers.TimeLimit(TabularEnv(_chain_mdp([0.0, 0.0, 1.0])), TABULAR_HORIZON)
    obs, _ = env.reset(seed=3)
    assert obs == 2
    actions = np.random.default_rng(0).integers(0, 2, TABULAR_HORIZON)
    for t, a in enumerate(actions, start=1):
        expected_next = (obs + 1) % 3 if a == 0 else obs
        next_obs, reward, terminated, truncated, _ = env.step(a)
        assert (next_obs, reward) == (expected_next, 10.0 * obs + a)
        assert not terminated
        assert truncated == (t == TABULAR_HORIZON)
        obs = next_obs


def test_task_reward_matches_env_and_broadcasts() -> None:
    task = mbrl_bench.get_task(POLYTOPE)
    R = two_state_polytope().R
    env = gym.make(POLYTOPE)
    obs, _ = env.reset(seed=0)
    for a in [0, 1, 1, 0, 1, 0, 0, 1]:
        next_obs, reward, *_ = env.step(a)
        got = task.reward_fn(jnp.array([obs]), jnp.array(a), jnp.array([next_obs]))
        assert float(got) == pytest.approx(reward, abs=1e-6)
        obs = next_obs
    states = np.random.default_rng(1).integers(0, 2, (4, 3, 1))
    actions = np.random.default_rng(2).integers(0, 2, (4, 3))
    expected = R[states[..., 0], actions]
    np.testing.assert_allclose(task.reward_fn(states, actions, states), expected, atol=1e-6)
    np.testing.assert_allclose(
        task.reward_fn(states.astype(np.float32), actions, states), expected, atol=1e-6
    )
    done = task.termination_fn(states, actions, states)
    assert done.shape == (4, 3) and done.dtype == jnp.bool_ and not bool(done.any())
    assert task.layout == {"n_states": 2, "n_actions": 2, "gamma": 0.9} and task.horizon == TABULAR_HORIZON


# ---------------------------------------------------------------- exact dynamic programming


def test_polytope_optimal_value_and_soft_q_match_omd() -> None:
    with jax.enable_x64(True):
        P, R, mu = _arrays(two_state_polytope())
        hard = jax.jit(lambda P, R: dp.value_iteration(P, R, 0.9, tol=1e-10))(P, R)
        soft = dp.soft_value_iteration(P, R, 0.9, OMD_ALPHA, tol=1e-10)
        assert hard.q.dtype == jnp.float64 and bool(hard.converged) and bool(soft.converged)
        assert float(mu @ jnp.max(hard.q, axis=-1)) == pytest.approx(OMD_OPTIMAL_VALUE, abs=1e-6)
        j_greedy = dp.expected_return(P, R, 0.9, mu, dp.greedy_policy(hard.q))
        assert float(j_greedy) == pytest.approx(OMD_OPTIMAL_VALUE, abs=1e-6)
        np.testing.assert_allclose(soft.q, OMD_SOFT_Q, atol=1e-5)
        # The soft-greedy policy of the true model is (near) optimal at this temperature.
        j_soft = dp.expected_return(P, R, 0.9, mu, dp.softmax_policy(soft.q, OMD_ALPHA))
        assert float(j_soft) == pytest.approx(OMD_OPTIMAL_VALUE, abs=1e-3)


def test_value_iteration_float32_stops_at_tolerance_or_rounding_floor() -> None:
    mdp = garnet(20, 3, 3, seed=1, gamma=0.99)
    P, R, _ = _arrays(mdp)
    with jax.enable_x64(True):
        exact = np.asarray(dp.value_iteration(*_arrays(mdp)[:2], mdp.gamma, tol=1e-10).q)
    loose = dp.value_iteration(P, R, mdp.gamma, tol=1e-2)
    assert bool(loose.converged) and float(loose.error_bound) <= 1e-2
    assert float(jnp.max(jnp.abs(loose.q - exact))) <= 1e-2
    tight = dp.value_iteration(P, R, mdp.gamma, tol=1e-12)  # below float32's resolution at |Q| ~ 50
    assert int(tight.iterations) < 5_000  # stopped at the rounding floor, not at max_iter
    assert float(jnp.max(jnp.abs(tight.q - exact))) <= 1e-3
    capped = dp.value_iteration(P, R, mdp.gamma, tol=1e-6, max_iter=50)
    assert int(capped.iterations) == 50 and not bool(capped.converged)


@pytest.mark.parametrize(
    "mdp", [two_state_polytope(), garnet(6, 2, 3, seed=5, gamma=0.9)], ids=["polytope", "garnet"]
)
def test_policy_evaluation_matches_monte_carlo_returns_of_the_env(mdp: TabularMDP) -> None:
    rng = np.random.default_rng(0)
    pi = rng.dirichlet(np.ones(mdp.n_actions), size=mdp.n_states)
    P, R, mu = _arrays(mdp)
    j_exact = float(dp.expected_return(P, R, mdp.gamma, mu, jnp.asarray(pi)))
    env = TabularEnv(mdp)
    steps = 100  # the weight past it, gamma^100 / (1 - gamma) * max|R| <= 3e-4, is far below the MC error
    discounts = mdp.gamma ** np.arange(steps)
    returns = []
    for episode in range(600):
        s, _ = env.reset(seed=episode)
        rewards = np.empty(steps)
        u = rng.random(steps)
        for t in range(steps):
            a = int(np.searchsorted(np.cumsum(pi[s]), u[t], side="right"))
            s, rewards[t], *_ = env.step(min(a, mdp.n_actions - 1))
        returns.append(discounts @ rewards)
    returns = np.asarray(returns)
    stderr = returns.std() / np.sqrt(len(returns))
    assert abs(returns.mean() - j_exact) < 4 * stderr + 3e-4


def test_value_iteration_greedy_policy_is_optimal_on_garnets() -> None:
    n_states, n_actions = 5, 3
    all_policies = jnp.asarray(
        [np.eye(n_actions)[list(p)] for p in itertools.product(range(n_actions), repeat=n_states)]
    )
    for seed in range(4):
        mdp = garnet(n_states, n_actions, branching=3, seed=seed, gamma=0.9)
        P, R, _ = _arrays(mdp)
        values = jax.vmap(dp.policy_evaluation, in_axes=(None, None, None, 0))(P, R, mdp.gamma, all_policies)
        v_star = values.max(axis=0)  # one optimal policy dominates all others in every state
        result = dp.value_iteration(P, R, mdp.gamma, tol=1e-6)
        v_greedy = dp.policy_evaluation(P, R, mdp.gamma, dp.greedy_policy(result.q))
        np.testing.assert_allclose(v_greedy, v_star, atol=1e-4)
        np.testing.assert_allclose(jnp.max(result.q, axis=-1), v_star, atol=1e-4)
        np.testing.assert_allclose(dp.q_from_v(P, R, mdp.gamma, v_star), result.q, atol=1e-4)
        assert bool(jnp.all(values <= v_greedy + 1e-4))


def test_soft_value_iteration_tends_to_hard_as_alpha_shrinks() -> None:
    mdp = garnet(8, 4, 3, seed=2, gamma=0.9)
    P, R, _ = _arrays(mdp)
    hard = dp.value_iteration(P, R, mdp.gamma).q
    for alpha in [0.1, 0.01]:
        soft = dp.soft_value_iteration(P, R, mdp.gamma, alpha).q
        gap = soft - hard  # 0 <= soft - hard <= gamma alpha log|A| / (1 - gamma)
        assert float(gap.min()) >= -1e-5
        assert float(gap.max()) <= mdp.gamma * alpha * np.log(4) / (1 - mdp.gamma) + 1e-5
    assert float(jnp.max(jnp.abs(dp.soft_bellman(hard, P, R, 0.9, 1e-4) - hard))) < 1e-3


def test_soft_fixed_point_gradient_is_the_exact_implicit_one() -> None:
    with jax.enable_x64(True):
        mdp = garnet(4, 2, 3, seed=3, gamma=0.9)
        P, R, mu = _arrays(mdp)
        alpha = 0.1

        def objective(P: jax.Array, R: jax.Array, tol: float = 1e-12) -> jax.Array:
            q = dp.soft_value_iteration(P, R, mdp.gamma, alpha, tol=tol).q
            return dp.expected_return(P, R, mdp.gamma, mu, dp.softmax_policy(q, alpha))

        grad_p, grad_r = jax.jit(jax.grad(objective, argnums=(0, 1)))(P, R)
        eps = 1e-6
        for grad, arg in [(grad_p, 0), (grad_r, 1)]:
            base = (P, R)[arg]
            for idx in [(0, 0, 1), (2, 1, 3), (3, 0, 0)] if arg == 0 else [(0, 0), (1, 1), (3, 0)]:
                bump = jnp.zeros_like(base).at[idx].set(eps)
                plus = [P, R]
                minus = [P, R]
                plus[arg], minus[arg] = base + bump, base - bump
                fd = (objective(*plus, tol=1e-14) - objective(*minus, tol=1e-14)) / (2 * eps)
                assert float(grad[idx]) == pytest.approx(float(fd), abs=1e-6)


def test_dp_rejects_mismatched_shapes() -> None:
    P, R, _ = _arrays(two_state_polytope())
    with pytest.raises(ValueError, match=r"got P \(2, 2, 2\) and R \(2, 3\)"):
        dp.value_iteration(P, jnp.zeros((2, 3)), 0.9)
    with pytest.raises(ValueError, match=r"policy must have shape .* \(2, 2\), got \(2, 3\)"):
        dp.policy_evaluation(P, R, 0.9, jnp.ones((2, 3)) / 3)
    with pytest.raises(ValueError, match="q_init must have shape"):
        dp.soft_value_iteration(P, R, 0.9, 0.01, q_init=jnp.zeros(2))


# ---------------------------------------------------------------- pure-JAX twin


def _rollout(env, params, n_envs: int, n_steps: int, seed: int):
    """jit(vmap over envs of a lax.scan over steps) with uniform random actions."""
    n_actions = params.R.shape[1]

    def one_env(key):
        reset_key, key = jax.random.split(key)
        obs, state = env.reset(reset_key, params)

        def body(carry, key):
            obs, state = carry
            act_key, step_key = jax.random.split(key)
            a = jax.random.randint(act_key, (), 0, n_actions)
            next_obs, next_state, r, term, trunc, info = env.step(step_key, state, a, params)
            assert obs.shape == (1,) and obs.dtype == jnp.int32
            out = (state.s, state.t, a, r, term, trunc, info["final_obs"][0], next_obs[0], obs[0])
            return (next_obs, next_state), out

        return jax.lax.scan(body, (obs, state), jax.random.split(key, n_steps))[1]

    keys = jax.random.split(jax.random.key(seed), n_envs)
    return jax.tree.map(np.asarray, jax.jit(jax.vmap(one_env))(keys))


def test_twin_jit_vmap_scan_matches_p_and_r_and_truncates_at_the_horizon() -> None:
    mdp = garnet(5, 3, 3, seed=11, gamma=0.9)
    env, params = mbrl_bench.make_jax(GARNET, n_states=5, n_actions=3, branching=3, seed=11, gamma=0.9)
    n_envs, n_steps = 1024, 2 * TABULAR_HORIZON
    s, t, a, r, term, trunc, final, obs, current_obs = _rollout(env, params, n_envs, n_steps, seed=0)
    assert s.shape == (n_envs, n_steps)
    np.testing.assert_array_equal(current_obs, s)  # the observation is the state index
    np.testing.assert_allclose(r, mdp.R[s, a], atol=1e-6)
    assert not term.any()
    steps = np.arange(1, n_steps + 1)
    assert np.array_equal(trunc, np.broadcast_to(steps % TABULAR_HORIZON == 0, trunc.shape))
    np.testing.assert_array_equal(t, np.broadcast_to((steps - 1) % TABULAR_HORIZON, t.shape))
    np.testing.assert_array_equal(obs[~trunc], final[~trunc])  # no reset: obs is the real next state
    np.testing.assert_array_equal(s[:, 1:], obs[:, :-1])
    counts = np.zeros((5, 3, 5))
    np.add.at(counts, (s, a, final), 1)
    n_sa = counts.sum(-1, keepdims=True)
    freq = counts / n_sa
    stderr = np.sqrt(mdp.P * (1 - mdp.P) / n_sa)
    assert np.all(np.abs(freq - mdp.P) <= 5 * stderr + 1e-3)
    assert np.all(counts[mdp.P == 0] == 0)


def test_twin_auto_resets_exactly_at_the_horizon_to_a_draw_from_mu() -> None:
    env, params = make_jax_tabular(_chain_mdp([1.0, 0.0, 0.0]), horizon=5)
    s, t, a, r, _, trunc, final, obs, _ = _rollout(env, params, n_envs=8, n_steps=23, seed=1)
    steps = np.arange(1, 24)
    assert np.array_equal(trunc, np.broadcast_to(steps % 5 == 0, trunc.shape))
    np.testing.assert_array_equal(t, np.broadcast_to((steps - 1) % 5, t.shape))
    assert np.all(obs[trunc] == 0)  # mu is one-hot on state 0
    np.testing.assert_array_equal(final, np.where(a == 0, (s + 1) % 3, s))  # the real last transition
    np.testing.assert_allclose(r, 10.0 * s + a)
    with pytest.raises(ValueError, match="horizon must be an integer >= 1, got 0"):
        make_jax_tabular(two_state_polytope(), horizon=0)


def test_twin_of_the_polytope_uses_float64_under_x64() -> None:
    with jax.enable_x64(True):
        env, params = mbrl_bench.make_jax(POLYTOPE)
        assert params.P.dtype == jnp.float64
        np.testing.assert_array_equal(params.P, two_state_polytope().P)
        obs, state = env.reset(jax.random.key(0), params)
        assert obs.shape == (1,) and obs.dtype == jnp.int32 and int(state.t) == 0
