"""One row per registered environment, for ``mbrl-bench envs``."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym

from mbrl_bench.envs.registration import all_entries


@dataclass(frozen=True)
class EnvRow:
    env_id: str
    observation_space: str
    action_space: str
    horizon: int
    description: str


def _space(space: gym.Space) -> str:
    if isinstance(space, gym.spaces.Discrete):
        return f"Discrete({space.n})"
    if isinstance(space, gym.spaces.Box):
        low, high = space.low.min(), space.high.max()
        return f"Box({low:g}, {high:g}, {space.shape}, {space.dtype})"
    return str(space)


def describe_envs() -> list[EnvRow]:
    """Make each env with its default kwargs and read its spaces."""
    rows = []
    for e in all_entries():
        env = gym.make(e.env_id)
        rows.append(
            EnvRow(
                e.env_id,
                _space(env.observation_space),
                _space(env.action_space),
                e.max_episode_steps,
                e.description,
            )
        )
        env.close()
    return rows
