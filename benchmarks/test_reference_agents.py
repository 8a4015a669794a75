"""The reference agents really learn: PPO and Rainbow on CartPoleDistractor-v0 (0 distractors), 100K steps.

Run with ``pytest benchmarks/test_reference_agents.py --benchmark-enable -s``. Each case runs one harness
cell (``plan_cell`` / ``run_cell``, all seeds in one process, the learner vmapped over seeds) for 100K env
steps per seed with a greedy evaluation of 10 episodes every 5K steps, then

- asserts that the mean over seeds of the evaluation return reaches 400 at some evaluation;
- prints the curve and writes it as CSV (one row per seed and evaluation) to ``$MBRL_BENCH_CURVE_DIR``
  (default: the test's tmp dir) as ``reference_agents_<algo>_<n>seeds.csv``;
- records in ``extra_info`` the total wall time (compilation and evaluations included) and the training
  wall time the harness measures (evaluations excluded). PPO runs with 1 and with 5 seeds: the wall time
  of 5 seeds in one process against 1.

Without ``--benchmark-enable`` each case runs 5K steps as a smoke test and asserts nothing about returns.
The machine is shared with other jobs, so wall times are noisy: compare runs made alike.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from mbrl_bench.harness.cells import plan_cell
from mbrl_bench.harness.runner import run_cell

ENV_ID = "mbrl_bench/CartPoleDistractor-v0"
ENV_KWARGS = {"num_distractors": 0}
STEPS = 100_000
SMOKE_STEPS = 5_000
EVAL_EVERY = 5_000
EVAL_EPISODES = 10
TARGET = 400.0
"""Mean return over seeds that some evaluation within STEPS must reach (the issue's bar)."""


def _curve_frame(algo: str, result) -> pd.DataFrame:
    rows = [
        {"algo": algo, "seed": seed, **row} for seed, curve in sorted(result.curves.items()) for row in curve
    ]
    return pd.DataFrame(rows)


@pytest.mark.parametrize(("algo", "seeds"), [("ppo", 1), ("ppo", 5), ("rainbow", 5)])
def test_reference_agent_learns_cartpole(benchmark, tmp_path: Path, algo: str, seeds: int) -> None:
    steps = SMOKE_STEPS if benchmark.disabled else STEPS
    spec = plan_cell(
        algo,
        ENV_ID,
        env_kwargs=ENV_KWARGS,
        seeds=seeds,
        steps=steps,
        eval_every=EVAL_EVERY,
        eval_episodes=EVAL_EPISODES,
    )
    runs = iter(range(1000))

    def run():
        t0 = time.perf_counter()
        result = run_cell(spec, tmp_path / f"run{next(runs)}")
        return result, time.perf_counter() - t0

    result, wall = benchmark.pedantic(run, rounds=1, iterations=1)
    assert result.state == "done", result.error
    frame = _curve_frame(algo, result)
    out_dir = Path(os.environ.get("MBRL_BENCH_CURVE_DIR", tmp_path))
    out_dir.mkdir(parents=True, exist_ok=True)
    csv = out_dir / f"reference_agents_{algo}_{seeds}seeds.csv"
    frame.to_csv(csv, index=False)
    curve = frame.groupby("env_step")["eval_return"].agg(["mean", "min", "max"])
    train_wall = float(frame["wall_time_s"].max())
    best = float(curve["mean"].max())
    first = curve.index[curve["mean"] >= TARGET]
    print(
        f"\n{algo}, {seeds} seed(s), {steps} steps: total wall {wall:.1f} s, training wall {train_wall:.1f} s"
    )
    print(curve.round(1).to_string())
    reached = first[0] if len(first) else None
    print(f"best mean return {best:.1f}; first >= {TARGET:.0f} at step {reached}; CSV {csv}")
    benchmark.extra_info.update(
        {
            "seeds": seeds,
            "steps": steps,
            "total_wall_s": round(wall, 1),
            "train_wall_s": round(train_wall, 1),
            "best_mean_return": round(best, 1),
            "first_step_at_target": int(first[0]) if len(first) else None,
            "final_mean_return": round(float(curve["mean"].iloc[-1]), 1),
            "curve_csv": str(csv),
        }
    )
    if not benchmark.disabled:
        assert best >= TARGET, curve
