"""PAL / MAL: the official configs, the real buffer's init states and oldest-first pruning, capacities
shaping every member, and short runs through the harness (one that learns, one that diverges)."""

import json
from pathlib import Path

import jax
import numpy as np
import pandas as pd
import pytest
from mbrl_bench.baselines.api import EnvInfo, Transition, get_agent
from mbrl_bench.baselines.pal import MALConfig, PALConfig, init_state_pool, kept_mask

from mbrl_bench.harness import plan_cell, run_cell
from mbrl_bench.harness.cells import env_info

CARTPOLE = "mbrl_bench/CartPoleDistractor-v0"
TINY = dict(
    init_samples=64,
    iter_samples=32,
    buffer_size=100,
    inner_steps=2,
    update_paths=4,
    horizon=20,
    fit_epochs=2,
    max_fit_steps=50,
    fit_batch_size=16,
    num_models=2,
    model_hidden=(16, 16),
    policy_hidden=(8,),
)


def _env_info(env_id: str) -> EnvInfo:
    return env_info(env_id, {})


def test_configs_are_the_official_hopper_ones() -> None:
    pal, mal = get_agent("pal"), get_agent("mal")
    assert pal.Config is PALConfig and mal.Config is MALConfig and pal.uses_model and mal.uses_model
    official = {  # hopper_v3_pal.txt / hopper_v3_mal.txt
        "inner_steps": (5, 20),
        "buffer_size": (10_000, 100_000),
        "fit_epochs": (25, 10),
        "iter_samples": (1000, 2000),
        "init_samples": (4000, 10_000),
        "init_log_std": (0.0, -0.5),
        "update_paths": (50, 25),
        "max_fit_steps": (10_000, 100_000),
    }
    for name, (p, m) in official.items():
        assert (getattr(PALConfig(), name), getattr(MALConfig(), name)) == (p, m), name
    for cfg in (PALConfig(), MALConfig()):
        assert (cfg.gamma, cfg.gae_lambda, cfg.step_size, cfg.horizon) == (0.995, 0.97, 0.05, 500)
        assert (cfg.cg_iters, cfg.cg_damping, cfg.min_log_std) == (25, 1e-3, -2.5)
        assert (cfg.num_models, cfg.model_hidden, cfg.policy_hidden, cfg.fit_batch_size) == (
            4,
            (512, 512),
            (64, 64),
            200,
        )
    hopper = pal(PALConfig(), _env_info("mbrl_bench/Hopper-v0"))
    assert hopper.policy.obs_dim == 11 and 0 not in hopper.policy_dims  # x hidden, as mjrl's Hopper-v3
    with pytest.raises(ValueError, match="inner_steps"):
        PALConfig(inner_steps=0)


def test_capacity_shapes_every_member() -> None:
    info = _env_info(CARTPOLE)
    agent = get_agent("pal")(
        PALConfig(**{**TINY, "model_hidden": (32, 32), "num_models": 3}), info, "width:5"
    )
    net = agent.init(jax.random.PRNGKey(0)).learner.model.params.net
    kernels = [leaf for path, leaf in jax.tree_util.tree_leaves_with_path(net) if "kernel" in str(path)]
    assert [k.shape for k in kernels] == [
        (3, 16, 5),
        (3, 5, 5),
        (3, 5, 15),
    ]  # 14 obs + 2 one-hot in; 14 + 1 out


def _reference_kept(lengths: list[int], buffer_size: int) -> list[int]:
    """mjrl's loop: ``while buffer_size(paths) > buffer_size: paths[:1] = []``; the indices kept."""
    paths = list(range(len(lengths)))
    while sum(lengths[p] for p in paths) > buffer_size:
        paths[:1] = []
    return paths


def test_init_state_buffer_and_oldest_first_pruning() -> None:
    info = _env_info(CARTPOLE)
    buffer_size = 10
    agent = get_agent("pal")(PALConfig(**{**TINY, "buffer_size": buffer_size}), info)
    state = agent.init(jax.random.PRNGKey(0))
    record = jax.jit(agent.record)
    keep = jax.jit(kept_mask, static_argnums=1)
    lengths = [3, 4, 5, 2, 1, 6, 12, 2, 3]  # a 12-step trajectory exceeds the buffer on its own
    replay = state.replay
    zeros = np.zeros(14, np.float32)
    done_lengths: list[int] = []
    for episode, length in enumerate(lengths):
        for t in range(length):
            obs = zeros.copy()
            obs[:2] = episode, t
            last = t == length - 1
            # Episode 2 ends by truncation, the others by termination: both start a new trajectory.
            transition = Transition(
                obs, np.int32(t % 2), 1.0, obs + 0.5, last and episode != 2, last and episode == 2
            )
            replay = record(replay, transition)
            so_far = [*done_lengths, t + 1]  # the trajectory in progress counts with its steps so far
            mask = np.asarray(keep(replay, buffer_size))
            kept = sorted({int(e) for e in np.asarray(replay.obs)[mask, 0]})
            assert kept == _reference_kept(so_far, buffer_size), (episode, t)
            assert mask.sum() == sum(so_far[e] for e in kept)
        done_lengths.append(length)
    pool, count = init_state_pool(replay)
    assert int(count) == len(lengths)  # never pruned, one per trajectory, in order
    np.testing.assert_array_equal(np.asarray(pool)[: len(lengths), :2], [[e, 0] for e in range(len(lengths))])


def _curve(out: Path) -> tuple[pd.DataFrame, dict]:
    seed_dir = next(out.rglob("seed_0"))
    return pd.read_csv(seed_dir / "curve.csv"), json.loads((seed_dir / "status.json").read_text())


def test_pal_iterates_on_cartpole_through_the_harness(tmp_path: Path) -> None:
    spec = plan_cell("pal", CARTPOLE, seeds=1, steps=96, eval_every=96, eval_episodes=2, overrides=TINY)
    run_cell(spec, tmp_path)
    curve, status = _curve(tmp_path)
    assert status["state"] == "done"
    last = curve.iloc[-1]
    # Two iterations ran (steps 64 and 96): NPG moved the policy within its KL budget's order, the
    # model was fit and its paths are CartPole's (reward 1 per step until the true termination).
    assert 0 < last["npg_kl"] < 1.0 and last["npg_alpha"] > 0 and np.isfinite(last["model_loss"])
    assert 0 < last["model_paths_kept"] <= 1
    assert last["model_path_return"] == pytest.approx(last["model_path_length"], rel=1e-5)


def test_a_diverged_seed_is_recorded_not_fatal(tmp_path: Path) -> None:
    """The authors warn that aggressive players diverge; a step so large that the policy overflows
    stops the seed as ``diverged`` and the run still returns."""
    overrides = {**TINY, "step_size": 1e38}
    spec = plan_cell("pal", CARTPOLE, seeds=1, steps=96, eval_every=96, eval_episodes=2, overrides=overrides)
    run_cell(spec, tmp_path)
    _, status = _curve(tmp_path)
    assert status["state"] == "diverged"


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_on_a_gymnasium_id_the_reward_and_termination_are_learned(tmp_path: Path, env_id: str) -> None:
    """Plain Gymnasium ids have no true task functions: PAL fits the reward output and a termination
    classifier. CartPole-v1 pays 1 per step, so its learned model paths earn 1 per step too."""
    spec = plan_cell("pal", env_id, seeds=1, steps=96, eval_every=96, eval_episodes=2, overrides=TINY)
    run_cell(spec, tmp_path)
    curve, status = _curve(tmp_path)
    assert status["state"] == "done", status.get("error")
    last = curve.iloc[-1]
    assert np.isfinite(last["model_loss"]) and 0 < last["model_paths_kept"] <= 1
    if env_id == "CartPole-v1":
        assert last["model_path_return"] == pytest.approx(last["model_path_length"], rel=1e-3)
    else:  # Pendulum never terminates: every path runs the whole horizon (both metrics are step averages)
        assert last["model_path_length"] / last["model_paths_kept"] == pytest.approx(TINY["horizon"])
