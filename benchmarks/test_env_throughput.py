"""Environment step throughput: the Gymnasium CartPoleDistractor env and its pure-JAX twin.

Run with ``pytest benchmarks/test_env_throughput.py --benchmark-enable -s`` (without
``--benchmark-enable`` each benchmark runs once, as a smoke test). Results land in the table and in each
benchmark's ``extra_info``:

- Gymnasium: steps/s of ``mbrl_bench/CartPoleDistractor-v0`` (10 gaussian distractors) and of
  ``CartPole-v1``, timed in alternating rounds so both see the same machine load; ``ratio`` is the
  median over rounds of (distractor steps/s) / (CartPole-v1 steps/s). Target: ratio >= 0.75.
- JAX: env steps/s of the twin, ``num_envs`` vmapped copies under one jitted ``lax.scan``, random
  actions, steady state (compiled before timing, ``block_until_ready``). Target: >= 3M steps/s at 1024.

The machine is shared, so single numbers are noisy: read the medians, and compare runs made alike.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import mbrl_bench
from mbrl_bench.envs.jax_cartpole import CartPoleParams, JaxCartPoleDistractor, make_jax_cartpole

GYM_STEPS = 2000
"""Env steps per timed round of a Gymnasium env (about 20-30 ms)."""
GYM_ROUNDS = 50
GYM_RATIO_TARGET = 0.75
JAX_STEPS_PER_ROUND = 200_000
"""Env steps per timed rollout, split as num_envs x (JAX_STEPS_PER_ROUND // num_envs) scan steps."""
JAX_TARGET_AT_1024 = 3e6

assert mbrl_bench.env_ids()  # importing mbrl_bench registers the ids used below


class _GymStepper:
    """Steps one Gymnasium env through pre-drawn random actions, resetting whenever an episode ends.

    Pre-drawing the actions keeps action sampling out of the timing, so the measured cost is the
    env's own ``step`` (with ``gym.make``'s standard wrappers) and ``reset``.
    """

    def __init__(self, env_id: str, seed: int = 0) -> None:
        self.env = gym.make(env_id)
        self.env.reset(seed=seed)
        self.actions = np.random.default_rng(seed).integers(2, size=GYM_STEPS).tolist()
        self.run()  # warm up: Gymnasium's env checker inspects the first steps only

    def run(self) -> None:
        env = self.env
        for action in self.actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()

    def timed_run(self) -> float:
        start = time.perf_counter()
        self.run()
        return time.perf_counter() - start


def test_gymnasium_step_throughput(benchmark) -> None:
    """CartPoleDistractor-v0 (10 gaussian distractors) against CartPole-v1, interleaved round by round."""
    distractor = _GymStepper("mbrl_bench/CartPoleDistractor-v0")
    base = _GymStepper("CartPole-v1")
    distractor_times: list[float] = []
    base_times: list[float] = []

    def timed_distractor_round() -> None:
        distractor_times.append(distractor.timed_run())

    benchmark.group = "gymnasium step"
    benchmark.pedantic(
        timed_distractor_round,
        setup=lambda: base_times.append(base.timed_run()),
        rounds=GYM_ROUNDS,
        warmup_rounds=1,
    )
    # Disabled benchmarks run one round (a smoke test); enabled ones one warm-up round and GYM_ROUNDS.
    pairs = list(zip(base_times, distractor_times, strict=True))[-GYM_ROUNDS:]
    ratio = float(np.median([b / d for b, d in pairs]))
    distractor_rate = GYM_STEPS / float(np.median([d for _, d in pairs]))
    base_rate = GYM_STEPS / float(np.median([b for b, _ in pairs]))
    benchmark.extra_info.update(
        distractor_steps_per_s=distractor_rate,
        cartpole_v1_steps_per_s=base_rate,
        ratio=ratio,
        ratio_target=GYM_RATIO_TARGET,
    )
    print(
        f"\nGymnasium steps/s: CartPoleDistractor-v0 {distractor_rate:,.0f}, CartPole-v1 {base_rate:,.0f}, "
        f"ratio {ratio:.3f} (target >= {GYM_RATIO_TARGET})"
    )
    assert distractor.env.observation_space.shape == (14,) and base.env.observation_space.shape == (4,)


def _random_rollout(
    env: JaxCartPoleDistractor, params: CartPoleParams, num_envs: int, num_steps: int
) -> Callable[[jax.Array], jax.Array]:
    """A jitted ``key -> final states`` rollout of ``num_envs`` twins over ``num_steps`` random actions.

    Keys and actions for the whole rollout are drawn up front, inside the same jitted call, so their
    cost counts in the time.
    """
    vstep = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def body(state, xs):
        keys, actions = xs
        _, state, *_ = vstep(keys, state, actions, params)
        return state, None

    @jax.jit
    def rollout(key: jax.Array) -> jax.Array:
        k_reset, k_act, k_step = jax.random.split(key, 3)
        _, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), params)
        actions = jax.random.bernoulli(k_act, shape=(num_steps, num_envs)).astype(jnp.int32)
        keys = jax.random.split(k_step, (num_steps, num_envs))
        state, _ = jax.lax.scan(body, state, (keys, actions))
        return state.physics

    return rollout


@pytest.mark.parametrize("num_envs", [1, 64, 1024])
def test_jax_twin_step_throughput(benchmark, num_envs: int) -> None:
    """Pure-JAX CartPoleDistractor (10 gaussian distractors), vmapped, scanned, steady state."""
    env, params = make_jax_cartpole()
    num_steps = JAX_STEPS_PER_ROUND // num_envs
    rollout = _random_rollout(env, params, num_envs, num_steps)
    key = jax.random.key(0)
    jax.block_until_ready(rollout(key))  # compile outside the timing

    benchmark.group = "jax twin step"
    physics = benchmark.pedantic(
        lambda: jax.block_until_ready(rollout(key)), rounds=15, warmup_rounds=1, iterations=1
    )
    assert physics.shape == (num_envs, 4) and bool(jnp.isfinite(physics).all())
    if benchmark.stats is None:  # benchmarks disabled: ran once as a smoke test
        return
    rate = num_envs * num_steps / benchmark.stats.stats.median
    benchmark.extra_info.update(num_envs=num_envs, num_steps=num_steps, steps_per_s=rate)
    if num_envs == 1024:
        benchmark.extra_info["target_steps_per_s"] = JAX_TARGET_AT_1024
    print(f"\nJAX twin, {num_envs} envs x {num_steps} steps: {rate / 1e6:.2f} M steps/s")
