"""A cell run interrupted mid-way, as both backends' resume tests need it."""

from __future__ import annotations

from pathlib import Path

import pytest

from mbrl_bench.harness import store
from mbrl_bench.harness.cells import CellSpec
from mbrl_bench.harness.runner import ProgressEvent, run_cell


def interrupted_run(spec: CellSpec, out: Path) -> Path:
    """Run ``spec`` (checkpoints every 200 steps) under ``out``, stop it at step 600, and put back seed 1's
    checkpoint from step 200, as if the run had been killed between two seeds' checkpoint writes: seed 1
    is one evaluation behind the others. Returns the cell's directory."""
    cut_dir = spec.cell_dir(out)
    older = {}

    def interrupt(event: ProgressEvent) -> None:
        if event.env_step == 400:  # checkpoints are at step 200: keep seed 1's
            older["ckpt"] = (cut_dir / "seed_1" / store.CHECKPOINT_FILE).read_bytes()
        if event.env_step == 600:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_cell(spec, out, progress=interrupt)
    assert [r["env_step"] for r in store.read_curve(cut_dir / "seed_0" / store.CURVE_FILE)] == [0, 200, 400]
    (cut_dir / "seed_1" / store.CHECKPOINT_FILE).write_bytes(older["ckpt"])
    return cut_dir
