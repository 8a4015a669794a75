"""VIREL: the adaptive temperature eps_w = (c/2) MSBE, the exact Boltzmann policy on discrete actions, the
eps / eps^2 scaling of the E- and M-steps, the floor, and short runs through the harness."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.api import EnvInfo, Transition, get_agent
from mbrl_bench.baselines.common.sac import Batch
from mbrl_bench.baselines.virel import DISCRETE_DEFAULTS, VirelAgent, VirelConfig, VirelState

import mbrl_bench
from mbrl_bench.cli import main
from mbrl_bench.harness import plan_cell, run_cell
from mbrl_bench.harness.errors import UsageError

CARTPOLE = "mbrl_bench/CartPoleDistractor-v0"
CHEETAH = "mbrl_bench/HalfCheetah-v0"


def _agent(env_id: str, **config: object) -> VirelAgent:
    env = mbrl_bench.make(env_id)
    info = EnvInfo(env_id, {}, env.observation_space, env.action_space, mbrl_bench.get_task(env_id), 1000)
    env.close()
    return get_agent("virel")(VirelConfig(**config), info)


@functools.cache
def _initial_state(env_id: str, hidden_sizes: tuple[int, ...]) -> VirelState:
    """One initial state per (env, widths), shared by the tests: initialising compiles for seconds."""
    return jax.jit(_agent(env_id, hidden_sizes=hidden_sizes).init)(jax.random.PRNGKey(0))


def _hand_made_discrete_critic(agent: VirelAgent, q: np.ndarray) -> dict:
    """Critic params (both twins) with Q(s, .) = q for every s: zero kernels, the output bias q."""
    state = _initial_state(agent.env.env_id, agent.config.hidden_sizes)
    critic = jax.tree.map(jnp.zeros_like, state.learner.critic)
    last = sorted(critic["params"])[-1]
    critic["params"][last]["bias"] = jnp.broadcast_to(jnp.asarray(q, jnp.float32), (2, len(q)))
    return critic


def _discrete_batch(agent: VirelAgent, actions: list[int], rewards: list[float]) -> Batch:
    n = len(actions)
    return Batch(
        jnp.zeros((n, agent.io.obs_dim)),
        jnp.asarray(actions, jnp.int32),
        jnp.asarray(rewards, jnp.float32),
        jnp.zeros((n, agent.io.obs_dim)),
        jnp.ones(n),
    )


def test_discrete_policy_is_softmax_of_q_over_eps() -> None:
    # gamma = 0: the Bellman target is the reward, so the Bellman errors are r - q[a], by hand.
    agent = _agent(CARTPOLE, hidden_sizes=(2,), discount=0.0, beta_scale=1.0, start_steps=0)
    q = np.array([1.0, 1.5])
    state = _initial_state(agent.env.env_id, agent.config.hidden_sizes)
    learner = state.learner._replace(critic=_hand_made_discrete_critic(agent, q))
    batch = _discrete_batch(agent, [0, 1, 0, 1], [1.5, 1.0, 2.0, 0.5])  # errors .5, -.5, 1, -1
    eps, used, msbe = jax.jit(agent.temperature)(learner, batch, jax.random.PRNGKey(1))
    assert float(msbe) == pytest.approx(0.625, rel=1e-6)
    assert float(eps) == float(used) == pytest.approx(0.5 * 1.0 * 0.625, rel=1e-6)  # (c/p) MSBE, p = 2

    state = state._replace(learner=learner._replace(log_alpha=jnp.log(used)))
    obs = jnp.zeros(agent.io.obs_dim)
    expected = np.exp(q / 0.3125) / np.exp(q / 0.3125).sum()
    np.testing.assert_allclose(np.asarray(agent.action_probs(state, obs)), expected, rtol=1e-5)
    keys = jax.random.split(jax.random.PRNGKey(2), 4000)
    actions = jax.jit(jax.vmap(lambda k: agent.act(state, obs, k, explore=True)))(keys)
    assert np.mean(np.asarray(actions) == 1) == pytest.approx(expected[1], abs=0.025)
    assert int(agent.act(state, obs, keys[0], explore=False)) == 1  # evaluation: argmax


def test_discrete_td_target_averages_the_target_critic_over_the_boltzmann_policy() -> None:
    agent = _agent(CARTPOLE, hidden_sizes=(2,), discount=0.9)
    state = _initial_state(agent.env.env_id, agent.config.hidden_sizes)
    eps = 0.4
    learner = state.learner._replace(
        critic=_hand_made_discrete_critic(agent, np.array([1.0, 2.0])),
        critic_target=_hand_made_discrete_critic(agent, np.array([3.0, -1.0])),
        log_alpha=jnp.log(jnp.float32(eps)),
    )
    batch = _discrete_batch(agent, [0], [0.5])
    probs = np.exp(np.array([1.0, 2.0]) / eps) / np.exp(np.array([1.0, 2.0]) / eps).sum()
    target = jax.jit(agent.sac.td_target)(learner, batch, jax.random.PRNGKey(1))
    assert float(target[0]) == pytest.approx(0.5 + 0.9 * (probs @ np.array([3.0, -1.0])), rel=1e-5)


def test_continuous_eps_is_the_msbe_of_a_target_without_entropy() -> None:
    agent = _agent(CHEETAH, hidden_sizes=(8,), beta_scale=4e-4)
    learner = _initial_state(agent.env.env_id, agent.config.hidden_sizes).learner._replace(
        log_alpha=jnp.log(jnp.float32(5.0))
    )
    k = jax.random.split(jax.random.PRNGKey(1), 5)
    n = 64
    batch = Batch(
        jax.random.normal(k[0], (n, agent.io.obs_dim)),
        jax.random.uniform(k[1], (n, agent.io.action_dim), minval=-1.0, maxval=1.0),
        jax.random.normal(k[2], (n,)),
        jax.random.normal(k[3], (n, agent.io.obs_dim)),
        (jax.random.uniform(k[4], (n,)) > 0.3).astype(jnp.float32),
    )
    key = jax.random.PRNGKey(2)
    # Known targets: r + gamma (1 - done) min_k Q'_k(s', a'), a' ~ pi(s'), no alpha log pi term even though
    # alpha (= eps) is 5 here.

    @jax.jit
    def known_target(learner: object, batch: Batch) -> jax.Array:
        next_action, _ = agent.sac.sample(learner.actor, batch.next_obs, key)
        next_q = jnp.min(agent.sac.q_values(learner.critic_target, batch.next_obs, next_action), axis=0)
        return batch.reward + 0.99 * batch.not_done * next_q

    target = known_target(learner, batch)
    np.testing.assert_allclose(
        jax.jit(agent.sac.td_target)(learner, batch, key), target, rtol=1e-5, atol=1e-5
    )
    errors = jax.jit(agent.sac.q_values)(learner.critic, batch.obs, batch.action) - target[None]
    msbe = float(jnp.mean(errors**2))
    eps, used, got_msbe = jax.jit(agent.temperature)(learner, batch, key)
    assert float(got_msbe) == pytest.approx(msbe, rel=1e-5)
    assert float(eps) == float(used) == pytest.approx(0.5 * 4e-4 * msbe, rel=1e-5)


def _flat(tree: object) -> np.ndarray:
    return np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves(tree)])


@pytest.mark.parametrize("eps", [0.5, 0.05])
def test_e_step_and_m_step_scale_their_gradients_by_eps_and_eps_squared(eps: float) -> None:
    """With plain SGD (the slides' steps): E-step theta += lr eps grad_theta L, M-step w -= lr eps^2 grad TD.
    lr = 1 keeps each step well above float32's resolution of the parameters it moves."""
    lr = 1.0
    agent = _agent(CHEETAH, hidden_sizes=(8,), optimizer="sgd", actor_lr=lr, critic_lr=lr)
    learner = _initial_state(agent.env.env_id, agent.config.hidden_sizes).learner
    actor_sgd, critic_sgd, _ = agent.sac.optimizers()
    learner = learner._replace(
        log_alpha=jnp.log(jnp.float32(eps)),
        actor_opt=actor_sgd.init(learner.actor),
        critic_opt=critic_sgd.init(learner.critic),
    )
    k = jax.random.split(jax.random.PRNGKey(1), 4)
    n = 32
    batch = Batch(
        jax.random.normal(k[0], (n, agent.io.obs_dim)),
        jax.random.uniform(k[1], (n, agent.io.action_dim), minval=-1.0, maxval=1.0),
        jax.random.normal(k[2], (n,)),
        jax.random.normal(k[3], (n, agent.io.obs_dim)),
        jnp.ones(n),
    )
    key = jax.random.PRNGKey(2)

    def objective(actor: object) -> jax.Array:  # L = E_s[E_{a ~ pi}[min Q(s, a) / eps] + H(pi(.|s))]
        action, log_prob = agent.sac.sample(actor, batch.obs, key)
        q = jnp.min(agent.sac.q_values(learner.critic, batch.obs, action), axis=0)
        return jnp.mean(q / eps - log_prob)

    stepped = jax.jit(agent.sac.actor_step)(learner, batch.obs, key)[0]
    moved = _flat(stepped.actor) - _flat(learner.actor)
    expected = lr * eps * _flat(jax.jit(jax.grad(objective))(learner.actor))
    np.testing.assert_allclose(moved, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())  # float32

    target = agent.sac.td_target(learner, batch, key)

    def td_loss(critic: object) -> jax.Array:
        return jnp.sum(
            jnp.mean((agent.sac.q_values(critic, batch.obs, batch.action) - target[None]) ** 2, axis=-1)
        )

    stepped = jax.jit(agent.sac.critic_step)(learner, batch, key)[0]
    moved = _flat(stepped.critic) - _flat(learner.critic)
    expected = -lr * eps**2 * _flat(jax.jit(jax.grad(td_loss))(learner.critic))
    np.testing.assert_allclose(moved, expected, rtol=1e-3, atol=1e-3 * np.abs(expected).max())


def _transition(agent: VirelAgent, reward: float) -> Transition:
    return Transition(
        jnp.zeros(agent.io.obs_dim),
        jnp.asarray(1),
        jnp.asarray(reward),
        jnp.zeros(agent.io.obs_dim),
        jnp.asarray(False),
        jnp.asarray(False),
    )


def test_zero_or_nonfinite_eps_leaves_the_policy_defined_and_reports_the_divergence() -> None:
    agent = _agent(CARTPOLE, hidden_sizes=(2,), discount=0.0, start_steps=0, eps_batch_size=8, batch_size=8)
    q = np.array([0.2, 0.7])
    state = _initial_state(agent.env.env_id, agent.config.hidden_sizes)
    state = state._replace(learner=state.learner._replace(critic=_hand_made_discrete_critic(agent, q)))
    # A critic that is exactly right: MSBE 0, eps_w 0, the policy uses the floor and is greedy.
    eps, used, _ = jax.jit(agent.temperature)(
        state.learner, _discrete_batch(agent, [0, 1], [0.2, 0.7]), jax.random.PRNGKey(1)
    )
    assert float(eps) == 0.0 and float(used) == pytest.approx(agent.config.eps_floor, rel=1e-6)
    floored = state._replace(learner=state.learner._replace(log_alpha=jnp.log(used)))
    np.testing.assert_array_equal(
        np.asarray(agent.action_probs(floored, jnp.zeros(agent.io.obs_dim))), [0.0, 1.0]
    )
    # A NaN Bellman error: the metric says so (the harness then stops the seed as diverged), the state and
    # the policy stay finite.
    state, metrics = jax.jit(agent.update)(
        state, _transition(agent, float("nan")), jax.random.PRNGKey(2), jnp.asarray(1)
    )
    assert np.isnan(float(metrics["eps_w"]))
    assert float(state.learner.log_alpha) == pytest.approx(np.log(agent.config.eps_floor))
    for explore in (True, False):
        assert int(agent.act(state, jnp.zeros(agent.io.obs_dim), jax.random.PRNGKey(3), explore)) in (0, 1)


def test_config_defaults_per_action_kind_and_bad_values() -> None:
    discrete = plan_cell("virel", CARTPOLE, steps=10, eval_every=10).agent_config
    assert tuple(discrete["hidden_sizes"]) == DISCRETE_DEFAULTS["hidden_sizes"] == (32, 32)
    assert plan_cell("virel", CHEETAH, steps=10, eval_every=10).agent_config["beta_scale"] == 4e-4
    with pytest.raises(UsageError, match="adam, sgd"):
        plan_cell("virel", CARTPOLE, steps=10, eval_every=10, overrides={"optimizer": "rmsprop"})
    with pytest.raises(UsageError, match="beta_scale"):
        plan_cell("virel", CARTPOLE, steps=10, eval_every=10, overrides={"beta_scale": "0"})
    with pytest.raises(UsageError, match="full"):
        plan_cell("virel", CARTPOLE, steps=10, eval_every=10, capacity="width:4")


@pytest.mark.parametrize("env_id", [CARTPOLE, CHEETAH])
def test_short_runs_finish_with_finite_curves_and_plot_eps(tmp_path, capsys, env_id: str) -> None:
    small = {"hidden_sizes": (16, 16), "batch_size": 32, "start_steps": 100, "eps_batch_size": 128}
    spec = plan_cell("virel", env_id, seeds=2, steps=200, eval_every=100, eval_episodes=1, overrides=small)
    result = run_cell(spec, tmp_path)
    assert set(result.seed_states.values()) == {"done"}
    for rows in result.curves.values():
        assert [r["env_step"] for r in rows] == [0, 100, 200]
        last = rows[-1]
        assert all(np.isfinite(v) for k, v in last.items() if isinstance(v, float))
        assert last["eps_w"] > 0 and last["msbe"] > 0
        assert last["eps_w"] == pytest.approx(0.5 * 4e-4 * last["msbe"], rel=1e-4)
    # eps_w over training: `mbrl-bench plot --metric eps_w`; a column no curve has is a one-line error.
    assert main(["plot", str(tmp_path), "--metric", "eps_w", "--log-y"]) == 0
    assert (tmp_path / "curves_eps_w.png").stat().st_size > 0
    capsys.readouterr()
    assert main(["plot", str(tmp_path), "--metric", "eps"]) == 2
    error = capsys.readouterr().err.strip()
    assert "'eps'" in error and "eps_w" in error and "\n" not in error  # names the valid columns
