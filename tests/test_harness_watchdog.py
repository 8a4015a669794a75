"""Hung workers: heartbeats, the executors' stall watch (kill, resume, give up), worker XLA flags,
``mbrl-bench status`` on stalled cells, and bad ``--stall-*`` values."""

from __future__ import annotations

import functools
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.api import Agent, register_agent

from mbrl_bench import cli
from mbrl_bench.cli import main
from mbrl_bench.harness import executors, store
from mbrl_bench.harness.cells import plan_cell
from mbrl_bench.harness.executors import WORKER_XLA_FLAGS, LocalExecutor, RayExecutor, StallPolicy
from mbrl_bench.harness.runner import ProgressEvent, run_cell, write_status
from mbrl_bench.harness.session import run_session

# Under the README's `--dist loadgroup` the process and Ray tests share one xdist worker: their stall
# timeouts assume no second process tree of theirs runs beside them.
pytestmark = pytest.mark.xdist_group("process-trees")

CARTPOLE = "mbrl_bench/CartPoleDistractor-v0"
SMALL = {"num_distractors": 2}
TIMEOUT_S = 10.0
"""Longer than a worker's start-up compilations take on a loaded 2-core machine (no heartbeat can be
written during a jitted call, so a shorter timeout would kill healthy workers too)."""


@dataclass(frozen=True)
class HangConfig:
    """Test-only."""

    hang_at: int = 150
    """The env step at which ``update`` blocks forever while ``marker`` exists."""
    marker: str = ""
    """A file: its presence arms the hang."""
    once: bool = True
    """Remove ``marker`` when hanging, so the resumed worker runs through."""
    flags_file: str = ""
    """Where the worker writes the XLA_FLAGS it runs with."""


def _maybe_block(step: np.ndarray, config: HangConfig) -> np.ndarray:
    if config.flags_file and not os.path.exists(config.flags_file):
        Path(config.flags_file).write_text(os.environ.get("XLA_FLAGS", "<unset>"))
    if int(np.max(step)) == config.hang_at and config.marker and os.path.exists(config.marker):
        if config.once:
            os.remove(config.marker)
        while True:  # what jaxlib's thread-pool deadlock looks like from outside: no progress, ever
            time.sleep(60)
    return np.zeros(np.shape(step), np.float32)


@register_agent
class HangingAgent(Agent):
    """Random actions; its jitted ``update`` blocks forever at ``hang_at`` (a host callback)."""

    name: ClassVar[str] = "test-hanging"
    Config: ClassVar[type] = HangConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"discrete"})

    def init(self, key):
        return {"n": jnp.int32(0)}

    def act(self, state, obs, key, explore):
        return jax.random.bernoulli(key).astype(jnp.int32)

    def update(self, state, transition, key, step):
        out = jax.ShapeDtypeStruct((), jnp.float32)
        zero = jax.pure_callback(
            functools.partial(_maybe_block, config=self.config), out, step, vmap_method="broadcast_all"
        )
        return {"n": state["n"] + 1}, {"zero": zero}  # a metric, so the callback is never elided


def _strip(rows: list[dict]) -> str:
    """The curve's text without wall times (text, so that NaN metrics compare equal)."""
    return store.format_curve([{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows])


def _hanging_spec(tmp_path: Path, once: bool, seeds: int = 2):
    marker = tmp_path / "hang"
    marker.touch()
    overrides = {"marker": str(marker), "once": str(once), "flags_file": str(tmp_path / "flags")}
    spec = plan_cell("test-hanging", CARTPOLE, env_kwargs=SMALL, seeds=seeds, steps=300, eval_every=100,
                     eval_episodes=2, overrides=overrides)  # fmt: skip
    return spec, marker


@pytest.mark.parametrize(
    "kind", ["local", pytest.param("ray", marks=pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning"))]
)
def test_a_hung_worker_is_killed_and_its_cell_resumed_to_the_uninterrupted_curve(
    tmp_path, monkeypatch, request, kind
) -> None:
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    spec, marker = _hanging_spec(tmp_path, once=True)
    # retries to spare: on a heavily loaded machine a start-up compilation can outlast TIMEOUT_S too
    policy = StallPolicy(timeout_s=TIMEOUT_S, retries=3)
    if kind == "ray":
        ray = pytest.importorskip("ray")
        monkeypatch.chdir(tmp_path)  # Ray puts the driver's working directory on its workers' sys.path
        monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent))  # where Ray's workers find this agent
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
        request.addfinalizer(ray.shutdown)
        executor = RayExecutor(stall=policy)
    else:
        executor = LocalExecutor(1, policy)
    out = tmp_path / "watched"
    events: list[ProgressEvent] = []
    before_kill: dict[int, list[dict]] = {}
    hang_stalls: list[ProgressEvent] = []

    def on_progress(event: ProgressEvent) -> None:
        events.append(event)
        # the first stall once the worker removed the marker (as it hung) is the hang's
        if event.state == "stalled" and not marker.exists() and not hang_stalls:
            hang_stalls.append(event)
            for seed in spec.seeds:
                before_kill[seed] = store.read_curve(
                    store.seed_dir(spec.cell_dir(out), seed) / store.CURVE_FILE
                )

    (result,) = list(executor.run([spec], out, on_progress))
    assert result.state == "done", result.error
    assert not marker.exists(), "the worker never reached the hang: nothing was tested"
    stalls = [e for e in events if e.state == "stalled"]
    assert hang_stalls and "killed, resumed from its checkpoint" in hang_stalls[0].note
    age = float(hang_stalls[0].note.split("no heartbeat for ")[1].split(" s")[0])
    # killed soon after the timeout (the slack is for polling on a loaded machine: Ray's queue is an actor)
    assert TIMEOUT_S <= age <= TIMEOUT_S + 15, hang_stalls[0].note
    # resumed from the checkpoint at step 100, not from scratch: its rows are the ones written before
    assert [r["env_step"] for r in before_kill[0]] == [0, 100]
    reference = run_cell(spec, tmp_path / "whole")  # the marker is gone: this run never hangs
    for seed in spec.seeds:
        sd = store.seed_dir(spec.cell_dir(out), seed)
        rows = store.read_curve(sd / store.CURVE_FILE)
        assert store.format_curve(rows[:2]) == store.format_curve(before_kill[seed])
        assert [r["env_step"] for r in rows] == [0, 100, 200, 300]
        assert _strip(rows) == _strip(reference.curves[seed])
        status = store.read_json(sd / store.STATUS_FILE)
        assert status["state"] == "done" and status["stalls"] == len(stalls)
        assert store.heartbeat_time(status) is not None and status["heartbeat_step"] >= 200
    # the worker ran with the single-threaded XLA flags; this process's environment is unchanged
    assert (tmp_path / "flags").read_text() == WORKER_XLA_FLAGS
    assert "XLA_FLAGS" not in os.environ


def test_a_worker_that_always_hangs_fails_after_the_retries_and_the_others_finish(
    tmp_path, monkeypatch, capsys
) -> None:
    users_flags = (
        "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1 --xla_backend_optimization_level=1"
    )
    monkeypatch.setenv("XLA_FLAGS", users_flags)
    hanging, _ = _hanging_spec(tmp_path, once=False, seeds=1)
    other = plan_cell(
        "random", CARTPOLE, env_kwargs=SMALL, seeds=2, steps=300, eval_every=100, eval_episodes=2
    )
    executor = LocalExecutor(2, StallPolicy(timeout_s=TIMEOUT_S, retries=1))
    session = run_session([hanging, other], tmp_path, executor)
    assert [r.state for r in session.results] == ["failed", "done"]
    assert session.exit_code == 1
    assert "stalled" in session.results[0].error and "killed 2 times" in session.results[0].error
    status = store.read_json(store.seed_dir(hanging.cell_dir(tmp_path), 0) / store.STATUS_FILE)
    assert status["state"] == "failed" and status["stalls"] == 2 and "stalled" in status["error"]
    for seed in other.seeds:
        rows = store.read_curve(store.seed_dir(other.cell_dir(tmp_path), seed) / store.CURVE_FILE)
        assert [r["env_step"] for r in rows] == [0, 100, 200, 300]
    assert (tmp_path / "flags").read_text() == users_flags  # the user's own flags are respected
    err = capsys.readouterr().err
    assert "restart 1 of 1" in err and "giving up" in err


def test_the_cli_default_matches_the_executor_default() -> None:
    assert cli.DEFAULT_STALL_TIMEOUT_S == executors.DEFAULT_STALL_TIMEOUT_S
    assert cli.DEFAULT_STALL_RETRIES == executors.DEFAULT_STALL_RETRIES
    assert StallPolicy(600).heartbeat_s == 30 and StallPolicy(2).heartbeat_s == 0.5


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--stall-timeout", "0"], "--stall-timeout: expects a positive number of seconds, got '0'"),
        (["--stall-timeout", "-5"], "--stall-timeout: expects a positive number of seconds, got '-5'"),
        (["--stall-timeout", "soon"], "--stall-timeout: expects a positive number of seconds, got 'soon'"),
        (["--stall-timeout", "nan"], "--stall-timeout: expects a positive number of seconds, got 'nan'"),
        (["--stall-retries", "-1"], "--stall-retries: expects an integer >= 0, got '-1'"),
        (["--stall-retries", "two"], "--stall-retries: expects an integer >= 0, got 'two'"),
    ],
)
def test_bad_stall_values_exit_2_with_one_line(tmp_path, capsys, args, message) -> None:
    argv = ["run", "--algo", "random", "--env", CARTPOLE, "--out", str(tmp_path), *args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())  # nothing ran
    if args[0] == "--stall-timeout":
        assert main(["status", str(tmp_path), *args]) == 2
        assert message in capsys.readouterr().err


def test_status_shows_heartbeat_ages_and_marks_stalled_cells(tmp_path, capsys) -> None:
    cells = {}
    for n, age in ((1, 5.0), (3, 900.0)):
        spec = plan_cell(
            "random", CARTPOLE, env_kwargs={"num_distractors": n}, seeds=1, steps=300, eval_every=100
        )
        sd = store.seed_dir(spec.cell_dir(tmp_path), 0)
        sd.mkdir(parents=True)
        beat = (datetime.now(UTC) - timedelta(seconds=age)).isoformat(timespec="milliseconds")
        write_status(sd, "running", env_step=100, steps=300, heartbeat_at=beat, heartbeat_step=140)
        cells[n] = spec.cell_dir(tmp_path)
    holders = [  # another process holds each cell's lock, as a running worker does
        subprocess.Popen(
            [sys.executable, "-c", "import filelock, sys, time; lock = filelock.FileLock(sys.argv[1]); "
             "lock.acquire(); print('held', flush=True); time.sleep(120)", str(cell / store.LOCK_FILE)],
            stdout=subprocess.PIPE, text=True,
        )
        for cell in cells.values()
    ]  # fmt: skip
    try:
        for holder in holders:
            assert holder.stdout.readline().strip() == "held"
        assert main(["status", str(tmp_path), "--stall-timeout", "600"]) == 0
        lines = capsys.readouterr().out.splitlines()
    finally:
        for holder in holders:
            holder.kill()
            holder.wait()
    fresh = next(line for line in lines if "num_distractors=1" in line)
    stale = next(line for line in lines if "num_distractors=3" in line)
    fresh_age = re.search(r"(\d+) s ago \(step 140\)", fresh)
    assert "running" in fresh and fresh_age and 5 <= int(fresh_age[1]) < 600 and "stalled" not in fresh
    assert "stalled" in stale and "15 min ago (step 140)" in stale
    assert main(["status", str(tmp_path)]) == 0  # the locks are free now: interrupted, no heartbeat age
    out = capsys.readouterr().out
    assert out.count("interrupted") == 2 and "ago" not in out


_CLI_WITH_HANGING_AGENT = """
import sys
sys.path.insert(0, {tests!r})
import test_harness_watchdog  # registers test-hanging
from mbrl_bench.cli import main
sys.exit(main())
"""


def test_an_in_process_run_restarts_itself_when_hung_and_reaches_the_uninterrupted_curve(tmp_path) -> None:
    spec, marker = _hanging_spec(tmp_path, once=True)
    script = tmp_path / "cli.py"
    script.write_text(_CLI_WITH_HANGING_AGENT.format(tests=str(Path(__file__).parent)))
    out = tmp_path / "watched"
    overrides = [f"--set=marker={marker}", "--set=once=True", f"--set=flags_file={tmp_path / 'flags'}"]
    argv = [sys.executable, str(script), "run", "--algo", "test-hanging", "--env", CARTPOLE,
            "--env-kwarg", "num_distractors=2", "--seeds", "2", "--steps", "300", "--eval-every", "100",
            "--eval-episodes", "2", *overrides, "--env-backend", spec.env_backend, "--workers", "1",
            "--stall-timeout", str(TIMEOUT_S), "--stall-retries", "3", "--no-progress",
            "--out", str(out)]  # fmt: skip
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not marker.exists(), "the run never reached the hang: nothing was tested"
    assert "killed, resumed from its checkpoint (restart 1 of 3)" in proc.stderr
    reference = run_cell(spec, tmp_path / "whole")  # the marker is gone: this run never hangs
    for seed in spec.seeds:
        sd = store.seed_dir(spec.cell_dir(out), seed)
        rows = store.read_curve(sd / store.CURVE_FILE)
        assert [r["env_step"] for r in rows] == [0, 100, 200, 300]
        assert _strip(rows) == _strip(reference.curves[seed])
        status = store.read_json(sd / store.STATUS_FILE)
        assert status["state"] == "done" and status["stalls"] >= 1


def test_a_cell_out_of_in_process_restarts_is_failed_and_the_next_cell_runs(tmp_path, monkeypatch) -> None:
    hanging, _ = _hanging_spec(tmp_path, once=False, seeds=1)
    other = plan_cell("random", CARTPOLE, env_kwargs=SMALL, seeds=1, steps=300, eval_every=100)
    note = "stalled: no heartbeat for 11 s; killed 2 times (--stall-retries 1), giving up"
    # what the process before this one, restarted twice for ``hanging``, left in the environment
    stalls = {str(hanging.cell_dir(tmp_path)): [2, note]}
    monkeypatch.setenv(executors.IN_PROCESS_STALLS_ENV, json.dumps({"stalls": stalls, "pending": None}))
    restarts: list[int] = []
    # a timeout no healthy step reaches: this test is about the inherited count, not the watch
    executor = executors.InProcessExecutor(StallPolicy(3600, retries=1), lambda: restarts.append(1))
    session = run_session([hanging, other], tmp_path, executor)
    assert [r.state for r in session.results] == ["failed", "done"] and not restarts
    assert session.results[0].error == note
    status = store.read_json(store.seed_dir(hanging.cell_dir(tmp_path), 0) / store.STATUS_FILE)
    assert status["state"] == "failed" and status["error"] == note


def test_a_restarted_image_records_the_stall_it_was_started_for(tmp_path, monkeypatch) -> None:
    spec = plan_cell("random", CARTPOLE, env_kwargs=SMALL, seeds=1, steps=300, eval_every=100)
    sd = store.seed_dir(spec.cell_dir(tmp_path), 0)
    sd.mkdir(parents=True)
    write_status(sd, "running", env_step=0, steps=300)  # what the replaced image left
    pending = {"cell": str(spec.cell_dir(tmp_path)), "age": 12.0, "env_step": 0}
    monkeypatch.setenv(executors.IN_PROCESS_STALLS_ENV, json.dumps({"stalls": {}, "pending": pending}))
    events: list[ProgressEvent] = []
    executor = executors.InProcessExecutor(StallPolicy(3600, retries=2), lambda: None)
    (result,) = list(executor.run([spec], tmp_path, events.append))
    assert result.state == "done", result.error
    status = store.read_json(sd / store.STATUS_FILE)
    assert status["state"] == "done" and status["stalls"] == 1
    assert "no heartbeat for 12 s" in status["last_stall"] and "restart 1 of 2" in status["last_stall"]
    assert [e.note for e in events if e.state == "stalled"] == [status["last_stall"]]
    assert executors.IN_PROCESS_STALLS_ENV not in os.environ  # read once, not handed to later images
