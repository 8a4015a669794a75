"""Cells: one (algorithm, environment variant, capacity) with its seeds, and their validation.

``plan_cell`` turns user input into a ``CellSpec`` or raises ``UsageError`` (exit 2) naming the bad
value and the valid choices, so every input error surfaces before anything runs. A ``CellSpec`` is a
plain picklable record: executors ship it to worker processes or Ray tasks unchanged.
"""

from __future__ import annotations

import dataclasses
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym

import mbrl_bench
from mbrl_bench.baselines.api import Agent, EnvInfo, action_kind, get_agent
from mbrl_bench.harness import store
from mbrl_bench.harness.config import canonical_capacity, config_to_dict, resolve_agent_config
from mbrl_bench.harness.errors import ConfigMismatchError, UsageError
from mbrl_bench.harness.labels import canonical_env_kwargs, env_label

IDENTITY_KEYS: tuple[str, ...] = (
    "algo",
    "agent_config",
    "env_id",
    "env_kwargs",
    "env_label",
    "capacity",
    "seed",
    "steps",
    "eval_every",
    "eval_episodes",
    "env_backend",
)
"""config.json keys that define what a seed computes: a resumed run must match them exactly."""


@dataclass(frozen=True)
class CellSpec:
    """Everything needed to run one cell, resolved and validated (build it with ``plan_cell``)."""

    algo: str
    env_id: str
    env_kwargs: dict[str, Any]
    """Only the non-default kwargs, canonical (see ``mbrl_bench.harness.labels``)."""
    env_label: str
    capacity: str
    """Canonical capacity spec (``str(parse_capacity(...))``)."""
    seeds: tuple[int, ...]
    steps: int
    """Env steps per seed."""
    eval_every: int
    """Env steps between evaluations (there is always one at step 0 and one at ``steps``)."""
    eval_episodes: int
    agent_config: dict[str, Any] = field(default_factory=dict)
    """The agent's fully resolved config, JSON-ready."""
    agent_module: str = ""
    """The module whose import registers the agent (imported by worker processes first)."""
    env_backend: str = "gymnasium"
    """How the environment is stepped (recorded in config.json): ``gymnasium``, one Gymnasium env per
    seed stepped from Python; ``jax``, the env's pure-JAX twin inside the jitted training loop
    (``mbrl_bench.harness.jax_backend``)."""

    @property
    def key(self) -> str:
        """A readable unique name of the cell: ``algo | env label | capacity``."""
        return f"{self.algo} | {self.env_label} | {self.capacity}"

    def cell_dir(self, out_dir: Path) -> Path:
        return store.cell_dir(Path(out_dir), self.algo, self.env_label, self.capacity)

    def eval_points(self) -> list[int]:
        """Env steps at which the seeds are evaluated: 0, every ``eval_every``, and ``steps``."""
        return sorted({*range(0, self.steps, self.eval_every), self.steps})

    def identity(self, seed: int) -> dict[str, Any]:
        """The config.json entries that must match for a stored seed to be resumed."""
        return {
            "algo": self.algo,
            "agent_config": self.agent_config,
            "env_id": self.env_id,
            "env_kwargs": self.env_kwargs,
            "env_label": self.env_label,
            "capacity": self.capacity,
            "seed": seed,
            "steps": self.steps,
            "eval_every": self.eval_every,
            "eval_episodes": self.eval_episodes,
            "env_backend": self.env_backend,
        }


@functools.cache
def _env_facts(env_id: str, kwargs_items: tuple[tuple[str, Any], ...]) -> tuple[str, gym.Space, gym.Space]:
    """(action kind, observation space, action space) of a variant; makes the env once to validate it."""
    try:
        env = mbrl_bench.make(env_id, **dict(kwargs_items))
    except ValueError as e:
        raise UsageError(f"invalid env kwargs for {env_id}: {e}") from None
    try:
        return action_kind(env.action_space), env.observation_space, env.action_space
    finally:
        env.close()


def env_info(env_id: str, env_kwargs: dict[str, Any], budget: int | None = None) -> EnvInfo:
    """What an agent is told about a variant (spaces, the true task) and the run's budget."""
    _, obs_space, act_space = _env_facts(env_id, tuple(sorted(env_kwargs.items())))
    task = mbrl_bench.get_task(env_id, **env_kwargs)
    return EnvInfo(env_id, dict(env_kwargs), obs_space, act_space, task, budget)


def build_agent(spec: CellSpec) -> Agent:
    """The agent of a cell, built from its resolved config."""
    agent_cls = get_agent(spec.algo)
    config = resolve_agent_config(agent_cls, spec.agent_config)
    return agent_cls(config, env_info(spec.env_id, spec.env_kwargs, spec.steps), spec.capacity)


def _positive(name: str, value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
    return value


def plan_cell(
    algo: str,
    env_id: str,
    *,
    env_kwargs: dict[str, Any] | None = None,
    capacity: str = "full",
    seeds: int | tuple[int, ...] = 1,
    steps: int,
    eval_every: int,
    eval_episodes: int = 10,
    overrides: dict[str, Any] | None = None,
    env_backend: str = "gymnasium",
) -> CellSpec:
    """Validate one cell's inputs and resolve them into a ``CellSpec``; ``UsageError`` on bad input.

    ``seeds`` is a count (seeds 0..n-1) or explicit seed indices. ``overrides`` are ``--set`` values,
    strings or typed, checked against the agent's ``Config``. ``env_backend`` is ``gymnasium``,
    ``jax`` (the env needs a pure-JAX twin) or ``auto`` (``jax`` where the env has a twin).
    """
    try:
        agent_cls = get_agent(algo)
        kwargs = canonical_env_kwargs(env_id, env_kwargs)
    except UsageError:
        raise
    except ValueError as e:
        raise UsageError(str(e)) from None
    label = env_label(env_id, kwargs)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        seed_tuple = tuple(range(_positive("seeds", seeds)))
    else:
        seed_tuple = tuple(seeds)
        if not seed_tuple or any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seed_tuple):
            raise UsageError(f"seeds must be a count >= 1 or non-negative seed indices, got {seeds!r}")
    cap = canonical_capacity(capacity)
    if cap != "full" and not agent_cls.uses_model:
        raise UsageError(
            f"algorithm {algo!r} learns no model, so only capacity 'full' applies to it (got {cap!r})"
        )
    kind, _, _ = _env_facts(env_id, tuple(sorted(kwargs.items())))
    if kind not in agent_cls.action_kinds:
        raise UsageError(
            f"algorithm {algo!r} does not support {kind} actions ({label}); it supports: "
            f"{', '.join(sorted(agent_cls.action_kinds))}"
        )
    config = resolve_agent_config(agent_cls, overrides, kind)
    backend = resolve_backend(env_backend, [env_id])
    spec = CellSpec(
        algo=algo,
        env_id=env_id,
        env_kwargs=kwargs,
        env_label=label,
        capacity=cap,
        seeds=seed_tuple,
        steps=_positive("steps", steps),
        eval_every=_positive("eval_every", eval_every),
        eval_episodes=_positive("eval_episodes", eval_episodes),
        agent_config=config_to_dict(config),
        agent_module=agent_cls.__module__,
        env_backend=backend,
    )
    try:
        build_agent(spec)
    except ValueError as e:
        raise UsageError(f"algorithm {algo!r} cannot run on {label}: {e}") from None
    return spec


ENV_BACKENDS: tuple[str, ...] = ("auto", "gymnasium", "jax")
"""``--env-backend`` choices; ``auto`` is ``jax`` when every env of the run has a pure-JAX twin."""


def resolve_backend(env_backend: str, env_ids: list[str]) -> str:
    """``gymnasium`` or ``jax`` for a run over ``env_ids``; ``UsageError`` on a bad or impossible choice."""
    from mbrl_bench.envs.registration import all_entries

    if env_backend not in ENV_BACKENDS:
        raise UsageError(f"unknown env backend {env_backend!r}; valid backends: {', '.join(ENV_BACKENDS)}")
    twins = [e.env_id for e in all_entries() if e.jax_twin]
    missing = [e for e in dict.fromkeys(env_ids) if e not in twins]
    if env_backend == "jax" and missing:
        raise UsageError(
            f"env backend 'jax' needs a pure-JAX twin, which {', '.join(missing)} lacks; "
            f"ids with one: {', '.join(twins)}"
        )
    if env_backend == "auto":
        return "gymnasium" if missing else "jax"
    return env_backend


def adopt_stored_backend(spec: CellSpec, out_dir: Path) -> CellSpec:
    """``spec`` on the backend its stored seeds ran on, if they exist (an ``auto`` run resumes them)."""
    for seed in spec.seeds:
        path = store.seed_dir(spec.cell_dir(out_dir), seed) / store.CONFIG_FILE
        if path.exists():
            stored = store.read_json(path).get("env_backend", spec.env_backend)
            if stored in ("gymnasium", "jax") and stored != spec.env_backend:
                if stored == "jax":
                    resolve_backend("jax", [spec.env_id])
                return dataclasses.replace(spec, env_backend=stored)
            return spec
    return spec


def check_stored_config(spec: CellSpec, out_dir: Path) -> None:
    """Raise ``ConfigMismatchError`` if a seed directory of this cell holds a different run's config."""
    cell = spec.cell_dir(out_dir)
    for seed in spec.seeds:
        path = store.seed_dir(cell, seed) / store.CONFIG_FILE
        if not path.exists():
            continue
        stored = store.read_json(path)
        wanted = store_ready(spec.identity(seed))
        diff = sorted(k for k in IDENTITY_KEYS if stored.get(k) != wanted[k])
        if diff:
            shown = "; ".join(f"{k}: stored {stored.get(k)!r}, requested {wanted[k]!r}" for k in diff)
            raise ConfigMismatchError(
                f"{path.parent} holds a different run ({shown}); use another --out or delete that directory"
            )


def store_ready(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` as it reads back from JSON (tuples as lists), so stored and requested configs compare."""
    return json.loads(json.dumps(obj))
