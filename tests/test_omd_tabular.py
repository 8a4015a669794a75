"""The tabular OMD vs MLE study (baselines/omd_tabular.py) on OMD's two-state MDP, in float64.

The notebook's claim in miniature: under a restrictive norm bound on the model, OMD's model buys a better
policy than the maximum-likelihood one; with room enough both reach the optimal value, and OMD's model does
so while being a poor likelihood model of the true dynamics.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.api import EnvInfo, Transition, get_agent
from mbrl_bench.baselines.omd_tabular import TabularConfig, tabular_study, tabular_study_point

import mbrl_bench
from mbrl_bench.envs.tabular import two_state_polytope

OPTIMAL_VALUE = 1.0272727
"""J* of the two-state MDP under the uniform start (REFERENCES.md, official notebook)."""
BOUNDS = (1.5, 6.0)
SEEDS = (1, 2, 3)
ITERATIONS = 300


@pytest.fixture(scope="module")
def study() -> dict[str, object]:
    with jax.enable_x64(True):
        mdp = two_state_polytope()
        return {
            m: tabular_study(mdp, m, jnp.array(BOUNDS), jnp.array(SEEDS), ITERATIONS) for m in ("omd", "mle")
        }


def test_study_shapes_and_projection(study: dict) -> None:
    for result in study.values():
        assert result.returns.shape == (len(BOUNDS), len(SEEDS), ITERATIONS + 1)
        assert result.returns.dtype == np.float64
        assert np.all(np.isfinite(result.returns))
        bounds = np.array(BOUNDS)[:, None]
        assert np.all(np.asarray(result.param_norm) <= bounds * (1 + 1e-9))  # projected Adam keeps the bound
        assert np.all(np.asarray(result.returns) <= OPTIMAL_VALUE + 1e-6)  # no policy beats the optimum


def test_omd_beats_mle_under_a_tight_bound(study: dict) -> None:
    j_omd = np.asarray(study["omd"].returns[0, :, -1])
    j_mle = np.asarray(study["mle"].returns[0, :, -1])
    assert np.all(j_omd > j_mle + 0.2), (j_omd, j_mle)


def test_both_optimal_with_room_but_omd_model_is_unlikely(study: dict) -> None:
    for result in study.values():
        np.testing.assert_allclose(result.returns[1, :, -1], OPTIMAL_VALUE, atol=1e-3)
    assert np.all(np.asarray(study["mle"].mle_loss[1]) < 1e-3)  # MLE recovers P and R
    assert np.all(np.asarray(study["omd"].mle_loss[1]) > 1.0)  # OMD's model is no likelihood model
    # ... and its Q* is not the true soft Q* either: only the policy it induces is optimal.
    assert np.all(np.asarray(study["omd"].bellman_error[1]) > 0.1)
    assert np.all(np.asarray(study["mle"].bellman_error[1]) < 1e-10)


def test_point_equals_grid_entry(study: dict) -> None:
    with jax.enable_x64(True):
        point = tabular_study_point(two_state_polytope(), "omd", BOUNDS[0], SEEDS[1], ITERATIONS)
    np.testing.assert_allclose(point.returns, study["omd"].returns[0, 1], rtol=1e-9, atol=1e-12)


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="valid kinds: identity, cg, neumann, exact"):
        tabular_study_point(two_state_polytope(), "omd", 1.0, 0, 1, TabularConfig(inverse="inverse"))
    with pytest.raises(ValueError, match="valid methods: omd, mle"):
        tabular_study(two_state_polytope(), "MLE", jnp.ones(1), jnp.ones(1, int), 1)
    with pytest.raises(ValueError, match="iterations"):
        tabular_study_point(two_state_polytope(), "mle", 1.0, 0, -1)


def _tabular_info(env_id: str = "mbrl_bench/TwoStatePolytope-v0") -> EnvInfo:
    env = mbrl_bench.make(env_id)
    info = EnvInfo(env_id, {}, env.observation_space, env.action_space, mbrl_bench.get_task(env_id))
    env.close()
    return info


@pytest.mark.parametrize("name, method", [("omd-tabular", "omd"), ("mle-tabular", "mle")])
def test_tabular_agents_run_the_study_loop(name: str, method: str) -> None:
    """One agent update is one outer step of the study: same J(pi) sequence from the same seed."""
    steps, seed, bound = 40, 2, 1.5
    with jax.enable_x64(True):
        agent = get_agent(name)(TabularConfig(), _tabular_info(), f"norm:{bound}")
        state = agent.init(jax.random.PRNGKey(seed))
        dummy = Transition(*(jnp.zeros((), jnp.int32),) * 4, jnp.bool_(False), jnp.bool_(False))
        update = jax.jit(agent.update)
        returns = []
        for t in range(steps):
            state, metrics = update(state, dummy, jax.random.PRNGKey(t), jnp.int32(t + 1))
            returns.append(float(metrics["true_return"]))
        expected = tabular_study_point(two_state_polytope(), method, bound, seed, steps).returns[:steps]
        np.testing.assert_allclose(returns, np.asarray(expected), rtol=1e-6, atol=1e-8)
        assert float(metrics["param_norm"]) <= bound * (1 + 1e-9)
        action = agent.act(state, jnp.int32(0), jax.random.PRNGKey(0), False)
        assert action.shape == () and 0 <= int(action) < 2


def test_tabular_agents_refuse_other_capacities_and_vector_envs() -> None:
    with pytest.raises(ValueError, match="supports capacities full and norm:B, got 'width:3'"):
        get_agent("omd-tabular")(TabularConfig(), _tabular_info(), "width:3")
    env_id = "mbrl_bench/CartPoleDistractor-v0"
    env = mbrl_bench.make(env_id)
    info = EnvInfo(env_id, {}, env.observation_space, env.action_space, mbrl_bench.get_task(env_id))
    with pytest.raises(ValueError, match=r"needs a tabular env .*use omd or mle-dyna"):
        get_agent("mle-tabular")(TabularConfig(), info, "full")


def test_per_array_projection_is_the_notebooks_padam_per_parameter_array() -> None:
    from mbrl_bench.baselines.omd_tabular import TabularConfig, TabularModel, model_norm, project_model

    with jax.enable_x64(True):
        rng = np.random.default_rng(0)
        logits = jnp.asarray(rng.uniform(0, 1, (2, 2, 2)))  # ours: [s, a, s']
        reward = jnp.asarray(rng.uniform(0, 1, (2, 2)))
        model, tau, bound = TabularModel(logits, reward), 0.01, 3.0

        def notebook_padam_projection(x):  # the notebook's code, applied to one array in its layout
            norm = np.sqrt(np.sum((x[0] / tau) ** 2) + np.sum(x[1] ** 2))
            return x * bound / norm if norm > bound else x

        expected_l = notebook_padam_projection(np.asarray(logits).transpose(1, 0, 2)).transpose(1, 0, 2)
        expected_r = notebook_padam_projection(np.asarray(reward))
        got = project_model(model, jnp.asarray(bound), tau, "per-array")
        np.testing.assert_allclose(got.logits, expected_l, rtol=1e-12)
        np.testing.assert_allclose(got.reward, expected_r, rtol=1e-12)
        joint = project_model(model, jnp.asarray(bound), tau)
        assert float(model_norm(joint, tau)) == pytest.approx(bound)
        assert not np.allclose(joint.reward, got.reward)
    with pytest.raises(ValueError, match="valid: joint, per-array"):
        TabularConfig(projection="sphere")
