"""Running observation statistics (baselines/common/normalization.py)."""

import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.common.normalization import normalize, stats_init, stats_merge


def test_merging_batches_gives_the_stats_of_their_union():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, size=(n, 3)) for n in (5, 100, 1, 37)]
    stats = stats_init(3)
    for b in batches:
        stats = stats_merge(stats, jnp.asarray(b, jnp.float32))
    data = np.concatenate(batches)
    # The initial pseudo-count of 1e-4 (mean 0, var 1) leaves a trace far below float32 noise.
    np.testing.assert_allclose(stats.mean, data.mean(0), rtol=1e-4)
    np.testing.assert_allclose(stats.var, data.var(0), rtol=1e-4)
    assert float(stats.count) == pytest.approx(len(data))


def test_normalize_standardises_and_clips():
    stats = stats_merge(stats_init(2), jnp.array([[0.0, 10.0], [2.0, 30.0]]))
    np.testing.assert_allclose(normalize(stats, jnp.array([1.0, 40.0])), [0.0, 2.0], atol=1e-3)
    np.testing.assert_allclose(normalize(stats, jnp.array([1.0, 1e6]), clip=5.0), [0.0, 5.0], atol=1e-3)
