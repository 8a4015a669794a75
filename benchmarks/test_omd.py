"""Wall time of OMD and MLE-Dyna on CartPoleDistractor-v0 (default 10 distractors), 5 seeds in one process.

Run with ``pytest benchmarks/test_omd.py --benchmark-enable -s``. Each case runs one harness cell
(``plan_cell`` / ``run_cell``: all seeds in one process, the learner vmapped over seeds, one jitted call per
env step) for ``MBRL_BENCH_OMD_STEPS`` env steps per seed (default 200K, the issue's budget; set e.g.
20000 on a shared machine and extrapolate), evaluating only at step 0 and at the end, and records:

- ``train_wall_s``: the harness's training wall time (compilation included, evaluations excluded);
- ``per_step_ms`` and ``extrapolated_200k_min``: that time per env step and scaled to 200K steps
  (the first steps pay compilation, so a short run slightly over-estimates);
- ``ratio_5_to_1``: on the 5-seed case, its training wall time over the 1-seed case's (same algo, same
  session; the cases run in order 1 seed then 5 seeds).

The issue's target is under 5 minutes per agent for 200K steps x 5 seeds on a 2-core machine. Other jobs
share the machine: compare runs made alike. Without ``--benchmark-enable`` each case runs 2K steps as a
smoke test.

``test_learner_step_gflops`` times the learner alone (the harness's jitted per-step call of a 5-seed
cell) and reads it against XLA's FLOP count and the machine's matmul rate, the measure of how much of
the per-step cost is arithmetic and how much per-op overhead.

``test_network_dot_ceiling`` measures the rate the learner's own matmul shape (a 32-wide layer on a 256
batch, 5 seeds x 2 networks) reaches on this machine, the practical ceiling for those GFLOP/s, and
``test_sampler_without_replacement`` the minibatch sampler both agents call every step.

``test_float64_cost`` times the same call with ``float64=True`` (the official code's precision) and
without, interleaved in blocks so that both see the same load, and reports the float64 / float32 ratio:
the cost side of the precision default (issue 15).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from _kernels import flops, matmul_gflops, median_s
from mbrl_bench.baselines.common.replay import Replay, sample_without_replacement

from mbrl_bench.harness.cells import build_agent, plan_cell
from mbrl_bench.harness.runner import SeedBatch, run_cell

ENV_ID = "mbrl_bench/CartPoleDistractor-v0"
FULL_STEPS = 200_000
STEPS = int(os.environ.get("MBRL_BENCH_OMD_STEPS", FULL_STEPS))
SMOKE_STEPS = 2_000
TARGET_MIN = 5.0
"""Minutes for 200K steps x 5 seeds (the issue's target)."""
_TRAIN_WALL: dict[tuple[str, int], float] = {}


@pytest.mark.parametrize(("algo", "seeds"), [("omd", 1), ("omd", 5), ("mle-dyna", 1), ("mle-dyna", 5)])
def test_wall_time(benchmark, tmp_path: Path, algo: str, seeds: int) -> None:
    steps = SMOKE_STEPS if benchmark.disabled else STEPS
    spec = plan_cell(
        algo,
        ENV_ID,
        seeds=seeds,
        steps=steps,
        eval_every=steps,
        eval_episodes=10,
        overrides={"replay_capacity": max(steps, 1000)},
    )

    def run():
        t0 = time.perf_counter()
        result = run_cell(spec, tmp_path / "run")
        return result, time.perf_counter() - t0

    result, wall = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result.state == "done", result.error
    train_wall = max(row["wall_time_s"] for curve in result.curves.values() for row in curve)
    _TRAIN_WALL[(algo, seeds)] = train_wall
    per_step_ms = 1e3 * train_wall / steps
    extrapolated = per_step_ms * FULL_STEPS / 1e3 / 60
    finals = [curve[-1]["eval_return"] for curve in result.curves.values()]
    info = {
        "seeds": seeds,
        "steps": steps,
        "total_wall_s": round(wall, 1),
        "train_wall_s": round(train_wall, 1),
        "per_step_ms": round(per_step_ms, 3),
        "extrapolated_200k_min": round(extrapolated, 2),
        "final_returns": [round(float(r), 1) for r in finals],
    }
    if seeds == 5 and (algo, 1) in _TRAIN_WALL:
        info["ratio_5_to_1"] = round(train_wall / _TRAIN_WALL[(algo, 1)], 2)
    benchmark.extra_info.update(info)
    print(f"\n{algo} x {seeds} seed(s): {info}")
    if not benchmark.disabled and seeds == 5:
        print(f"target: 200K steps x 5 seeds under {TARGET_MIN} min; extrapolated {extrapolated:.1f} min")


def _learner_call(algo: str, seeds: int, **overrides: object) -> tuple[SeedBatch, object, object]:
    """A cell's batch trained past the random start steps (1000), its jitted per-step call and a closure
    that runs that call once on the carried state (the call donates its inputs)."""
    spec = plan_cell(
        algo, ENV_ID, seeds=seeds, steps=10**6, eval_every=10**6, eval_episodes=1, overrides=overrides
    )
    batch = SeedBatch(build_agent(spec), spec, spec.seeds)
    batch.start()
    batch.train(1_100)
    step = batch._f.fused
    keys = batch._keys_for(batch.env_step)
    carried = [batch.state, batch.carry]

    def call():
        state, carry, action = step(*carried, batch._obs, batch._rtt, keys)
        carried[:] = [state, carry]
        return action

    return batch, step, call


@pytest.mark.parametrize("algo", ["omd", "mle-dyna"])
def test_learner_step_gflops(benchmark, algo: str) -> None:
    """The jitted per-env-step call of a 5-seed cell (update and act, vmapped over seeds) past the
    random start steps, timed alone with the harness's own function: ms per call, XLA's FLOP count of
    the call (its diagnostics branch, which runs every 10th step, counts in full), the achieved
    GFLOP/s and this machine's matmul rate in the same run, and the learner time that implies for
    200K steps (the issue's 300 s target is for the whole run)."""
    seeds = 5
    batch, step, call = _learner_call(algo, seeds)
    keys = batch._keys_for(batch.env_step)
    call_flops = flops(step.lower(batch.state, batch.carry, batch._obs, batch._rtt, keys).compile())
    repeats = 20 if benchmark.disabled else 1_000
    seconds = benchmark.pedantic(lambda: median_s(call, repeats), rounds=1)
    peak = matmul_gflops()
    achieved = call_flops / seconds / 1e9
    info = {
        "seeds": seeds,
        "ms_per_step": round(1e3 * seconds, 3),
        "mflop_per_step": round(call_flops / 1e6, 1),
        "gflops": round(achieved, 1),
        "matmul_peak_gflops": round(peak, 1),
        "fraction_of_peak": round(achieved / peak, 3),
        "learner_s_per_200k": round(seconds * FULL_STEPS, 1),
    }
    benchmark.extra_info.update(info)
    print(f"\n{algo} learner step, {seeds} seeds: {info}")
    assert call_flops > 0 and np.isfinite(seconds)


@pytest.mark.parametrize("algo", ["omd", "mle-dyna"])
def test_float64_cost(benchmark, algo: str) -> None:
    """ms per learner step of a 5-seed cell in float32 and in float64 (each built and called under
    ``jax.enable_x64`` as the harness runs it), timed in alternating blocks of 20 calls; the ratio of the
    medians is what float64 costs."""
    calls = {}
    for float64 in (False, True):
        with jax.enable_x64(float64):
            calls[float64] = _learner_call(algo, 5, float64=float64)[2]
    blocks = 3 if benchmark.disabled else 30
    times: dict[bool, list[float]] = {False: [], True: []}

    def measure() -> None:
        for _ in range(blocks):
            for float64, call in calls.items():
                with jax.enable_x64(float64):
                    times[float64].append(median_s(call, 20))

    benchmark.pedantic(measure, rounds=1)
    ms = {k: 1e3 * float(np.median(v)) for k, v in times.items()}
    info = {
        "float32_ms": round(ms[False], 3),
        "float64_ms": round(ms[True], 3),
        "ratio": round(ms[True] / ms[False], 2),
    }
    benchmark.extra_info.update(info)
    print(f"\n{algo} learner step, 5 seeds: {info}")
    assert all(np.isfinite(list(ms.values())))


@pytest.mark.parametrize("filled", [1_000, 100_000])
def test_sampler_without_replacement(benchmark, filled: int) -> None:
    """The minibatch sampler OMD and MLE-Dyna call once per Q or model step (Floyd's algorithm,
    computed in parallel): us per draw of 256 distinct indices for 5 vmapped seeds, from a buffer
    with ``filled`` items (1K: the first learning step, where many draws repeat or chain; 100K:
    later). 100 draws run inside one jitted loop so that dispatch does not count."""
    replay = Replay(jnp.zeros((5, 200_000)), jnp.full(5, filled, jnp.int32))
    keys = jax.random.split(jax.random.PRNGKey(0), 5)
    draws = 100

    @jax.jit
    def many(replay: Replay, keys: jax.Array) -> jax.Array:
        def body(i: int, total: jax.Array) -> jax.Array:
            sample = jax.vmap(lambda r, k: sample_without_replacement(r, jax.random.fold_in(k, i), 256))
            return total + sample(replay, keys).sum()

        return jax.lax.fori_loop(0, draws, body, 0)

    repeats = 5 if benchmark.disabled else 50
    seconds = benchmark.pedantic(lambda: median_s(lambda: many(replay, keys), repeats), rounds=1)
    us = 1e6 * seconds / draws
    benchmark.extra_info.update({"filled": filled, "us_per_5_seed_draw": round(us, 1)})
    print(f"\nsampler, 5 seeds x 256 of {filled}: {us:.1f} us per draw")
    assert np.isfinite(us)


def test_network_dot_ceiling(benchmark) -> None:
    """GFLOP/s of the learner's own matmul shape, a 32-wide hidden layer on a 256 batch for 5 seeds x 2
    networks ([10, 256, 32] @ [10, 32, 32], 100 chained in one jitted loop), beside a 2048^2 matmul:
    the rate the OMD step's dots can reach here, against which its achieved GFLOP/s should be read."""
    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (10, 256, 32))
    w = jax.random.normal(key, (10, 32, 32)) / jnp.sqrt(32.0)
    layers = 100

    @jax.jit
    def chain(x: jax.Array, w: jax.Array) -> jax.Array:
        return jax.lax.fori_loop(0, layers, lambda _, h: jnp.einsum("bnk,bkm->bnm", h, w), x)

    repeats = 3 if benchmark.disabled else 30
    seconds = benchmark.pedantic(lambda: median_s(lambda: chain(x, w), repeats), rounds=1) / layers
    achieved = 2 * x.size * w.shape[-1] / seconds / 1e9
    peak = matmul_gflops()
    info = {
        "gflops": round(achieved, 1),
        "matmul_peak_gflops": round(peak, 1),
        "fraction_of_peak": round(achieved / peak, 3),
    }
    benchmark.extra_info.update(info)
    print(f"\n32-wide layer, 5 seeds x 2 networks x 256: {info}")
    assert np.isfinite(achieved)
