"""The shared SAC learner, the ``sac`` agent, and OMD / MLE-Dyna on continuous actions."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.api import EnvInfo, Transition, get_agent
from mbrl_bench.baselines.common.sac import (
    SAC,
    Batch,
    SACConfig,
    tanh_gaussian_log_prob,
    tanh_gaussian_sample,
)
from mbrl_bench.baselines.dyna_continuous import ContinuousDyna
from mbrl_bench.baselines.mbpo import MBPOConfig
from mbrl_bench.baselines.omd import CONTINUOUS_DEFAULTS, DynaConfig
from mbrl_bench.baselines.virel import VirelConfig

from mbrl_bench.harness import plan_cell, run_cell
from mbrl_bench.harness.cells import env_info
from mbrl_bench.harness.errors import UsageError


def _info(env_id: str, budget: int | None = None, **kwargs: object) -> EnvInfo:
    return env_info(env_id, kwargs, budget)


def _batch(key: jax.Array, n: int, obs_dim: int, action_dim: int, dtype=jnp.float32) -> Batch:
    k = jax.random.split(key, 4)
    return Batch(
        jax.random.normal(k[0], (n, obs_dim), dtype),
        jax.random.uniform(k[1], (n, action_dim), dtype, -1.0, 1.0),
        jax.random.normal(k[2], (n,), dtype),
        jax.random.normal(k[3], (n, obs_dim), dtype),
        jnp.ones(n, dtype),
    )


def test_tanh_gaussian_log_prob_matches_sample_histogram() -> None:
    mean, log_std = jnp.array([0.3]), jnp.array([-0.2])
    keys = jax.random.split(jax.random.PRNGKey(0), 200_000)
    actions, log_probs = jax.vmap(lambda k: tanh_gaussian_sample(mean, log_std, k))(keys)
    edges = np.linspace(-0.99, 0.99, 41)
    counts, _ = np.histogram(np.asarray(actions[:, 0]), bins=edges)
    empirical = counts / (len(keys) * np.diff(edges))
    centres = (edges[:-1] + edges[1:]) / 2
    density = np.exp(
        np.asarray(tanh_gaussian_log_prob(mean, log_std, jnp.arctanh(jnp.asarray(centres))[:, None]))
    )
    np.testing.assert_allclose(empirical, density, rtol=0.08, atol=0.02)
    # The returned log-prob of each sample is the density at that sample.
    recomputed = tanh_gaussian_log_prob(
        mean, log_std, jnp.arctanh(jnp.clip(actions[:1000], -0.999999, 0.999999))
    )
    np.testing.assert_allclose(np.asarray(log_probs[:1000]), np.asarray(recomputed), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("entropy_offset", [2.0, -2.0])
def test_temperature_moves_toward_target_entropy(entropy_offset: float) -> None:
    sac = SAC(SACConfig(hidden_sizes=(8,)), 3, 2)
    state = sac.init(jax.random.PRNGKey(0))
    entropy = jnp.asarray(sac.target_entropy + entropy_offset)
    alphas = []
    for _ in range(20):
        state, info = sac.temperature_step(state, entropy)
        alphas.append(float(info["alpha"]))
    # Entropy above the target: less reward for entropy (alpha falls); below: alpha rises.
    assert np.all(np.sign(np.diff([1.0, *alphas])) == -np.sign(entropy_offset))
    assert sac.target_entropy == -0.5 * 2  # jaxrl's -|A|/2


def test_sac_learns_a_bandit() -> None:
    """gamma = 0: Q(s, a) = r(a) = -(a - 0.5)^2, so the deterministic action must approach 0.5."""
    sac = SAC(SACConfig(hidden_sizes=(32, 32), init_temperature=0.01, discount=0.0), 1, 1)
    state = sac.init(jax.random.PRNGKey(0))
    key = jax.random.PRNGKey(1)
    actions = jax.random.uniform(key, (512, 1), minval=-1.0, maxval=1.0)
    batch = Batch(
        jnp.zeros((512, 1)), actions, -((actions[:, 0] - 0.5) ** 2), jnp.zeros((512, 1)), jnp.ones(512)
    )
    state, _ = jax.jit(lambda s, k: sac.updates(s, lambda _: batch, k, 1500))(state, key)
    assert abs(float(sac.deterministic(state.actor, jnp.zeros(1))[0]) - 0.5) < 0.1


def test_updates_per_step_runs_that_many_updates() -> None:
    sac = SAC(SACConfig(hidden_sizes=(8,)), 3, 2)
    state = sac.init(jax.random.PRNGKey(0))
    batch = _batch(jax.random.PRNGKey(1), 16, 3, 2)
    many, _ = sac.updates(state, lambda _: batch, jax.random.PRNGKey(2), 5)
    # Adam's step counter (count) of each optimiser counts the updates.
    counts = [int(x) for x in jax.tree.leaves(many.critic_opt) if jnp.ndim(x) == 0 and x.dtype == jnp.int32]
    assert counts and all(c == 5 for c in counts)


def test_rainbow_refuses_continuous_actions() -> None:
    with pytest.raises(UsageError, match="discrete"):
        plan_cell("rainbow", "mbrl_bench/HalfCheetah-v0", steps=10, eval_every=10)


def test_continuous_defaults_are_the_official_mujoco_ones() -> None:
    spec = plan_cell("omd", "mbrl_bench/HalfCheetah-v0", steps=10, eval_every=10)
    for key, value in CONTINUOUS_DEFAULTS.items():
        assert spec.agent_config[key] == value
    # --set still wins over the per-kind default; discrete cells keep the CartPole defaults.
    spec = plan_cell(
        "omd", "mbrl_bench/HalfCheetah-v0", steps=10, eval_every=10, overrides={"hidden_dim": "64"}
    )
    assert spec.agent_config["hidden_dim"] == 64
    spec = plan_cell("omd", "mbrl_bench/CartPoleDistractor-v0", steps=10, eval_every=10)
    assert spec.agent_config["hidden_dim"] == DynaConfig().hidden_dim == 32


def test_replay_is_capped_at_the_budget() -> None:
    agent = get_agent("sac")(SACConfig(), _info("mbrl_bench/HalfCheetah-v0", budget=3000))
    state = agent.init(jax.random.PRNGKey(0))
    assert state.replay.data.obs.shape[0] == 3000


def test_omd_identity_gradient_equals_unrolled_plain_step_over_lr() -> None:
    """-(d_theta grad_w L_model(w*, theta))^T g is the limit of
    d/dtheta outer(w* - lr grad_w L_model) / lr."""
    with jax.enable_x64(True):
        config = DynaConfig(
            hidden_dim=8,
            model_hidden_dim=8,
            batch_size=6,
            **{k: v for k, v in CONTINUOUS_DEFAULTS.items() if k not in ("hidden_dim", "model_hidden_dim")},
        )
        dyna = ContinuousDyna(config, _info("mbrl_bench/HalfCheetah-v0"), "full", "omd")
        state = dyna.init(jax.random.PRNGKey(0), lambda net: net)
        state = jax.tree.map(
            lambda x: x.astype(jnp.float64) if jnp.issubdtype(x.dtype, jnp.floating) else x, state
        )
        real = _batch(jax.random.PRNGKey(3), 6, dyna.obs_dim, 6, jnp.float64)
        keys = jax.random.split(jax.random.PRNGKey(4), 3)
        (_, (learner, _, _)), grads = dyna.omd_gradient(state.learner, state.model, real, keys)
        k_inner, k_residual, k_outer = keys
        lr = 1e-7

        def unrolled(net):
            fake = dyna.model_batch(net, state.model, real, k_inner)
            inner = jax.grad(lambda c: dyna.sac.critic_loss(c, learner, fake, k_residual)[0])(learner.critic)
            stepped = jax.tree.map(lambda w, g: w - lr * g, learner.critic, inner)
            return dyna.sac.critic_loss(stepped, learner, real, k_outer)[0]

        reference = jax.tree.map(lambda g: g / lr, jax.grad(unrolled)(state.model.net))
        flat, ref = (np.concatenate([np.ravel(x) for x in jax.tree.leaves(t)]) for t in (grads, reference))
        assert np.linalg.norm(flat) > 0
        np.testing.assert_allclose(flat, ref, rtol=1e-4, atol=1e-6 * np.abs(ref).max())


@pytest.mark.parametrize(
    ("algo", "env_id", "kwargs"),
    [
        ("sac", "mbrl_bench/HalfCheetahDistractor-v0", {}),
        ("omd", "mbrl_bench/HalfCheetahDistractor-v0", {}),
        ("mle-dyna", "mbrl_bench/HalfCheetahDistractor-v0", {"capacity": "width:4"}),
        ("sac", "mbrl_bench/Pusher-v0", {}),
        ("omd", "mbrl_bench/Pusher-v0", {"capacity": "width:4"}),
        ("mle-dyna", "mbrl_bench/Pusher-v0", {}),
        ("sac", "mbrl_bench/CartPoleDistractor-v0", {}),
        ("sac", "mbrl_bench/TwoStatePolytope-v0", {}),
    ],
)
def test_short_runs_finish_with_finite_curves(tmp_path, algo: str, env_id: str, kwargs: dict) -> None:
    small = {"hidden_dim": 16, "model_hidden_dim": 16, "batch_size": 32, "init_steps": 100}
    if algo == "sac":
        small = {"hidden_sizes": (16, 16), "batch_size": 32, "start_steps": 100}
    spec = plan_cell(
        algo, env_id, seeds=2, steps=200, eval_every=100, eval_episodes=1, overrides=small, **kwargs
    )
    result = run_cell(spec, tmp_path)
    assert set(result.seed_states.values()) == {"done"}
    for rows in result.curves.values():
        assert [r["env_step"] for r in rows] == [0, 100, 200]
        last = rows[-1]
        assert all(np.isfinite(v) for k, v in last.items() if isinstance(v, float))
        metric = "critic_loss" if algo == "sac" else "q_loss"
        assert last[metric] > 0


def test_discrete_sac_reads_states_one_hot_and_acts_in_the_action_space() -> None:
    """On a tabular id: the state index is read one-hot, actions are indices, uniform in the random phase
    and the most probable one to evaluate; the target entropy is the ratio of log|A|."""
    agent = get_agent("sac")(
        SACConfig(hidden_sizes=(8,), start_steps=5), _info("mbrl_bench/TwoStatePolytope-v0")
    )
    assert agent.sac.target_entropy == pytest.approx(0.5 * np.log(2))
    np.testing.assert_array_equal(agent.io.view(jnp.asarray([1, 0])), [[0.0, 1.0], [1.0, 0.0]])
    state = agent.init(jax.random.PRNGKey(0))
    keys = jax.random.split(jax.random.PRNGKey(1), 200)
    explore = jax.vmap(lambda k: agent.act(state, jnp.asarray(1), k, True))(keys)
    assert explore.dtype == jnp.int32 and set(np.unique(explore)) == {0, 1}
    greedy = jax.vmap(lambda k: agent.act(state, jnp.asarray(1), k, False))(keys)
    logits = agent.sac.actor_net.apply(state.learner.actor, agent.io.view(jnp.asarray(1)))
    assert set(np.unique(greedy)) == {int(jnp.argmax(logits))}
    step = Transition(
        jnp.asarray(0),
        jnp.asarray(1),
        jnp.asarray(0.5),
        jnp.asarray(1),
        jnp.asarray(False),
        jnp.asarray(False),
    )
    item = agent.io.replay_item(step)
    assert item.action.dtype == jnp.int32 and int(item.action) == 1 and float(item.not_done) == 1.0


@pytest.mark.parametrize("algo", ["sac", "omd", "virel", "mbpo"])
def test_the_learner_does_not_read_the_absolute_position(algo: str) -> None:
    """HalfCheetah-v0 observes x (dim 0) so rewards are functions of (s, a, s'); the learners skip it as
    the stock env (which the reference code ran on) hides it, unless hide_position is off."""
    info = _info("mbrl_bench/HalfCheetah-v0")
    configs = {
        "sac": lambda **kw: SACConfig(hidden_sizes=(8,), **kw),
        "omd": lambda **kw: DynaConfig(**{**CONTINUOUS_DEFAULTS, "hidden_dim": 8, **kw}),
        "virel": lambda **kw: VirelConfig(hidden_sizes=(8,), **kw),
        "mbpo": lambda **kw: MBPOConfig(
            hidden_sizes=(8,), model_hidden_sizes=(8,), rollouts_per_step=1, **kw
        ),
    }
    make = lambda **kw: get_agent(algo)(configs[algo](**kw), info)
    agent = make()
    state = agent.init(jax.random.PRNGKey(0))
    obs = jnp.linspace(-1.0, 1.0, 18)
    far = obs.at[0].set(250.0)
    act = lambda o: agent.act(state, o, jax.random.PRNGKey(1), False)
    np.testing.assert_array_equal(act(obs), act(far))
    seeing = make(hide_position=False)
    state = seeing.init(jax.random.PRNGKey(0))
    assert not np.array_equal(
        seeing.act(state, obs, jax.random.PRNGKey(1), False),
        seeing.act(state, far, jax.random.PRNGKey(1), False),
    )
