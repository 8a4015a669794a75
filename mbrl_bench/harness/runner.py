"""Running one cell: all its seeds in one process, the learner batched over seeds.

Per env step the harness makes ONE jitted call: the agent's ``update`` on the transition just taken,
then its ``act`` on the next observation, ``jax.vmap``-ed over the stacked per-seed states (``step``
unbatched, see ``mbrl_bench.baselines.api``). Between two calls it steps one Gymnasium env per seed.
The call also folds an "all metrics finite" flag and the running sum of the agent's metrics into its
carry, read only at evaluations, so divergence detection and metric logging cost no host sync per
step. Each curve row holds, beside the evaluation return, every agent metric averaged over the training
steps since the previous evaluation (NaN at step 0).

Determinism and resume. Every random choice is derived from the seed index: the agent's init key,
its action/update keys (drawn per block of steps from the seed index and the step), the seeds of
seeded training resets and of every evaluation episode. At every evaluation each seed's checkpoint
stores the agent state, the pending action and how to rebuild its env: the seed of its last seeded
reset and the actions since then (the first reset after each checkpoint is seeded).
Resuming resets the env with that seed and replays the actions (resetting unseeded where an episode
ended), which restores any deterministic Gymnasium env exactly (pickling does not: MuJoCo envs pickle
their constructor arguments, not their simulator state), so a resumed run writes the same curve as an
uninterrupted one. The checkpoint is written first and curve.csv is then rewritten from it, so a
crash at any point neither loses nor duplicates rows.
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import socket
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import filelock
import jax
import jax.numpy as jnp
import numpy as np

import mbrl_bench
from mbrl_bench.baselines.api import Agent, Transition, action_kind
from mbrl_bench.harness import store
from mbrl_bench.harness.cells import CellSpec, build_agent, check_stored_config
from mbrl_bench.harness.config import cpu_model, run_metadata
from mbrl_bench.harness.errors import ResumeError
from mbrl_bench.harness.threefry import use_unrolled_threefry

use_unrolled_threefry()  # the same random bits, fewer XLA thunks per step (see harness.threefry)

CHECKPOINT_FORMAT = 2
"""Version of checkpoint.pkl's payload (2: the carry holds the metric sums)."""
PROGRESS_CHUNK = 1000
"""Env steps between two progress reports inside a training segment."""

KEY_BLOCK = 1024
"""Per-step agent keys are drawn for this many steps at once (one vectorised hash, not one per step)."""
HEARTBEAT_S = 30.0
"""Seconds of training between two heartbeats in a running seed's status.json (``heartbeat_at``,
``heartbeat_step``): frequent enough for a stall timeout of minutes, rare enough to cost nothing (one
small atomic write per seed). A single jitted call longer than this delays the next heartbeat."""

_MASK64 = (1 << 64) - 1
# Streams of derived randomness, so no two uses of a seed index ever share random numbers.
_TRAIN_ENV, _EVAL_ENV, _AGENT_INIT, _START_KEY, _STEP_KEYS, _EVAL_KEY = 1, 2, 3, 4, 5, 6


def derive_seed(*parts: int) -> int:
    """A 32-bit seed mixed from integers with SplitMix64: cheap, deterministic, well spread."""
    h = 0x9E3779B97F4A7C15
    for p in parts:
        h = (h ^ (p & _MASK64)) & _MASK64
        h = ((h ^ (h >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
        h = ((h ^ (h >> 27)) * 0x94D049BB133111EB) & _MASK64
        h ^= h >> 31
    return h & 0xFFFFFFFF


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _heartbeat(env_step: int) -> dict[str, Any]:
    """status.json fields of a heartbeat: milliseconds, so short test timeouts are measured exactly."""
    return {"heartbeat_at": datetime.now(UTC).isoformat(timespec="milliseconds"), "heartbeat_step": env_step}


@dataclass(frozen=True)
class ProgressEvent:
    """A progress report from a running cell (picklable: it crosses process boundaries)."""

    key: str
    env_step: int
    total: int
    last_return: float | None
    """Mean over live seeds of the latest evaluation return."""
    state: str
    """running, done, diverged or failed (from the cell); stalled (from an executor that killed it)."""
    note: str = ""
    """A one-line explanation (why a cell stalled and what happens next)."""


ProgressFn = Callable[[ProgressEvent], None]


@dataclass(frozen=True)
class CellResult:
    """How a cell ended in this call of ``run_cell``."""

    key: str
    state: str
    """done, diverged (at least one seed diverged, the others done), failed, or busy (another process
    holds the cell's lock)."""
    seed_states: dict[int, str]
    curves: dict[int, list[dict[str, Any]]]
    """curve.csv rows of every seed, as written."""
    error: str | None = None
    skipped: bool = False
    """True when the cell was already finished on disk and nothing ran."""


class Carry(NamedTuple):
    """What the jitted step carries between env steps, batched over seeds except ``step``."""

    obs: jax.Array
    """The observation the pending action was chosen for (the next transition's ``obs``)."""
    action: jax.Array
    step: jax.Array
    """Env steps taken so far (unbatched)."""
    bad_step: jax.Array
    """First step whose metrics were not all finite, -1 if none."""
    bad_metrics: jax.Array
    """Which metrics were not finite at ``bad_step`` ([seeds, metric_slots]; see ``metric_slots``)."""
    metric_sum: jax.Array
    """Per seed, the sum of each metric (its mean over the leaf) over the steps since the last row."""


def metric_slots(names: Sequence[str]) -> int:
    """Width of the carry's per-metric arrays: one slot per metric, and one unused slot for an agent
    without metrics (``random``, ``zero``). A zero-size array among a jitted call's arguments sends
    every call down JAX's slow dispatch path: the random agent's step took 60 us instead of 14 us."""
    return max(1, len(names))


def metric_carry(n: int, names: Sequence[str]) -> tuple[jax.Array, jax.Array]:
    """Fresh ``bad_metrics`` and ``metric_sum`` of ``n`` seeds."""
    return jnp.zeros((n, metric_slots(names)), bool), jnp.zeros((n, metric_slots(names)), jnp.float32)


def stack_metric_carry(
    carries: Sequence[dict[str, Any]], names: Sequence[str]
) -> tuple[jax.Array, jax.Array]:
    """``bad_metrics`` and ``metric_sum`` of checkpointed carries, padded to ``metric_slots`` (a
    checkpoint of a metric-less agent written before the unused slot existed holds width 0)."""
    width = metric_slots(names)

    def stack(field: str) -> jax.Array:
        x = np.stack([c[field] for c in carries])
        if x.ndim != 2 or x.shape[1] > width:
            raise ResumeError(
                f"checkpoint carry {field} has shape {x.shape}, the agent has {len(names)} metrics"
            )
        return jnp.asarray(np.pad(x, ((0, 0), (0, width - x.shape[1]))))

    return stack("bad_metrics"), stack("metric_sum")


def restore_carry(carries: Sequence[dict[str, Any]], env_step: int, names: Sequence[str]) -> Carry:
    """The jitted step's carry rebuilt from the seeds' checkpointed carries (either backend)."""
    stacked = lambda field: jnp.asarray(np.stack([c[field] for c in carries]))
    return Carry(
        stacked("obs"),
        stacked("action"),
        jnp.int32(env_step),
        stacked("bad_step"),
        *stack_metric_carry(carries, names),
    )


def _is_key(leaf: Any) -> bool:
    return jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _to_host(leaf: jax.Array) -> np.ndarray:
    return np.array(jax.random.key_data(leaf) if _is_key(leaf) else leaf)


def stack_checkpoint_leaves(template: Any, per_seed: Sequence[Sequence[Any]], batched: bool) -> Any:
    """A pytree shaped like ``template`` (arrays or ``jax.ShapeDtypeStruct``s) from one checkpointed
    leaf list per seed, stacked over seeds when ``batched``; ResumeError names a leaf of the wrong shape."""
    template_leaves, treedef = jax.tree.flatten(template)
    leaves = []
    for j, t in enumerate(template_leaves):
        seeds = [np.asarray(p[j]) for p in per_seed]
        stacked = np.stack(seeds) if batched else seeds[0]
        if _is_key(t):
            impl = jax.random.key_impl(jnp.zeros((), t.dtype))
            leaves.append(jax.random.wrap_key_data(stacked, impl=impl))
            continue
        if stacked.shape != t.shape:
            raise ResumeError(f"checkpoint leaf {j} has shape {stacked.shape}, the run expects {t.shape}")
        leaves.append(jnp.asarray(stacked, dtype=t.dtype))
    return jax.tree.unflatten(treedef, leaves)


_seed_keys_jit = jax.jit(jax.vmap(jax.random.PRNGKey))


@jax.jit
def _block_keys(base: jax.Array, index: jax.Array) -> jax.Array:
    """Keys of ``KEY_BLOCK`` steps for every seed: [KEY_BLOCK, seeds, 2 (update, act), key]."""

    def one(key: jax.Array) -> jax.Array:
        keys = jax.random.split(jax.random.fold_in(key, index), 2 * KEY_BLOCK)
        return keys.reshape(KEY_BLOCK, 2, *keys.shape[1:])

    return jnp.swapaxes(jax.vmap(one)(base), 0, 1)


def _seed_step(agent: Agent, state, keys, obs, action, obs_pair, rtt, step):
    """One seed's env step as both backends run it: ``update`` on the real transition (obs, action,
    reward, next obs, terminated, truncated from ``obs_pair[0]`` and ``rtt``), then ``act`` on the obs
    the env continues from (``obs_pair[1]``: the reset one after an episode end); returns the new state,
    that obs, the next action, and per metric whether it is finite and its mean."""
    transition = Transition(obs, action, rtt[0], obs_pair[0], rtt[1] > 0.5, rtt[2] > 0.5)
    state, metrics = agent.update(state, transition, keys[0], step)
    next_action = agent.act(state, obs_pair[1], keys[1], True)
    leaves = jax.tree.leaves(metrics)
    if not leaves:  # the unused slot of ``metric_slots``
        return state, obs_pair[1], next_action, jnp.ones(1, bool), jnp.zeros(1, jnp.float32)
    finite = jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])
    means = jnp.stack([jnp.mean(x).astype(jnp.float32) for x in leaves])
    return state, obs_pair[1], next_action, finite, means


class _Functions:
    """The jitted functions of one agent over ``n`` seeds: vmapped, or on one seed when unbatched."""

    def __init__(self, agent: Agent, n: int, batched: bool, obs: np.ndarray, rtt: np.ndarray) -> None:
        self.n, self.batched = n, batched
        obs0 = jnp.zeros(obs.shape[2:], obs.dtype)
        reward0 = jnp.zeros((), rtt.dtype)

        def probe(key: jax.Array) -> Any:
            state = agent.init(key)
            action = agent.act(state, obs0, key, True)
            transition = Transition(obs0, action, reward0, obs0, jnp.bool_(False), jnp.bool_(False))
            return agent.update(state, transition, key, jnp.int32(1))[1]

        metrics_shape = jax.eval_shape(probe, jax.random.PRNGKey(0))
        paths = jax.tree_util.tree_flatten_with_path(metrics_shape)[0]
        self.metric_names = [jax.tree_util.keystr(p).strip("[]'\"") for p, _ in paths]

        self.seed_step = functools.partial(_seed_step, agent)
        lifted_step = self._lift(self.seed_step, (0, 0, 0, 0, 0, 0, None))

        def fused(state, carry, obs_pair, rtt, block_keys):
            keys = jax.lax.dynamic_index_in_dim(block_keys, carry.step % KEY_BLOCK, keepdims=False)
            step = carry.step + 1
            state, obs, action, finite, means = lifted_step(
                state, keys, carry.obs, carry.action, obs_pair, rtt, step
            )
            newly_bad = (carry.bad_step < 0) & ~jnp.all(finite, axis=-1)
            bad_step = jnp.where(newly_bad, step, carry.bad_step)
            bad_metrics = jnp.where(newly_bad[:, None], ~finite, carry.bad_metrics)
            metric_sum = carry.metric_sum + means
            return state, Carry(obs, action, step, bad_step, bad_metrics, metric_sum), action

        self.fused = jax.jit(fused, donate_argnums=(0, 1))

        def seed_start(state, key, obs):
            return state, agent.act(state, obs, key, True)

        lifted_start = self._lift(seed_start, (0, 0, 0))
        self.start = jax.jit(lambda state, key, obs: lifted_start(state, key, obs)[1])
        init_one = jax.jit(agent.init)

        def init(keys: jax.Array) -> Any:
            # Seed by seed, not vmapped: a vmapped init batches the LAPACK calls of initialisers such
            # as orthogonal (QR), and on a 2-thread CPU jaxlib 0.10's batched LAPACK can deadlock when
            # two such calls run at once. Init runs once per cell, so the loop costs nothing.
            states = [init_one(k) for k in keys]
            return jax.tree.map(lambda *xs: jnp.stack(xs), *states) if batched else states[0]

        self.init = init

        def seed_eval(state, obs, keys):
            split = jax.vmap(jax.random.split)(keys)
            acts = jax.vmap(lambda o, k: agent.act(state, o, k, False))(obs, split[:, 1])
            return state, acts, split[:, 0]

        lifted_eval = self._lift(seed_eval, (0, 0, 0))
        self.eval_act = jax.jit(lambda state, obs, keys: lifted_eval(state, obs, keys)[1:])

        def seed_finite(state):
            leaves = jax.tree.leaves(state)
            checks = [jnp.all(jnp.isfinite(x)) for x in leaves if jnp.issubdtype(x.dtype, jnp.inexact)]
            return state, jnp.stack(checks) if checks else jnp.ones(0, bool)

        lifted_finite = self._lift(seed_finite, (0,))
        self.state_finite = jax.jit(lambda state: lifted_finite(state)[1])

    def _lift(self, fn: Callable[..., Any], in_axes: tuple[int | None, ...]) -> Callable[..., Any]:
        """``fn`` of one seed (state first) over the batch: vmapped, or on the single seed's slice."""
        if self.batched:
            return jax.vmap(fn, in_axes=in_axes, axis_size=self.n)

        def single(*args: Any) -> Any:
            args = tuple(
                a if ax is None or i == 0 else jax.tree.map(lambda x: x[0], a)
                for i, (a, ax) in enumerate(zip(args, in_axes, strict=True))
            )
            out = fn(*args)
            return (out[0], *jax.tree.map(lambda x: x[None], out[1:]))

        return single


_FUNCTIONS: OrderedDict[tuple[Any, ...], _Functions] = OrderedDict()
_FUNCTIONS_KEPT = 4
"""Compiled function sets kept per process: seeds run one by one and resumed cells reuse them."""


def _functions(
    spec: CellSpec, agent: Agent, n: int, batched: bool, obs: np.ndarray, rtt: np.ndarray
) -> _Functions:
    key = (
        type(agent),
        json.dumps(spec.agent_config, sort_keys=True),
        spec.env_label,
        spec.capacity,
        n,
        batched,
    )
    if key not in _FUNCTIONS:
        _FUNCTIONS[key] = _Functions(agent, n, batched, obs, rtt)
        while len(_FUNCTIONS) > _FUNCTIONS_KEPT:
            _FUNCTIONS.popitem(last=False)
    _FUNCTIONS.move_to_end(key)
    return _FUNCTIONS[key]


def checkpoint_step(payloads: Sequence[dict[str, Any]], backend: str, *required: str) -> int:
    """The env step every seed's checkpoint payload is at; ResumeError if they are of another format
    (or lack one of the ``required`` keys) or at different steps."""
    formats = {p.get("format") for p in payloads}
    missing = sorted({key for p in payloads for key in required if key not in p})
    if formats != {CHECKPOINT_FORMAT} or missing:
        found = f"it lacks {', '.join(missing)}" if missing else f"its format is {sorted(map(str, formats))}"
        raise ResumeError(
            f"checkpoint is not in this version's {backend}format ({CHECKPOINT_FORMAT}): {found}; "
            "delete the cell's checkpoint.pkl files to re-run it from scratch"
        )
    steps = {p["env_step"] for p in payloads}
    if len(steps) != 1:
        raise ResumeError(f"checkpoints of one batch are at different env steps: {sorted(steps)}")
    return steps.pop()


class SeedBatch:
    """The seeds of one cell stepped together: one Gymnasium env per seed, the learner batched.

    With ``batched=False`` (agents that declare ``batch_over_seeds = False``) it holds one seed and
    calls the agent's functions unvmapped. Agents' ``act`` must vmap over observations either way:
    evaluation episodes run batched.
    """

    def __init__(self, agent: Agent, spec: CellSpec, seeds: Sequence[int], batched: bool = True) -> None:
        if not batched and len(seeds) != 1:
            raise ValueError(f"an unbatched SeedBatch holds one seed, got {len(seeds)}")
        self.agent, self.spec, self.seeds, self.batched = agent, spec, list(seeds), batched
        n = len(self.seeds)
        self.envs = [mbrl_bench.make(spec.env_id, **spec.env_kwargs) for _ in range(n)]
        self._eval_envs: list[list[Any]] = []
        space = self.envs[0].observation_space
        self.discrete = action_kind(self.envs[0].action_space) == "discrete"
        obs_dtype = jax.dtypes.canonicalize_dtype(space.dtype)
        self._obs = np.zeros((n, 2, *space.shape), dtype=obs_dtype)
        """Per seed: [0] the next observation of the last step, [1] the observation to act on next."""
        self._rtt = np.zeros((n, 3), dtype=jax.dtypes.canonicalize_dtype(np.float64))
        """Per seed: reward, terminated, truncated of the last step."""
        self.alive = [True] * n
        self.diverged: dict[int, dict[str, Any]] = {}
        self.rows: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        self.env_step = 0
        self.wall_time = 0.0
        self._episode = [0] * n
        """Training episodes each seed has finished."""
        self._seeded_at = [0] * n
        """Env step of each seed's last seeded reset: the replay log starts there."""
        self._seed_episode = [0] * n
        """The episode count the last seeded reset's seed was derived from."""
        self._reseed = [True] * n
        """Whether the seed's next reset is seeded (the first one after each checkpoint is)."""
        self._log: list[Any] = []
        self._log_base = 0
        self._key_block: tuple[int, Any] = (-1, None)
        self._last_row_step = 0
        """Env step of the last curve row (the metric sums in the carry start there)."""
        self._f = _functions(spec, agent, n, batched, self._obs, self._rtt)
        self.metric_names = self._f.metric_names
        self.on_heartbeat: Callable[[int], None] | None = None
        """Called with the env step at least every ``heartbeat_s`` seconds of training."""
        self.heartbeat_s = HEARTBEAT_S
        self._next_beat = 0.0

    def _keys_for(self, step: int) -> jax.Array:
        """The update/act keys of env steps ``step + 1 ...`` to the end of their block, [block, seeds, 2].

        Step ``t``'s keys depend only on the seed index and ``t``, so a resumed run draws the same ones.
        """
        index = step // KEY_BLOCK
        if self._key_block[0] != index:
            self._key_block = (index, _block_keys(self._seed_keys(_STEP_KEYS), index))
        return self._key_block[1]

    def _seed_keys(self, stream: int, *extra: int) -> jax.Array:
        return _seed_keys_jit(np.array([derive_seed(s, stream, *extra) for s in self.seeds], dtype=np.uint32))

    def _state_leaf_names(self) -> list[str]:
        paths = jax.tree_util.tree_flatten_with_path(self.state)[0]
        return [
            jax.tree_util.keystr(p)
            for p, x in paths
            if not _is_key(x) and jnp.issubdtype(x.dtype, jnp.inexact)
        ]

    # ---------------------------------------------------------------------------- starting, resuming
    def start(self) -> None:
        """Fresh start: init the agents, reset the envs, pick the first actions."""
        self.state = self._f.init(self._seed_keys(_AGENT_INIT))
        for i in range(len(self.seeds)):
            self._obs[i, 1] = self._seeded_reset(i, 0)
        n = len(self.seeds)
        action = self._f.start(self.state, self._seed_keys(_START_KEY), self._obs[:, 1])
        self.carry = Carry(
            jnp.asarray(self._obs[:, 1]),
            action,
            jnp.int32(0),
            jnp.full(n, -1, jnp.int32),
            *metric_carry(n, self.metric_names),
        )

    def _seeded_reset(self, i: int, at_step: int) -> Any:
        """Reset seed ``i``'s env with a seed derived from its episode count; the replay log restarts.

        Only the first reset after each checkpoint is seeded (seeding costs a new generator, about
        as much as a few env steps); the others continue the env's random stream, which the replay
        of the logged actions reproduces.
        """
        self._seeded_at[i], self._seed_episode[i], self._reseed[i] = at_step, self._episode[i], False
        obs, _ = self.envs[i].reset(seed=derive_seed(self.seeds[i], _TRAIN_ENV, self._episode[i]))
        return obs

    def restore(self, payloads: Sequence[dict[str, Any]]) -> None:
        """Resume from one checkpoint payload per seed (all at the same env step)."""
        self.env_step = checkpoint_step(payloads, "")
        # Shapes and dtypes only: resuming runs no initialiser (jaxlib 0.10's CPU deadlock hung one
        # there, README Known issues), and a checkpoint's state replaces every value anyway.
        template = jax.eval_shape(self._f.init, self._seed_keys(_AGENT_INIT))
        self.state = stack_checkpoint_leaves(template, [p["agent_state"] for p in payloads], self.batched)
        for i, p in enumerate(payloads):
            self.rows[i] = list(p["rows"])
            self.diverged.update({self.seeds[i]: p["diverged"]} if p["diverged"] else {})
            self.alive[i] = p["diverged"] is None
            self._obs[i, 1] = p["replay"]["obs"]
            if self.alive[i]:
                self._replay(i, p["replay"])
        self.wall_time = float(payloads[0]["wall_time_s"])
        self._last_row_step = self.env_step
        self.carry = restore_carry([p["carry"] for p in payloads], self.env_step, self.metric_names)
        # Rebuild the action log from the earliest seeded reset: row t holds each seed's action.
        self._seeded_at = [self.env_step - len(p["replay"]["actions"]) for p in payloads]
        self._log_base = min(self._seeded_at)
        self._log = [
            [
                p["replay"]["actions"][t - s] if t >= s else None
                for p, s in zip(payloads, self._seeded_at, strict=True)
            ]
            for t in range(self._log_base, self.env_step)
        ]

    def _replay(self, i: int, replay: dict[str, Any]) -> None:
        """Bring seed ``i``'s env back to its checkpointed state: the seeded reset, then the actions."""
        self._episode[i] = replay["seed_episode"]
        obs = self._seeded_reset(i, 0)
        for a in replay["actions"]:
            obs, _, terminated, truncated, _ = self.envs[i].step(a)
            if terminated or truncated:
                self._episode[i] += 1
                obs, _ = self.envs[i].reset()
        if self._episode[i] != replay["episodes"] or not np.array_equal(
            np.asarray(obs, dtype=self._obs.dtype), replay["obs"]
        ):
            raise ResumeError(
                f"{self.spec.env_label} did not reproduce seed {self.seeds[i]}'s episodes from its reset "
                "seed and actions, so it cannot be resumed exactly (is it deterministic given its seed?)"
            )
        self._reseed[i] = True

    # ------------------------------------------------------------------------------------ the hot loop
    def train(self, n_steps: int) -> None:
        """Take ``n_steps`` env steps per live seed, learning after each (one jitted call per step)."""
        t0 = time.perf_counter()
        envs, obs_buf, rtt, log = self.envs, self._obs, self._rtt, self._log
        episode, reseed = self._episode, self._reseed
        live = [i for i, a in enumerate(self.alive) if a]
        fused, discrete = self._f.fused, self.discrete
        state, carry = self.state, self.carry
        step = self.env_step
        action = carry.action
        keys = self._keys_for(step)
        beat = self._beat
        for _ in range(n_steps):
            if step % KEY_BLOCK == 0:
                keys = self._keys_for(step)
            host = np.asarray(action)  # waits for the previous step: a heartbeat after it is real progress
            beat(step)
            acts = host.tolist() if discrete else host.copy()
            log.append(acts)
            step += 1
            for i in live:
                obs, reward, terminated, truncated, _ = envs[i].step(acts[i])
                obs_buf[i] = obs
                if terminated or truncated:
                    episode[i] += 1
                    obs_buf[i, 1] = self._seeded_reset(i, step) if reseed[i] else envs[i].reset()[0]
                rtt[i] = reward, terminated, truncated
            state, carry, action = fused(state, carry, obs_buf, rtt, keys)
        self.state, self.carry, self.env_step = state, carry, step
        jax.block_until_ready(action)
        self.wall_time += time.perf_counter() - t0

    def _beat(self, step: int) -> None:
        """Call ``on_heartbeat`` if ``heartbeat_s`` passed since the last heartbeat."""
        if self.on_heartbeat is not None and time.monotonic() >= self._next_beat:
            self.on_heartbeat(step)
            self._next_beat = time.monotonic() + self.heartbeat_s

    # ---------------------------------------------------------------------------------- evaluation
    def check_divergence(self) -> list[int]:
        """Mark live seeds whose metrics or state went non-finite; returns their indices."""
        bad_step = np.asarray(self.carry.bad_step)
        bad_metrics = np.asarray(self.carry.bad_metrics)
        finite = np.asarray(self._f.state_finite(self.state))
        names = None
        newly = []
        for i, alive in enumerate(self.alive):
            if not alive:
                continue
            if bad_step[i] >= 0:
                # an agent without metrics has one unused slot: zip stops at the names
                which = [m for m, bad in zip(self.metric_names, bad_metrics[i], strict=False) if bad]
                reason = f"non-finite metric {', '.join(map(repr, which))} at env step {int(bad_step[i])}"
                at = int(bad_step[i])
            elif not finite[i].all():
                names = names or self._state_leaf_names()
                which = [n for n, ok in zip(names, finite[i], strict=True) if not ok]
                reason = f"non-finite agent state {', '.join(which[:5])} by env step {self.env_step}"
                at = self.env_step
            else:
                continue
            self.alive[i] = False
            self.diverged[self.seeds[i]] = {"env_step": at, "reason": reason}
            newly.append(i)
        return newly

    def evaluate(self) -> np.ndarray:
        """Returns of ``eval_episodes`` greedy (``explore=False``) episodes per seed, shape [seeds, E].

        Episodes run on separate eval envs, reset with seeds derived from the seed index, the env step
        and the episode number; all seeds x episodes are stepped together. Dead seeds get NaN.
        """
        n, e = len(self.seeds), self.spec.eval_episodes
        if not self._eval_envs:
            self._eval_envs = [
                [mbrl_bench.make(self.spec.env_id, **self.spec.env_kwargs) for _ in range(e)]
                for _ in range(n)
            ]
        obs = np.zeros((n, e, *self._obs.shape[2:]), dtype=self._obs.dtype)
        returns = np.full((n, e), np.nan)
        active = [(i, j) for i in range(n) if self.alive[i] for j in range(e)]
        for i, j in active:
            seed = derive_seed(self.seeds[i], _EVAL_ENV, self.env_step, j)
            obs[i, j] = self._eval_envs[i][j].reset(seed=seed)[0]
            returns[i, j] = 0.0
        keys = jax.vmap(_seed_keys_jit)(
            np.array(
                [[derive_seed(s, _EVAL_KEY, self.env_step, j) for j in range(e)] for s in self.seeds],
                dtype=np.uint32,
            )
        )
        while active:
            actions, keys = self._f.eval_act(self.state, obs, keys)
            host = np.asarray(actions)
            self._beat(self.env_step)  # an agent that plans when it acts can evaluate for minutes
            acts = host.tolist() if self.discrete else host
            still = []
            for i, j in active:
                o, reward, terminated, truncated, _ = self._eval_envs[i][j].step(acts[i][j])
                returns[i, j] += reward
                if not (terminated or truncated):
                    obs[i, j] = o
                    still.append((i, j))
            active = still
        return returns

    def record(self, returns: np.ndarray) -> None:
        """Append one curve row per live seed for the current env step, then restart the metric sums.

        The agent's metrics in the row are their means over the env steps since the previous row.
        """
        since = self.env_step - self._last_row_step
        sums = np.asarray(self.carry.metric_sum, dtype=np.float64)
        for i, alive in enumerate(self.alive):
            if alive:
                means = sums[i] / since if since > 0 else np.full(len(self.metric_names), np.nan)
                self.rows[i].append(
                    {
                        "env_step": self.env_step,
                        "eval_return": float(np.mean(returns[i])),
                        "eval_return_std": float(np.std(returns[i])),
                        "eval_episodes": int(returns.shape[1]),
                        "wall_time_s": round(self.wall_time, 6),
                    }
                    | {name: float(m) for name, m in zip(self.metric_names, means, strict=False)}
                )
        self._last_row_step = self.env_step
        self.carry = self.carry._replace(metric_sum=jnp.zeros_like(self.carry.metric_sum))

    # --------------------------------------------------------------------------------- checkpoints
    def payloads(self) -> list[dict[str, Any]]:
        """One checkpoint payload per seed (see the module docstring for what it holds)."""
        leaves = [_to_host(x) for x in jax.tree.leaves(self.state)]
        carry = {k: np.array(v) for k, v in self.carry._asdict().items() if k != "step"}
        out = []
        for i, seed in enumerate(self.seeds):
            start = self._seeded_at[i] - self._log_base
            out.append(
                {
                    "format": CHECKPOINT_FORMAT,
                    "seed": seed,
                    "env_step": self.env_step,
                    "wall_time_s": self.wall_time,
                    "rows": self.rows[i],
                    "agent_state": [x[i] if self.batched else x for x in leaves],
                    "carry": {k: v[i] for k, v in carry.items()},
                    "replay": {
                        "seed_episode": self._seed_episode[i],
                        "episodes": self._episode[i],
                        "actions": [step[i] for step in self._log[start:]] if self.alive[i] else [],
                        "obs": self._obs[i, 1].copy(),
                    },
                    "diverged": self.diverged.get(seed),
                }
            )
        self._reseed = [True] * len(self.seeds)
        live_starts = [s for s, a in zip(self._seeded_at, self.alive, strict=True) if a]
        if live_starts:
            drop = min(live_starts) - self._log_base
            del self._log[:drop]
            self._log_base += drop
        return out

    def close(self) -> None:
        for env in self.envs + [x for row in self._eval_envs for x in row]:
            env.close()


# ------------------------------------------------------------------------------------------ a cell
def write_status(sd: Path, state: str, **fields: Any) -> None:
    """Update a seed's status.json (keeping its other fields); errors are dropped unless failed/diverged."""
    if state not in store.STATES:
        raise ValueError(f"unknown state {state!r}; valid states: {', '.join(store.STATES)}")
    path = sd / store.STATUS_FILE
    old = store.read_json(path) if path.exists() else {}
    status = {
        **old,
        **fields,
        "state": state,
        "updated_at": _now(),
        "pid": os.getpid(),
        "host": socket.gethostname(),
    }
    if state not in ("failed", "diverged"):
        status.pop("error", None)
        status.pop("traceback", None)
    store.write_json(path, status)


def write_pending(spec: CellSpec, out_dir: Path) -> None:
    """Create the cell's seed directories with config.json and a ``pending`` status.json where missing."""
    cell = spec.cell_dir(out_dir)
    for seed in spec.seeds:
        sd = store.seed_dir(cell, seed)
        if not (sd / store.CONFIG_FILE).exists():
            store.write_json(
                sd / store.CONFIG_FILE,
                {**spec.identity(seed), "seeds": len(spec.seeds), **run_metadata(), "created_at": _now()},
            )
        if not (sd / store.STATUS_FILE).exists():
            write_status(sd, "pending", env_step=0, steps=spec.steps)


def _load_agent_module(spec: CellSpec) -> None:
    """Import the module registering the agent (a worker process may not have imported it yet)."""
    if spec.agent_module:
        importlib.import_module(spec.agent_module)


def run_cell(
    spec: CellSpec,
    out_dir: str | os.PathLike[str],
    *,
    progress: ProgressFn | None = None,
    wait_for_lock: bool = False,
    heartbeat_s: float = HEARTBEAT_S,
) -> CellResult:
    """Run (or resume, or skip if finished) one cell under its lock; never raises for agent errors.

    Returns ``state="busy"`` at once if another process holds the cell's lock, unless
    ``wait_for_lock``. Running seeds get a heartbeat in their status.json at least every
    ``heartbeat_s`` seconds of training (executors watch it to detect a hung worker). A Python
    exception inside the cell marks its unfinished seeds ``failed`` with the traceback and returns
    ``state="failed"``. Raises ``ConfigMismatchError`` if the directory holds a different run.
    """
    out = Path(out_dir)
    cell = spec.cell_dir(out)
    lock = store.cell_lock(cell)
    try:
        lock.acquire(timeout=-1 if wait_for_lock else 0)
    except filelock.Timeout:
        return CellResult(spec.key, "busy", {}, {})
    try:
        _load_agent_module(spec)
        check_stored_config(spec, out)
        write_pending(spec, out)
        return _run_locked(spec, cell, progress, heartbeat_s)
    finally:
        lock.release()


def _seed_state(cell: Path, seed: int) -> str:
    path = store.seed_dir(cell, seed) / store.STATUS_FILE
    return store.read_json(path)["state"] if path.exists() else "pending"


def _summary(spec: CellSpec, cell: Path, error: str | None = None, skipped: bool = False) -> CellResult:
    states = {s: _seed_state(cell, s) for s in spec.seeds}
    curves = {}
    for s in spec.seeds:
        path = store.seed_dir(cell, s) / store.CURVE_FILE
        curves[s] = store.read_curve(path) if path.exists() else []
    if "failed" in states.values():
        overall = "failed"
    elif "diverged" in states.values():
        overall = "diverged"
    else:
        overall = "done"
    return CellResult(spec.key, overall, states, curves, error, skipped)


def _run_locked(spec: CellSpec, cell: Path, progress: ProgressFn | None, heartbeat_s: float) -> CellResult:
    todo = [s for s in spec.seeds if _seed_state(cell, s) not in store.FINAL_STATES]
    if not todo:
        return _summary(spec, cell, skipped=True)
    started = _now()
    try:
        agent = build_agent(spec)
        batched = type(agent).batch_over_seeds
        payloads: dict[int, dict[str, Any]] = {}
        for s in spec.seeds:
            path = store.seed_dir(cell, s) / store.CHECKPOINT_FILE
            if path.exists() and (s in todo or _seed_state(cell, s) == "diverged"):
                payloads[s] = store.read_checkpoint(path)
        groups: dict[int, list[int]] = {}
        for s in spec.seeds:
            if s in todo or s in payloads:
                groups.setdefault(payloads[s]["env_step"] if s in payloads else -1, []).append(s)
        batches: list[list[int]] = []
        for _, members in sorted(groups.items()):
            if batched and any(m in todo for m in members):
                batches.append(members)
            elif not batched:
                batches.extend([m] for m in members if m in todo)
        for members in batches:
            with jax.enable_x64(agent.float64):  # the agent's precision (its config may set it)
                _run_batch(
                    spec,
                    agent,
                    cell,
                    members,
                    [payloads[m] for m in members if m in payloads],
                    batched,
                    todo,
                    started,
                    progress,
                    heartbeat_s,
                )
    except Exception as e:
        tb = traceback.format_exc()
        for s in todo:
            sd = store.seed_dir(cell, s)
            if _seed_state(cell, s) not in store.FINAL_STATES:
                write_status(sd, "failed", error=f"{type(e).__name__}: {e}", traceback=tb, ended_at=_now())
        if progress:
            progress(ProgressEvent(spec.key, 0, spec.steps, None, "failed"))
        return _summary(spec, cell, error=f"{type(e).__name__}: {e}")
    return _summary(spec, cell)


def _run_batch(
    spec: CellSpec,
    agent: Agent,
    cell: Path,
    members: list[int],
    payloads: list[dict[str, Any]],
    batched: bool,
    todo: list[int],
    started: str,
    progress: ProgressFn | None,
    heartbeat_s: float = HEARTBEAT_S,
) -> None:
    if spec.env_backend == "jax":
        from mbrl_bench.harness.jax_backend import JaxSeedBatch  # it builds on this module

        batch: SeedBatch = JaxSeedBatch(agent, spec, members, batched=batched)
    else:
        batch = SeedBatch(agent, spec, members, batched=batched)
    dirs = [store.seed_dir(cell, s) for s in members]

    def beat(env_step: int) -> None:
        for s, sd, alive in zip(members, dirs, batch.alive, strict=True):
            if s in todo and alive:
                write_status(sd, "running", **_heartbeat(env_step))

    batch.on_heartbeat, batch.heartbeat_s = beat, heartbeat_s
    try:
        for s, sd in zip(members, dirs, strict=True):
            if s in todo:
                old = store.read_json(sd / store.STATUS_FILE) if (sd / store.STATUS_FILE).exists() else {}
                from_step = payloads[0]["env_step"] if payloads else 0
                write_status(
                    sd,
                    "running",
                    started_at=old.get("started_at") or started,
                    ended_at=None,
                    env_step=from_step,
                    steps=spec.steps,
                    starts=[*old.get("starts", []), _start_record(from_step)],
                    **_heartbeat(from_step),
                )
        if payloads:
            batch.restore(payloads)
        else:
            batch.start()
            batch.record(batch.evaluate())
            _save(batch, dirs, todo)
        points = [p for p in spec.eval_points() if p > batch.env_step]
        for point in points:
            if not any(batch.alive):
                break
            while batch.env_step < point:
                batch.train(min(PROGRESS_CHUNK, point - batch.env_step))
                if progress:
                    progress(
                        ProgressEvent(spec.key, batch.env_step, spec.steps, _last_return(batch), "running")
                    )
            batch.check_divergence()
            batch.record(batch.evaluate())
            _save(batch, dirs, todo)
        for s, sd, alive in zip(members, dirs, batch.alive, strict=True):
            if s in todo and alive:
                write_status(sd, "done", env_step=batch.env_step, steps=spec.steps, ended_at=_now())
        if progress:
            state = "done" if all(batch.alive) else "diverged"
            progress(ProgressEvent(spec.key, batch.env_step, spec.steps, _last_return(batch), state))
    finally:
        batch.close()


def _start_record(from_step: int) -> dict[str, Any]:
    """Where a seed's run goes on from ``from_step``: one entry of status.json's ``starts`` per start
    or resume, since a run resumed on another machine, device or commit may not continue the curve one
    uninterrupted run would draw (same seed, machine and config give the same curve; README, Known
    issues: not across hosts, nor on a GPU with XLA's defaults)."""
    return {
        "started_at": _now(),
        "from_step": from_step,
        "host": socket.gethostname(),
        "cpu_model": cpu_model(),
        "device": jax.devices()[0].device_kind,
        "xla_flags": os.environ.get("XLA_FLAGS"),
        "git_commit": run_metadata()["git_commit"],
    }


def _last_return(batch: SeedBatch) -> float | None:
    last = [rows[-1]["eval_return"] for rows, a in zip(batch.rows, batch.alive, strict=True) if a and rows]
    return float(np.mean(last)) if last else None


def _save(batch: SeedBatch, dirs: list[Path], todo: list[int]) -> None:
    """Checkpoint first, then the curve rebuilt from it, then the status: any crash point is safe."""
    for seed, sd, payload in zip(batch.seeds, dirs, batch.payloads(), strict=True):
        store.write_checkpoint(sd / store.CHECKPOINT_FILE, payload)
        store.write_curve(sd / store.CURVE_FILE, payload["rows"])
        if seed not in todo:
            continue
        if payload["diverged"]:
            if _seed_state(sd.parent, seed) != "diverged":
                write_status(
                    sd,
                    "diverged",
                    error=payload["diverged"]["reason"],
                    traceback=None,
                    env_step=payload["diverged"]["env_step"],
                    ended_at=_now(),
                )
        else:
            write_status(sd, "running", env_step=batch.env_step, **_heartbeat(batch.env_step))
