"""Replay ring buffer and sum-tree prioritised sampling (baselines/common/replay.py)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from mbrl_bench.baselines.common import replay as rp
from mbrl_bench.baselines.common.replay import (
    replay_capacity,
    replay_init,
    replay_size,
    sumtree_get,
    sumtree_init,
    sumtree_sample,
    sumtree_total,
)

# Jitted once per module: eager op-by-op dispatch would dominate these tests' time.
importance_weights = jax.jit(rp.importance_weights)
replay_add = jax.jit(rp.replay_add)
replay_get = jax.jit(rp.replay_get)
sample_uniform = jax.jit(rp.sample_uniform, static_argnums=2)
sumtree_find = jax.jit(rp.sumtree_find)
sumtree_set = jax.jit(rp.sumtree_set)


def test_ring_buffer_wraps_and_keeps_the_newest_items():
    replay = replay_init({"x": jnp.zeros(2), "a": jnp.zeros((), jnp.int32)}, capacity=3)
    for i in range(5):
        replay = replay_add(replay, {"x": jnp.full(2, float(i)), "a": jnp.int32(i)})
    assert replay_capacity(replay) == 3
    assert int(replay_size(replay)) == 3 and int(replay.count) == 5
    # Slots hold items 3, 4, 2 (item i lives in slot i % 3).
    np.testing.assert_array_equal(replay.data["a"], [3, 4, 2])
    got = replay_get(replay, jnp.array([[2, 3], [4, 5]]))  # indices wrap modulo capacity
    np.testing.assert_array_equal(got["a"], [[2, 3], [4, 2]])
    assert got["x"].shape == (2, 2, 2)


def test_uniform_sampling_only_draws_filled_slots():
    replay = replay_init(jnp.zeros(()), capacity=100)
    for i in range(7):
        replay = replay_add(replay, jnp.float32(i))
    idx = sample_uniform(replay, jax.random.key(0), 2000)
    assert int(idx.min()) == 0 and int(idx.max()) == 6
    counts = np.bincount(np.asarray(idx), minlength=7)
    assert counts.min() > 2000 / 7 * 0.75


def test_bad_capacity_is_a_value_error():
    with pytest.raises(ValueError, match="capacity"):
        replay_init(jnp.zeros(()), 0)
    with pytest.raises(ValueError, match="capacity"):
        sumtree_init(0)


def test_sumtree_sums_and_batched_updates_with_duplicates():
    tree = sumtree_init(5)  # rounded up to 8 leaves
    assert tree.nodes.shape == (16,)
    tree = sumtree_set(tree, jnp.array([0, 1, 2, 3, 4]), jnp.array([1.0, 2.0, 3.0, 4.0, 5.0]))
    assert float(sumtree_total(tree)) == 15.0
    # Duplicate indices in one batch write the same value: the tree stays consistent.
    tree = sumtree_set(tree, jnp.array([2, 2, 4]), jnp.array([0.5, 0.5, 1.0]))
    np.testing.assert_allclose(sumtree_get(tree, jnp.arange(5)), [1.0, 2.0, 0.5, 4.0, 1.0])
    assert float(sumtree_total(tree)) == pytest.approx(8.5)
    # Every internal node equals the sum of its children.
    nodes = np.asarray(tree.nodes)
    np.testing.assert_allclose(nodes[1:8], nodes[2:16:2] + nodes[3:16:2])


def test_sumtree_find_maps_mass_to_leaves_and_skips_empty_ones():
    tree = sumtree_set(sumtree_init(8), jnp.arange(4), jnp.array([1.0, 2.0, 3.0, 4.0]))
    leaves = sumtree_find(tree, jnp.array([0.0, 0.99, 1.0, 2.99, 3.0, 5.99, 6.0, 9.99, 10.0, 50.0]))
    # Queries at or past the total (float rounding) land on the last non-empty leaf, never an empty one.
    np.testing.assert_array_equal(leaves, [0, 0, 1, 1, 2, 2, 3, 3, 3, 3])
    gap = sumtree_set(tree, jnp.array([1]), jnp.array([0.0]))
    np.testing.assert_array_equal(sumtree_find(gap, jnp.array([0.5, 1.0, 1.5])), [0, 2, 2])


def test_prioritised_sampling_proportions():
    priorities = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 0.0])
    tree = sumtree_set(sumtree_init(6), jnp.arange(6), jnp.asarray(priorities))
    keys = jax.random.split(jax.random.key(3), 300)
    draws = np.asarray(jax.jit(jax.vmap(lambda k: sumtree_sample(tree, k, 64)))(keys)).ravel()
    freq = np.bincount(draws, minlength=6) / draws.size
    np.testing.assert_allclose(freq, priorities / priorities.sum(), atol=0.01)
    assert freq[4:].sum() == 0.0


def test_importance_weights_hand_computed():
    # P = [.1, .2, .3, .4], N = 4, beta = 0.5: w = (N P)^-beta / max w = sqrt(0.4 / (4 P)).
    w = importance_weights(jnp.array([1.0, 2.0, 3.0, 4.0]), jnp.float32(10.0), jnp.int32(4), jnp.float32(0.5))
    np.testing.assert_allclose(w, [1.0, np.sqrt(0.5), np.sqrt(1 / 3), 0.5], rtol=1e-6)
    # beta = 0 gives no correction; beta = 1 fully undoes the sampling bias (w proportional to 1/P).
    np.testing.assert_allclose(importance_weights(jnp.array([1.0, 3.0]), 4.0, 2, 0.0), [1.0, 1.0])
    np.testing.assert_allclose(
        importance_weights(jnp.array([1.0, 3.0]), 4.0, 2, 1.0), [1.0, 1 / 3], rtol=1e-6
    )


def _floyd_loop(n: int, draws: np.ndarray) -> np.ndarray:
    """Floyd's algorithm as written (Bentley & Floyd 1987), one draw at a time: the reference."""
    batch = len(draws)
    chosen: list[int] = []
    for i, t in enumerate(draws.tolist()):
        chosen.append(n - batch + i if t in chosen else t)
    return np.asarray(chosen)


@pytest.mark.parametrize("batch", [1, 7, 32])
def test_parallel_floyd_equals_the_sequential_algorithm(batch: int) -> None:
    """The vectorised sampler takes exactly the slots Floyd's loop takes from the same draws, from a
    buffer just big enough (many repeats and chains of replaced draws) to a large one; with fewer
    filled slots than the batch it draws with replacement."""
    sample = jax.jit(jax.vmap(rp.sample_without_replacement, in_axes=(None, 0, None)), static_argnums=2)
    draw = jax.jit(jax.vmap(lambda k, high: jax.random.randint(k, high.shape, 0, high), in_axes=(0, None)))
    for n in sorted({batch, batch + 1, 2 * batch, 3 * batch + 5, 500}):
        replay = rp.Replay(jnp.zeros(500), jnp.int32(n))
        keys = jax.random.split(jax.random.PRNGKey(n), 200)
        got = np.asarray(sample(replay, keys, batch))
        high = n - batch + np.arange(batch) + 1  # the draw t_i is uniform in [0, n - batch + i]
        draws = np.asarray(draw(keys, high))
        for row, drawn in zip(got, draws, strict=True):
            np.testing.assert_array_equal(row, _floyd_loop(n, drawn))
    if batch > 1:
        fallback = np.asarray(sample(rp.Replay(jnp.zeros(500), jnp.int32(batch - 1)), keys, batch))
        assert fallback.min() >= 0 and fallback.max() < batch - 1


def test_repeats_are_found_with_either_sort_key() -> None:
    """Repeats of earlier values, through the packed int32 key and through the two-key sort that
    replaces it when value * size could overflow."""
    values = jnp.array([5, 3, 5, 0, 3, 3, 9, 0])
    expected = [False, False, True, False, True, True, False, True]
    np.testing.assert_array_equal(rp._repeats_earlier(values, 10), expected)
    np.testing.assert_array_equal(rp._repeats_earlier(values, 2**30), expected)
