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
from mbrl_bench.baselines.omd_tabular import TabularConfig, tabular_study, tabular_study_point

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
