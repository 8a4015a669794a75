"""PPO: GAE on hand-computed examples, config checks, a short CartPole run and a MuJoCo smoke run."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from mbrl_bench.baselines.api import EnvInfo, Transition, get_agent
from mbrl_bench.baselines.common.normalization import stats_init
from mbrl_bench.baselines.ppo import (
    PPO,
    PPOConfig,
    annealed_learning_rate,
    clipped_gaussian_log_prob,
    gae,
    normalize_reward,
)

import mbrl_bench
from mbrl_bench.harness.cells import build_agent, env_info, plan_cell
from mbrl_bench.harness.runner import run_cell

CARTPOLE = "mbrl_bench/CartPoleDistractor-v0"


def _env_info(env_id: str, **kwargs) -> EnvInfo:
    return env_info(env_id, kwargs)


REWARDS = jnp.ones(4)
VALUES = jnp.array([0.5, 1.0, 1.5, 2.0])
# V of each step's true next observation; 3.0 at step 2 is the value of the final obs of that episode.
NEXT_VALUES = jnp.array([1.0, 1.5, 3.0, 2.5])
NO = jnp.zeros(4, bool)
AT_2 = jnp.array([False, False, True, False])


@pytest.mark.parametrize(
    ("terminated", "truncated", "expected"),
    [
        # gamma = lambda = .5. deltas: 1 + .5 * 1 - .5 = 1, 1 + .75 - 1 = .75, (terminated) 1 - 1.5 = -.5,
        # 1 + 1.25 - 2 = .25. A_3 = .25; A_2 = -.5 (trace cut); A_1 = .75 + .25 A_2 = .625; A_0 = 1.15625.
        (AT_2, NO, [1.15625, 0.625, -0.5, 0.25]),
        # Truncated: step 2 bootstraps from its final obs, delta_2 = 1 + 1.5 - 1.5 = 1, trace still cut.
        (NO, AT_2, [1.25, 1.0, 1.0, 0.25]),
        # No episode end: A_2 = 1 + .5 * 3 - 1.5 + .25 A_3 = 1.0625, A_1 = .75 + .25 A_2, A_0 = 1 + .25 A_1.
        (NO, NO, [1.0 + 0.25 * (0.75 + 0.25 * 1.0625), 0.75 + 0.25 * 1.0625, 1.0625, 0.25]),
    ],
)
def test_gae_hand_computed(terminated, truncated, expected):
    adv = jax.jit(gae, static_argnums=(5, 6))(REWARDS, VALUES, NEXT_VALUES, terminated, truncated, 0.5, 0.5)
    np.testing.assert_allclose(adv, expected, rtol=1e-6)


def test_defaults_follow_the_action_kind_and_bad_configs_are_value_errors():
    assert get_agent("ppo") is PPO and PPO.action_kinds == frozenset({"discrete", "continuous"})
    cartpole = _env_info(CARTPOLE, num_distractors=0)
    discrete = PPO(PPOConfig(), cartpole)
    assert (discrete.n_steps, discrete.use_obs_norm) == (256, False)
    continuous = PPO(PPOConfig(), _env_info("mbrl_bench/HalfCheetah-v0"))
    assert (continuous.n_steps, continuous.num_minibatches, continuous.use_obs_norm) == (2048, 32, True)
    assert PPO(PPOConfig(normalize_obs=True), cartpole).use_obs_norm
    with pytest.raises(ValueError, match="n_steps=100 must be a positive multiple of minibatch_size=64"):
        PPO(PPOConfig(n_steps=100), cartpole)
    with pytest.raises(ValueError, match="valid activations"):
        PPO(PPOConfig(activation="gelu-ish"), cartpole)


def test_learns_cartpole_in_a_short_run(tmp_path):
    # Random play scores ~22 and the untrained greedy policy ~9. In development runs every one of 5 seeds
    # was at 160-500 by 5K steps and 266-500 at 10K; 150 at 10K is far above any non-learning policy.
    spec = plan_cell(
        "ppo",
        CARTPOLE,
        env_kwargs={"num_distractors": 0},
        seeds=2,
        steps=10_000,
        eval_every=10_000,
        eval_episodes=10,
    )
    result = run_cell(spec, tmp_path)
    assert result.state == "done", result.error
    finals = [curve[-1]["eval_return"] for curve in result.curves.values()]
    assert min(finals) > 150.0, result.curves


def test_continuous_mujoco_smoke_run_learns_with_finite_losses():
    env_id = "mbrl_bench/HalfCheetah-v0"
    agent = PPO(PPOConfig(n_steps=64, minibatch_size=32, update_epochs=2), _env_info(env_id))
    env = mbrl_bench.make(env_id)
    state = jax.jit(agent.init)(jax.random.key(0))
    params0 = state.params

    @jax.jit
    def step_fn(state, tr, key, step, next_obs):
        k_update, k_act = jax.random.split(key)
        state, metrics = agent.update(state, tr, k_update, step)
        return state, metrics, agent.act(state, next_obs, k_act, True)

    obs, _ = env.reset(seed=0)
    action = jax.jit(agent.act, static_argnums=3)(state, jnp.asarray(obs), jax.random.key(1), True)
    assert action.shape == env.action_space.shape and action.dtype == jnp.float32
    for t in range(1, 257):
        next_obs, reward, term, trunc, _ = env.step(np.asarray(action))
        tr = Transition(
            jnp.asarray(obs),
            action,
            jnp.float32(reward),
            jnp.asarray(next_obs),
            jnp.bool_(term),
            jnp.bool_(trunc),
        )
        obs = env.reset()[0] if term or trunc else next_obs
        state, metrics, action = step_fn(state, tr, jax.random.key(100 + t), jnp.int32(t), jnp.asarray(obs))
        assert all(bool(jnp.isfinite(v)) for v in metrics.values()), (t, metrics)
    env.close()
    # Four learning phases ran: the losses are real, the parameters moved, the stats hold 4 x 64 obs.
    assert float(metrics["value_loss"]) > 0.0 and float(metrics["entropy"]) > 0.0
    assert float(state.obs_stats.count) == pytest.approx(256.0)
    moved = jax.tree.map(lambda a, b: bool(jnp.any(a != b)), params0, state.params)
    assert all(jax.tree.leaves(moved))


def test_clipped_gaussian_log_prob_is_the_censored_law():
    mean, log_std = jnp.array([0.3]), jnp.array([np.log(0.8)])
    low, high = np.array([-1.0], np.float32), np.array([1.0], np.float32)
    # Inside the box: the Gaussian density; at a bound: the tail mass beyond it.
    inner = jnp.linspace(-1.0, 1.0, 20_001)[1:-1, None]
    density = jnp.exp(clipped_gaussian_log_prob(mean, log_std, inner, low, high))
    area = float(jnp.sum(density) * (2.0 / 20_000))
    mass_low = float(jnp.exp(clipped_gaussian_log_prob(mean, log_std, jnp.array([-1.0]), low, high)))
    mass_high = float(jnp.exp(clipped_gaussian_log_prob(mean, log_std, jnp.array([1.0]), low, high)))
    assert mass_low == pytest.approx(scipy.stats.norm.cdf(-1.0, 0.3, 0.8), rel=1e-4)
    assert mass_high == pytest.approx(scipy.stats.norm.sf(1.0, 0.3, 0.8), rel=1e-4)
    assert area + mass_low + mass_high == pytest.approx(1.0, abs=1e-3)
    # An unbounded dim never clips, and its gradient stays finite.
    unbounded = np.array([-np.inf]), np.array([np.inf])
    grad = jax.grad(lambda m: clipped_gaussian_log_prob(m, log_std, jnp.array([5.0]), *unbounded))(mean)
    assert bool(jnp.isfinite(grad).all()) and float(grad[0]) > 0.0


def test_reward_normalisation_matches_cleanrl_normalize_reward():
    # CleanRL pins gym 0.23: returns = returns * gamma + r; update the running var with it; r / sqrt(var
    # + 1e-8); returns[done] = 0; then clip to +-10. Written out here with numpy as an independent check.
    rng = np.random.default_rng(0)
    rewards = rng.normal(3.0, 2.0, 60).astype(np.float32)
    rewards[7] = 500.0  # a spike that the clip must catch
    dones = np.zeros(60, bool)
    dones[[20, 41]] = True
    mean, var, count, ret = 0.0, 1.0, 1e-4, 0.0
    expected = []
    for r, d in zip(rewards, dones, strict=True):
        ret = ret * 0.99 + r
        total = count + 1
        delta = ret - mean
        m2 = var * count + delta**2 * count / total
        mean, var, count = mean + delta / total, m2 / total, total
        expected.append(np.clip(r / np.sqrt(var + 1e-8), -10, 10))
        ret = 0.0 if d else ret
    stats, discounted, got = stats_init(1), jnp.zeros(()), []
    step = jax.jit(normalize_reward, static_argnums=(4, 5))
    for r, d in zip(rewards, dones, strict=True):
        stats, discounted, scaled = step(stats, discounted, jnp.float32(r), jnp.bool_(d), 0.99, 10.0)
        got.append(float(scaled))
    np.testing.assert_allclose(got, expected, rtol=2e-4)
    assert max(got) == pytest.approx(10.0)


def test_learning_rate_anneals_to_zero_over_the_runs_budget():
    lr = lambda step, total: float(annealed_learning_rate(3e-4, jnp.int32(step), 2048, total))
    assert lr(2048, 100_000) == pytest.approx(3e-4)  # the first phase: full step size
    assert lr(48 * 2048, 100_000) == pytest.approx(3e-4 / 48)  # 48 phases fit in 100K steps
    assert lr(48 * 2048, 200_000) == pytest.approx(3e-4 * (1 - 47 / 97))
    assert lr(48 * 2048, None) == pytest.approx(3e-4)  # budget unknown: constant
    # The harness tells the agent its run's budget.
    spec = plan_cell("ppo", "mbrl_bench/Reacher-v0", seeds=1, steps=12_288, eval_every=12_288)
    agent = build_agent(spec)
    assert agent.total_steps == 12_288


def test_continuous_actions_are_clipped_to_the_bounds():
    info = _env_info("mbrl_bench/Pusher-v0")  # Box(-2, 2, (7,))
    agent = PPO(PPOConfig(), info)
    state = agent.init(jax.random.key(0))
    wide = {**state.params["params"], "log_std": jnp.full((7,), 2.0)}  # std e^2: most samples leave the box
    state = state._replace(params={"params": wide})
    obs = jnp.zeros(info.observation_space.shape)
    actions = jax.vmap(lambda k: agent.act(state, obs, k, True))(jax.random.split(jax.random.key(1), 200))
    assert float(actions.min()) == -2.0 and float(actions.max()) == 2.0


def test_learning_starts_from_the_acting_policy_when_observation_statistics_move():
    """CleanRL stores observations normalised by the statistics that acted, so PPO's ratio starts at
    exactly 1. Our rollout keeps raw observations: the learning phase must normalise them with the
    statistics the policy acted with, not with those just merged from the rollout. Observations far
    from the initial statistics (mean 0, var 1) make any mismatch visible in the first minibatch."""
    info = _env_info("mbrl_bench/Reacher-v0")
    agent = PPO(PPOConfig(n_steps=64, minibatch_size=64, update_epochs=1), info)
    state = agent.init(jax.random.key(0))
    obs_dim = info.observation_space.shape[0]
    rng = np.random.default_rng(0)
    observations = jnp.asarray(5.0 + 3.0 * rng.standard_normal((65, obs_dim)), jnp.float32)
    act, update = jax.jit(agent.act, static_argnums=3), jax.jit(agent.update)
    for t in range(1, 65):
        action = act(state, observations[t - 1], jax.random.key(t), True)
        tr = Transition(
            observations[t - 1], action, jnp.float32(1.0), observations[t], jnp.bool_(False), jnp.bool_(False)
        )
        state, metrics = update(state, tr, jax.random.key(1000 + t), jnp.int32(t))
    # One epoch of one minibatch: the metrics are those of the parameters that acted.
    assert float(metrics["approx_kl"]) == pytest.approx(0.0, abs=1e-6)
    assert float(metrics["clip_fraction"]) == 0.0
    # The statistics still learn from the rollout, for the next one.
    assert float(state.obs_stats.count) == pytest.approx(64.0, abs=1e-3)
