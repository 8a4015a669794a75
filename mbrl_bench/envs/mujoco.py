"""MuJoCo control and manipulation tasks on Gymnasium's v5 envs, with pure-JAX rewards and terminations.

Model-based agents need the true reward and termination as functions of (obs, action, next_obs). The
stock v5 locomotion envs hide the x position, so their forward-velocity reward cannot be computed from
observations; here HalfCheetah, Hopper, Walker2d and Ant are built with
``exclude_current_positions_from_observation=False`` (x, and y for Ant, are observed) and the forward
velocity is ``(next_x - x) / dt``. Every other v5 default is kept; each env class says what differs from
the stock env. Each task's constants live in one frozen dataclass that both builds the env (its
``env_kwargs``) and defines the reward and termination functions, so the two cannot drift apart.

The distractor versions (``<Name>Distractor-v0``) append ``num_distractors`` irrelevant dims after the
base observation (see ``mbrl_bench.envs.distractors``); their tasks read only the base dims.

The v5 defaults cited below were read from ``gymnasium/envs/mujoco/*_v5.py`` (Gymnasium 1.4).

Precision: with ``jax.enable_x64`` the functions agree with the envs to ~1e-7 (the envs themselves
square a float32 action in float32). In JAX's default float32 the velocity term
``(next_x - x) / dt`` adds a rounding error of order ``1e-7 * |x| / dt``.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, fields
from typing import Any

import jax.numpy as jnp
import mujoco
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.pusher_v5 import PusherEnv
from gymnasium.envs.mujoco.reacher_v5 import ReacherEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from mbrl_bench.envs.distractors import DistractorMixin, DistractorSpec
from mbrl_bench.envs.registration import NAMESPACE, EnvEntry
from mbrl_bench.tasks import Task, TransitionFn

QUIET_DEPRECATIONS_ENV = "MBRL_BENCH_QUIET_MUJOCO_DEPRECATIONS"
"""Set to 1 (the CLI does, for itself and the workers it starts) to drop MuJoCo's deprecation warnings,
e.g. the Gymnasium v5 XMLs' ``settotalmass``, which MuJoCo prints once per env built; other MuJoCo
warnings still reach stderr. Library users see MuJoCo's own behaviour unless they set it."""


def quiet_deprecations() -> None:
    """Route MuJoCo's warnings through a handler that drops deprecation notices."""

    def handler(message: str) -> None:
        if "deprecated" not in message:
            print(f"WARNING: {message}", file=sys.stderr)

    mujoco.set_mju_user_warning(handler)


if os.environ.get(QUIET_DEPRECATIONS_ENV) == "1":
    quiet_deprecations()

HALF_CHEETAH_OBS_DIM = 18
"""qpos (9: rootx, rootz, rooty, 6 joint angles) then qvel (9)."""
HOPPER_OBS_DIM = 12
"""qpos (6: rootx, rootz, rooty, 3 joint angles) then qvel (6) clipped to [-10, 10]."""
WALKER2D_OBS_DIM = 18
"""qpos (9: rootx, rootz, rooty, 6 joint angles) then qvel (9) clipped to [-10, 10]."""
ANT_QPOS_DIM = 15
"""x, y, z, torso quaternion (4), 8 joint angles."""
ANT_STATE_DIM = 29
"""qpos (15) then qvel (14): the part of Ant's observation its health check reads."""
ANT_OBS_DIM = 107
"""qpos (15), qvel (14), then clipped cfrc_ext of bodies 1..13 (13 x 6 = 78)."""
PUSHER_OBS_DIM = 23
REACHER_OBS_DIM = 10
VELOCITY_CLIP = 10.0
"""Hopper-v5 and Walker2d-v5 clip the observed qvel to [-10, 10] (their ``_get_obs``)."""


def _dims(start: int, stop: int) -> tuple[int, ...]:
    return tuple(range(start, stop))


def _squared_norm(action: jnp.ndarray) -> jnp.ndarray:
    return jnp.sum(jnp.square(action), axis=-1)


def _x_velocity(obs: jnp.ndarray, next_obs: jnp.ndarray, dt: float) -> jnp.ndarray:
    """Forward velocity from the observed x position (dim 0 in every locomotion task here)."""
    return (next_obs[..., 0] - obs[..., 0]) / dt


def _never(obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
    """Tasks that never terminate (they end only by truncation)."""
    return jnp.zeros(next_obs.shape[:-1], dtype=bool)


@dataclass(frozen=True)
class _Timing:
    """Physics timing shared by all constants classes; ``dt`` is the duration of one env step."""

    timestep: float
    """MuJoCo integration step, fixed by the model XML (not an env kwarg)."""
    frame_skip: int
    """Physics steps per env step."""

    @property
    def dt(self) -> float:
        return self.timestep * self.frame_skip

    def env_kwargs(self) -> dict[str, Any]:
        """The v5 constructor kwargs that pin these constants (every field but the XML's timestep)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "timestep"}


@dataclass(frozen=True)
class HalfCheetahConstants(_Timing):
    """HalfCheetah-v5's reward constants; reward = w_f * x_velocity - w_c * |a|^2, no termination."""

    timestep: float = 0.01
    """From half_cheetah.xml in Gymnasium's assets."""
    frame_skip: int = 5
    """HalfCheetah-v5 default (half_cheetah_v5.py)."""
    forward_reward_weight: float = 1.0
    """HalfCheetah-v5 default (half_cheetah_v5.py)."""
    ctrl_cost_weight: float = 0.1
    """HalfCheetah-v5 default (half_cheetah_v5.py)."""

    def reward(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        forward = self.forward_reward_weight * _x_velocity(obs, next_obs, self.dt)
        return forward - self.ctrl_cost_weight * _squared_norm(action)

    def termination(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        return _never(obs, action, next_obs)


@dataclass(frozen=True)
class HopperConstants(_Timing):
    """Hopper-v5's reward and health constants; healthy means z, torso angle and state in range.

    The v5 health check reads the unclipped qvel while the observation clips it to [-10, 10]; the
    state-range bound is 100, so the check from the observation differs only if a joint speed exceeds
    100 (the state has already blown up).
    """

    timestep: float = 0.002
    """From hopper.xml in Gymnasium's assets."""
    frame_skip: int = 4
    """Hopper-v5 default (hopper_v5.py)."""
    forward_reward_weight: float = 1.0
    """Hopper-v5 default (hopper_v5.py)."""
    ctrl_cost_weight: float = 1e-3
    """Hopper-v5 default (hopper_v5.py)."""
    healthy_reward: float = 1.0
    """Hopper-v5 default (hopper_v5.py): paid on every healthy step."""
    healthy_state_range: tuple[float, float] = (-100.0, 100.0)
    """Hopper-v5 default (hopper_v5.py): open bounds on qpos[2:] and qvel."""
    healthy_z_range: tuple[float, float] = (0.7, float("inf"))
    """Hopper-v5 default (hopper_v5.py): open bounds on the torso height."""
    healthy_angle_range: tuple[float, float] = (-0.2, 0.2)
    """Hopper-v5 default (hopper_v5.py): open bounds on the torso angle."""

    def is_healthy(self, next_obs: jnp.ndarray) -> jnp.ndarray:
        state = next_obs[..., 2:HOPPER_OBS_DIM]
        z, angle = next_obs[..., 1], next_obs[..., 2]
        (s_lo, s_hi), (z_lo, z_hi), (a_lo, a_hi) = (
            self.healthy_state_range,
            self.healthy_z_range,
            self.healthy_angle_range,
        )
        state_ok = jnp.all((s_lo < state) & (state < s_hi), axis=-1)
        return state_ok & (z_lo < z) & (z < z_hi) & (a_lo < angle) & (angle < a_hi)

    def reward(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        forward = self.forward_reward_weight * _x_velocity(obs, next_obs, self.dt)
        healthy = self.healthy_reward * self.is_healthy(next_obs)
        return forward + healthy - self.ctrl_cost_weight * _squared_norm(action)

    def termination(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        return ~self.is_healthy(next_obs)


@dataclass(frozen=True)
class Walker2dConstants(_Timing):
    """Walker2d-v5's reward and health constants; healthy means torso height and angle in range."""

    timestep: float = 0.002
    """From walker2d_v5.xml in Gymnasium's assets."""
    frame_skip: int = 4
    """Walker2d-v5 default (walker2d_v5.py)."""
    forward_reward_weight: float = 1.0
    """Walker2d-v5 default (walker2d_v5.py)."""
    ctrl_cost_weight: float = 1e-3
    """Walker2d-v5 default (walker2d_v5.py)."""
    healthy_reward: float = 1.0
    """Walker2d-v5 default (walker2d_v5.py): paid on every healthy step."""
    healthy_z_range: tuple[float, float] = (0.8, 2.0)
    """Walker2d-v5 default (walker2d_v5.py): open bounds on the torso height."""
    healthy_angle_range: tuple[float, float] = (-1.0, 1.0)
    """Walker2d-v5 default (walker2d_v5.py): open bounds on the torso angle."""

    def is_healthy(self, next_obs: jnp.ndarray) -> jnp.ndarray:
        z, angle = next_obs[..., 1], next_obs[..., 2]
        (z_lo, z_hi), (a_lo, a_hi) = self.healthy_z_range, self.healthy_angle_range
        return (z_lo < z) & (z < z_hi) & (a_lo < angle) & (angle < a_hi)

    def reward(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        forward = self.forward_reward_weight * _x_velocity(obs, next_obs, self.dt)
        healthy = self.healthy_reward * self.is_healthy(next_obs)
        return forward + healthy - self.ctrl_cost_weight * _squared_norm(action)

    def termination(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        return ~self.is_healthy(next_obs)


@dataclass(frozen=True)
class AntConstants(_Timing):
    """Ant-v5's reward and health constants; healthy means a finite state and torso height in range.

    The contact cost is ``w * sum(clip(cfrc_ext)^2)`` over all bodies; the observation holds the
    clipped forces of bodies 1..13, and the world body's (0) external force is always zero.
    """

    timestep: float = 0.01
    """From ant.xml in Gymnasium's assets."""
    frame_skip: int = 5
    """Ant-v5 default (ant_v5.py)."""
    forward_reward_weight: float = 1.0
    """Ant-v5 default (ant_v5.py)."""
    ctrl_cost_weight: float = 0.5
    """Ant-v5 default (ant_v5.py)."""
    contact_cost_weight: float = 5e-4
    """Ant-v5 default (ant_v5.py)."""
    healthy_reward: float = 1.0
    """Ant-v5 default (ant_v5.py): paid on every healthy step."""
    healthy_z_range: tuple[float, float] = (0.2, 1.0)
    """Ant-v5 default (ant_v5.py): closed bounds on the torso height."""
    contact_force_range: tuple[float, float] = (-1.0, 1.0)
    """Ant-v5 default (ant_v5.py): clip applied to cfrc_ext, both in the observation and the cost."""

    def is_healthy(self, next_obs: jnp.ndarray) -> jnp.ndarray:
        z_lo, z_hi = self.healthy_z_range
        z = next_obs[..., 2]
        finite = jnp.all(jnp.isfinite(next_obs[..., :ANT_STATE_DIM]), axis=-1)
        return finite & (z_lo <= z) & (z <= z_hi)

    def reward(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        forward = self.forward_reward_weight * _x_velocity(obs, next_obs, self.dt)
        healthy = self.healthy_reward * self.is_healthy(next_obs)
        contact = self.contact_cost_weight * _squared_norm(next_obs[..., ANT_STATE_DIM:ANT_OBS_DIM])
        return forward + healthy - self.ctrl_cost_weight * _squared_norm(action) - contact

    def termination(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        return ~self.is_healthy(next_obs)


@dataclass(frozen=True)
class PusherConstants(_Timing):
    """Pusher-v5's reward constants, read after the physics step (v5; v4 read them before).

    reward = -w_near |object - fingertip| - w_dist |object - goal| - w_c |a|^2, from the body centres
    of mass that the next observation holds (dims 14:17 fingertip, 17:20 object, 20:23 goal).
    """

    timestep: float = 0.01
    """From pusher_v5.xml in Gymnasium's assets."""
    frame_skip: int = 5
    """Pusher-v5 default (pusher_v5.py)."""
    reward_near_weight: float = 0.5
    """Pusher-v5 default (pusher_v5.py)."""
    reward_dist_weight: float = 1.0
    """Pusher-v5 default (pusher_v5.py)."""
    reward_control_weight: float = 0.1
    """Pusher-v5 default (pusher_v5.py)."""

    def reward(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        tip, obj, goal = next_obs[..., 14:17], next_obs[..., 17:20], next_obs[..., 20:23]
        near = jnp.linalg.norm(obj - tip, axis=-1)
        dist = jnp.linalg.norm(obj - goal, axis=-1)
        ctrl = _squared_norm(action)
        return (
            -self.reward_near_weight * near
            - self.reward_dist_weight * dist
            - self.reward_control_weight * ctrl
        )

    def termination(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        return _never(obs, action, next_obs)


@dataclass(frozen=True)
class ReacherConstants(_Timing):
    """Reacher-v5's reward constants, read after the physics step (v5; v4 read them before).

    reward = -w_dist |fingertip - target| - w_c |a|^2. The env takes the 3-D distance; the observation
    holds its x, y part (dims 8:10), and both bodies sit at z = 0.01 with hinges about z, so the z part
    is exactly 0.
    """

    timestep: float = 0.01
    """From reacher.xml in Gymnasium's assets."""
    frame_skip: int = 2
    """Reacher-v5 default (reacher_v5.py)."""
    reward_dist_weight: float = 1.0
    """Reacher-v5 default (reacher_v5.py)."""
    reward_control_weight: float = 1.0
    """Reacher-v5 default (reacher_v5.py)."""

    def reward(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        dist = jnp.linalg.norm(next_obs[..., 8:10], axis=-1)
        return -self.reward_dist_weight * dist - self.reward_control_weight * _squared_norm(action)

    def termination(self, obs: jnp.ndarray, action: jnp.ndarray, next_obs: jnp.ndarray) -> jnp.ndarray:
        return _never(obs, action, next_obs)


HALF_CHEETAH = HalfCheetahConstants()
HOPPER = HopperConstants()
WALKER2D = Walker2dConstants()
ANT = AntConstants()
PUSHER = PusherConstants()
REACHER = ReacherConstants()

_WITH_X = {"exclude_current_positions_from_observation": False}
"""The one change to the locomotion envs: the x (and Ant's y) position stays in the observation."""


class HalfCheetahBenchEnv(HalfCheetahEnv):
    """HalfCheetah-v5 with the x position observed (dim 0): 18 dims instead of 17.

    Differs from the stock env only in the observation, so the forward reward is a function of it.
    """

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode, **_WITH_X, **HALF_CHEETAH.env_kwargs())
        # EzPickle re-creates the env from these args; v5's __init__ recorded its own signature's.
        utils.EzPickle.__init__(self, render_mode=render_mode)


class HopperBenchEnv(HopperEnv):
    """Hopper-v5 with the x position observed (dim 0): 12 dims instead of 11.

    Differs from the stock env only in the observation, so the forward reward is a function of it.
    """

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode, **_WITH_X, **HOPPER.env_kwargs())
        utils.EzPickle.__init__(self, render_mode=render_mode)


class Walker2dBenchEnv(Walker2dEnv):
    """Walker2d-v5 with the x position observed (dim 0): 18 dims instead of 17.

    Differs from the stock env only in the observation, so the forward reward is a function of it.
    """

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode, **_WITH_X, **WALKER2D.env_kwargs())
        utils.EzPickle.__init__(self, render_mode=render_mode)


class AntBenchEnv(AntEnv):
    """Ant-v5 with x, y observed (dims 0, 1) and its forward velocity taken from the observed x.

    Two differences from the stock env. (1) The observation keeps x, y: 107 dims instead of 105.
    (2) The stock env differences the torso's ``xpos``, which MuJoCo computes before the last
    integration substep of ``mj_step``, so it lags ``qpos`` by one substep and its velocity is not a
    function of the observations (off by up to ~0.06 per step under random actions). Here the
    velocity (reward and ``info["x_velocity"]``, ``info["y_velocity"]``) is ``(next qpos - qpos) / dt``.
    Both sums telescope, so an episode's forward return differs from the stock one by one substep's
    displacement over ``dt``.
    """

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode, **_WITH_X, **ANT.env_kwargs())
        utils.EzPickle.__init__(self, render_mode=render_mode)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        xy_before = self.data.qpos[:2].copy()
        obs, _, terminated, truncated, info = super().step(action)
        x_velocity, y_velocity = (self.data.qpos[:2] - xy_before) / self.dt
        reward, reward_info = self._get_rew(x_velocity, action)
        info.update(x_velocity=x_velocity, y_velocity=y_velocity, **reward_info)
        return obs, reward, terminated, truncated, info


class PusherBenchEnv(PusherEnv):
    """Pusher-v5 unchanged (23 dims); its reward is already a function of the next observation."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode, **PUSHER.env_kwargs())
        utils.EzPickle.__init__(self, render_mode=render_mode)


class ReacherBenchEnv(ReacherEnv):
    """Reacher-v5 unchanged (10 dims); its reward is already a function of the next observation."""

    def __init__(self, render_mode: str | None = None) -> None:
        super().__init__(render_mode=render_mode, **REACHER.env_kwargs())
        utils.EzPickle.__init__(self, render_mode=render_mode)


class _MujocoDistractorEnv(DistractorMixin):
    """The constructor shared by the MuJoCo distractor envs (listed first in their bases)."""

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
        utils.EzPickle.__init__(self, num_distractors, distractor, distractor_scale, render_mode)


class HalfCheetahDistractorEnv(_MujocoDistractorEnv, HalfCheetahBenchEnv):
    """``HalfCheetahBenchEnv`` plus ``num_distractors`` distractor dims after its 18 dims."""


class HopperDistractorEnv(_MujocoDistractorEnv, HopperBenchEnv):
    """``HopperBenchEnv`` plus ``num_distractors`` distractor dims after its 12 dims."""


class Walker2dDistractorEnv(_MujocoDistractorEnv, Walker2dBenchEnv):
    """``Walker2dBenchEnv`` plus ``num_distractors`` distractor dims after its 18 dims."""


class AntDistractorEnv(_MujocoDistractorEnv, AntBenchEnv):
    """``AntBenchEnv`` plus ``num_distractors`` distractor dims after its 107 dims."""


@dataclass(frozen=True)
class _MujocoTask:
    """What one robot contributes to the table: its constants, shapes, layout and descriptions."""

    name: str
    constants: (
        HalfCheetahConstants
        | HopperConstants
        | Walker2dConstants
        | AntConstants
        | PusherConstants
        | ReacherConstants
    )
    obs_dim: int
    action_dim: int
    horizon: int
    group: str
    layout: dict[str, Any]
    description: str
    distractor_description: str | None = None
    """Set for the control tasks, which get a ``<Name>Distractor-v0`` version."""


_PLANAR_LAYOUT = {"x_position": 0, "z_position": 1, "torso_angle": 2}

_TASKS: tuple[_MujocoTask, ...] = (
    _MujocoTask(
        "HalfCheetah",
        HALF_CHEETAH,
        HALF_CHEETAH_OBS_DIM,
        6,
        1000,
        "control",
        {
            **_PLANAR_LAYOUT,
            "joint_positions": _dims(3, 9),
            "positions": _dims(0, 9),
            "velocities": _dims(9, 18),
            "dt": HALF_CHEETAH.dt,
        },
        "HalfCheetah-v5, x observed: run forward, never terminates (OMD's MuJoCo testbed).",
        "HalfCheetah-v0 plus distractor dims (OMD's --dim_distract): is the model fooled by them?",
    ),
    _MujocoTask(
        "Hopper",
        HOPPER,
        HOPPER_OBS_DIM,
        3,
        1000,
        "control",
        {
            **_PLANAR_LAYOUT,
            "joint_positions": _dims(3, 6),
            "positions": _dims(0, 6),
            "velocities": _dims(6, 12),
            "velocity_clip": VELOCITY_CLIP,
            "dt": HOPPER.dt,
        },
        "Hopper-v5, x observed: hop forward, ends on a fall; model errors compound into falls.",
        "Hopper-v0 plus distractor dims: distractors with a learned termination in the loop.",
    ),
    _MujocoTask(
        "Walker2d",
        WALKER2D,
        WALKER2D_OBS_DIM,
        6,
        1000,
        "control",
        {
            **_PLANAR_LAYOUT,
            "joint_positions": _dims(3, 9),
            "positions": _dims(0, 9),
            "velocities": _dims(9, 18),
            "velocity_clip": VELOCITY_CLIP,
            "dt": WALKER2D.dt,
        },
        "Walker2d-v5, x observed: walk forward, ends on a fall; a harder balance task than Hopper.",
        "Walker2d-v0 plus distractor dims: distractors on a 6-joint balance task.",
    ),
    _MujocoTask(
        "Ant",
        ANT,
        ANT_OBS_DIM,
        8,
        1000,
        "control",
        {
            "x_position": 0,
            "y_position": 1,
            "z_position": 2,
            "torso_quaternion": _dims(3, 7),
            "joint_positions": _dims(7, ANT_QPOS_DIM),
            "positions": _dims(0, ANT_QPOS_DIM),
            "velocities": _dims(ANT_QPOS_DIM, ANT_STATE_DIM),
            "contact_forces": _dims(ANT_STATE_DIM, ANT_OBS_DIM),
            "contact_force_range": ANT.contact_force_range,
            "dt": ANT.dt,
        },
        "Ant-v5, x, y observed: 3-D quadruped; 78 of its 107 dims are contact forces, mostly zero.",
        "Ant-v0 plus distractor dims: distractors on top of many already near-irrelevant dims.",
    ),
    _MujocoTask(
        "Pusher",
        PUSHER,
        PUSHER_OBS_DIM,
        7,
        100,
        "manipulation",
        {
            "joint_positions": _dims(0, 7),
            "joint_velocities": _dims(7, 14),
            "fingertip": _dims(14, 17),
            "object": _dims(17, 20),
            "goal": _dims(20, 23),
            "dt": PUSHER.dt,
        },
        "Pusher-v5: a 7-DoF arm pushes a puck to a goal; reward needs contact-rich object dynamics.",
    ),
    _MujocoTask(
        "Reacher",
        REACHER,
        REACHER_OBS_DIM,
        2,
        50,
        "manipulation",
        {
            "cos_joint_angles": (0, 1),
            "sin_joint_angles": (2, 3),
            "goal": (4, 5),
            "joint_velocities": (6, 7),
            "fingertip_minus_goal": (8, 9),
            "dt": REACHER.dt,
        },
        "Reacher-v5: a 2-link arm reaches a random target; short, goal-conditioned, smooth dynamics.",
    ),
)

_MODULE = __name__


def _base_id(name: str) -> str:
    return f"{NAMESPACE}/{name}-v0"


def _distractor_id(name: str) -> str:
    return f"{NAMESPACE}/{name}Distractor-v0"


_BY_BASE_ID = {_base_id(t.name): t for t in _TASKS}
_BY_DISTRACTOR_ID = {_distractor_id(t.name): t for t in _TASKS if t.distractor_description}


def _lookup(env_id: str, table: dict[str, _MujocoTask]) -> _MujocoTask:
    if env_id not in table:
        raise ValueError(f"unknown environment {env_id!r} for this factory; valid ids: {', '.join(table)}")
    return table[env_id]


def _task(env_id: str, spec: _MujocoTask, num_distractors: int) -> Task:
    reward_fn: TransitionFn = spec.constants.reward
    termination_fn: TransitionFn = spec.constants.termination
    return Task(
        env_id=env_id,
        obs_dim=spec.obs_dim + num_distractors,
        action_kind="continuous",
        action_dim=spec.action_dim,
        horizon=spec.horizon,
        reward_fn=reward_fn,
        termination_fn=termination_fn,
        signal_dims=_dims(0, spec.obs_dim),
        distractor_dims=_dims(spec.obs_dim, spec.obs_dim + num_distractors),
        layout=dict(spec.layout),
    )


def mujoco_task(env_id: str) -> Task:
    """The ``Task`` of a plain MuJoCo id (``mbrl_bench/<Name>-v0``); it takes no env kwargs."""
    return _task(env_id, _lookup(env_id, _BY_BASE_ID), 0)


def mujoco_distractor_task(
    env_id: str, num_distractors: int = 10, distractor: str = "gaussian", distractor_scale: float = 1.0
) -> Task:
    """The ``Task`` of ``mbrl_bench/<Name>Distractor-v0``: the base task's functions, wider observation."""
    spec = DistractorSpec(num_distractors, distractor, distractor_scale)
    return _task(env_id, _lookup(env_id, _BY_DISTRACTOR_ID), spec.num_distractors)


MUJOCO_ENTRIES: tuple[EnvEntry, ...] = tuple(
    EnvEntry(
        _base_id(t.name),
        f"{_MODULE}:{t.name}BenchEnv",
        t.horizon,
        f"{_MODULE}:mujoco_task",
        t.description,
        group=t.group,
    )
    for t in _TASKS
) + tuple(
    EnvEntry(
        _distractor_id(t.name),
        f"{_MODULE}:{t.name}DistractorEnv",
        t.horizon,
        f"{_MODULE}:mujoco_distractor_task",
        t.distractor_description,
        group=t.group,
    )
    for t in _TASKS
    if t.distractor_description
)
"""The 6 plain ids, then the 4 distractor ids (control tasks only)."""
