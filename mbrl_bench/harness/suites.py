"""Suites: TOML files naming the cells of a study (algorithms x env variants x capacities x seeds).

A suite file (shipped ones live in ``mbrl_bench/suites/``; ``mbrl-bench suites`` lists them)::

    description = "one line"
    seeds = 3                      # seeds per cell
    steps = 10000                  # env steps per seed
    eval_every = 2000
    eval_episodes = 5
    capacities = ["full"]          # optional (default ["full"]); applies to every algorithm
    env_backend = "auto"           # optional: auto (jax if every env has a pure-JAX twin), gymnasium, jax

    [[algos]]                      # or simply: algos = ["random", "ppo"]
    name = "random"
    set = { }                      # optional: --set overrides, checked against the agent's Config
    capacities = ["full"]          # optional: this algorithm's capacities instead of the top-level ones

    [[envs]]                       # or simply: envs = ["mbrl_bench/CartPoleDistractor-v0"]
    id = "mbrl_bench/CartPoleDistractor-v0"
    kwargs = { num_distractors = 10 }   # optional: one variant; repeat [[envs]] for more variants
    steps = 10000                  # optional per-env steps / eval_every / eval_episodes

The cells are every (algo, env variant, capacity) combination. Unknown keys are errors (a typo must
not silently change a study).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from mbrl_bench.harness.cells import CellSpec, plan_cell, resolve_backend
from mbrl_bench.harness.errors import UsageError

_TOP_KEYS = frozenset({"description", "seeds", "steps", "eval_every", "eval_episodes", "capacities", "algos",
                       "envs", "env_backend"})  # fmt: skip
_ALGO_KEYS = frozenset({"name", "set", "capacities"})
_ENV_KEYS = frozenset({"id", "kwargs", "steps", "eval_every", "eval_episodes"})
RUN_KEYS: tuple[str, ...] = ("seeds", "steps", "eval_every", "eval_episodes")
"""Suite settings the command line may override."""


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    path: Path
    cells: tuple[CellSpec, ...]


def _shipped() -> dict[str, Path]:
    folder = resources.files("mbrl_bench") / "suites"
    return {
        Path(entry.name).stem: Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".toml")
    }


def suite_names() -> list[str]:
    return sorted(_shipped())


def suite_path(name_or_file: str) -> Path:
    """A shipped suite's file, or a path to a ``.toml`` file; UsageError lists the shipped names."""
    shipped = _shipped()
    if name_or_file in shipped:
        return shipped[name_or_file]
    path = Path(name_or_file)
    if path.suffix == ".toml":
        if not path.is_file():
            raise UsageError(f"suite file {name_or_file} does not exist")
        return path
    raise UsageError(
        f"unknown suite {name_or_file!r}; shipped suites: {', '.join(sorted(shipped))}, or a .toml file"
    )


def _check_keys(where: str, table: dict[str, Any], valid: frozenset[str]) -> None:
    unknown = sorted(set(table) - valid)
    if unknown:
        raise UsageError(
            f"{where}: unknown key(s) {', '.join(unknown)}; valid keys: {', '.join(sorted(valid))}"
        )


def _as_tables(where: str, items: Any, key: str) -> list[dict[str, Any]]:
    if not isinstance(items, list) or not items:
        raise UsageError(f"{where}: needs a non-empty list")
    out = []
    for item in items:
        if isinstance(item, str):
            out.append({key: item})
        elif isinstance(item, dict) and key in item:
            out.append(item)
        else:
            raise UsageError(f"{where}: each entry is a string or a table with {key!r}, got {item!r}")
    return out


def load_suite(
    name_or_file: str, overrides: dict[str, int] | None = None, env_backend: str | None = None
) -> Suite:
    """Read and validate a suite; ``overrides`` replace its seeds/steps/eval_every/eval_episodes and
    ``env_backend`` (``--env-backend``) its ``env_backend`` (default ``auto``)."""
    path = suite_path(name_or_file)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"suite {path}: invalid TOML: {e}") from None
    _check_keys(f"suite {path}", data, _TOP_KEYS)
    for key in ("algos", "envs"):
        if key not in data:
            raise UsageError(f"suite {path}: missing {key!r}")
    run = {k: data[k] for k in RUN_KEYS if k in data}
    run.update({k: v for k, v in (overrides or {}).items() if v is not None})
    missing = [k for k in ("seeds", "steps", "eval_every") if k not in run]
    if missing:
        raise UsageError(f"suite {path}: missing {', '.join(missing)}")
    capacities = data.get("capacities", ["full"])
    cells = []
    algos = _as_tables(f"suite {path}: algos", data["algos"], "name")
    envs = _as_tables(f"suite {path}: envs", data["envs"], "id")
    try:  # one backend for the whole suite: jax under auto only if every env has a twin
        backend = resolve_backend(env_backend or data.get("env_backend", "auto"), [e["id"] for e in envs])
    except UsageError as e:
        raise UsageError(f"suite {path}: {e}") from None
    for algo in algos:
        _check_keys(f"suite {path}: algo {algo['name']}", algo, _ALGO_KEYS)
        for env in envs:
            _check_keys(f"suite {path}: env {env['id']}", env, _ENV_KEYS)
            settings = {**run, **{k: env[k] for k in RUN_KEYS if k in env}}
            settings.update({k: v for k, v in (overrides or {}).items() if v is not None})
            for capacity in algo.get("capacities", capacities):
                try:
                    cells.append(
                        plan_cell(
                            algo["name"],
                            env["id"],
                            env_kwargs=env.get("kwargs"),
                            capacity=capacity,
                            seeds=settings["seeds"],
                            steps=settings["steps"],
                            eval_every=settings["eval_every"],
                            eval_episodes=settings.get("eval_episodes", 10),
                            overrides=algo.get("set"),
                            env_backend=backend,
                        )
                    )
                except UsageError as e:
                    raise UsageError(f"suite {path}: {e}") from None
    return Suite(path.stem, str(data.get("description", "")), path, tuple(cells))
