"""Harness overhead per env step per seed, beyond the environment's own cost.

The random agent on CartPoleDistractor-v0 (10 gaussian distractors), 5 seeds batched in one process:
``SeedBatch.train(N)`` (no evaluation) against a bare loop stepping 5 such envs N times with
precomputed random actions and plain resets. Overhead = (harness time - bare time) / (N * 5), from
the medians of interleaved rounds (other processes share the machine, so single timings are noisy).
Target: < 10 microseconds. Run with ``pytest benchmarks/test_harness_overhead.py --benchmark-enable -s``.
"""

from __future__ import annotations

import time

import numpy as np

import mbrl_bench
from mbrl_bench.harness.cells import build_agent, plan_cell
from mbrl_bench.harness.runner import KEY_BLOCK, SeedBatch

ENV = "mbrl_bench/CartPoleDistractor-v0"
SEEDS = 5
STEPS = 4_000
ROUNDS = 9
TARGET_US = 10.0


def _bare_loop(envs: list, actions: list[list[int]]) -> float:
    t0 = time.perf_counter()
    for row in actions:
        for env, a in zip(envs, row, strict=True):
            _, _, terminated, truncated, _ = env.step(a)
            if terminated or truncated:
                env.reset()
    return time.perf_counter() - t0


def test_harness_overhead_per_env_step(benchmark) -> None:
    spec = plan_cell("random", ENV, seeds=SEEDS, steps=10**9, eval_every=10**9, eval_episodes=1)
    batch = SeedBatch(build_agent(spec), spec, spec.seeds)
    batch.start()
    batch.train(2 * KEY_BLOCK)  # compile and warm up
    envs = [mbrl_bench.make(ENV) for _ in range(SEEDS)]
    for k, env in enumerate(envs):
        env.reset(seed=k)
    actions = np.random.default_rng(0).integers(0, 2, size=(STEPS, SEEDS)).tolist()
    bare: list[float] = []
    harness: list[float] = []

    def timed_train() -> None:
        t0 = time.perf_counter()
        batch.train(STEPS)
        harness.append(time.perf_counter() - t0)

    rounds = 1 if benchmark.disabled else ROUNDS
    benchmark.pedantic(
        timed_train, setup=lambda: bare.append(_bare_loop(envs, actions)), rounds=rounds, iterations=1
    )
    harness_s = float(np.median(harness))
    bare_s = float(np.median(bare))
    overhead_us = (harness_s - bare_s) / (STEPS * SEEDS) * 1e6
    benchmark.extra_info.update(
        harness_us_per_seed_step=harness_s / (STEPS * SEEDS) * 1e6,
        env_us_per_seed_step=bare_s / (STEPS * SEEDS) * 1e6,
        overhead_us_per_seed_step=overhead_us,
    )
    info = benchmark.extra_info
    print(
        f"\nharness {info['harness_us_per_seed_step']:.2f} us/seed-step, bare env "
        f"{info['env_us_per_seed_step']:.2f} us, overhead {overhead_us:.2f} us (target < {TARGET_US})"
    )
    assert batch.env_step == 2 * KEY_BLOCK + rounds * STEPS
