"""Where cells run: this process, local worker processes, or a Ray cluster.

Every executor takes validated ``CellSpec``s and yields one ``CellResult`` per cell as cells finish,
forwarding the cells' ``ProgressEvent``s to a callback in the calling process. A cell is the unit of
work (its seeds stay together in one process, batched); an exception or a crashed worker fails that
cell only.

The local and Ray executors watch their workers. A running cell's seeds rewrite a heartbeat in their
status.json at least every ``HEARTBEAT_S`` seconds of training; a worker whose cell shows no heartbeat
for ``StallPolicy.timeout_s`` is killed and the cell resumed from its last checkpoint in a fresh
worker, at most ``StallPolicy.retries`` times; after that the cell is marked ``failed`` with the
reason and the other cells go on. Workers start with ``WORKER_XLA_FLAGS`` unless the user set
``XLA_FLAGS`` (see ``worker_xla_flags``).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import math
import multiprocessing as mp
import multiprocessing.connection as mp_connection
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, Protocol

from mbrl_bench.harness import store
from mbrl_bench.harness.cells import CellSpec
from mbrl_bench.harness.errors import UsageError
from mbrl_bench.harness.runner import (
    HEARTBEAT_S,
    CellResult,
    ProgressEvent,
    ProgressFn,
    run_cell,
    write_status,
)

EXECUTORS: tuple[str, ...] = ("local", "ray")
_POLL_S = 0.2

DEFAULT_STALL_TIMEOUT_S = 1800.0
"""Seconds without a heartbeat after which a worker is taken for hung. Generous on purpose: a
heartbeat can only be written between two jitted calls, so the timeout must exceed the longest single
call of the slowest agent, compilation included, plus ``HEARTBEAT_S`` (the longest measured: an MBPO
retrain, up to about 23 minutes on a loaded machine; README, Known issues); a real hang (jaxlib 0.10.2's
CPU thread-pool deadlock) then costs 30 minutes, not hours."""
DEFAULT_STALL_RETRIES = 2
"""How many times a stalled cell is killed and resumed before it is marked failed: the deadlock is
rare and timing-dependent, so a resumed cell almost always gets past it; one that hangs three times
in a row hangs for a reason of its own."""
WORKER_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
"""XLA CPU flags workers start with when the user set no XLA_FLAGS: one thread per worker process
avoids jaxlib 0.10.2's CPU thread-pool deadlock, and costs little speed (README, Known issues)."""


def worker_xla_flags() -> str:
    """The XLA_FLAGS of worker processes: the user's own if set (even empty), else WORKER_XLA_FLAGS."""
    return os.environ.get("XLA_FLAGS", WORKER_XLA_FLAGS)


@contextlib.contextmanager
def _worker_environment() -> Iterator[None]:
    """Workers spawned inside this block inherit ``XLA_FLAGS = worker_xla_flags()``; this process's
    environment is restored after (its own XLA backend, if any, is already configured)."""
    if "XLA_FLAGS" in os.environ:
        yield
        return
    os.environ["XLA_FLAGS"] = WORKER_XLA_FLAGS
    try:
        yield
    finally:
        os.environ.pop("XLA_FLAGS", None)


@dataclass(frozen=True)
class StallPolicy:
    """When a worker counts as hung and what is done about it."""

    timeout_s: float = DEFAULT_STALL_TIMEOUT_S
    retries: int = DEFAULT_STALL_RETRIES

    def __post_init__(self) -> None:
        if not (
            isinstance(self.timeout_s, int | float) and math.isfinite(self.timeout_s) and self.timeout_s > 0
        ):
            raise UsageError(f"--stall-timeout must be a positive number of seconds, got {self.timeout_s!r}")
        if not isinstance(self.retries, int) or self.retries < 0:
            raise UsageError(f"--stall-retries must be an integer >= 0, got {self.retries!r}")

    @property
    def heartbeat_s(self) -> float:
        """Heartbeat interval of the workers: ``HEARTBEAT_S``, shorter when the timeout is short, so
        that several heartbeats always fit in one timeout."""
        return min(HEARTBEAT_S, self.timeout_s / 4)

    @property
    def check_every_s(self) -> float:
        """How often the heartbeats of running cells are read (a few small files each)."""
        return min(5.0, self.timeout_s / 10)


def _stall_note(policy: StallPolicy, age: float, env_step: int, kills: int) -> str:
    """One line saying why a worker was killed and what happens next."""
    what = f"no heartbeat for {age:.0f} s (stall timeout {policy.timeout_s:g} s) at env step {env_step}"
    if kills <= policy.retries:
        return f"stalled: {what}; killed, resumed from its checkpoint (restart {kills} of {policy.retries})"
    return f"stalled: {what}; killed {kills} times (--stall-retries {policy.retries}), giving up"


def _record_stall(spec: CellSpec, out_dir: Path, note: str) -> None:
    """Count the stall in the unfinished seeds' status.json (``stalls``, ``last_stall``), leaving their
    state alone: the resumed worker takes them over, or ``mark_failed`` ends them."""
    cell = spec.cell_dir(out_dir)
    for seed in spec.seeds:
        path = store.seed_dir(cell, seed) / store.STATUS_FILE
        if not path.exists():
            continue
        status = store.read_json(path)
        if status.get("state") in store.FINAL_STATES:
            continue
        store.write_json(path, {**status, "stalls": int(status.get("stalls", 0)) + 1, "last_stall": note})


@dataclass
class _Watch:
    """The stall watch of one cell's current attempt."""

    spec: CellSpec
    kills: int = 0
    pid: int | None = None
    host: str | None = None
    since: float = field(default_factory=time.time)
    """When the current attempt started (POSIX time)."""
    ignore_before: float = 0.0
    """Heartbeats older than this (POSIX time) are not this attempt's although they carry its pid: a
    process restarted in place by ``exec`` keeps its pid."""

    def stalled_for(self, out_dir: Path, policy: StallPolicy, now: float) -> tuple[float, int] | None:
        """(heartbeat age, its env step) if this attempt's worker is stalled, else None.

        Only heartbeats the current worker wrote count, and only once it wrote one: before that it is
        starting up or waiting for a cell lock held by another process, which has its own watch.
        """
        if self.pid is None:
            return None
        beat = store.cell_heartbeat(self.spec.cell_dir(out_dir), self.pid, self.host)
        if beat is None or beat.time < self.ignore_before:
            return None
        age = now - max(beat.time, self.since)
        return (age, beat.env_step) if age > policy.timeout_s else None


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


def _guarded_run(
    spec: CellSpec, out_dir: Path, progress: ProgressFn | None, wait: bool, heartbeat_s: float = HEARTBEAT_S
) -> CellResult:
    """``run_cell`` that turns anything it raises into a failed result (the other cells go on)."""
    try:
        return run_cell(spec, out_dir, progress=progress, wait_for_lock=wait, heartbeat_s=heartbeat_s)
    except UsageError:
        raise
    except Exception as e:
        return mark_failed(spec, out_dir, f"{type(e).__name__}: {e}", traceback.format_exc())


_IMAGE_STARTED = time.time()
"""When this process image began (this module is imported once per image): heartbeats older than this
that carry our pid were written by the image an in-process restart replaced."""
IN_PROCESS_STALLS_ENV = "MBRL_BENCH_IN_PROCESS_STALLS"
"""JSON that a restarted in-process run inherits from the image it replaced (``InProcessExecutor``):
``{"stalls": {cell directory: [stalls, last note]}, "pending": {"cell", "age", "env_step"}}``, the stall
that caused the restart being pending until the new image records it. Keyed by directory, not cell
key: ``calibrate`` runs the same cells once per budget."""


def restart_this_process() -> NoReturn:
    """Replace this process with a fresh run of the same command line (same pid, same environment).

    A thread hung inside XLA cannot be stopped from within its process; ``exec`` ends every thread.
    The cell locks are released on the way (Python opens files close-on-exec), and the new process
    resumes the cells from their checkpoints. If the exec itself fails the process exits (status 1)
    rather than stay hung.
    """
    if sys.stderr.isatty():  # a live progress display may have hidden the cursor
        sys.stderr.write("\x1b[?25h\n")
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        os.execv(sys.executable, [sys.executable, *sys.orig_argv[1:]])
    except OSError as e:
        sys.stderr.write(f"mbrl-bench: a cell stalled and restarting failed ({e}); run the command again\n")
        sys.stderr.flush()
        os._exit(1)


class InProcessExecutor:
    """Cells one after another in this process (``--workers 1``): no start-up cost, easy to debug.

    Watched only when given ``restart`` (the CLI passes ``restart_this_process`` when it runs as its
    process's own command): a watchdog thread reads the running cell's heartbeats, and when the cell
    stalls (``StallPolicy``) it calls ``restart``, so the cell resumes from its checkpoint in a fresh
    process image. The new image records the stall (status.json, the progress display) before running
    anything, so no two threads write a cell's files at once; a cell that stalled more than ``retries``
    times is marked failed and the run goes on with the next cell. Library callers get no restarts:
    replacing their process is not ours to do.
    """

    def __init__(self, stall: StallPolicy | None = None, restart: Callable[[], Any] | None = None) -> None:
        self.stall = stall or StallPolicy()
        self.restart = restart

    def run(
        self, specs: Sequence[CellSpec], out_dir: Path, on_progress: ProgressFn, wait_for_lock: bool = False
    ) -> Iterator[CellResult]:
        if self.restart is None:
            for spec in specs:
                yield _guarded_run(spec, out_dir, on_progress, wait_for_lock)
            return
        stalls, pending = _inherited_stalls()
        host = socket.gethostname()
        for spec in specs:
            cell = str(spec.cell_dir(out_dir))
            kills, note = stalls.get(cell, (0, ""))
            watch = _Watch(spec, kills, os.getpid(), host, ignore_before=_IMAGE_STARTED)
            if pending is not None and pending["cell"] == cell:  # the stall this image was started for
                stalled = (float(pending["age"]), int(pending["env_step"]))
                gave_up = _after_stall(watch, stalled, self.stall, out_dir, on_progress)
                watch.pid = os.getpid()
                stalls[cell] = (watch.kills, _stall_note(self.stall, *stalled, watch.kills))
                pending = None
                if gave_up is not None:
                    yield gave_up
                    continue
            elif kills > self.stall.retries:  # it used up its restarts in an earlier image
                yield mark_failed(spec, out_dir, note)
                continue
            stop = threading.Event()
            thread = threading.Thread(
                target=self._watch,
                args=(watch, out_dir, stop, stalls),
                name=f"mbrl-bench watchdog {spec.key}",
                daemon=True,
            )
            thread.start()
            try:
                result = _guarded_run(spec, out_dir, on_progress, wait_for_lock, self.stall.heartbeat_s)
            finally:
                stop.set()
                thread.join()
            yield result

    def _watch(
        self, watch: _Watch, out_dir: Path, stop: threading.Event, stalls: dict[str, tuple[int, str]]
    ) -> None:
        """The watchdog thread of one cell: on a stall, hand it to a fresh image of this process."""
        while not stop.wait(self.stall.check_every_s):
            stalled = watch.stalled_for(out_dir, self.stall, time.time())
            if stalled is None or stop.is_set():  # the cell may have finished while we read
                continue
            pending = {"cell": str(watch.spec.cell_dir(out_dir)), "age": stalled[0], "env_step": stalled[1]}
            os.environ[IN_PROCESS_STALLS_ENV] = json.dumps({"stalls": stalls, "pending": pending})
            assert self.restart is not None
            self.restart()
            return


def _inherited_stalls() -> tuple[dict[str, tuple[int, str]], dict[str, Any] | None]:
    """The stalls counted by the images this one replaced and the one it was started for
    (``IN_PROCESS_STALLS_ENV``, removed from the environment once read)."""
    raw = os.environ.pop(IN_PROCESS_STALLS_ENV, None)
    if not raw:
        return {}, None
    payload = json.loads(raw)
    stalls = {cell: (int(kills), str(note)) for cell, (kills, note) in payload["stalls"].items()}
    return stalls, payload.get("pending")


# --------------------------------------------------------------------------- local worker processes
def _die_with_parent(parent: int) -> None:
    """Arm SIGKILL on the parent's death (Linux), and exit if the parent is already gone."""
    if sys.platform.startswith("linux"):
        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _cell_process(
    spec: CellSpec, out_dir: Path, wait: bool, heartbeat_s: float, conn: Any, parent: int
) -> None:
    """A worker process: run one cell, send its progress and then its result over ``conn``."""
    _die_with_parent(parent)
    # Ctrl-C goes to the whole process group: the parent alone handles it (it kills its workers,
    # whose cells resume from their checkpoints), so workers print no tracebacks of their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        result = _guarded_run(spec, out_dir, lambda e: conn.send(("progress", e)), wait, heartbeat_s)
        conn.send(("result", result))
    except UsageError as e:
        conn.send(("usage", str(e)))
    finally:
        conn.close()


@dataclass
class _Worker:
    process: Any
    conn: Any
    watch: _Watch
    result: CellResult | None = None
    usage_error: str | None = None


def _exit_text(code: int | None) -> str:
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


class LocalExecutor:
    """Cells in up to ``workers`` spawned processes at once, one process per cell (spawn, not fork:
    forking a process running JAX's threads can deadlock). A process per cell means a crashed or a
    killed worker takes only its own cell with it. Workers are watched (``StallPolicy``)."""

    def __init__(self, workers: int, stall: StallPolicy | None = None) -> None:
        if workers < 1:
            raise UsageError(f"--workers must be >= 1, got {workers}")
        self.workers = workers
        self.stall = stall or StallPolicy()

    def run(
        self, specs: Sequence[CellSpec], out_dir: Path, on_progress: ProgressFn, wait_for_lock: bool = False
    ) -> Iterator[CellResult]:
        ctx = mp.get_context("spawn")
        todo: deque[tuple[CellSpec, _Watch]] = deque((spec, _Watch(spec)) for spec in specs)
        running: list[_Worker] = []
        next_check = time.monotonic() + self.stall.check_every_s

        def start(spec: CellSpec, watch: _Watch, wait: bool) -> None:
            reader, writer = ctx.Pipe(duplex=False)
            process = ctx.Process(
                target=_cell_process,
                args=(spec, out_dir, wait, self.stall.heartbeat_s, writer, os.getpid()),
                name=f"mbrl-bench {spec.key}",
                daemon=True,
            )
            with _worker_environment():
                process.start()
            writer.close()  # the worker holds the only writing end: EOF once it exits
            watch.pid, watch.host, watch.since = process.pid, socket.gethostname(), time.time()
            running.append(_Worker(process, reader, watch))

        try:
            while todo or running:
                while todo and len(running) < self.workers:
                    spec, watch = todo.popleft()
                    start(spec, watch, wait_for_lock)
                waitables = [w.conn for w in running] + [w.process.sentinel for w in running]
                mp_connection.wait(waitables, timeout=_POLL_S)
                for worker in list(running):
                    self._drain(worker, on_progress)
                    if worker.process.is_alive():
                        continue
                    worker.process.join()
                    self._drain(worker, on_progress)
                    running.remove(worker)
                    worker.conn.close()
                    if worker.usage_error is not None:
                        raise UsageError(worker.usage_error)
                    spec = worker.watch.spec
                    if worker.result is not None:
                        yield worker.result
                    else:  # the worker died outside run_cell's handling (killed, out of memory)
                        text = _exit_text(worker.process.exitcode)
                        yield mark_failed(spec, out_dir, f"worker process died ({text})")
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.stall.check_every_s
                    for worker in list(running):
                        stalled = worker.watch.stalled_for(out_dir, self.stall, time.time())
                        if stalled is None:
                            continue
                        worker.process.kill()
                        worker.process.join()
                        worker.conn.close()
                        running.remove(worker)
                        result = _after_stall(worker.watch, stalled, self.stall, out_dir, on_progress)
                        if result is not None:
                            yield result
                        else:  # resumed at once, waiting for the lock the killed worker may still hold
                            start(worker.watch.spec, worker.watch, True)
        finally:
            for worker in running:  # interrupted (Ctrl-C, a usage error): the cells resume next time
                worker.process.kill()
                worker.process.join()
                worker.conn.close()

    @staticmethod
    def _drain(worker: _Worker, on_progress: ProgressFn) -> None:
        try:
            while worker.conn.poll():
                kind, payload = worker.conn.recv()
                if kind == "progress":
                    on_progress(payload)
                elif kind == "result":
                    worker.result = payload
                else:
                    worker.usage_error = payload
        except (EOFError, OSError):  # the worker exited (or was killed) with nothing more to say
            pass


def _after_stall(
    watch: _Watch, stalled: tuple[float, int], policy: StallPolicy, out_dir: Path, on_progress: ProgressFn
) -> CellResult | None:
    """Record a killed stalled worker; the failed result once retries are spent, else None (resume)."""
    watch.kills += 1
    age, env_step = stalled
    note = _stall_note(policy, age, env_step, watch.kills)
    spec = watch.spec
    _record_stall(spec, out_dir, note)
    on_progress(ProgressEvent(spec.key, env_step, spec.steps, None, "stalled", note))
    if watch.kills > policy.retries:
        return mark_failed(spec, out_dir, note)
    watch.pid = None
    return None


# ----------------------------------------------------------------------------------------- Ray
@dataclass(frozen=True)
class _RayStarted:
    """A Ray task tells the driver which process runs its cell, so that process can be watched."""

    key: str
    pid: int
    host: str


def _ray_task(
    spec: CellSpec, out_dir: Path, wait: bool, progress_queue: Any, heartbeat_s: float
) -> CellResult:
    progress_queue.put(_RayStarted(spec.key, os.getpid(), socket.gethostname()))
    return _guarded_run(spec, out_dir, progress_queue.put, wait, heartbeat_s)


class RayExecutor:
    """Cells as Ray tasks (one CPU each). Joins ``address`` if given, else uses the Ray instance this
    process already initialised, else starts a local one with ``num_cpus`` CPUs (shut down after).
    Tasks are watched (``StallPolicy``; heartbeats are read from ``out_dir``, which a multi-machine
    cluster must share anyway); a stalled task is cancelled with ``force=True``, which kills its
    worker process. Tasks get ``XLA_FLAGS = worker_xla_flags()`` through their runtime environment;
    the compilation cache (``compile_cache``) reaches a local Ray instance's workers through the
    environment they inherit, not other machines, whose CPUs may differ."""

    def __init__(
        self, address: str | None = None, num_cpus: int | None = None, stall: StallPolicy | None = None
    ) -> None:
        try:
            import ray  # noqa: F401
        except ImportError:
            raise UsageError("the ray executor needs Ray: pip install 'mbrl-bench[ray]'") from None
        self.address, self.num_cpus = address, num_cpus
        self.stall = stall or StallPolicy()

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
            task = ray.remote(num_cpus=1, max_retries=0)(_ray_task).options(
                runtime_env={"env_vars": {"XLA_FLAGS": worker_xla_flags()}}
            )
            watches = {spec.key: _Watch(spec) for spec in specs}

            def submit(spec: CellSpec, wait: bool) -> Any:
                watches[spec.key].pid = None
                return task.remote(spec, out_dir, wait, progress_queue, self.stall.heartbeat_s)

            refs = {submit(spec, wait_for_lock): spec for spec in specs}
            next_check = time.monotonic() + self.stall.check_every_s

            def drain() -> None:
                for event in progress_queue.get_nowait_batch(progress_queue.qsize()):
                    if isinstance(event, _RayStarted):
                        watch = watches[event.key]
                        watch.pid, watch.host, watch.since = event.pid, event.host, time.time()
                    else:
                        on_progress(event)

            while refs:
                ready, _ = ray.wait(list(refs), num_returns=1, timeout=_POLL_S)
                drain()
                for ref in ready:
                    spec = refs.pop(ref)
                    try:
                        yield ray.get(ref)
                    except ray.exceptions.RayError as e:
                        yield mark_failed(spec, out_dir, f"ray task failed: {type(e).__name__}: {e}")
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.stall.check_every_s
                    for ref, spec in list(refs.items()):
                        watch = watches[spec.key]
                        stalled = watch.stalled_for(out_dir, self.stall, time.time())
                        if stalled is None:
                            continue
                        ray.cancel(ref, force=True)
                        del refs[ref]
                        with contextlib.suppress(ray.exceptions.RayError):
                            ray.get(ref, timeout=60)  # the cancelled worker is gone: its lock is free
                        result = _after_stall(watch, stalled, self.stall, out_dir, on_progress)
                        if result is not None:
                            yield result
                        else:
                            refs[submit(spec, True)] = spec
            drain()
        finally:
            progress_queue.shutdown()
            if started:
                ray.shutdown()


def make_executor(
    name: str,
    workers: int,
    address: str | None = None,
    stall: StallPolicy | None = None,
    in_process: bool | None = None,
    restart: Callable[[], Any] | None = None,
) -> Executor:
    """The executor named ``name`` (``local`` or ``ray``); UsageError lists the valid names.

    ``local`` runs cells in this process when ``in_process`` (default: when ``workers == 1``): no
    start-up cost, easy to debug; watched for stalls only with ``restart`` (see ``InProcessExecutor``).
    """
    if name not in EXECUTORS:
        raise UsageError(f"unknown executor {name!r}; valid executors: {', '.join(EXECUTORS)}")
    if address and name != "ray":
        raise UsageError("--address only applies to --executor ray")
    if name == "ray":
        return RayExecutor(address, workers, stall)
    in_process = workers == 1 if in_process is None else in_process
    return InProcessExecutor(stall, restart) if in_process else LocalExecutor(workers, stall)
