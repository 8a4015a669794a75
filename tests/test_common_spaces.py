"""Observation encoding, and both reference agents acting on state-index observations."""

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.api import EnvInfo, get_agent
from mbrl_bench.baselines.common.spaces import encode, feature_dim, raw_observation

import mbrl_bench


def test_box_passes_through_and_discrete_is_one_hot():
    box = gym.spaces.Box(-1.0, 1.0, (3,))
    assert feature_dim(box) == 3 and raw_observation(box).shape == (3,)
    np.testing.assert_array_equal(encode(box, jnp.array([1, 2, 3])), [1.0, 2.0, 3.0])
    states = gym.spaces.Discrete(4, start=1)
    assert feature_dim(states) == 4 and raw_observation(states).dtype == jnp.int32
    np.testing.assert_array_equal(encode(states, jnp.array([1, 4])), [[1, 0, 0, 0], [0, 0, 0, 1]])


@pytest.mark.parametrize("space", [gym.spaces.Box(0.0, 1.0, (2, 2)), gym.spaces.MultiBinary(3)])
def test_other_spaces_are_refused_with_the_supported_ones_named(space):
    with pytest.raises(ValueError, match="supported: a flat Box or a Discrete"):
        feature_dim(space)


@pytest.mark.parametrize("algo", ["ppo", "rainbow"])
def test_agents_act_on_state_index_observations(algo):
    env_id = "mbrl_bench/Garnet-v0"  # observes a state index: a Discrete space
    env = mbrl_bench.make(env_id)
    info = EnvInfo(env_id, {}, env.observation_space, env.action_space, mbrl_bench.get_task(env_id))
    agent = get_agent(algo)(get_agent(algo).Config(), info)
    state = jax.jit(agent.init)(jax.random.key(0))
    obs = jnp.arange(env.observation_space.n, dtype=jnp.int32)
    act = jax.jit(jax.vmap(lambda o: agent.act(state, o, jax.random.key(1), False)))
    actions = np.asarray(act(obs))
    assert actions.shape == (env.observation_space.n,) and set(actions) <= {0, 1}
