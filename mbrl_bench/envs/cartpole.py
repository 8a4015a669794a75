"""CartPole-v1 with distractor observation dimensions (the OMD paper's CartPole testbed)."""

from __future__ import annotations

import jax.numpy as jnp
from gymnasium.envs.classic_control.cartpole import CartPoleEnv

from mbrl_bench.envs.distractors import DistractorMixin, DistractorSpec
from mbrl_bench.tasks import Task

CARTPOLE_STATE_DIM = 4
"""Cart position, cart velocity, pole angle, pole angular velocity: the true state."""
X_THRESHOLD = 2.4
THETA_THRESHOLD = 12 * 2 * jnp.pi / 360


class CartPoleDistractorEnv(DistractorMixin, CartPoleEnv):
    """CartPole-v1's dynamics, reward (+1 per step) and termination, plus distractor dims.

    Observation: the 4 CartPole-v1 dims, then ``num_distractors`` distractor dims (see
    ``mbrl_bench.envs.distractors``). With ``num_distractors=0`` the observations equal CartPole-v1's
    for the same seed and actions. The 500-step horizon comes from the registration's TimeLimit.
    """

    def __init__(
        self,
        num_distractors: int = 10,
        distractor: str = "gaussian",
        distractor_scale: float = 1.0,
        render_mode: str | None = None,
    ) -> None:
        spec = DistractorSpec(num_distractors, distractor, distractor_scale)
        super().__init__(render_mode=render_mode)
        self._init_distractors(spec)


def cartpole_reward(obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
    """CartPole-v1 pays +1 on every step, the terminating one included."""
    return jnp.ones(next_obs.shape[:-1], dtype=next_obs.dtype)


def cartpole_termination(obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
    """Cart out of [-2.4, 2.4] or pole beyond 12 degrees, read from the next observation."""
    x, theta = next_obs[..., 0], next_obs[..., 2]
    return (jnp.abs(x) > X_THRESHOLD) | (jnp.abs(theta) > THETA_THRESHOLD)


def cartpole_task(
    env_id: str, num_distractors: int = 10, distractor: str = "gaussian", distractor_scale: float = 1.0
) -> Task:
    spec = DistractorSpec(num_distractors, distractor, distractor_scale)
    return Task(
        env_id=env_id,
        obs_dim=CARTPOLE_STATE_DIM + spec.num_distractors,
        action_kind="discrete",
        action_dim=2,
        horizon=500,
        reward_fn=cartpole_reward,
        termination_fn=cartpole_termination,
        signal_dims=tuple(range(CARTPOLE_STATE_DIM)),
        distractor_dims=tuple(range(CARTPOLE_STATE_DIM, CARTPOLE_STATE_DIM + spec.num_distractors)),
    )
