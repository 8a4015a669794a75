"""A run of many cells: validate them all, then execute them and report, cell failures isolated.

``run_session`` is what ``mbrl-bench run`` calls after planning. Before anything runs, every cell's
stored config (if any) is checked against the requested one, so a mismatch stops the whole command
with exit 2 rather than half-running it. Cells another process is running (its lock is held) are
retried at the end, waiting for the lock, so two concurrent ``mbrl-bench run`` on one directory both
end with every cell finished exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import filelock

from mbrl_bench.harness import store
from mbrl_bench.harness.cells import CellSpec, check_stored_config
from mbrl_bench.harness.errors import UsageError
from mbrl_bench.harness.executors import Executor
from mbrl_bench.harness.progress import ProgressDisplay
from mbrl_bench.harness.runner import CellResult, write_pending


@dataclass(frozen=True)
class SessionResult:
    """The results of every cell of a session, in the order they were requested."""

    results: tuple[CellResult, ...]

    @property
    def exit_code(self) -> int:
        """1 if any cell failed, else 0: a diverged seed is a result (recorded), not a failure."""
        return 1 if any(r.state == "failed" for r in self.results) else 0


def _prepare(spec: CellSpec, out_dir: Path) -> None:
    """Write pending status files for a new cell, under its lock (skipped if another process runs it)."""
    lock = store.cell_lock(spec.cell_dir(out_dir))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return
    try:
        write_pending(spec, out_dir)
    finally:
        lock.release()


def run_session(
    specs: Sequence[CellSpec], out_dir: str | Path, executor: Executor, display: ProgressDisplay | None = None
) -> SessionResult:
    """Run ``specs`` (validated cells) under ``out_dir`` with ``executor``."""
    out = Path(out_dir).resolve()
    keys = [s.key for s in specs]
    duplicates = sorted({k for k in keys if keys.count(k) > 1})
    if duplicates:
        raise UsageError(f"the same cell is requested twice: {'; '.join(duplicates)}")
    for spec in specs:
        check_stored_config(spec, out)
    for spec in specs:
        _prepare(spec, out)
    display = display or ProgressDisplay(specs, live=False)
    results: dict[str, CellResult] = {}
    with display:
        busy = []
        for result in executor.run(specs, out, display.update):
            if result.state == "busy":
                busy.append(next(s for s in specs if s.key == result.key))
                continue
            results[result.key] = result
            display.finish(result)
        if busy:
            for result in executor.run(busy, out, display.update, wait_for_lock=True):
                results[result.key] = result
                display.finish(result)
    return SessionResult(tuple(results[k] for k in keys))
