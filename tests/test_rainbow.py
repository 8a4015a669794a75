"""Rainbow: n-step C51 targets, replay bookkeeping, refusal of continuous actions, a short learning run."""

import dataclasses

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.api import EnvInfo, Transition, get_agent
from mbrl_bench.baselines.common.distributions import categorical_projection
from mbrl_bench.baselines.common.replay import sumtree_get
from mbrl_bench.baselines.rainbow import Rainbow, RainbowConfig, n_step_targets

import mbrl_bench
from mbrl_bench.cli import main as cli_main
from mbrl_bench.harness.cells import build_agent, env_info, plan_cell
from mbrl_bench.harness.runner import run_cell

CARTPOLE = "mbrl_bench/CartPoleDistractor-v0"


def _env_info(env_id: str = CARTPOLE, **kwargs) -> EnvInfo:
    return env_info(env_id, kwargs)


def _window(rewards, terminated, truncated):
    """One (batch of 1) window of 3 steps whose next_obs are 10, 20, 30 (to see which one bootstraps)."""
    n = len(rewards)
    return Transition(
        obs=jnp.zeros((1, n, 1)),
        action=jnp.zeros((1, n), jnp.int32),
        reward=jnp.asarray([rewards], jnp.float32),
        next_obs=jnp.asarray([[[10.0], [20.0], [30.0]]]),
        terminated=jnp.asarray([terminated]),
        truncated=jnp.asarray([truncated]),
    )


@pytest.mark.parametrize(
    ("terminated", "truncated", "ret", "discount", "boot"),
    [
        # No episode end: G = 1 + .5 * 2 + .25 * 4 = 3, bootstrap from next_obs_2 with gamma^3.
        ([False] * 3, [False] * 3, 3.0, 0.125, 30.0),
        # Terminated at step 1: G = 1 + .5 * 2 = 2, no bootstrap; step 2 (the next episode) is ignored.
        ([False, True, False], [False] * 3, 2.0, 0.0, 20.0),
        # Truncated at step 1: same return, but bootstrap from the true final obs with gamma^2.
        ([False] * 3, [False, True, False], 2.0, 0.25, 20.0),
    ],
)
def test_n_step_targets_hand_computed(terminated, truncated, ret, discount, boot):
    t = n_step_targets(_window([1.0, 2.0, 4.0], terminated, truncated), gamma=0.5)
    np.testing.assert_allclose(t.returns, [ret])
    np.testing.assert_allclose(t.discount, [discount])
    np.testing.assert_allclose(t.bootstrap_obs, [[boot]])


def test_n_step_c51_target_distribution_hand_computed():
    support = jnp.linspace(0.0, 4.0, 5)
    uniform = jnp.full((1, 5), 0.2)
    project = lambda t: categorical_projection(
        support, t.returns[:, None] + t.discount[:, None] * support, uniform
    )
    # Truncated: atoms 2 + .25 z = [2, 2.25, 2.5, 2.75, 3] -> half the mass on 2, half on 3.
    trunc = n_step_targets(_window([1.0, 2.0, 4.0], [False] * 3, [False, True, False]), gamma=0.5)
    np.testing.assert_allclose(project(trunc), [[0, 0, 0.5, 0.5, 0]], atol=1e-6)
    # Terminated: every atom collapses onto the return 2.
    term = n_step_targets(_window([1.0, 2.0, 4.0], [False, True, False], [False] * 3), gamma=0.5)
    np.testing.assert_allclose(project(term), [[0, 0, 1, 0, 0]], atol=1e-6)
    # No end: 3 + z / 8 = [3, 3.125, ..., 3.5] -> atom 3 gets .2 (1 + .875 + .75 + .625 + .5) = .75.
    full = n_step_targets(_window([1.0, 2.0, 4.0], [False] * 3, [False] * 3), gamma=0.5)
    np.testing.assert_allclose(project(full), [[0, 0, 0, 0.75, 0.25]], atol=1e-6)


def test_new_slots_wait_for_their_n_step_window():
    cfg = RainbowConfig(n_step=3, replay_capacity=8, learning_starts=10**9, batch_size=4)
    agent = Rainbow(cfg, _env_info(num_distractors=0))
    state = jax.jit(agent.init)(jax.random.key(0))
    insert = jax.jit(agent.insert)
    replay, tree = state.replay, state.priorities
    for t in range(1, 11):  # 10 insertions into 8 slots: slots 0, 1 hold steps 9, 10
        obs = jnp.full((4,), float(t))
        tr = Transition(obs, jnp.int32(0), jnp.float32(1.0), obs + 0.5, jnp.bool_(False), jnp.bool_(False))
        replay, tree = insert(replay, tree, state.max_priority, tr)
    prio = np.asarray(sumtree_get(tree, jnp.arange(8)))
    # The two newest steps (slots 0 and 1) lack the 2 steps after them; all others are sampleable.
    np.testing.assert_array_equal(prio, [0, 0, 1, 1, 1, 1, 1, 1])
    np.testing.assert_array_equal(np.asarray(replay.data.obs[:, 0]), [9, 10, 3, 4, 5, 6, 7, 8])
    # Right after the start only slots with a complete window count: none before the 3rd step.
    replay, tree = state.replay, state.priorities
    for t in range(1, 3):
        obs = jnp.full((4,), float(t))
        tr = Transition(obs, jnp.int32(0), jnp.float32(1.0), obs + 0.5, jnp.bool_(False), jnp.bool_(False))
        replay, tree = insert(replay, tree, state.max_priority, tr)
    assert float(tree.nodes[1]) == 0.0


def test_refuses_continuous_actions():
    assert Rainbow.action_kinds == frozenset({"discrete"})
    assert get_agent("rainbow") is Rainbow
    box = _env_info(CARTPOLE, num_distractors=0)
    box = dataclasses.replace(box, action_space=gym.spaces.Box(-1.0, 1.0, (2,)))
    with pytest.raises(ValueError, match="supported action kinds: discrete"):
        Rainbow(RainbowConfig(), box)


def test_cli_refuses_a_continuous_env_with_exit_2(tmp_path, capsys):
    code = cli_main(
        ["run", "--algo", "rainbow", "--env", "mbrl_bench/HalfCheetah-v0", "--out", str(tmp_path)]
    )
    assert code == 2
    assert "rainbow" in capsys.readouterr().err


def test_bad_config_is_a_value_error():
    info = _env_info(num_distractors=0)
    with pytest.raises(ValueError, match="replay_capacity=8"):
        Rainbow(RainbowConfig(replay_capacity=8, n_step=20), info)
    with pytest.raises(ValueError, match="v_min < v_max"):
        Rainbow(RainbowConfig(v_min=5.0, v_max=5.0), info)


def test_learns_cartpole_in_a_short_run(tmp_path):
    # Random play scores ~22 and the untrained greedy net ~9. At 6K steps (4.4K updates) seeds scored
    # 107-160 in development runs; 60 leaves a wide margin while no non-learning policy reaches it.
    spec = plan_cell(
        "rainbow",
        CARTPOLE,
        env_kwargs={"num_distractors": 0},
        seeds=1,
        steps=6000,
        eval_every=6000,
        eval_episodes=10,
    )
    result = run_cell(spec, tmp_path)
    assert result.state == "done", result.error
    final = result.curves[0][-1]
    assert final["env_step"] == 6000
    assert final["eval_return"] > 60.0, result.curves


@pytest.mark.parametrize("env_id", ["mbrl_bench/TwoStatePolytope-v0", "mbrl_bench/Garnet-v0"])
def test_c51_support_spans_the_envs_discounted_returns(env_id):
    env = mbrl_bench.make(env_id)
    rewards = env.unwrapped.mdp.R
    env.close()
    agent = Rainbow(RainbowConfig(gamma=0.99), _env_info(env_id))
    # Every discounted return of rewards in [R.min, R.max] lies in [min(0, R.min), max(0, R.max)] / (1 - g).
    assert float(agent.support[0]) == pytest.approx(min(0.0, rewards.min()) / 0.01, rel=1e-5)
    assert float(agent.support[-1]) == pytest.approx(max(0.0, rewards.max()) / 0.01, rel=1e-5)
    if rewards.min() < 0:  # TwoStatePolytope: negative returns get atoms of their own
        assert float(agent.support[0]) < 0.0


def test_support_replay_and_annealing_follow_the_run():
    spec = plan_cell("rainbow", CARTPOLE, env_kwargs={"num_distractors": 0}, steps=3000, eval_every=3000)
    agent = build_agent(spec)
    # CartPole pays +1 a step: returns in [0, 1 / (1 - gamma)]; the replay holds the whole run.
    assert (float(agent.support[0]), float(agent.support[-1])) == pytest.approx((0.0, 100.0))
    assert agent.replay_capacity == agent.priority_weight_steps == 3000
    explicit = Rainbow(RainbowConfig(v_min=-10.0, v_max=10.0, replay_capacity=64), _env_info())
    assert (float(explicit.support[0]), explicit.replay_capacity) == (-10.0, 64)
    unknown = dataclasses.replace(_env_info(), env_id="someone/Else-v0")
    with pytest.raises(ValueError, match="set v_min and v_max"):
        Rainbow(RainbowConfig(), unknown)
