"""Speed of one PAL iteration (model fit + NPG steps) at the official Hopper PAL settings, with the
achieved GFLOP/s.

Run with ``pytest benchmarks/test_pal.py --benchmark-enable -s``. On a real buffer of ``buffer_size``
(1e4) random Hopper-shaped transitions in trajectories of 100 steps, it times the jitted pieces:

- ``fit_ms``: one model fit of the 4-member (512, 512) ensemble capped at ``MBRL_BENCH_PAL_FIT_STEPS``
  gradient steps (default 500; the official fit on a full 1e4 buffer is 25 passes x 50 minibatches =
  1250 steps), and ``fit_official_ms`` its linear extrapolation to 1250 steps;
- ``npg_ms``: one NPG step: 50 start states rolled out 500 steps in all 4 models, GAE, gradient, 25 CG
  iterations of Fisher-vector products over the 100K samples, the step and the baseline refit;
  ``rollout_ms``: the model rollout alone;
- ``iteration_ms`` = ``fit_official_ms`` + 5 (``inner_steps``) x ``npg_ms``;
- ``fit_gflops``: XLA's flop count of one minibatch step of all members (forward, backward, Adam, from
  ``jax.jit(f).lower(...).compile().cost_analysis()``) times the steps, over ``fit_ms``;
  ``rollout_gflops``: XLA's count of one rollout step times 500, over ``rollout_ms`` (the CG loop's flops
  are not counted: XLA counts a loop body once); ``matmul_gflops``: a 2048 x 2048 float32 ``jnp.dot``
  in the same run, the machine's practical peak.

Timings are medians of ``REPEATS`` calls (the fit: one call after a warm-up); share of the machine
matters, so quote ``uptime``. Without ``--benchmark-enable`` it runs tiny sizes as a smoke test.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import jax.numpy as jnp
import optax
from _kernels import flops, matmul_gflops, median_s
from mbrl_bench.baselines.api import EnvInfo
from mbrl_bench.baselines.pal import PAL, PALConfig

import mbrl_bench

HOPPER = "mbrl_bench/Hopper-v0"
FIT_STEPS = int(os.environ.get("MBRL_BENCH_PAL_FIT_STEPS", 500))
OFFICIAL_FIT_STEPS = 25 * (10_000 // 200)
REPEATS = 3
EPISODE = 100


def _filled(agent: PAL, state: Any) -> Any:
    """The state with a full real buffer of random transitions in trajectories of ``EPISODE`` steps."""
    r = state.replay
    n = r.obs.shape[0]
    k = jax.random.split(jax.random.PRNGKey(1), 3)
    obs = jax.random.normal(k[0], r.obs.shape)
    episodes = -(-n // EPISODE)
    pool = r.init_states.at[:episodes].set(obs[::EPISODE][:episodes])
    replay = r._replace(
        obs=obs,
        action=jax.random.uniform(k[1], r.action.shape, minval=-1.0, maxval=1.0),
        next_obs=obs + 0.01 * jax.random.normal(k[2], obs.shape),
        episode_start=(jnp.arange(n) // EPISODE * EPISODE).astype(jnp.int32),
        total=jnp.asarray(n, jnp.int32),
        current_start=jnp.asarray((n - 1) // EPISODE * EPISODE, jnp.int32),
        init_states=pool,
        init_count=jnp.asarray(episodes, jnp.int32),
    )
    return state._replace(replay=replay)


def test_one_pal_iteration(benchmark) -> None:
    small = benchmark.disabled
    fit_steps = 4 if small else FIT_STEPS
    sizes = (
        dict(
            buffer_size=400,
            update_paths=4,
            horizon=10,
            model_hidden=(16, 16),
            policy_hidden=(8,),
            fit_batch_size=20,
        )
        if small
        else {}
    )
    config = PALConfig(**sizes, max_fit_steps=fit_steps)
    env = mbrl_bench.make(HOPPER)
    info = EnvInfo(HOPPER, {}, env.observation_space, env.action_space, mbrl_bench.get_task(HOPPER), 100_000)
    env.close()
    agent = PAL(config, info)
    state = _filled(agent, agent.init(jax.random.PRNGKey(0)))
    learner, replay = state.learner, state.replay
    key = jax.random.PRNGKey(2)
    fit = jax.jit(agent.fit_models)
    model, _ = fit(learner.model, replay, key)
    npg = jax.jit(agent.npg_iteration)
    starts = replay.init_states[: config.update_paths]
    rollout = jax.jit(agent.model_paths)

    members, bs, d = config.num_models, config.fit_batch_size, agent.obs_dim

    def one_fit_step(net: Any, opt: Any, obs: jax.Array, action: jax.Array, y: jax.Array) -> Any:
        def loss(n: Any) -> jax.Array:
            pred = agent.model.forward(n, model.params.stats, obs, action, per_member=True)
            return jnp.sum(jnp.mean((pred.mean[..., :d] - y) ** 2, axis=(-1, -2)))

        grads = jax.grad(loss)(net)
        updates, opt = agent.model_opt.update(grads, opt, net)
        return optax.apply_updates(net, updates), opt

    batch = (
        replay.obs[: members * bs].reshape(members, bs, d),
        replay.action[: members * bs].reshape(members, bs, -1),
    )
    fit_step = jax.jit(one_fit_step).lower(model.params.net, model.opt_state, *batch, batch[0]).compile()

    def one_rollout_step(policy: Any, s: jax.Array, k: jax.Array) -> Any:
        a = agent._env_action(agent.policy.sample(policy, agent._policy_obs(s), k))
        nxt = agent.model_step(model, s, a)
        return nxt, info.task.reward_fn(s, a, nxt), info.task.termination_fn(s, a, nxt)

    s0 = jnp.broadcast_to(starts, (members, *starts.shape))
    rollout_step = jax.jit(one_rollout_step).lower(learner.policy, s0, key).compile()

    def measure() -> dict[str, float]:
        matmul = matmul_gflops(128 if small else 2048, REPEATS)
        fit_s = median_s(lambda: fit(learner.model, replay, key), 1)
        npg_s = median_s(
            lambda: npg(learner.policy, learner.baseline, learner.baseline_opt, model, replay, key), REPEATS
        )
        rollout_s = median_s(lambda: rollout(learner.policy, model, starts, key), REPEATS)
        steps_per_epoch = max(config.buffer_size // bs, 1)
        steps_run = min(config.fit_epochs, -(-fit_steps // steps_per_epoch)) * steps_per_epoch
        official = config.fit_epochs * steps_per_epoch
        out = {
            "fit_ms": 1e3 * fit_s,
            "fit_steps": float(steps_run),
            "fit_official_ms": 1e3 * fit_s * official / steps_run,
            "npg_ms": 1e3 * npg_s,
            "rollout_ms": 1e3 * rollout_s,
            "fit_gflops": flops(fit_step) * steps_run / fit_s / 1e9,
            "rollout_gflops": flops(rollout_step) * config.horizon / rollout_s / 1e9,
            "matmul_gflops": matmul,
        }
        out["iteration_ms"] = out["fit_official_ms"] + config.inner_steps * out["npg_ms"]
        return out

    result = benchmark.pedantic(measure, rounds=1, iterations=1)
    extra = {k: round(v, 2) for k, v in result.items()} | {"uptime": os.getloadavg()}
    benchmark.extra_info.update(extra)
    print(f"\npal one iteration (Hopper, official PAL sizes unless smoke): {extra}")
    assert all(v > 0 for v in result.values())
