"""Distractor observation dimensions: irrelevant to control, appended to a task's observation.

Three kinds, each a process over ``num_distractors`` independent-looking dimensions:

- ``gaussian``: i.i.d. N(0, scale^2), redrawn every step (the OMD code's ``--dim_distract``).
- ``random_walk``: x_0 ~ N(0, scale^2), x_{t+1} = x_t + N(0, scale^2). Unbounded and non-stationary.
- ``linear``: a stable linear dynamical system x_{t+1} = A x_t + N(0, (1 - rho^2) scale^2) with A a
  block-diagonal of rotations scaled by ``rho`` < 1, started from its stationary law N(0, scale^2):
  perfectly predictable in distribution, and irrelevant to reward and termination.

All three carry Gaussian noise, so their values are unbounded: observation spaces built from them say
so with infinite bounds. ``DistractorSpec`` holds the parameters; ``DistractorProcess`` is the NumPy
implementation; ``DistractorMixin`` builds registered envs with distractors (so ``env.unwrapped`` is
the whole task) and ``AppendDistractors`` is the wrapper for any other flat-Box env. Seeded resets make
the distractors deterministic. The pure-JAX twins use the same spec and matrix.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np

DISTRACTOR_KINDS: tuple[str, ...] = ("gaussian", "random_walk", "linear")
LINEAR_RHO = 0.95
"""Spectral radius of the ``linear`` distractor's transition matrix."""
NOISE_BLOCK = 256
"""Most steps of distractor noise drawn at once: one RNG call per block keeps the per-step cost tiny."""
FIRST_NOISE_BLOCK = 8
"""Steps in the first block after a seeded reset; blocks then double up to ``NOISE_BLOCK``, so envs
reseeded every episode (22 steps under a random CartPole policy) don't pay for a whole block each."""


@dataclass(frozen=True)
class DistractorSpec:
    """Validated distractor parameters; raises ``ValueError`` naming the bad value and valid choices."""

    num_distractors: int = 10
    kind: str = "gaussian"
    scale: float = 1.0

    def __post_init__(self) -> None:
        n = self.num_distractors
        if isinstance(n, bool) or not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"num_distractors must be an integer >= 0, got {n!r}")
        if self.kind not in DISTRACTOR_KINDS:
            raise ValueError(
                f"unknown distractor kind {self.kind!r}; valid kinds: {', '.join(DISTRACTOR_KINDS)}"
            )
        scale = self.scale
        if (
            isinstance(scale, bool)
            or not isinstance(scale, int | float | np.number)
            or not (np.isfinite(scale) and scale > 0)
        ):
            raise ValueError(f"distractor_scale must be a finite number > 0, got {scale!r}")
        object.__setattr__(self, "num_distractors", int(n))
        object.__setattr__(self, "scale", float(scale))

    @property
    def noise_std(self) -> float:
        """Standard deviation of the per-step noise."""
        if self.kind == "linear":
            return self.scale * float(np.sqrt(1.0 - LINEAR_RHO**2))
        return self.scale


def linear_transition_matrix(num_distractors: int, rho: float = LINEAR_RHO) -> np.ndarray:
    """Block-diagonal matrix of 2x2 rotations scaled by ``rho`` (a lone last dim gets ``rho``).

    The rotation angles are spread over (0, pi/2] so the dimensions oscillate at different rates.
    Orthogonal blocks times ``rho`` keep the stationary covariance exactly ``scale^2 * I``.
    """
    a = np.zeros((num_distractors, num_distractors))
    num_blocks = num_distractors // 2
    for b in range(num_blocks):
        angle = (b + 1) * (np.pi / 2) / num_blocks
        c, s = np.cos(angle), np.sin(angle)
        a[2 * b : 2 * b + 2, 2 * b : 2 * b + 2] = [[c, -s], [s, c]]
    if num_distractors % 2:
        a[-1, -1] = 1.0
    return rho * a


class DistractorProcess:
    """NumPy distractor process drawing from a caller-supplied generator (the env's ``np_random``).

    Noise is drawn in blocks, ``FIRST_NOISE_BLOCK`` steps after a drop, doubling up to ``NOISE_BLOCK``.
    A reset drops the rest of the block only when the generator was just reseeded (so a seeded episode
    depends on its seed alone); otherwise the next episode goes on using it, which keeps the per-step
    cost of short episodes low.
    """

    def __init__(self, spec: DistractorSpec) -> None:
        self.spec = spec
        n = spec.num_distractors
        self._kind = spec.kind
        self._matrix_t = linear_transition_matrix(n).T if spec.kind == "linear" else None
        self._noise = np.empty((0, n))
        self._cursor = 0
        self._block_len = FIRST_NOISE_BLOCK
        self.value = np.zeros(n)

    def reset(self, rng: np.random.Generator, *, reseeded: bool = True) -> np.ndarray:
        """Draw the initial distractor values; if ``reseeded``, drop noise drawn before."""
        if reseeded:
            self._noise = np.empty((0, self.spec.num_distractors))
            self._cursor = 0
            self._block_len = FIRST_NOISE_BLOCK
        self.value = rng.normal(0.0, self.spec.scale, size=self.spec.num_distractors)
        return self.value

    def step(self, rng: np.random.Generator) -> np.ndarray:
        """Advance one step and return the new values."""
        if self._cursor == len(self._noise):
            shape = (self._block_len, self.spec.num_distractors)
            self._noise = rng.normal(0.0, self.spec.noise_std, size=shape)
            self._block_len = min(2 * self._block_len, NOISE_BLOCK)
            self._cursor = 0
        noise = self._noise[self._cursor]
        self._cursor += 1
        if self._kind == "gaussian":
            self.value = noise
        elif self._kind == "random_walk":
            self.value = self.value + noise
        else:
            self.value = self.value @ self._matrix_t + noise
        return self.value


def _extended_box(base: gym.spaces.Box, num_distractors: int) -> gym.spaces.Box:
    """``base`` with ``num_distractors`` unbounded dims appended (Gaussian noise has no bound)."""
    if not isinstance(base, gym.spaces.Box) or len(base.shape) != 1:
        raise ValueError(f"distractors need a flat Box observation space, got {base}")
    low = np.concatenate([base.low, np.full(num_distractors, -np.inf)]).astype(base.dtype)
    high = np.concatenate([base.high, np.full(num_distractors, np.inf)]).astype(base.dtype)
    return gym.spaces.Box(low, high, dtype=base.dtype)


class DistractorMixin:
    """Mixin for a ``gymnasium.Env`` subclass: appends distractors to its observations.

    Put it first in the bases (``class X(DistractorMixin, SomeEnv)``) and call
    ``self._init_distractors(spec)`` at the end of ``__init__``. Distractors are drawn from the env's
    own ``np_random`` after the base env's reset draws, so the base env's initial states for a seed
    are unchanged and ``num_distractors=0`` reproduces the base env exactly.
    """

    def _init_distractors(self, spec: DistractorSpec) -> None:
        self.distractor_spec = spec
        self._distractors = DistractorProcess(spec)
        self.base_obs_dim = int(self.observation_space.shape[0])
        self.observation_space = _extended_box(self.observation_space, spec.num_distractors)
        self._obs_shape, self._obs_dtype = self.observation_space.shape, self.observation_space.dtype

    def _append(self, obs: np.ndarray, distractors: np.ndarray) -> np.ndarray:
        out = np.empty(self._obs_shape, dtype=self._obs_dtype)
        out[: self.base_obs_dim] = obs
        out[self.base_obs_dim :] = distractors
        return out

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = super().reset(seed=seed, options=options)
        return self._append(obs, self._distractors.reset(self.np_random, reseeded=seed is not None)), info

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        out = np.empty(self._obs_shape, dtype=self._obs_dtype)  # ``_append`` inlined: the hot path
        out[: self.base_obs_dim] = obs
        out[self.base_obs_dim :] = self._distractors.step(self.np_random)
        return out, reward, terminated, truncated, info


class AppendDistractors(gym.Wrapper):
    """Observation wrapper appending distractor dims to any flat-Box-observation env.

    The wrapper has its own generator, seeded from the seed given to ``reset`` (mixed with a fixed
    salt, so its stream is not the inner env's), and leaves the inner env's randomness untouched.
    """

    _SALT = 0x5EED

    def __init__(
        self,
        env: gym.Env,
        num_distractors: int = 10,
        distractor: str = "gaussian",
        distractor_scale: float = 1.0,
    ) -> None:
        super().__init__(env)
        self.distractor_spec = DistractorSpec(num_distractors, distractor, distractor_scale)
        self._distractors = DistractorProcess(self.distractor_spec)
        self.base_obs_dim = int(env.observation_space.shape[0])
        self.observation_space = _extended_box(env.observation_space, num_distractors)
        self._rng = np.random.default_rng()

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if seed is not None:
            self._rng = np.random.default_rng([seed, self._SALT])
        return self._with(obs, self._distractors.reset(self._rng, reseeded=seed is not None)), info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        return self._with(obs, self._distractors.step(self._rng)), reward, terminated, truncated, info

    def _with(self, obs: np.ndarray, distractors: np.ndarray) -> np.ndarray:
        return np.concatenate([obs, distractors]).astype(self.observation_space.dtype, copy=False)
