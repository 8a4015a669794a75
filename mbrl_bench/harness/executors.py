"""Where cells run: this process, a local process pool, or a Ray cluster.

Every executor takes validated ``CellSpec``s and yields one ``CellResult`` per cell as cells finish,
forwarding the cells' ``ProgressEvent``s to a callback in the calling process. A cell is the unit of
work (its seeds stay together in one process, batched); an exception or a crashed worker fails that
cell only.
"""

from __future__ import annotations

import concurrent.futures as cf
import ctypes
import multiprocessing as mp
import os
import queue as queue_mod
import signal
import sys
import traceback
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from mbrl_bench.harness import store
from mbrl_bench.harness.cells import CellSpec
from mbrl_bench.harness.errors import UsageError
from mbrl_bench.harness.runner import CellResult, ProgressEvent, ProgressFn, run_cell, write_status

EXECUTORS: tuple[str, ...] = ("local", "ray")
_POLL_S = 0.2


class Executor(Protocol):
    def run(
        self, specs: Sequence[CellSpec], out_dir: Path, on_progress: ProgressFn, wait_for_lock: bool = False
    ) -> Iterator[CellResult]:
        """Run the cells; yield each one's result as it finishes (in any order)."""
        ...


def mark_failed(spec: CellSpec, out_dir: Path, error: str, tb: str = "") -> CellResult:
    """Record a cell that died outside ``run_cell``'s own handling (a crashed worker, a lost Ray task)."""
    cell = spec.cell_dir(out_dir)
    states = {}
    for seed in spec.seeds:
        sd = store.seed_dir(cell, seed)
        path = sd / store.STATUS_FILE
        state = store.read_json(path)["state"] if path.exists() else "pending"
        if state not in store.FINAL_STATES:
            write_status(sd, "failed", error=error, traceback=tb)
            state = "failed"
        states[seed] = state
    return CellResult(spec.key, "failed", states, {}, error)


def _guarded_run(spec: CellSpec, out_dir: Path, progress: ProgressFn | None, wait: bool) -> CellResult:
    """``run_cell`` that turns anything it raises into a failed result (the other cells go on)."""
    try:
        return run_cell(spec, out_dir, progress=progress, wait_for_lock=wait)
    except UsageError:
        raise
    except Exception as e:
        return mark_failed(spec, out_dir, f"{type(e).__name__}: {e}", traceback.format_exc())


class InProcessExecutor:
    """Cells one after another in this process (``--workers 1``): no start-up cost, easy to debug."""

    def run(
        self, specs: Sequence[CellSpec], out_dir: Path, on_progress: ProgressFn, wait_for_lock: bool = False
    ) -> Iterator[CellResult]:
        for spec in specs:
            yield _guarded_run(spec, out_dir, on_progress, wait_for_lock)


# ----------------------------------------------------------------------------- local process pool
_WORKER_QUEUE: Any = None
_WORKER_PARENT: int = 0


def _worker_init(progress_queue: Any, parent: int) -> None:
    """Pool-worker start: keep the progress queue, and die with the parent (never orphaned)."""
    global _WORKER_QUEUE, _WORKER_PARENT
    _WORKER_QUEUE, _WORKER_PARENT = progress_queue, parent
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _worker_progress(event: ProgressEvent) -> None:
    if os.getppid() != _WORKER_PARENT:  # the parent died before the death signal was armed
        os._exit(1)
    _WORKER_QUEUE.put(event)


def _pool_task(spec: CellSpec, out_dir: Path, wait: bool) -> CellResult:
    return _guarded_run(spec, out_dir, _worker_progress, wait)


def _drain(q: Any, on_progress: ProgressFn) -> None:
    while True:
        try:
            on_progress(q.get_nowait())
        except queue_mod.Empty:
            return


class LocalExecutor:
    """A pool of ``workers`` spawned processes (spawn, not fork: forking a process running JAX's
    threads can deadlock). Each worker runs whole cells; a crashed worker fails only its cell."""

    def __init__(self, workers: int) -> None:
        if workers < 1:
            raise UsageError(f"--workers must be >= 1, got {workers}")
        self.workers = workers

    def run(
        self, specs: Sequence[CellSpec], out_dir: Path, on_progress: ProgressFn, wait_for_lock: bool = False
    ) -> Iterator[CellResult]:
        ctx = mp.get_context("spawn")
        progress_queue = ctx.Queue()
        with cf.ProcessPoolExecutor(
            max_workers=min(self.workers, len(specs)) or 1,
            mp_context=ctx,
            initializer=_worker_init,
            initargs=(progress_queue, os.getpid()),
        ) as pool:
            futures = {pool.submit(_pool_task, spec, out_dir, wait_for_lock): spec for spec in specs}
            pending = set(futures)
            while pending:
                done, pending = cf.wait(pending, timeout=_POLL_S, return_when=cf.FIRST_COMPLETED)
                _drain(progress_queue, on_progress)
                for future in done:
                    spec = futures[future]
                    try:
                        yield future.result()
                    except UsageError:
                        raise
                    except Exception as e:  # the worker process died (e.g. killed, out of memory)
                        yield mark_failed(spec, out_dir, f"worker process failed: {type(e).__name__}: {e}")
        _drain(progress_queue, on_progress)


# ----------------------------------------------------------------------------------------- Ray
def _ray_task(spec: CellSpec, out_dir: Path, wait: bool, progress_queue: Any) -> CellResult:
    return _guarded_run(spec, out_dir, progress_queue.put, wait)


class RayExecutor:
    """Cells as Ray tasks (one CPU each). Joins ``address`` if given, else uses the Ray instance this
    process already initialised, else starts a local one with ``num_cpus`` CPUs (shut down after)."""

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError("the ray executor needs Ray: pip install 'mbrl-bench[ray]'") from None
        self.address, self.num_cpus = address, num_cpus

    def run(
        self, specs: Sequence[CellSpec], out_dir: Path, on_progress: ProgressFn, wait_for_lock: bool = False
    ) -> Iterator[CellResult]:
        import ray
        from ray.util.queue import Queue

        started = not ray.is_initialized()
        if started:
            if self.address:
                ray.init(address=self.address, log_to_driver=False)
            else:
                ray.init(num_cpus=self.num_cpus, include_dashboard=False, log_to_driver=False)
        progress_queue = Queue()
        try:
            task = ray.remote(num_cpus=1, max_retries=0)(_ray_task)
            refs = {task.remote(spec, out_dir, wait_for_lock, progress_queue): spec for spec in specs}
            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=_POLL_S)
                for event in progress_queue.get_nowait_batch(progress_queue.qsize()):
                    on_progress(event)
                for ref in ready:
                    spec = refs.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as e:
                        yield mark_failed(spec, out_dir, f"ray task failed: {type(e).__name__}: {e}")
            for event in progress_queue.get_nowait_batch(progress_queue.qsize()):
                on_progress(event)
        finally:
            progress_queue.shutdown()
            if started:
                ray.shutdown()


def make_executor(name: str, workers: int, address: str | None = None) -> Executor:
    """The executor named ``name`` (``local`` or ``ray``); UsageError lists the valid names."""
    if name not in EXECUTORS:
        raise UsageError(f"unknown executor {name!r}; valid executors: {', '.join(EXECUTORS)}")
    if address and name != "ray":
        raise UsageError("--address only applies to --executor ray")
    if name == "ray":
        return RayExecutor(address, workers)
    return InProcessExecutor() if workers == 1 else LocalExecutor(workers)
