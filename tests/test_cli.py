"""The command line: exit codes (0 ok, 1 a cell failed, 2 bad input in one line), listings, run,
status and plot."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from typing import ClassVar

import pytest
from mbrl_bench.baselines.api import register_agent
from mbrl_bench.baselines.random_agent import RandomAgent

from mbrl_bench.cli import main
from mbrl_bench.harness import store
from mbrl_bench.harness.plots import bootstrap_band, plot_results

CARTPOLE = "mbrl_bench/CartPoleDistractor-v0"


@dataclass(frozen=True)
class TypedConfig:
    """Test-only."""

    lr: float = 1e-3
    """Test-only."""
    hidden: tuple[int, ...] = (32, 32)
    """Test-only."""


@register_agent
class TypedAgent(RandomAgent):
    name: ClassVar[str] = "test-cli-typed"
    Config: ClassVar[type] = TypedConfig


@register_agent
class ContinuousOnlyAgent(RandomAgent):
    name: ClassVar[str] = "test-cli-continuous"
    action_kinds: ClassVar[frozenset[str]] = frozenset({"continuous"})


def _run(out, *extra: str) -> list[str]:
    return ["run", "--algo", "random", "--env", CARTPOLE, "--env-kwarg", "num_distractors=1",
            "--seeds", "2", "--steps", "200", "--eval-every", "100", "--eval-episodes", "2",
            "--out", str(out), "--workers", "1", "--no-progress", *extra]  # fmt: skip


BAD_INPUTS = [
    (["run", "--algo", "nope", "--env", CARTPOLE], "unknown algorithm 'nope'; valid algorithms: "),
    (["run", "--algo", "random"], "needs both --algo and --env"),
    (
        ["run", "--algo", "random", "--env", "mbrl_bench/Nope-v0"],
        "valid ids: mbrl_bench/CartPoleDistractor-v0",
    ),
    (["run", "--algo", "random", "--env", CARTPOLE, "--capacity", "width:8"], "only capacity 'full' applies"),
    (["run", "--algo", "random", "--env", CARTPOLE, "--capacity", "huge"], "width:N"),
    (
        ["run", "--algo", "test-cli-typed", "--env", CARTPOLE, "--set", "learning_rate=1"],
        "unknown config key 'learning_rate' for algorithm 'test-cli-typed'; valid keys: lr (float), hidden",
    ),
    (
        ["run", "--algo", "test-cli-typed", "--env", CARTPOLE, "--set", "lr=fast"],
        "bad value for test-cli-typed.lr",
    ),
    (
        ["run", "--algo", "test-cli-typed", "--env", CARTPOLE, "--set", "ppo.lr=1"],
        "'ppo' is not an algorithm of",
    ),
    (["run", "--algo", "random", "--env", CARTPOLE, "--set", "x"], "--set expects key=value"),
    (
        ["run", "--algo", "random", "--env", CARTPOLE, "--env-kwarg", "num_distractors=x"],
        "must be of type int",
    ),
    (["run", "--algo", "random", "--env", CARTPOLE, "--env-kwarg", "noise=1"], "valid kwargs: distractor,"),
    (
        ["run", "--algo", "random", "--env", CARTPOLE, "--env-kwarg", "distractor=pink"],
        "valid kinds: gaussian",
    ),
    (["run", "--algo", "test-cli-continuous", "--env", CARTPOLE], "it supports: continuous"),
    (["run", "--suite", "nope"], "unknown suite 'nope'; shipped suites: misspecification-cartpole"),
    (["run", "--suite", "quickstart", "--algo", "random"], "--suite cannot be combined with --algo"),
    (["run", "--algo", "random", "--env", CARTPOLE, "--seeds", "0"], "seeds must be an integer >= 1"),
    (["run", "--algo", "random", "--env", CARTPOLE, "--steps", "many"], "invalid int value: 'many'"),
    (
        ["run", "--algo", "random", "--env", CARTPOLE, "--seeds", "2", "--seed-index", "2"],
        "--seed-index 2 is not a seed of random | mbrl_bench/CartPoleDistractor-v0 | full, which has seeds",
    ),
    (["run", "--algo", "random", "--env", CARTPOLE, "--seed-index", "-1"], "expects an integer >= 0"),
    (["run", "--algo", "random", "--env", CARTPOLE, "--executor", "slurm"], "valid executors: local, ray"),
    (["run", "--algo", "random", "--env", CARTPOLE, "--address", "x:1"], "--address only applies to"),
    (["run", "--algo", "random", "--env", CARTPOLE, "--workers", "0"], "--workers must be >= 1"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
    (["run", "--algo", "random", "--env", CARTPOLE, "--out", __file__], "is a file, not a directory"),
    (["status", "/nonexistent/results"], "does not exist"),
    (["plot", "/nonexistent/results"], "does not exist"),
]


@pytest.mark.parametrize(
    ("argv", "message"), BAD_INPUTS, ids=[" ".join(a) or "(none)" for a, _ in BAD_INPUTS]
)
def test_bad_input_exits_2_with_one_line(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mbrl-bench: error: "), captured.err
    assert message in lines[0]
    assert "Traceback" not in captured.err


def test_a_real_process_exits_2_without_traceback(tmp_path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mbrl_bench.cli", "run", "--algo", "random", "--env", CARTPOLE,
         "--set", "lr=1"],
        capture_output=True, text=True, cwd=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "valid keys: (none)" in proc.stderr
    assert not (tmp_path / "results").exists()


def test_listings(capsys) -> None:
    for command, expected in (("algos", ["random", "continuous", "test-cli-typed", "lr (float)"]),
                              ("capacities", ["full", "width:N", "norm:B"]),
                              ("suites", ["quickstart"]),
                              ("envs", ["CartPoleDistractor"])):  # fmt: skip
        assert main([command]) == 0
        out = capsys.readouterr().out
        assert all(e in out for e in expected), (command, out)


def test_run_status_plot_and_a_changed_config(tmp_path, capsys) -> None:
    assert main(_run(tmp_path, "--env-kwarg", "num_distractors=2")) == 0
    out = capsys.readouterr().out
    for line in (
        f"curves: {tmp_path}",
        f"plot: {tmp_path / 'curves.png'}",
        f"leaderboard: {tmp_path / 'leaderboard.csv'}",
    ):
        assert line in out
    assert main(["status", str(tmp_path)]) == 0
    status = capsys.readouterr().out
    assert status.count("done") == 4 and "200/200" in status
    png = tmp_path / "other.png"
    assert main(["plot", str(tmp_path), "--out", str(png)]) == 0
    assert png.read_bytes().startswith(b"\x89PNG") and "(2 panels)" in capsys.readouterr().out
    summary = plot_results(tmp_path)
    labels = [f"{CARTPOLE}(num_distractors={n})" for n in (1, 2)]
    assert summary.panels == tuple(labels)
    assert summary.lines == {label: ("random [full] (n=2)",) for label in labels}
    assert main(_run(tmp_path, "--env-kwarg", "num_distractors=2", "--eval-episodes", "3")) == 2
    assert "holds a different run (eval_episodes: stored 2, requested 3)" in capsys.readouterr().err


def test_seeds_run_apart_with_seed_index_fill_the_same_cell(tmp_path, capsys) -> None:
    together, apart = tmp_path / "together", tmp_path / "apart"
    assert main(_run(together)) == 0
    assert main(_run(apart, "--seed-index", "1")) == 0
    cell = apart / "random" / "mbrl_bench__CartPoleDistractor-v0(num_distractors=1)" / "full"
    assert not (cell / "seed_0").exists() and (cell / "seed_1" / store.CURVE_FILE).exists()
    assert main(_run(apart, "--seed-index", "0")) == 0
    capsys.readouterr()
    assert main(["status", str(apart)]) == 0
    assert capsys.readouterr().out.count("done") == 2
    for seed in ("seed_0", "seed_1"):
        curves = [
            [
                {k: v for k, v in row.items() if k != "wall_time_s"}
                for row in store.read_curve(root / seed / store.CURVE_FILE)
            ]
            for root in (together / cell.relative_to(apart), cell)
        ]
        assert curves[0] == curves[1] and len(curves[0]) == 3


def test_run_without_arguments_runs_the_quickstart_suite(tmp_path, monkeypatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    argv = ["run", "--steps", "100", "--eval-every", "50", "--seeds", "1", "--workers", "1", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    for algo in ("omd", "mle-dyna", "random"):
        cell = tmp_path / "results" / "quickstart" / algo / "mbrl_bench__CartPoleDistractor-v0" / "full"
        assert [r["env_step"] for r in store.read_curve(cell / "seed_0" / store.CURVE_FILE)] == [0, 50, 100]
    assert f"plot: {tmp_path / 'results' / 'quickstart' / 'curves.png'}" in out
    assert f"leaderboard: {tmp_path / 'results' / 'quickstart' / 'leaderboard.csv'}" in out


def test_a_failed_cell_makes_the_run_exit_1(tmp_path, capsys) -> None:
    @register_agent
    class Broken(RandomAgent):
        name: ClassVar[str] = "test-cli-broken"

        def update(self, state, transition, key, step):
            raise RuntimeError("broken update")

    argv = _run(tmp_path)
    argv[argv.index("random")] = "test-cli-broken"
    assert main(argv) == 1
    captured = capsys.readouterr()
    assert "RuntimeError: broken update" in captured.out + captured.err
    assert main(["status", str(tmp_path)]) == 0
    assert capsys.readouterr().out.count("│ failed ") == 2


def test_bootstrap_band_brackets_the_mean() -> None:
    import numpy as np

    values = np.array([[0.0, 10.0, 1.0], [2.0, 20.0, np.nan], [4.0, 30.0, np.nan]])
    mean, low, high = bootstrap_band(values)
    assert np.allclose(mean, [2.0, 20.0, 1.0])
    assert np.all(low <= mean) and np.all(mean <= high)
    assert 0.0 <= low[0] < 2.0 < high[0] <= 4.0 and low[2] == high[2] == 1.0  # one seed: no band


def test_agents_outside_the_package_register_through_the_environment(tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "my_agents.py").write_text(
        "from typing import ClassVar\n"
        "from mbrl_bench.baselines.api import register_agent\n"
        "from mbrl_bench.baselines.random_agent import RandomAgent\n"
        "@register_agent\n"
        "class Mine(RandomAgent):\n"
        "    name: ClassVar[str] = 'test-plugin-agent'\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("MBRL_BENCH_AGENT_MODULES", "my_agents")
    assert main(["algos"]) == 0
    assert "test-plugin-agent" in capsys.readouterr().out
    monkeypatch.setenv("MBRL_BENCH_AGENT_MODULES", "no_such_module_xyz")
    assert main(["algos"]) == 2
    assert "cannot import agent module 'no_such_module_xyz'" in capsys.readouterr().err


def test_crowded_panels_split_by_algorithm(tmp_path) -> None:
    from mbrl_bench.harness.plots import MAX_LINES, _split_crowded

    curve = [[{"env_step": 0, "eval_return": 1.0}]]
    lines = {("a", f"norm:{i}"): curve for i in range(MAX_LINES)} | {("b", "full"): curve}
    split = _split_crowded({"env": lines, "other": {("a", "full"): curve}})
    assert sorted(split) == ["env | a", "env | b", "other"]
    assert len(split["env | a"]) == MAX_LINES and list(split["env | b"]) == [("b", "full")]
