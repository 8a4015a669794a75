"""The ``mbrl-bench`` command line.

Exit status: 0 on success (a diverged seed is a result, not a failure), 2 on bad input (one line on
stderr, no traceback), 1 on a runtime failure (some cell failed; its traceback is in its status.json).
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from mbrl_bench.harness.errors import UsageError

if TYPE_CHECKING:
    from mbrl_bench.harness.cells import CellSpec

DEFAULT_OUT = "results"
DEFAULT_SUITE = "quickstart"
DEFAULT_STALL_TIMEOUT_S = 1800.0
"""``--stall-timeout``: mbrl_bench.harness.executors.DEFAULT_STALL_TIMEOUT_S (repeated here so the
parser needs no JAX import; a test keeps the two equal)."""
DEFAULT_STALL_RETRIES = 2
"""``--stall-retries``: mbrl_bench.harness.executors.DEFAULT_STALL_RETRIES."""
RUN_DEFAULTS: dict[str, int] = {"seeds": 5, "steps": 100_000, "eval_every": 5_000, "eval_episodes": 10}
"""Settings of a command-line run when not given (suites carry their own)."""


class _Parser(argparse.ArgumentParser):
    """argparse with errors as one-line ``UsageError``s (exit 2, no usage dump)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(" ".join(message.split()))


def _console() -> Any:
    """stdout console: the terminal's width, or 160 columns into files and pipes (logs stay readable)."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def _positive_seconds(text: str) -> float:
    """argparse type of ``--stall-timeout``: a finite number of seconds > 0."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expects a positive number of seconds, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    """argparse type of ``--stall-retries`` and ``--seed-index``: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expects an integer >= 0, got {text!r}")
    return value


def _table(title: str, columns: list[str], rows: list[list[str]], whole_first: bool = False) -> Any:
    """A rich table; ``whole_first`` keeps the first column (an id or a name) unwrapped."""
    from rich.table import Table

    table = Table(title=title)
    for k, column in enumerate(columns):
        table.add_column(column, overflow="fold", no_wrap=whole_first and k == 0)
    for row in rows:
        table.add_row(*row)
    return table


# ------------------------------------------------------------------------------------- listings
def _cmd_envs(args: argparse.Namespace) -> int:
    from mbrl_bench.envs.listing import OTHER_IDS_NOTE, describe_envs

    rows = [
        [r.env_id, r.observation_space, r.action_space, str(r.horizon), "yes" if r.jax_twin else "-",
         r.description]
        for r in describe_envs()
    ]  # fmt: skip
    columns = ["id", "observation space", "action space", "horizon", "JAX twin", "what it is for"]
    _console().print(_table("mbrl-bench environments", columns, rows, whole_first=True))
    print(OTHER_IDS_NOTE)
    return 0


def _cmd_algos(args: argparse.Namespace) -> int:
    from mbrl_bench.baselines.api import agent_names, get_agent
    from mbrl_bench.harness.config import config_fields, type_name

    try:
        names = agent_names()
    except ValueError as e:  # a user agent module that does not import
        raise UsageError(str(e)) from None
    rows = []
    for name in names:
        cls = get_agent(name)
        fields = "\n".join(f"{f} ({type_name(t)}) = {d!r}" for f, t, d in config_fields(cls.Config))
        for kind, defaults in sorted(cls.kind_defaults.items()):
            fields += f"\non {kind} actions: " + ", ".join(f"{k} = {v!r}" for k, v in defaults.items())
        rows.append(
            [name, ", ".join(sorted(cls.action_kinds)), "yes" if cls.uses_model else "no",
             "yes" if cls.batch_over_seeds else "no", fields or "-", cls.description]
        )  # fmt: skip
    columns = ["algo", "actions", "model", "vmapped over seeds", "config (--set key=value)", "description"]
    _console().print(_table("mbrl-bench algorithms", columns, rows, whole_first=True))
    return 0


def _cmd_capacities(args: argparse.Namespace) -> int:
    from mbrl_bench.models.capacity import capacity_specs

    rows = [[form, text] for form, text in capacity_specs()]
    title = "model capacities (--capacity; model-based algorithms only)"
    _console().print(_table(title, ["spec", "meaning"], rows))
    return 0


def _cmd_suites(args: argparse.Namespace) -> int:
    import tomllib

    from mbrl_bench.harness.suites import suite_names, suite_path

    rows = []
    for name in suite_names():
        path = suite_path(name)
        data = tomllib.loads(path.read_text())
        rows.append([name, str(data.get("description", "")), str(path)])
    _console().print(_table("mbrl-bench suites (--suite NAME)", ["suite", "description", "file"], rows))
    return 0


# ------------------------------------------------------------------------------------------- run
def _scoped_overrides(assignments: list[str], algos: list[str]) -> dict[str, dict[str, str]]:
    """``--set key=value`` (every algo) and ``--set algo.key=value`` (that algo) per algorithm."""
    from mbrl_bench.harness.labels import parse_kwarg_assignment

    out: dict[str, dict[str, str]] = {a: {} for a in algos}
    for text in assignments:
        key, value = parse_kwarg_assignment(text, "--set")
        scope, dot, field = key.rpartition(".")
        if not dot:
            for algo in algos:
                out[algo][key] = value
        elif scope in out:
            out[scope][field] = value
        else:
            raise UsageError(f"--set {text}: {scope!r} is not an algorithm of this run ({', '.join(algos)})")
    return out


def _variants(assignments: list[str]) -> list[dict[str, str]]:
    """``--env-kwarg key=value`` combinations: a key given several times sweeps over its values."""
    from mbrl_bench.harness.labels import parse_kwarg_assignment

    values: dict[str, list[str]] = {}
    for text in assignments:
        key, value = parse_kwarg_assignment(text, "--env-kwarg")
        values.setdefault(key, [])
        if value not in values[key]:
            values[key].append(value)
    keys = list(values)
    return [dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values.values())]


def _command_line_cells(args: argparse.Namespace) -> list[Any]:
    from mbrl_bench.harness.cells import plan_cell, resolve_backend

    if not args.algo or not args.env:
        raise UsageError("a command-line run needs both --algo and --env (or use --suite)")
    algos = list(dict.fromkeys(args.algo))
    overrides = _scoped_overrides(args.set or [], algos)
    settings = {k: getattr(args, k) if getattr(args, k) is not None else v for k, v in RUN_DEFAULTS.items()}
    backend = resolve_backend(args.env_backend or "auto", args.env)
    cells = {}
    for algo, env_id, kwargs, capacity in itertools.product(
        algos,
        dict.fromkeys(args.env),
        _variants(args.env_kwarg or []),
        dict.fromkeys(args.capacity or ["full"]),
    ):
        spec = plan_cell(
            algo,
            env_id,
            env_kwargs=kwargs,
            capacity=capacity,
            overrides=overrides[algo],
            env_backend=backend,
            **settings,
        )
        cells.setdefault(spec.key, spec)
    return list(cells.values())


def finish_suite(out_dir: Path) -> list[tuple[str, Path]]:
    """After the cells: draw the curves and write the leaderboard; returns (what, path) to print."""
    from mbrl_bench.harness.plots import plot_capacity_sweep, plot_results
    from mbrl_bench.leaderboard import ResultsError, build_leaderboard, write_leaderboard

    artifacts = [("curves", out_dir)]
    try:
        artifacts.append(("plot", plot_results(out_dir).path))
    except UsageError as e:  # nothing to draw (e.g. every cell failed before its first evaluation)
        print(f"mbrl-bench: no plot: {e}", file=sys.stderr)
    sweep = plot_capacity_sweep(out_dir)
    if sweep is not None:
        artifacts.append(("capacity sweep", sweep.path))
    try:
        artifacts.append(("leaderboard", write_leaderboard(build_leaderboard(out_dir)).cells))
    except ResultsError as e:
        print(f"mbrl-bench: no leaderboard: {' '.join(str(e).split())}", file=sys.stderr)
    return artifacts


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from mbrl_bench.harness.cells import adopt_stored_backend
    from mbrl_bench.harness.executors import StallPolicy, make_executor, restart_this_process
    from mbrl_bench.harness.progress import ProgressDisplay
    from mbrl_bench.harness.session import run_session
    from mbrl_bench.harness.suites import RUN_KEYS, load_suite

    command_line = [f for f in ("algo", "env", "capacity", "set", "env_kwarg") if getattr(args, f)]
    if args.suite and command_line:
        flags = ", ".join(f"--{f.replace('_', '-')}" for f in command_line)
        raise UsageError(f"--suite cannot be combined with {flags}; put them in the suite file")
    if command_line:
        cells = _command_line_cells(args)
    else:
        overrides = {k: getattr(args, k) for k in RUN_KEYS}
        suite = load_suite(args.suite or DEFAULT_SUITE, overrides, args.env_backend)
        cells = list(suite.cells)
    if args.seed_index:
        cells = [_only_seeds(spec, args.seed_index) for spec in cells]
    if args.workers is not None and args.workers < 1:
        raise UsageError(f"--workers must be >= 1, got {args.workers}")
    workers = args.workers or min(len(cells), os.cpu_count() or 1)
    stall = StallPolicy(args.stall_timeout, args.stall_retries)
    # Only an explicit --workers 1 runs in this process (watched by a thread that restarts the process
    # on a stall); by default cells run in watched worker processes, even a single cell.
    restart = restart_this_process if args.restartable else None
    executor = make_executor(
        args.executor, workers, args.address, stall, in_process=args.workers == 1, restart=restart
    )
    if args.out is None:
        # A suite gets a directory of its own, so suites never mix in one leaderboard.
        suite = Path(args.suite or DEFAULT_SUITE).stem if not command_line else None
        args.out = str(Path(DEFAULT_OUT) / suite) if suite else DEFAULT_OUT
    out = Path(args.out).resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {args.out} is a file, not a directory")
    if args.env_backend is None:  # auto never refuses to resume a cell begun on the other backend
        cells = [adopt_stored_backend(spec, out) for spec in cells]
    display = ProgressDisplay(cells, Console(stderr=True), live=None if args.progress else False)
    session = run_session(cells, out, executor, display)
    rows = []
    for r in session.results:
        finals = [c[-1]["eval_return"] for c in r.curves.values() if c]
        ret = f"{sum(finals) / len(finals):.1f}" if finals else "-"
        counts = ", ".join(f"{n} {s}" for s, n in sorted(_count(r.seed_states.values()).items()))
        rows.append(
            [r.key, r.state + (" (already finished)" if r.skipped else ""), counts, ret, r.error or ""]
        )
    _console().print(
        _table(f"mbrl-bench run -> {out}", ["cell", "state", "seeds", "final return", "error"], rows)
    )
    for what, path in finish_suite(out):
        print(f"{what}: {path}")
    return session.exit_code


def _only_seeds(spec: CellSpec, indices: list[int]) -> CellSpec:
    """``spec`` restricted to the seed indices of ``--seed-index``; UsageError for one it lacks."""
    missing = sorted(set(indices) - set(spec.seeds))
    if missing:
        raise UsageError(
            f"--seed-index {missing[0]} is not a seed of {spec.key}, which has seeds "
            f"{spec.seeds[0]}-{spec.seeds[-1]} (--seeds {len(spec.seeds)})"
        )
    return dataclasses.replace(spec, seeds=tuple(sorted(set(indices))))


def _count(states: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for s in states:
        out[s] = out.get(s, 0) + 1
    return out


# ------------------------------------------------------------------------------- status, plot
def _heartbeat_text(age: float) -> str:
    return f"{age:.0f} s ago" if age < 120 else f"{age / 60:.0f} min ago"


def _cmd_status(args: argparse.Namespace) -> int:
    import time

    from mbrl_bench.harness import store

    root = Path(args.dir)
    if not root.is_dir():
        raise UsageError(f"results directory {root} does not exist")
    records = store.scan_results(root)
    if not records:
        print(f"no cells under {root}")
        return 0
    locked: dict[Path, bool] = {}
    rows = []
    now = time.time()
    for r in records:
        state = r.status.get("state", "pending")
        beat = store.heartbeat_time(r.status)
        heartbeat = "-"
        if state == "running":
            cell = r.path.parent
            locked.setdefault(cell, store.is_locked(cell))
            state = "running" if locked[cell] else "interrupted"
            if beat is not None and state == "running":
                age = now - beat
                heartbeat = f"{_heartbeat_text(age)} (step {r.status.get('heartbeat_step', '?')})"
                state = "stalled" if age > args.stall_timeout else state
        steps = f"{r.status.get('env_step', 0)}/{r.status.get('steps', r.config.get('steps', '?'))}"
        ret = f"{r.curve[-1]['eval_return']:.1f}" if r.curve else "-"
        note = (r.status.get("error") or "").splitlines()[0] if r.status.get("error") else ""
        if not note and r.status.get("stalls"):
            note = f"restarted {r.status['stalls']}x after stalls; last: {r.status.get('last_stall', '')}"
        rows.append([r.algo, r.env_label, r.capacity, str(r.seed), state, steps, heartbeat, ret, note])
    columns = ["algo", "env", "capacity", "seed", "state", "env steps", "heartbeat", "last return", "note"]
    _console().print(_table(f"cells under {root}", columns, rows))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    if args.aggregate:
        from mbrl_bench.leaderboard import build_leaderboard, plot_aggregates

        board = _checked(lambda: build_leaderboard(args.dir, args.budget))
        print(f"plot: {plot_aggregates(board, args.out)}")
        return 0
    from mbrl_bench.harness.plots import plot_capacity_sweep, plot_results

    summary = plot_results(args.dir, args.out, args.metric, args.log_y, not args.no_published)
    print(f"plot: {summary.path} ({len(summary.panels)} panels)")
    if args.metric != "eval_return":  # the capacity sweep is a return plot
        return 0
    sweep = plot_capacity_sweep(args.dir, args.sweep_out)
    if sweep is not None:
        print(f"capacity sweep: {sweep.path} ({len(sweep.panels)} panels)")
    return 0


def _checked(build: Any) -> Any:
    """Run ``build``; unreadable results or reference files become one-line usage errors (exit 2)."""
    try:
        return build()
    except (FileNotFoundError, ValueError) as e:
        raise UsageError(str(e)) from None


# ------------------------------------------------------------------------------ leaderboard
def _cmd_leaderboard(args: argparse.Namespace) -> int:
    from mbrl_bench.leaderboard import build_leaderboard, write_leaderboard

    if not Path(args.dir).is_dir():
        raise UsageError(f"results directory {args.dir} does not exist")
    board = _checked(lambda: build_leaderboard(args.dir, args.budget, references=args.reference))
    for warning in board.warnings:
        print(f"mbrl-bench: warning: {warning}", file=sys.stderr)
    files = write_leaderboard(board, args.out)
    print(f"leaderboard: {files.cells}")
    print(f"aggregates: {files.aggregates}")
    return 0


def _cmd_calibrate(args: argparse.Namespace) -> int:
    from rich.console import Console

    from mbrl_bench.calibration import (
        CALIBRATION_EVAL_EVERY,
        budget_dir,
        command_line,
        default_variants,
        describe,
        merge_reference_rows,
        plan_calibration,
        reference_rows,
    )
    from mbrl_bench.envs.registration import env_ids
    from mbrl_bench.harness.executors import make_executor, restart_this_process
    from mbrl_bench.harness.progress import ProgressDisplay
    from mbrl_bench.harness.session import run_session

    kwargs = dict(_kwarg_pairs(args.env_kwarg or []))
    if kwargs and not args.env:
        raise UsageError("--env-kwarg applies to the --env ids given; name them with --env")
    budgets = _int_list(args.budgets, "--budgets")
    variants = [(env_id, kwargs) for env_id in args.env] if args.env else default_variants(env_ids())
    eval_every = args.eval_every if args.eval_every is not None else CALIBRATION_EVAL_EVERY
    plan = plan_calibration(variants, args.seeds, budgets=budgets, eval_every=eval_every)
    out = Path(args.out).resolve()
    # One session per budget (each its own results directory); a later budget starts after the
    # earlier one finished, and a failure stops before the table is touched.
    for budget, specs in plan.items():
        workers = args.workers or min(len(specs), os.cpu_count() or 1)
        display = ProgressDisplay(specs, Console(stderr=True), live=None if args.progress else False)
        restart = restart_this_process if args.restartable else None
        executor = make_executor("local", workers, restart=restart)
        session = run_session(specs, budget_dir(out, budget), executor, display)
        if session.exit_code:
            failed = [r.key for r in session.results if r.state != "done"]
            print(
                f"mbrl-bench: calibration incomplete at budget {budget} ({'; '.join(failed)}); "
                "re-run to resume",
                file=sys.stderr,
            )
            return session.exit_code
    table_path = Path(args.table) if args.table else out / "reference_scores.csv"
    table = merge_reference_rows(table_path, reference_rows(plan, out, command_line(args.argv)))
    print(describe(table))
    print(f"reference scores: {table_path}")
    return 0


def _int_list(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"{what} expects comma-separated integers, got {text!r}") from None
    if any(v < 1 for v in values):
        raise UsageError(f"{what} must be positive, got {text!r}")
    return values


def _kwarg_pairs(items: list[str]) -> list[tuple[str, str]]:
    from mbrl_bench.harness.labels import parse_kwarg_assignment

    return [parse_kwarg_assignment(item, "--env-kwarg") for item in items]


# ----------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mbrl-bench", description="Model-based RL under model misspecification: a benchmark."
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser(
        "run",
        help="run a suite, or algorithms x envs x capacities x seeds (default: quickstart)",
        epilog="Compiled programs are cached on disk (~/.cache/mbrl-bench/xla/<machine>-<cpu>, at most "
        "4 GiB), so a resumed run or a repeated cell loads its slow-to-compile programs; "
        "MBRL_BENCH_COMPILE_CACHE=DIR moves the cache, MBRL_BENCH_COMPILE_CACHE=off turns it off.",
    )
    run.add_argument("--suite", help="a shipped suite name (see `mbrl-bench suites`) or a .toml file")
    run.add_argument("--algo", action="append", help="algorithm (repeatable; see `mbrl-bench algos`)")
    run.add_argument(
        "--env",
        action="append",
        help="environment id (repeatable): one of `mbrl-bench envs` or any registered Gymnasium id",
    )
    run.add_argument("--capacity", action="append", help="model capacity spec (repeatable; default full)")
    run.add_argument(
        "--env-kwarg",
        action="append",
        metavar="KEY=VALUE",
        help="env constructor kwarg (repeatable; a key given twice sweeps over its values)",
    )
    run.add_argument(
        "--set",
        action="append",
        metavar="[ALGO.]KEY=VALUE",
        help="agent config value, checked against the algorithm's typed config (repeatable)",
    )
    for flag, key in (
        ("--seeds", "seeds"),
        ("--steps", "steps"),
        ("--eval-every", "eval_every"),
        ("--eval-episodes", "eval_episodes"),
    ):
        run.add_argument(flag, type=int, dest=key, help=f"default {RUN_DEFAULTS[key]} (or the suite's)")
    run.add_argument(
        "--seed-index",
        action="append",
        type=_non_negative_int,
        metavar="I",
        help="run only seed I of each cell's seeds 0..N-1 (repeatable), leaving the others as they are, "
        "to split a long cell over processes, machines or sessions (into one --out, or directories "
        "merged later). Seeds run apart can differ from the same seeds vmapped together by XLA's "
        "rounding, which a learning run amplifies: the split is part of the command to record",
    )
    run.add_argument(
        "--env-backend",
        metavar="auto|gymnasium|jax",
        help="how envs are stepped: gymnasium (one Gymnasium env per seed, stepped from Python) or jax "
        "(the env's pure-JAX twin inside the jitted training loop; only ids with a twin, see `mbrl-bench "
        "envs`). Default auto (or the suite's env_backend): jax when every env of the run has a twin, "
        "else gymnasium; a cell already begun on one backend resumes on it",
    )
    run.add_argument(
        "--out",
        help=f"results directory (default ./{DEFAULT_OUT}/<suite name> for a suite, else ./{DEFAULT_OUT})",
    )
    run.add_argument("--executor", default="local", help="local (a process pool, default) or ray")
    run.add_argument(
        "--workers", type=int, help="parallel cells (default: min(cells, CPUs); 1 runs in-process)"
    )
    run.add_argument("--address", help="Ray cluster address to join (--executor ray)")
    run.add_argument("--no-progress", dest="progress", action="store_false", help="no live progress display")
    run.add_argument(
        "--stall-timeout",
        type=_positive_seconds,
        default=DEFAULT_STALL_TIMEOUT_S,
        metavar="SECONDS",
        help=f"kill and resume a worker whose cell shows no heartbeat for this long (default "
        f"{DEFAULT_STALL_TIMEOUT_S:g}; with --workers 1, which runs in this process, the process restarts "
        "itself with the same command)",
    )
    run.add_argument(
        "--stall-retries",
        type=_non_negative_int,
        default=DEFAULT_STALL_RETRIES,
        metavar="N",
        help=f"restarts of a stalled cell before it is marked failed (default {DEFAULT_STALL_RETRIES})",
    )
    run.set_defaults(func=_cmd_run)

    status = sub.add_parser("status", help="table of the cells under a results directory and their state")
    status.add_argument("dir")
    status.add_argument(
        "--stall-timeout",
        type=_positive_seconds,
        default=DEFAULT_STALL_TIMEOUT_S,
        metavar="SECONDS",
        help="a running cell whose last heartbeat is older is shown as stalled "
        f"(default {DEFAULT_STALL_TIMEOUT_S:g})",
    )
    status.set_defaults(func=_cmd_status)
    plot = sub.add_parser("plot", help="return curves: mean and 95%% bootstrap band over seeds")
    plot.add_argument("dir")
    plot.add_argument("--out", help="image file (default DIR/curves.png, or DIR/aggregates.png)")
    plot.add_argument(
        "--aggregate",
        action="store_true",
        help="IQM and optimality gap of normalised scores with CIs, and performance profiles",
    )
    plot.add_argument("--budget", type=int, help="with --aggregate: env-step budget (default per cell)")
    plot.add_argument(
        "--metric",
        default="eval_return",
        metavar="COLUMN",
        help="curve.csv column to draw instead of the evaluation return, e.g. an agent metric such as "
        "virel's eps_w (default DIR/curves_<COLUMN>.png)",
    )
    plot.add_argument("--log-y", action="store_true", help="log-scale y axis (non-positive values left out)")
    plot.add_argument(
        "--no-published",
        action="store_true",
        help="leave out the published curves (MBPO's official runs, jaxrl's SAC, mjrl's PAL example) drawn "
        "by default beside an algorithm's return curve on the env they were reported for",
    )
    plot.add_argument(
        "--sweep-out",
        help="image file of the final value against the norm bound, drawn where an algorithm ran two or "
        "more norm:B capacities (default DIR/capacity_sweep.png)",
    )
    plot.set_defaults(func=_cmd_plot)
    board = sub.add_parser(
        "leaderboard", help="leaderboard CSV (normalised scores, CIs) and cross-task aggregates"
    )
    board.add_argument("dir")
    board.add_argument("--out", help="leaderboard CSV (default DIR/leaderboard.csv)")
    board.add_argument(
        "--budget", type=int, help="env-step budget (default: what every seed of a cell reached)"
    )
    board.add_argument("--reference", help="reference_scores.csv to use instead of the shipped one")
    board.set_defaults(func=_cmd_leaderboard)
    calibrate = sub.add_parser(
        "calibrate",
        help="measure random/zero/PPO/Rainbow reference scores, one run per budget (100K and 200K)",
    )
    calibrate.add_argument(
        "--env",
        action="append",
        help="environment id (repeatable; default: every id, plus the CartPole variants the suites use)",
    )
    calibrate.add_argument(
        "--env-kwarg", action="append", metavar="KEY=VALUE", help="env kwarg for every --env"
    )
    calibrate.add_argument("--seeds", type=int, default=5, help="seeds per agent and env (default 5)")
    calibrate.add_argument(
        "--budgets", default="100000,200000", help="env-step budgets of the table (default 100000,200000)"
    )
    calibrate.add_argument(
        "--eval-every", type=int, help="env steps between evaluations (default 10000, dividing every budget)"
    )
    calibrate.add_argument("--out", default="results/calibration", help="where the runs go")
    calibrate.add_argument("--table", help="reference table to merge into (default OUT/reference_scores.csv)")
    calibrate.add_argument("--workers", type=int, help="parallel cells (default: min(cells, CPUs))")
    calibrate.add_argument("--no-progress", dest="progress", action="store_false")
    calibrate.set_defaults(func=_cmd_calibrate)
    for name, func, text in (
        ("envs", _cmd_envs, "list the registered environments"),
        ("algos", _cmd_algos, "list the algorithms, their action spaces and typed configs"),
        ("capacities", _cmd_capacities, "list the model capacity specs"),
        ("suites", _cmd_suites, "list the shipped suites"),
    ):
        sub.add_parser(name, help=text).set_defaults(func=func)
    return parser


def _is_own_command_line() -> bool:
    """Whether ``sys.argv`` is this process's own command line (``sys.orig_argv`` ends with its
    arguments), so that re-executing ``sys.orig_argv`` runs this command again (``--workers 1``
    restarts itself on a stall)."""
    args = sys.argv[1:]
    return not args or sys.orig_argv[-len(args) :] == args


def main(argv: list[str] | None = None) -> int:
    from mbrl_bench.envs.mujoco import QUIET_DEPRECATIONS_ENV, quiet_deprecations
    from mbrl_bench.harness.compile_cache import enable_compile_cache

    os.environ.setdefault(QUIET_DEPRECATIONS_ENV, "1")  # inherited by the workers the executors start
    if os.environ[QUIET_DEPRECATIONS_ENV] == "1":
        quiet_deprecations()
    enable_compile_cache()
    try:
        args = build_parser().parse_args(argv)
        args.argv = sys.argv[1:] if argv is None else list(argv)
        args.restartable = argv is None and _is_own_command_line()
        return int(args.func(args) or 0)
    except UsageError as e:
        print(f"mbrl-bench: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mbrl-bench: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
