"""``--env-backend jax``: a cell's env steps, learning and evaluation as jitted XLA loops.

For envs with a pure-JAX twin (``mbrl_bench.make_jax``: CartPoleDistractor and the tabular ids), a
training segment is ONE jitted call: a ``lax.fori_loop`` whose body steps the twin of every seed,
runs the agent's ``update`` on the transition and its ``act`` on the next observation, all
``jax.vmap``-ed over seeds (the PureJaxRL pattern), with no host round trip per step. An evaluation
is one more jitted call: every seed x episode stepped together in a ``lax.while_loop`` until all
episodes ended.

Everything else is the Gymnasium backend's (``mbrl_bench.harness.runner``): the runner's loop,
the curve rows and their metric means, divergence detection from the carry's flags, checkpoints
written before curves, heartbeats between segments, and the agent's keys (init, start and per-step
update/act keys are the same functions of the seed index and step). What differs is the env's
randomness, which comes from JAX keys instead of NumPy generators:

- training: the first reset uses ``PRNGKey(derive_seed(seed, _TRAIN_ENV, 0))`` and step ``t`` the key
  ``fold_in(PRNGKey(derive_seed(seed, _JAX_TRAIN_STEPS)), t)``; the twin auto-resets;
- evaluation episode ``j`` at env step ``s``: reset with ``PRNGKey(derive_seed(seed, _EVAL_ENV, s, j))``
  and its ``t``-th step with ``fold_in`` of that key and ``t``.

So the two backends give statistically equal, not identical, returns. Resuming is exact: the
checkpoint stores the twin's state (a small pytree) beside the agent's, and every key is a function
of the seed index and the step.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import mbrl_bench
from mbrl_bench.baselines.api import Agent, action_kind
from mbrl_bench.envs.registration import all_entries
from mbrl_bench.harness.cells import CellSpec
from mbrl_bench.harness.runner import (
    _AGENT_INIT,
    _EVAL_ENV,
    _EVAL_KEY,
    _START_KEY,
    _STEP_KEYS,
    _TRAIN_ENV,
    CHECKPOINT_FORMAT,
    HEARTBEAT_S,
    KEY_BLOCK,
    Carry,
    SeedBatch,
    _block_keys,
    _functions,
    _seed_keys_jit,
    _to_host,
    checkpoint_step,
    derive_seed,
    metric_carry,
    restore_carry,
    stack_checkpoint_leaves,
)

BACKENDS: tuple[str, ...] = ("auto", "gymnasium", "jax")
"""``--env-backend`` choices: ``auto`` is ``jax`` where every env of the run has a twin."""
_JAX_TRAIN_STEPS = 7
"""Stream of the twin's per-step training keys (the runner's streams are 1-6)."""
_PROGRAMS: OrderedDict[tuple[Any, ...], tuple[Any, Any]] = OrderedDict()
_PROGRAMS_KEPT = 4
"""Jitted (train, evaluate) pairs kept per process, like the runner's ``_FUNCTIONS_KEPT``."""


def has_twin(env_id: str) -> bool:
    """Whether ``env_id`` has a pure-JAX twin (``mbrl_bench.make_jax``)."""
    return any(e.env_id == env_id and e.jax_twin for e in all_entries())


def twin_ids() -> list[str]:
    """Ids with a pure-JAX twin, in listing order."""
    return [e.env_id for e in all_entries() if e.jax_twin]


class JaxSeedBatch(SeedBatch):
    """The seeds of one cell on the env's pure-JAX twin; same interface and files as ``SeedBatch``."""

    def __init__(self, agent: Agent, spec: CellSpec, seeds: Sequence[int], batched: bool = True) -> None:
        if not batched and len(seeds) != 1:
            raise ValueError(f"an unbatched JaxSeedBatch holds one seed, got {len(seeds)}")
        self.agent, self.spec, self.seeds, self.batched = agent, spec, list(seeds), batched
        n = len(self.seeds)
        self.env, self.params = mbrl_bench.make_jax(spec.env_id, **spec.env_kwargs)
        space = agent.env.observation_space
        self.discrete = action_kind(agent.env.action_space) == "discrete"
        self._obs_shape = tuple(space.shape)
        self._obs_dtype = jax.dtypes.canonicalize_dtype(space.dtype)
        # Transitions carry the same shapes and dtypes as on the Gymnasium backend.
        self._reward_dtype = jax.dtypes.canonicalize_dtype(np.float64)
        self._f = _functions(
            spec,
            agent,
            n,
            batched,
            np.zeros((n, 2, *self._obs_shape), self._obs_dtype),
            np.zeros((n, 3), self._reward_dtype),
        )
        self.metric_names = self._f.metric_names
        self.alive = [True] * n
        self.diverged: dict[int, dict[str, Any]] = {}
        self.rows: list[list[dict[str, Any]]] = [[] for _ in range(n)]
        self.env_step = 0
        self.wall_time = 0.0
        self._last_row_step = 0
        self.on_heartbeat = None
        self.heartbeat_s = HEARTBEAT_S
        self._next_beat = 0.0
        self._step_base = self._seed_keys(_STEP_KEYS)
        self._env_base = self._seed_keys(_JAX_TRAIN_STEPS)
        key = (type(agent), json.dumps(spec.agent_config, sort_keys=True), spec.env_label, spec.capacity, n,
               batched, jax.config.jax_enable_x64)  # fmt: skip
        if key not in _PROGRAMS:  # as runner._functions: resumed cells and seed groups reuse them
            _PROGRAMS[key] = (
                jax.jit(self._build_train(), donate_argnums=(0, 1, 2)),
                jax.jit(self._build_evaluate()),
            )
            while len(_PROGRAMS) > _PROGRAMS_KEPT:
                _PROGRAMS.popitem(last=False)
        _PROGRAMS.move_to_end(key)
        self._train, self._evaluate = _PROGRAMS[key]

    # ------------------------------------------------------------------------------ jitted programs
    def _adapt(self, obs: jax.Array, batch_dims: int = 1) -> jax.Array:
        """Twin observations (``batch_dims`` leading dims) in the Gymnasium space's shape and dtype.

        The tabular twins observe ``[s]``, their Gymnasium envs a scalar ``s``.
        """
        return obs.reshape(obs.shape[:batch_dims] + self._obs_shape).astype(self._obs_dtype)

    def _build_train(self) -> Any:
        env, params, f = self.env, self.params, self._f
        adapt, reward_dtype = self._adapt, self._reward_dtype

        lifted_step = f._lift(f.seed_step, (0, 0, 0, 0, 0, 0, None))  # the Gymnasium backend's step
        env_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

        def train(state, env_state, carry, step_base, env_base, n_steps):
            def body(_, c):
                state, env_state, carry, block = c
                block = jax.lax.cond(
                    carry.step % KEY_BLOCK == 0,
                    lambda: _block_keys(step_base, carry.step // KEY_BLOCK),
                    lambda: block,
                )
                keys = jax.lax.dynamic_index_in_dim(block, carry.step % KEY_BLOCK, keepdims=False)
                step = carry.step + 1
                env_keys = jax.vmap(jax.random.fold_in, in_axes=(0, None))(env_base, step)
                obs, env_state, reward, terminated, truncated, info = env_step(
                    env_keys, env_state, carry.action, params
                )
                obs_pair = jnp.stack([adapt(info["final_obs"]), adapt(obs)], axis=1)
                rtt = jnp.stack([reward, terminated, truncated], axis=1).astype(reward_dtype)
                state, obs, action, finite, means = lifted_step(
                    state, keys, carry.obs, carry.action, obs_pair, rtt, step
                )
                newly_bad = (carry.bad_step < 0) & ~jnp.all(finite, axis=-1)
                carry = Carry(
                    obs,
                    action,
                    step,
                    jnp.where(newly_bad, step, carry.bad_step),
                    jnp.where(newly_bad[:, None], ~finite, carry.bad_metrics),
                    carry.metric_sum + means,
                )
                return state, env_state, carry, block

            block = _block_keys(step_base, carry.step // KEY_BLOCK)
            state, env_state, carry, _ = jax.lax.fori_loop(0, n_steps, body, (state, env_state, carry, block))
            return state, env_state, carry

        return train

    def _build_evaluate(self) -> Any:
        env, params, f, adapt = self.env, self.params, self._f, self._adapt
        reset = jax.vmap(jax.vmap(env.reset, in_axes=(0, None)), in_axes=(0, None))
        step = jax.vmap(jax.vmap(env.step, in_axes=(0, 0, 0, None)), in_axes=(0, 0, 0, None))
        fold = jax.vmap(jax.vmap(jax.random.fold_in, in_axes=(0, None)), in_axes=(0, None))

        def evaluate(state, reset_keys, act_keys, alive):
            obs, env_state = reset(reset_keys, params)
            n, e = alive.shape[0], reset_keys.shape[1]
            active = jnp.broadcast_to(alive[:, None], (n, e))
            returns = jnp.zeros((n, e), self._reward_dtype)

            def body(c):
                t, obs, env_state, keys, returns, active = c
                actions, keys = f.eval_act(state, adapt(obs, 2), keys)
                obs, env_state, reward, terminated, truncated, _ = step(
                    fold(reset_keys, t + 1), env_state, actions, params
                )
                returns = returns + jnp.where(active, reward, 0).astype(returns.dtype)
                return t + 1, obs, env_state, keys, returns, active & ~(terminated | truncated)

            c = (jnp.int32(0), obs, env_state, act_keys, returns, active)
            return jax.lax.while_loop(lambda c: jnp.any(c[-1]), body, c)[4]

        return evaluate

    # ---------------------------------------------------------------------------- starting, resuming
    def _train_reset(self) -> tuple[jax.Array, Any]:
        keys = self._seed_keys(_TRAIN_ENV, 0)
        return jax.vmap(self.env.reset, in_axes=(0, None))(keys, self.params)

    def start(self) -> None:
        """Fresh start: init the agents, reset the twins, pick the first actions."""
        self.state = self._f.init(self._seed_keys(_AGENT_INIT))
        obs, self.env_state = self._train_reset()
        obs = self._adapt(obs)
        n = len(self.seeds)
        action = self._f.start(self.state, self._seed_keys(_START_KEY), obs)
        self.carry = Carry(
            obs,
            action,
            jnp.int32(0),
            jnp.full(n, -1, jnp.int32),
            *metric_carry(n, self.metric_names),
        )

    def restore(self, payloads: Sequence[dict[str, Any]]) -> None:
        """Resume from one checkpoint payload per seed (all at the same env step)."""
        self.env_step = checkpoint_step(payloads, "JAX-backend ", "env_state")
        # Shapes and dtypes only, as SeedBatch.restore: no initialiser runs on a resume.
        template = jax.eval_shape(self._f.init, self._seed_keys(_AGENT_INIT))
        self.state = stack_checkpoint_leaves(template, [p["agent_state"] for p in payloads], self.batched)
        env_template = jax.eval_shape(lambda: self._train_reset()[1])
        self.env_state = stack_checkpoint_leaves(env_template, [p["env_state"] for p in payloads], True)
        for i, p in enumerate(payloads):
            self.rows[i] = list(p["rows"])
            self.diverged.update({self.seeds[i]: p["diverged"]} if p["diverged"] else {})
            self.alive[i] = p["diverged"] is None
        self.wall_time = float(payloads[0]["wall_time_s"])
        self._last_row_step = self.env_step
        self.carry = restore_carry([p["carry"] for p in payloads], self.env_step, self.metric_names)

    # ------------------------------------------------------------------------------------ the hot loop
    def train(self, n_steps: int) -> None:
        """Take ``n_steps`` env steps per seed, learning after each: one jitted call."""
        t0 = time.perf_counter()
        self._beat(self.env_step)
        self.state, self.env_state, self.carry = self._train(
            self.state, self.env_state, self.carry, self._step_base, self._env_base, jnp.int32(n_steps)
        )
        jax.block_until_ready(self.carry.action)
        self.env_step += n_steps
        self.wall_time += time.perf_counter() - t0

    def evaluate(self) -> np.ndarray:
        """Returns of ``eval_episodes`` greedy episodes per seed, shape [seeds, E]; dead seeds NaN."""
        e = self.spec.eval_episodes
        self._beat(self.env_step)
        reset_keys, act_keys = (
            jax.vmap(_seed_keys_jit)(
                np.array(
                    [[derive_seed(s, stream, self.env_step, j) for j in range(e)] for s in self.seeds],
                    np.uint32,
                )
            )
            for stream in (_EVAL_ENV, _EVAL_KEY)
        )
        alive = np.array(self.alive)
        returns = np.array(self._evaluate(self.state, reset_keys, act_keys, alive), dtype=np.float64)
        returns[~alive] = np.nan
        return returns

    # --------------------------------------------------------------------------------- checkpoints
    def payloads(self) -> list[dict[str, Any]]:
        """One checkpoint payload per seed: the agent's and the twin's state, the carry, the rows."""
        leaves = [_to_host(x) for x in jax.tree.leaves(self.state)]
        env_leaves = [_to_host(x) for x in jax.tree.leaves(self.env_state)]
        carry = {k: np.array(v) for k, v in self.carry._asdict().items() if k != "step"}
        return [
            {
                "format": CHECKPOINT_FORMAT,
                "env_backend": "jax",
                "seed": seed,
                "env_step": self.env_step,
                "wall_time_s": self.wall_time,
                "rows": self.rows[i],
                "agent_state": [x[i] if self.batched else x for x in leaves],
                "env_state": [x[i] for x in env_leaves],
                "carry": {k: v[i] for k, v in carry.items()},
                "diverged": self.diverged.get(seed),
            }
            for i, seed in enumerate(self.seeds)
        ]

    def close(self) -> None:
        """Nothing to close: the twins hold no resources."""
