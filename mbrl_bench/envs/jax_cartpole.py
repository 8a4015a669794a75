"""Pure-JAX twin of ``mbrl_bench/CartPoleDistractor-v0``: CartPole-v1 plus distractor dims.

The Gymnasium env (``mbrl_bench.envs.cartpole``) is the reference; this twin follows the interface of
``mbrl_bench.envs.functional`` so that thousands of copies run in one jitted, vmapped ``lax.scan``
(model-rollout baselines, fast evaluation, throughput benchmarks). It reproduces

- CartPole-v1's Euler dynamics, +1 reward on every step (the terminating one included), termination
  (``|x| > 2.4`` or ``|theta| > 12 degrees``), reset law ``U(-0.05, 0.05)^4`` and 500-step horizon;
- the three distractor laws of ``mbrl_bench.envs.distractors.DistractorProcess`` (same distributions,
  same transition matrix for ``linear``; the random numbers themselves differ from NumPy's).

Speed: random numbers are most of a step's cost on CPU, so each step makes a single draw of
``4 + num_distractors`` uniforms. The first four give the physical reset state, used only if the
episode ends; the rest become standard normals ``z`` that drive either the distractor's next value
or, when the episode ends, its fresh initial value (``scale * z``). Only one of the two is ever
emitted, so every emitted value has the right law and is independent of the past, and no second
draw or key split is needed.

Computation is in ``params.dtype``: ``float32`` by default (Gymnasium's observation dtype; its
internal state is ``float64``, so trajectories drift apart after many steps at ~1e-7 relative), or
``float64`` under ``jax.enable_x64(True)`` to match Gymnasium to rounding.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from mbrl_bench.envs.distractors import DistractorSpec, linear_transition_matrix
from mbrl_bench.envs.functional import select_tree

CARTPOLE_STATE_DIM = 4
"""Cart position, cart velocity, pole angle, pole angular velocity."""
DTYPES: tuple[str, ...] = ("float32", "float64")
"""Floating-point types the twin computes in."""


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class CartPoleParams:
    """Physics, horizon and distractor parameters of the twin (build with ``CartPoleParams.create``).

    Numeric fields are pytree leaves (so they may be traced or vmapped, e.g. for domain randomisation);
    ``num_distractors``, ``distractor_kind`` and ``dtype`` fix shapes and code paths and are static.
    """

    distractor_matrix: jax.Array
    """(num_distractors, num_distractors) transition matrix ``A`` of the ``linear`` kind, from
    ``distractors.linear_transition_matrix``; unused by the other kinds."""
    num_distractors: int = field(default=10, metadata={"static": True})
    """Distractor dims appended to the observation; OMD's ``--dim_distract`` (mbrl-bench default 10)."""
    distractor_kind: str = field(default="gaussian", metadata={"static": True})
    """One of ``distractors.DISTRACTOR_KINDS``."""
    dtype: str = field(default="float32", metadata={"static": True})
    """Floating-point type of state and observations, one of ``DTYPES``."""
    distractor_scale: float = 1.0
    """Stationary (gaussian, linear) or per-step (random_walk) std of the distractors; DistractorSpec."""
    distractor_noise_std: float = 1.0
    """Std of the per-step noise, ``DistractorSpec.noise_std`` (``scale * sqrt(1 - rho^2)`` if linear)."""
    gravity: float = 9.8
    """m/s^2; Gymnasium CartPole-v1."""
    masscart: float = 1.0
    """kg; Gymnasium CartPole-v1."""
    masspole: float = 0.1
    """kg; Gymnasium CartPole-v1."""
    length: float = 0.5
    """Half the pole's length (m); Gymnasium CartPole-v1."""
    force_mag: float = 10.0
    """Magnitude of the push (N); Gymnasium CartPole-v1."""
    tau: float = 0.02
    """Seconds per (explicit Euler) step; Gymnasium CartPole-v1."""
    theta_threshold_radians: float = 12 * 2 * math.pi / 360
    """Pole angle beyond which the episode terminates; Gymnasium CartPole-v1."""
    x_threshold: float = 2.4
    """Cart position beyond which the episode terminates; Gymnasium CartPole-v1."""
    reset_bound: float = 0.05
    """Initial physical state ~ U(-reset_bound, reset_bound)^4; Gymnasium CartPole-v1."""
    max_episode_steps: int = 500
    """Horizon at which the episode truncates; CartPole-v1's TimeLimit and the registration's."""

    @classmethod
    def create(
        cls,
        num_distractors: int = 10,
        distractor: str = "gaussian",
        distractor_scale: float = 1.0,
        dtype: str = "float32",
    ) -> CartPoleParams:
        """Validated parameters; ValueError names a bad value and lists the valid choices."""
        spec = DistractorSpec(num_distractors, distractor, distractor_scale)
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; valid dtypes: {', '.join(DTYPES)}")
        if dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError("dtype 'float64' needs 64-bit JAX: build and run under jax.enable_x64(True)")
        matrix = linear_transition_matrix(spec.num_distractors)
        return cls(
            distractor_matrix=jnp.asarray(matrix, dtype=dtype),
            num_distractors=spec.num_distractors,
            distractor_kind=spec.kind,
            dtype=dtype,
            distractor_scale=spec.scale,
            distractor_noise_std=spec.noise_std,
        )

    @property
    def obs_dim(self) -> int:
        """Length of the observation: the 4 CartPole dims, then the distractors."""
        return CARTPOLE_STATE_DIM + self.num_distractors


@jax.tree_util.register_dataclass
@dataclass(frozen=True)
class CartPoleState:
    """Everything that evolves during an episode."""

    physics: jax.Array
    """(4,) ``(x, x_dot, theta, theta_dot)``, CartPole-v1's ``state``."""
    distractors: jax.Array
    """(num_distractors,) current distractor values."""
    time: jax.Array
    """int32 steps taken in the current episode (0 right after a reset)."""


def _draw(key: jax.Array, params: CartPoleParams) -> tuple[jax.Array, jax.Array]:
    """A candidate initial physical state and ``num_distractors`` standard normals, from one draw.

    Mirrors ``jax.random.normal`` (``sqrt(2) * erfinv(u)``, ``u`` uniform on the open interval
    (-1, 1)) so one uniform draw serves both needs.
    """
    dtype = np.dtype(params.dtype)
    low = np.nextafter(np.array(-1.0, dtype), np.array(0.0, dtype))
    u = jax.random.uniform(key, (params.obs_dim,), dtype, minval=low, maxval=1.0)
    z = np.sqrt(2.0).astype(dtype) * jax.lax.erf_inv(u[CARTPOLE_STATE_DIM:])
    return params.reset_bound * u[:CARTPOLE_STATE_DIM], z


def _observe(state: CartPoleState) -> jax.Array:
    return jnp.concatenate([state.physics, state.distractors])


def _physics_step(physics: jax.Array, action: jax.Array, params: CartPoleParams) -> jax.Array:
    """One explicit-Euler step of CartPole-v1 (``gymnasium.envs.classic_control.cartpole``)."""
    x, x_dot, theta, theta_dot = physics[0], physics[1], physics[2], physics[3]
    total_mass = params.masspole + params.masscart
    polemass_length = params.masspole * params.length
    force = jnp.where(action == 1, params.force_mag, -params.force_mag)
    costheta, sintheta = jnp.cos(theta), jnp.sin(theta)
    temp = (force + polemass_length * theta_dot**2 * sintheta) / total_mass
    thetaacc = (params.gravity * sintheta - costheta * temp) / (
        params.length * (4.0 / 3.0 - params.masspole * costheta**2 / total_mass)
    )
    xacc = temp - polemass_length * thetaacc * costheta / total_mass
    return jnp.stack(
        [
            x + params.tau * x_dot,
            x_dot + params.tau * xacc,
            theta + params.tau * theta_dot,
            theta_dot + params.tau * thetaacc,
        ]
    ).astype(params.dtype)


def _distractor_step(value: jax.Array, z: jax.Array, params: CartPoleParams) -> jax.Array:
    """The next distractor values given standard normals ``z``; same laws as ``DistractorProcess``."""
    noise = params.distractor_noise_std * z
    if params.distractor_kind == "gaussian":
        return noise
    if params.distractor_kind == "random_walk":
        return value + noise
    return value @ params.distractor_matrix.T + noise


@dataclass(frozen=True)
class JaxCartPoleDistractor:
    """The twin as a ``functional.JaxEnv``: pure ``reset``/``step`` over explicit state and params.

    Actions are ints: 1 pushes right, anything else pushes left (CartPole-v1's ``force_mag if
    action == 1 else -force_mag``). The env object only remembers which params ``default_params``
    builds; ``reset`` and ``step`` read everything from ``params``.
    """

    spec: DistractorSpec = field(default_factory=DistractorSpec)
    """Distractors of ``default_params``."""
    dtype: str = "float32"
    """Floating-point type of ``default_params``, one of ``DTYPES``."""

    num_actions = 2
    """CartPole's two pushes."""

    def default_params(self) -> CartPoleParams:
        """``CartPoleParams.create`` with this env's distractors and dtype."""
        return CartPoleParams.create(self.spec.num_distractors, self.spec.kind, self.spec.scale, self.dtype)

    def reset(self, key: jax.Array, params: CartPoleParams) -> tuple[jax.Array, CartPoleState]:
        """First observation and state: physics ~ U(-0.05, 0.05)^4, distractors ~ N(0, scale^2)."""
        physics, z = _draw(key, params)
        state = CartPoleState(physics, params.distractor_scale * z, jnp.zeros((), jnp.int32))
        return _observe(state), state

    def step(
        self, key: jax.Array, state: CartPoleState, action: jax.Array, params: CartPoleParams
    ) -> tuple[jax.Array, CartPoleState, jax.Array, jax.Array, jax.Array, dict[str, jax.Array]]:
        """One transition with auto-reset (see ``mbrl_bench.envs.functional``).

        ``terminated`` is read from the new physical state as in CartPole-v1; ``truncated`` is set when
        the episode reaches ``params.max_episode_steps`` steps, whether or not it also terminated, as
        Gymnasium's TimeLimit does.
        """
        reset_physics, z = _draw(key, params)
        physics = _physics_step(state.physics, action, params)
        stepped = CartPoleState(physics, _distractor_step(state.distractors, z, params), state.time + 1)
        x, theta = physics[0], physics[2]
        terminated = (jnp.abs(x) > params.x_threshold) | (jnp.abs(theta) > params.theta_threshold_radians)
        truncated = stepped.time >= params.max_episode_steps
        fresh = CartPoleState(reset_physics, params.distractor_scale * z, jnp.zeros((), jnp.int32))
        final_obs = _observe(stepped)
        next_state = select_tree(terminated | truncated, fresh, stepped)
        reward = jnp.ones((), params.dtype)
        return _observe(next_state), next_state, reward, terminated, truncated, {"final_obs": final_obs}


def make_jax_cartpole(
    num_distractors: int = 10, distractor: str = "gaussian", distractor_scale: float = 1.0
) -> tuple[JaxCartPoleDistractor, CartPoleParams]:
    """The pure-JAX twin of ``mbrl_bench/CartPoleDistractor-v0`` and its float32 params.

    Takes the registered env's kwargs (the registry's ``make_jax`` calls it); ValueError on a bad
    distractor count, kind or scale, listing the valid kinds.
    """
    env = JaxCartPoleDistractor(DistractorSpec(num_distractors, distractor, distractor_scale))
    return env, env.default_params()
