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


def is_ours(env_id: str) -> bool:
    """Whether ``env_id`` is an mbrl-bench id (with true task functions), not just any Gymnasium id."""
    return any(e.env_id == env_id for e in all_entries())


def _check_known(env_id: str) -> None:
    """ValueError naming an id that is neither ours nor registered with Gymnasium."""
    if not is_ours(env_id) and env_id not in gym.registry:
        ours = ", ".join(env_ids())
        raise ValueError(
            f"unknown environment {env_id!r}; valid ids: {ours}, or any registered Gymnasium id "
            "(e.g. CartPole-v1, Pendulum-v1, HalfCheetah-v5)"
        )


def get_task(env_id: str, **env_kwargs: Any) -> Task:
    """The ``Task`` (true reward/termination, observation layout) of ``env_id`` made with ``env_kwargs``.

    For a Gymnasium id that is not ours, a ``Task`` without true functions (``true_functions=False``):
    its spaces and horizon, every dim a signal dim, and reward/termination functions that raise.
    """
    if is_ours(env_id):
        return entry(env_id).task(**env_kwargs)
    from mbrl_bench.tasks import task_without_functions

    _check_known(env_id)
    env = gym.make(env_id, **env_kwargs)
    try:
        return task_without_functions(
            env_id, env.observation_space, env.action_space, env.spec.max_episode_steps
        )
    finally:
        env.close()


def make(env_id: str, **env_kwargs: Any) -> gym.Env:
    """``gymnasium.make`` for an mbrl-bench id or any registered Gymnasium id; ValueError on others."""
    _check_known(env_id)
    return gym.make(env_id, **env_kwargs)


def entry_point_and_kwargs(env_id: str) -> tuple[Any, dict[str, Any]]:
    """The callable making ``env_id`` and its registered default kwargs (ours or Gymnasium's)."""
    if is_ours(env_id):
        e = entry(env_id)
        return _load(e.entry_point), dict(e.kwargs)
    _check_known(env_id)
    spec = gym.registry[env_id]
    point = spec.entry_point
    return (_load(point) if isinstance(point, str) else point), dict(spec.kwargs)


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
