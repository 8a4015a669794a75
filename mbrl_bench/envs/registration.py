"""The table of mbrl-bench environments: Gymnasium registration, task factories and listing.

Every env id lives here once, with its Gymnasium entry point, horizon, task factory (true reward,
termination and observation layout, see ``mbrl_bench.tasks``), its pure-JAX twin where there is one,
and one line on what it is for. ``register_all`` runs on ``import mbrl_bench``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym

from mbrl_bench.tasks import Task

NAMESPACE = "mbrl_bench"


@dataclass(frozen=True)
class EnvEntry:
    """One registered environment."""

    env_id: str
    entry_point: str
    """``module:callable`` making the ``gymnasium.Env``."""
    max_episode_steps: int
    task_factory: str
    """``module:callable(env_id, **env_kwargs) -> Task``."""
    description: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Default kwargs given to the entry point."""
    jax_twin: str | None = None
    """``module:callable(**env_kwargs) -> (env, params)`` making the pure-JAX twin, if any."""
    group: str = "control"

    def task(self, **env_kwargs: Any) -> Task:
        return _load(self.task_factory)(self.env_id, **{**self.kwargs, **env_kwargs})


def _load(target: str) -> Callable[..., Any]:
    module, name = target.split(":")
    return getattr(importlib.import_module(module), name)


_CARTPOLE = "mbrl_bench.envs.cartpole"
_MUJOCO = "mbrl_bench.envs.mujoco"
_TABULAR = "mbrl_bench.envs.tabular"

ENTRIES: tuple[EnvEntry, ...] = (
    EnvEntry(
        f"{NAMESPACE}/CartPoleDistractor-v0",
        f"{_CARTPOLE}:CartPoleDistractorEnv",
        500,
        f"{_CARTPOLE}:cartpole_task",
        "CartPole-v1 plus distractor dims (OMD's testbed): is the model fooled by irrelevant state?",
        jax_twin="mbrl_bench.envs.jax_cartpole:make_jax_cartpole",
        group="classic",
    ),
)


def _mujoco_entries() -> tuple[EnvEntry, ...]:
    from mbrl_bench.envs.mujoco import MUJOCO_ENTRIES

    return MUJOCO_ENTRIES


def _tabular_entries() -> tuple[EnvEntry, ...]:
    from mbrl_bench.envs.tabular import TABULAR_ENTRIES

    return TABULAR_ENTRIES


def all_entries() -> tuple[EnvEntry, ...]:
    """Every mbrl-bench environment, in listing order."""
    return ENTRIES + _mujoco_entries() + _tabular_entries()


def entry(env_id: str) -> EnvEntry:
    """The entry of ``env_id``; a ValueError lists the valid ids."""
    entries = {e.env_id: e for e in all_entries()}
    if env_id not in entries:
        raise ValueError(f"unknown environment {env_id!r}; valid ids: {', '.join(entries)}")
    return entries[env_id]


def env_ids() -> list[str]:
    return [e.env_id for e in all_entries()]


def get_task(env_id: str, **env_kwargs: Any) -> Task:
    """The ``Task`` (true reward/termination, observation layout) of ``env_id`` made with ``env_kwargs``."""
    return entry(env_id).task(**env_kwargs)


def make(env_id: str, **env_kwargs: Any) -> gym.Env:
    """``gymnasium.make`` for an mbrl-bench id, with a ValueError naming unknown ids."""
    entry(env_id)
    return gym.make(env_id, **env_kwargs)


def make_jax(env_id: str, **env_kwargs: Any) -> tuple[Any, Any]:
    """The pure-JAX twin of ``env_id`` as ``(env, params)``; ValueError if it has none."""
    e = entry(env_id)
    if e.jax_twin is None:
        with_twin = [x.env_id for x in all_entries() if x.jax_twin]
        raise ValueError(f"{env_id!r} has no pure-JAX twin; ids with one: {', '.join(with_twin)}")
    return _load(e.jax_twin)(**{**e.kwargs, **env_kwargs})


def register_all() -> None:
    """Register every entry with Gymnasium (idempotent)."""
    for e in all_entries():
        if e.env_id in gym.registry:
            continue
        gym.register(
            id=e.env_id,
            entry_point=e.entry_point,
            max_episode_steps=e.max_episode_steps,
            kwargs=dict(e.kwargs),
        )
