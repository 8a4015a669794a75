"""MBPO: rollout schedule, branched rollouts, elites, batch mix, presets, discrete SAC, short runs."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.api import EnvInfo
from mbrl_bench.baselines.common.replay import Replay
from mbrl_bench.baselines.common.sac import Batch, DiscreteSAC, EnvAdapter, SACConfig
from mbrl_bench.baselines.mbpo import MBPOAgent, MBPOConfig, preset_for, rollout_length

from mbrl_bench.harness import plan_cell, run_cell
from mbrl_bench.harness.cells import env_info

HOPPER, CARTPOLE = "mbrl_bench/Hopper-v0", "mbrl_bench/CartPoleDistractor-v0"
SMALL = dict(
    hidden_sizes=(16, 16),
    model_hidden_sizes=(16, 16),
    batch_size=40,
    model_batch_size=32,
    ensemble_size=4,
    num_elites=2,
    rollouts_per_step=10,
    epoch_length=50,
    model_train_every=50,
    start_steps=100,
    updates_per_step=2,
    rollout_schedule=(0, 2, 1, 3),
    model_max_epochs=5,
    replay_capacity=1000,
)


def _info(env_id: str, budget: int | None = None, **kwargs: object) -> EnvInfo:
    return env_info(env_id, kwargs, budget)


def _filled(agent: MBPOAgent, key: jax.Array, n: int = 200, reward: float = 0.0):
    """A fresh state whose real replay holds ``n`` random transitions with reward ``reward``."""
    state = agent.init(key)
    data = state.replay.data
    k = jax.random.split(key, 3)
    obs = jax.random.normal(k[0], data.obs.shape)
    action = jax.random.uniform(k[1], data.action.shape, minval=-1.0, maxval=1.0)
    next_obs = obs + 0.1 * jax.random.normal(k[2], obs.shape)
    replay = Replay(
        Batch(obs, action, jnp.full(data.reward.shape, reward), next_obs, jnp.ones_like(data.reward)),
        jnp.asarray(n, jnp.int32),
    )
    return state._replace(replay=replay)


@pytest.mark.parametrize(
    ("schedule", "epoch", "length"),
    [
        ((20, 150, 1, 15), 0, 1),
        ((20, 150, 1, 15), 20, 1),
        ((20, 150, 1, 15), 29, 1),
        ((20, 150, 1, 15), 30, 2),
        ((20, 150, 1, 15), 85, 8),
        ((20, 150, 1, 15), 149, 14),
        ((20, 150, 1, 15), 150, 15),
        ((20, 150, 1, 15), 400, 15),
        ((20, 100, 1, 25), 60, 13),
        ((20, 150, 1, 1), 300, 1),
    ],
)
def test_rollout_length_schedule_at_its_breakpoints(schedule, epoch: int, length: int) -> None:
    # official set_rollout_length: int(min + clip((epoch - start) / (end - start), 0, 1) * (max - min))
    assert int(rollout_length(schedule, epoch)) == length


def test_presets_are_the_official_per_env_settings() -> None:
    assert preset_for("mbrl_bench/HopperDistractor-v0") == preset_for(HOPPER)
    hopper = MBPOAgent(MBPOConfig(), _info(HOPPER, budget=50_000))
    assert (hopper.updates_per_step, hopper.sac.target_entropy, hopper.schedule) == (
        20,
        -1.0,
        (20, 150, 1, 15),
    )
    # 50K steps end in epoch 45, where the schedule gives int(1 + 25/130 * 14) = 3 steps: the static horizon.
    assert hopper.horizon == 3 and hopper.pool_capacity == 3 * 400 * 1000
    cheetah = MBPOAgent(MBPOConfig(), _info("mbrl_bench/HalfCheetahDistractor-v0", budget=10_000))
    assert (cheetah.updates_per_step, cheetah.sac.target_entropy, cheetah.horizon) == (40, -3.0, 1)
    assert cheetah.n_real == 12  # int(0.05 * 256): 12 real + 244 model transitions
    pusher = MBPOAgent(MBPOConfig(updates_per_step=7), _info("mbrl_bench/Pusher-v0"))
    assert (pusher.updates_per_step, pusher.sac.target_entropy) == (7, -7.0)  # ours: -|A|, --set wins
    cartpole = MBPOAgent(MBPOConfig(), _info(CARTPOLE))
    assert cartpole.sac.target_entropy == pytest.approx(0.5 * np.log(2))


UNIT = SMALL | dict(
    ensemble_size=6,
    num_elites=3,
    model_lr=1e-9,
    model_max_epochs=1,
    rollouts_per_step=300,
    rollout_schedule=(0, 1, 4, 4),
    batch_size=100,
    real_ratio=0.25,
)
"""One agent for the unit tests (compiling once): Adam at lr 1e-9 leaves the model as set up."""


@pytest.fixture(scope="module")
def unit():
    info = _info(HOPPER)
    # A termination that fires on about a third of the model's next states, deterministically per state.
    fires = lambda obs, action, next_obs: jnp.sin(1e3 * next_obs[..., 1]) > 0.5  # z: x (dim 0) is hidden
    info = dataclasses.replace(info, task=dataclasses.replace(info.task, termination_fn=fires))
    agent = MBPOAgent(MBPOConfig(**UNIT), info)
    return agent, _filled(agent, jax.random.PRNGKey(0), n=500, reward=1.0), jax.jit(agent.rollout)


def test_rollouts_never_continue_past_a_terminal_state(unit) -> None:
    agent, state, rollout = unit
    items, valid = jax.tree.map(np.asarray, rollout(state, jax.random.PRNGKey(1), jnp.asarray(4)))
    terminal = valid & (items.not_done == 0)
    assert terminal.sum() > 0 and terminal.any(axis=0).mean() < 0.99 and valid[-1].any()
    for t in range(1, 4):
        ended_before = terminal[:t].any(axis=0)
        assert not (valid[t] & ended_before).any()  # nothing valid after a branch's terminal transition
        assert (valid[t] == ~ended_before).all()
        # a live branch continues from its previous model next state
        np.testing.assert_array_equal(items.obs[t][valid[t]], items.next_obs[t - 1][valid[t]])
    # the pool keeps exactly the valid transitions, in order
    pool = agent.pool_add(state.pool, jax.tree.map(jnp.asarray, items), jnp.asarray(valid))
    assert int(pool.count) == valid.sum()
    flat = items.next_obs.reshape(-1, items.next_obs.shape[-1])[valid.reshape(-1)]
    np.testing.assert_array_equal(np.asarray(pool.data.next_obs[: valid.sum()]), flat)
    # and rollouts stop at the scheduled length
    _, valid = rollout(state, jax.random.PRNGKey(1), jnp.asarray(2))
    assert valid.shape == (4, 300) and not np.asarray(valid[2:]).any() and np.asarray(valid[1]).any()


def test_elites_are_the_members_with_the_lowest_held_out_loss(unit) -> None:
    agent, state, _ = unit
    # Members 0, 2 and 4 predict a reward 30 off (initial elites are 0, 1, 2); Adam at lr 1e-9 keeps it so.
    net = state.model.net
    last = f"layer_{len(agent.dynamics.hidden_sizes)}"
    bias = net[last]["dense"]["bias"].at[jnp.array([0, 2, 4]), agent.obs_dim].add(30.0)
    net = {**net, last: {"dense": {**net[last]["dense"], "bias": bias}}}
    state = agent.retrain(state._replace(model=state.model._replace(net=net)), jax.random.PRNGKey(2))
    assert sorted(np.asarray(state.model.elites).tolist()) == [1, 3, 5]
    assert [float(state.model_info[f"elite_m{i}"]) for i in range(6)] == [0, 1, 0, 1, 0, 1]
    # model training that cannot go on stops at its limit (1 epoch here) and says so
    assert (
        float(state.model_info["model_hit_limit"]) == 1.0 and float(state.model_info["model_epochs"]) == 1.0
    )


def test_a_batch_has_the_configured_real_model_mix(unit) -> None:
    agent, state, rollout = unit
    items, valid = rollout(state, jax.random.PRNGKey(1), jnp.asarray(1))
    items = items._replace(reward=-jnp.ones_like(items.reward))  # real rewards are +1
    state = state._replace(pool=agent.pool_add(state.pool, items, valid))
    batch = agent.mixed_batch(state, jax.random.PRNGKey(2), jnp.asarray(1))
    assert batch.obs.shape == (100, agent.obs_dim)
    assert int((batch.reward == 1.0).sum()) == 25 and int((batch.reward == -1.0).sum()) == 75


def test_discrete_sac_target_is_the_exact_expectation_and_it_learns_a_bandit() -> None:
    sac = DiscreteSAC(
        SACConfig(hidden_sizes=(16,), init_temperature=0.05, discount=0.0, target_entropy_ratio=0.5), 1, 3
    )
    state = sac.init(jax.random.PRNGKey(0))
    batch = Batch(
        jnp.zeros((6, 1)), jnp.arange(6) % 3, jnp.array([0.0, 1.0, 0.2] * 2), jnp.ones((6, 1)), jnp.ones(6)
    )
    log_p = sac.log_probs(state.actor, batch.next_obs)
    q_next = jnp.min(sac.all_q_values(state.critic_target, batch.next_obs), axis=0)
    sac9 = dataclasses.replace(sac, config=dataclasses.replace(sac.config, discount=0.9))
    expected = batch.reward + 0.9 * jnp.sum(jnp.exp(log_p) * (q_next - 0.05 * log_p), axis=-1)
    np.testing.assert_allclose(sac9.td_target(state, batch, jax.random.PRNGKey(1)), expected, rtol=1e-5)
    state, info = jax.jit(lambda s, k: sac.updates(s, lambda _: batch, k, 300))(state, jax.random.PRNGKey(2))
    assert int(sac.deterministic(state.actor, jnp.zeros(1))) == 1
    assert float(info["alpha"]) > 0 and sac.target_entropy == pytest.approx(0.5 * np.log(3))


@pytest.mark.parametrize("env_id", [HOPPER, CARTPOLE, "CartPole-v1"])
def test_short_runs_finish_with_finite_curves(tmp_path, env_id: str) -> None:
    """CartPole-v1 is a plain Gymnasium id: no true termination, so mbpo learns one."""
    spec = plan_cell(
        "mbpo",
        env_id,
        seeds=2,
        steps=150,
        eval_every=150,
        eval_episodes=1,
        overrides=SMALL,
        capacity="width:8",
    )
    result = run_cell(spec, tmp_path)
    assert set(result.seed_states.values()) == {"done"}
    for rows in result.curves.values():
        assert [r["env_step"] for r in rows] == [0, 150]
        last = rows[-1]
        assert all(np.isfinite(v) for v in last.values() if isinstance(v, float))
        assert last["critic_loss"] > 0 and last["model_holdout_loss"] > 0 and last["model_epochs"] >= 1
        # 2 elites at each of the 51 learning steps (100..150); the row averages over all 150 steps
        assert sum(last[f"elite_m{i}"] for i in range(4)) == pytest.approx(2.0 * 51 / 150, rel=1e-4)
        assert ("termination_loss" in last) == (env_id == "CartPole-v1")
        if env_id == "CartPole-v1":
            assert last["termination_loss"] > 0


@pytest.mark.parametrize("env_id", [HOPPER, "mbrl_bench/Walker2d-v0", "mbrl_bench/Ant-v0"])
def test_the_true_termination_reads_the_same_without_the_hidden_position(env_id: str) -> None:
    """Rollouts pass the termination function the learner's view with x (Ant: x, y) set to 0."""
    info = _info(env_id)
    io = EnvAdapter.for_spaces(
        info.observation_space, info.action_space, info.task.layout, hide_position=True
    )
    d = info.observation_space.shape[0]
    k = jax.random.split(jax.random.PRNGKey(0), 3)
    obs = jax.random.normal(k[0], (2000, d)).at[:, 0].mul(100.0)
    next_obs = (obs + 0.3 * jax.random.normal(k[1], (2000, d))).at[:, :3].add(1.0)
    action = jax.random.uniform(k[2], (2000, info.action_space.shape[0]), minval=-1.0, maxval=1.0)
    done = np.asarray(info.task.termination_fn(obs, action, next_obs))
    assert 0 < done.mean() < 1
    seen = info.task.termination_fn(io.unview(io.view(obs)), action, io.unview(io.view(next_obs)))
    np.testing.assert_array_equal(np.asarray(seen), done)
    assert io.obs_dim < d
