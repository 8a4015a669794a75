"""Jitted MLE training step of MBPO's ensemble (7 x 4x200 Gaussian MLPs) on HalfCheetah-sized data.

Run: ``/work/venv/bin/pytest benchmarks/test_model_training.py --benchmark-enable -s``.
Reports the ensemble's time per step and its ratio to 7 separate single-model steps, measured in
interleaved rounds of the same run (the machine is shared, so each round's ratio compares like with
like) and summarised by the median ratio (target: at most 0.85).
"""

from __future__ import annotations

import time

import jax
import numpy as np
import pytest

from mbrl_bench.models import DynamicsModel, ModelConfig, ModelTrainer, Transitions

OBS_DIM, ACTION_DIM = 17, 6  # HalfCheetah-v5
MEMBERS, BATCH = 7, 256  # MBPO: ensemble 7, batch 256 per member
ROUNDS, STEPS_PER_ROUND = 15, 10


def make_step(members: int, seed: int) -> tuple:
    """A jitted train step of an ensemble of ``members`` MBPO models and its initial state and batch."""
    model = DynamicsModel(
        ModelConfig(ensemble_size=members, num_elites=min(5, members)), OBS_DIM, ACTION_DIM, False
    )
    trainer = ModelTrainer(model)
    params = model.init(jax.random.key(seed))
    keys = jax.random.split(jax.random.key(seed + 100), 4)
    lead = (members, BATCH)
    batch = Transitions(
        jax.random.normal(keys[0], (*lead, OBS_DIM)),
        jax.random.normal(keys[1], (*lead, ACTION_DIM)),
        jax.random.normal(keys[2], lead),
        jax.random.normal(keys[3], (*lead, OBS_DIM)),
    )
    step = jax.jit(trainer.train_step, donate_argnums=(0, 1))
    state = (params, trainer.init_optimizer(params))
    state = step(*state, batch)[:2]  # compile
    jax.block_until_ready(state)
    return step, state, batch


@pytest.mark.benchmark(group="model-training")
def test_ensemble_step_vs_single_model_steps(benchmark: pytest.FixtureRequest) -> None:
    ens_step, ens_state, ens_batch = make_step(MEMBERS, 0)
    singles = [make_step(1, i + 1) for i in range(MEMBERS)]
    single_states = [s[1] for s in singles]

    def ensemble_steps(n: int) -> float:
        nonlocal ens_state
        start = time.perf_counter()
        for _ in range(n):
            ens_state = ens_step(*ens_state, ens_batch)[:2]
        jax.block_until_ready(ens_state)
        return (time.perf_counter() - start) / n

    def single_steps(n: int) -> float:
        start = time.perf_counter()
        for _ in range(n):
            for i, (step, _, batch) in enumerate(singles):
                single_states[i] = step(*single_states[i], batch)[:2]
        jax.block_until_ready(single_states)
        return (time.perf_counter() - start) / n

    ensemble_steps(2)
    single_steps(2)
    ens_times, single_times = [], []
    for _ in range(ROUNDS):
        ens_times.append(ensemble_steps(STEPS_PER_ROUND))
        single_times.append(single_steps(STEPS_PER_ROUND))
    ratios = np.array(ens_times) / np.array(single_times)

    benchmark.pedantic(lambda: ensemble_steps(1), rounds=20, iterations=1)
    info = {
        "ensemble_step_ms_median": 1e3 * float(np.median(ens_times)),
        "seven_single_steps_ms_median": 1e3 * float(np.median(single_times)),
        "ratio_median": float(np.median(ratios)),
        "ratio_min": float(ratios.min()),
        "ratio_max": float(ratios.max()),
        "ratio_of_best_times": float(min(ens_times) / min(single_times)),
        "rounds": ROUNDS,
        "steps_per_round": STEPS_PER_ROUND,
    }
    benchmark.extra_info.update(info)
    print(
        f"\n7-member 4x200 Gaussian ensemble step: {info['ensemble_step_ms_median']:.2f} ms (median); "
        f"7 single-model steps: {info['seven_single_steps_ms_median']:.2f} ms; "
        f"ratio median {info['ratio_median']:.3f} (min {info['ratio_min']:.3f}, max {info['ratio_max']:.3f}; "
        f"best-time ratio {info['ratio_of_best_times']:.3f}); target <= 0.85"
    )
    assert np.isfinite(ratios).all()
