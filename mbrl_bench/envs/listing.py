"""One row per registered environment, for ``mbrl-bench envs``."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym

from mbrl_bench.envs.registration import all_entries

OTHER_IDS_NOTE = (
    "Every id above has true reward and termination functions (mbrl_bench.get_task). Any other registered "
    "Gymnasium id (e.g. CartPole-v1, Pendulum-v1, HalfCheetah-v5) runs too, without them: model-free agents "
    "omd / mle-dyna (which learn the reward and read termination from real transitions), mbpo, pal and mal "
    "(which learn the reward and a termination classifier) run on it. There are no "
    "reference scores for such ids, so their normalised scores are NaN with a note."
)


@dataclass(frozen=True)
class EnvRow:
    env_id: str
    observation_space: str
    action_space: str
    horizon: int
    description: str
    jax_twin: bool
    """Whether it has a pure-JAX twin (``--env-backend jax``)."""


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
                e.jax_twin is not None,
            )
        )
        env.close()
    return rows
