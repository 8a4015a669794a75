"""The harness across processes: SIGKILL and resume, two runs on one directory, the process pool, Ray."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mbrl_bench.cli import main
from mbrl_bench.harness import store
from mbrl_bench.harness.cells import plan_cell
from mbrl_bench.harness.runner import run_cell

# Under the README's `--dist loadgroup` the process and Ray tests share one xdist worker: their stall
# timeouts assume no second process tree of theirs runs beside them.
pytestmark = pytest.mark.xdist_group("process-trees")

CARTPOLE = "mbrl_bench/CartPoleDistractor-v0"


def _cli(*args: str) -> list[str]:
    # The installed console script, not `python -m`: that would put the working directory first on
    # sys.path, where a source checkout's mbrl_bench/ (without its mapped baselines/) shadows the
    # installed package.
    return [str(Path(sys.executable).parent / "mbrl-bench"), *args]


def _run_args(out: Path, steps: int, eval_every: int, *extra: str) -> list[str]:
    return [
        "run",
        "--algo",
        "random",
        "--env",
        CARTPOLE,
        "--env-kwarg",
        "num_distractors=2",
        "--seeds",
        "2",
        "--steps",
        str(steps),
        "--eval-every",
        str(eval_every),
        "--eval-episodes",
        "2",
        "--out",
        str(out),
        "--workers",
        "1",
        "--no-progress",
        "--env-backend",
        "gymnasium",
        *extra,
    ]


def _strip(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


def test_sigkill_then_rerun_gives_the_uninterrupted_curve(tmp_path) -> None:
    steps, every = 3_000, 500
    out = tmp_path / "killed"
    proc = subprocess.Popen(
        _cli(*_run_args(out, steps, every)), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    spec = plan_cell(
        "random",
        CARTPOLE,
        env_kwargs={"num_distractors": 2},
        seeds=2,
        steps=steps,
        eval_every=every,
        eval_episodes=2,
    )
    curve = store.seed_dir(spec.cell_dir(out), 1) / store.CURVE_FILE
    deadline = time.monotonic() + 60
    while not (curve.exists() and len(store.read_curve(curve)) >= 2):
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    partial = store.read_curve(curve)
    assert partial[-1]["env_step"] < steps, "the run finished before it was killed: nothing was tested"
    assert main(_run_args(out, steps, every)) == 0  # the same command again, here in-process
    reference = run_cell(spec, tmp_path / "whole")
    for seed in (0, 1):
        rows = store.read_curve(store.seed_dir(spec.cell_dir(out), seed) / store.CURVE_FILE)
        assert [r["env_step"] for r in rows] == list(range(0, steps + 1, every))
        assert _strip(rows) == _strip(reference.curves[seed])


def test_two_runs_on_one_directory_share_the_cells(tmp_path, capsys) -> None:
    args = _run_args(tmp_path, 3_000, 1_000, "--env-kwarg", "num_distractors=3")
    other = subprocess.Popen(_cli(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = tmp_path / "random" / "mbrl_bench__CartPoleDistractor-v0(num_distractors=2)" / "full" / "seed_0"
    deadline = time.monotonic() + 60
    while not ((first / store.STATUS_FILE).exists() and "running" in (first / store.STATUS_FILE).read_text()):
        assert other.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    assert main(args) == 0  # starts while the other process runs the first cell
    _, other_err = other.communicate(timeout=120)
    assert other.returncode == 0, other_err
    here_err = capsys.readouterr().err
    ran = []
    for label in ("num_distractors=2", "num_distractors=3"):
        cell = tmp_path / "random" / f"mbrl_bench__CartPoleDistractor-v0({label})" / "full"
        for seed in (0, 1):
            rows = store.read_curve(store.seed_dir(cell, seed) / store.CURVE_FILE)
            assert [r["env_step"] for r in rows] == [0, 1000, 2000, 3000]
            assert store.read_json(store.seed_dir(cell, seed) / store.STATUS_FILE)["state"] == "done"
        # each cell ran in exactly one process; the other found it finished once the lock was free
        lines = [line for err in (here_err, other_err) for line in err.splitlines() if label in line]
        ran.append(sum("already finished" not in line for line in lines))
    assert ran == [1, 1]


def test_process_pool_runs_cells_in_parallel_workers(tmp_path, capsys) -> None:
    args = _run_args(tmp_path, 400, 200, "--env-kwarg", "num_distractors=3")
    args[args.index("--workers") + 1] = "2"
    assert main(args) == 0
    records = store.scan_results(tmp_path)
    assert len(records) == 4 and {r.status["state"] for r in records} == {"done"}
    assert len({r.status["pid"] for r in records}) == 2  # two worker processes, neither the test's
    assert os.getpid() not in {r.status["pid"] for r in records}
    assert "plot: " in capsys.readouterr().out


@pytest.mark.filterwarnings("ignore:os.fork:RuntimeWarning")  # Ray starts its daemons by fork+exec
def test_ray_executor_on_a_local_ray_instance(tmp_path, monkeypatch) -> None:
    ray = pytest.importorskip("ray")
    monkeypatch.chdir(tmp_path)  # Ray puts the driver's working directory on its workers' sys.path
    from mbrl_bench.harness.executors import RayExecutor
    from mbrl_bench.harness.session import run_session

    specs = [
        plan_cell(
            "random",
            CARTPOLE,
            env_kwargs={"num_distractors": n},
            seeds=2,
            steps=300,
            eval_every=150,
            eval_episodes=2,
        )
        for n in (1, 2)
    ]
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        session = run_session(specs, tmp_path, RayExecutor())
        assert [r.state for r in session.results] == ["done", "done"]
        for spec in specs:
            for seed in (0, 1):
                rows = store.read_curve(store.seed_dir(spec.cell_dir(tmp_path), seed) / store.CURVE_FILE)
                assert [r["env_step"] for r in rows] == [0, 150, 300]
        reference = run_cell(specs[0], tmp_path / "local")
        assert _strip(session.results[0].curves[0]) == _strip(reference.curves[0])
    finally:
        ray.shutdown()


def test_cli_output_drops_mujocos_deprecation_notices(tmp_path) -> None:
    """HalfCheetah's v5 XML makes MuJoCo print a 'settotalmass is deprecated' line per env; the CLI drops
    it (the library does not: a user who builds the env sees MuJoCo's own output)."""
    args = [
        "run",
        "--algo",
        "random",
        "--env",
        "mbrl_bench/HalfCheetah-v0",
        "--steps",
        "20",
        "--eval-every",
        "20",
        "--eval-episodes",
        "1",
        "--seeds",
        "1",
        "--out",
        str(tmp_path),
        "--no-progress",
    ]
    env = {k: v for k, v in os.environ.items() if k != "MBRL_BENCH_QUIET_MUJOCO_DEPRECATIONS"}
    done = subprocess.run(_cli(*args), capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert "settotalmass" not in done.stdout + done.stderr
    probe = "import mbrl_bench; mbrl_bench.make('mbrl_bench/HalfCheetah-v0')"
    library = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path
    )  # cwd: away from a source checkout's mbrl_bench/, which would shadow the installed package
    assert "settotalmass" in library.stdout + library.stderr
