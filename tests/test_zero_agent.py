"""The zero agent: the zero action clipped into the bounds, continuous actions only."""

import dataclasses

import gymnasium as gym
import jax
import numpy as np
import pytest
from mbrl_bench.baselines.api import EnvInfo, get_agent
from mbrl_bench.baselines.random_agent import ZeroAgent, ZeroConfig

from mbrl_bench.harness.cells import env_info, plan_cell
from mbrl_bench.harness.runner import run_cell


def _info(env_id: str) -> EnvInfo:
    return env_info(env_id, {})


def test_zero_clipped_into_the_bounds_and_refused_on_discrete_actions():
    assert get_agent("zero") is ZeroAgent
    info = _info("mbrl_bench/Reacher-v0")
    shifted = dataclasses.replace(
        info, action_space=gym.spaces.Box(np.array([0.5, -3.0]), np.array([2.0, -1.0]))
    )
    for space_info, expected in ((info, [0.0, 0.0]), (shifted, [0.5, -1.0])):
        agent = ZeroAgent(ZeroConfig(), space_info)
        action = agent.act(agent.init(jax.random.key(0)), np.zeros(10), jax.random.key(1), True)
        np.testing.assert_array_equal(np.asarray(action), expected)
    with pytest.raises(ValueError, match="no no-op action"):
        ZeroAgent(ZeroConfig(), _info("mbrl_bench/CartPoleDistractor-v0"))


def test_zero_runs_through_the_harness_and_does_better_than_random_on_reacher(tmp_path):
    spec = plan_cell("zero", "mbrl_bench/Reacher-v0", seeds=2, steps=100, eval_every=100, eval_episodes=5)
    result = run_cell(spec, tmp_path)
    assert result.state == "done", result.error
    # Holding still pays only the distance to the target (about -10 per episode); uniform random
    # actions also pay their control cost (about -42, the shipped random reference).
    finals = [curve[-1]["eval_return"] for curve in result.curves.values()]
    assert all(-25.0 < f < 0.0 for f in finals), finals
