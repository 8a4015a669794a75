"""Time OMD on CartPoleDistractor-v0 (10 distractors), 5 seeds, the figures of the README's OMD benchmark row.

    python scripts/time_omd.py cell [--steps 20000] [--backend jax]   # a whole cell, run twice in one process
    XLA_FLAGS=... python scripts/time_omd.py step [--set KEY=VALUE]    # the learner step alone

``cell`` plans a 5-seed cell (evaluation only at the start and the end) and runs it twice, printing the
training wall time per env step (the second run has its programs compiled). ``step`` times the harness's
jitted per-env-step call past the random start steps, 10 blocks of 40 waited calls, and prints the
median block; run it once per ``XLA_FLAGS`` setting or ``--set`` override of OMD's config, alternating, to
compare XLA options or learner variants (e.g. ``--set separate_reward_model=false``). Run from the
repository root (it imports ``benchmarks/test_omd.py``'s helper).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from mbrl_bench.harness.cells import plan_cell
from mbrl_bench.harness.labels import parse_kwarg_assignment
from mbrl_bench.harness.runner import run_cell

ENV_ID = "mbrl_bench/CartPoleDistractor-v0"


def time_cell(steps: int, backend: str) -> None:
    spec = plan_cell(
        "omd", ENV_ID, seeds=5, steps=steps, eval_every=steps, eval_episodes=10, env_backend=backend
    )
    for rep in range(2):
        result = run_cell(spec, Path(tempfile.mkdtemp()) / "run")
        train = max(row["wall_time_s"] for curve in result.curves.values() for row in curve)
        finals = [round(float(curve[-1]["eval_return"]), 1) for curve in result.curves.values()]
        per_step = 1e3 * train / steps
        print(f"{backend} run {rep}: {train:.1f} s of training, {per_step:.2f} ms per env step, {finals}")


def time_step(overrides: dict[str, str], blocks: int = 10, calls: int = 40) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from test_omd import _learner_call

    _, _, call = _learner_call("omd", 5, **overrides)
    for _ in range(30):
        jax.block_until_ready(call())
    per_call_ms = []
    for _ in range(blocks):
        start = time.perf_counter()
        for _ in range(calls):
            jax.block_until_ready(call())
        per_call_ms.append(1e3 * (time.perf_counter() - start) / calls)
    print(f"learner step ms per block {np.round(per_call_ms, 2)}, median {np.median(per_call_ms):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("cell", "step"))
    parser.add_argument("--steps", type=int, default=20_000, help="env steps per seed (cell)")
    parser.add_argument("--backend", default="jax", choices=("jax", "gymnasium"), help="env backend (cell)")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="OMD config override (step)"
    )
    args = parser.parse_args()
    if args.what == "cell":
        time_cell(args.steps, args.backend)
    else:
        time_step(dict(parse_kwarg_assignment(text, "--set") for text in args.set))


if __name__ == "__main__":
    main()
