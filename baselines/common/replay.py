"""Fixed-capacity replay kept inside an agent's state, and a sum tree for prioritised sampling.

``Replay`` is a ring buffer over any pytree of items (leading axis = capacity), written one item per env
step with ``dynamic_update_slice``-style indexing, so it lives in the jitted, vmapped learner state.
When the harness donates the state to its jitted step, XLA writes in place; otherwise each step copies
the buffer.

``SumTree`` holds priorities for proportional prioritised replay (Schaul et al. 2016). A sum tree, not
the O(N) alternative (cumsum + searchsorted over all priorities per batch): with a 100K-item buffer
updated every env step, the O(N) scan costs ~100K adds per update and dominates a small network's step
on CPU, while the tree costs O(B log N) for both sampling and updates. In JAX the tree is one flat array
(root at 1, leaves at ``size``..``2 size - 1``): an update sets the leaves and recomputes each ancestor
level from its two children (a ``fori_loop`` over the log2(size) levels, which compiles in half the time
of an unrolled loop; duplicate indices write the same value, so batched updates are safe), and sampling
descends all B queries at once. Internal nodes are recomputed, never incremented, so float error does
not accumulate.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class Replay(NamedTuple):
    """A ring buffer: ``data`` leaves have a leading capacity axis; ``count`` items were ever added."""

    data: Any
    count: jax.Array


def replay_init(example: Any, capacity: int) -> Replay:
    """An empty buffer for ``capacity`` items shaped and typed like ``example`` (a pytree of arrays)."""
    if capacity < 1:
        raise ValueError(f"replay capacity must be >= 1, got {capacity!r}")
    data = jax.tree.map(lambda x: jnp.zeros((capacity, *jnp.shape(x)), jnp.asarray(x).dtype), example)
    return Replay(data, jnp.zeros((), jnp.int32))


def replay_capacity(replay: Replay) -> int:
    """The static capacity (leading axis of the stored leaves)."""
    return jax.tree.leaves(replay.data)[0].shape[0]


def replay_add(replay: Replay, item: Any) -> Replay:
    """Write ``item`` at slot ``count % capacity`` (overwriting the oldest once full)."""
    slot = replay.count % replay_capacity(replay)
    data = jax.tree.map(lambda buf, x: buf.at[slot].set(jnp.asarray(x, buf.dtype)), replay.data, item)
    return Replay(data, replay.count + 1)


def replay_size(replay: Replay) -> jax.Array:
    """How many slots hold data: min(count, capacity)."""
    return jnp.minimum(replay.count, replay_capacity(replay))


def replay_get(replay: Replay, idx: jax.Array) -> Any:
    """The items at slots ``idx`` (any integer array shape; indices wrap modulo capacity)."""
    idx = idx % replay_capacity(replay)
    return jax.tree.map(lambda buf: buf[idx], replay.data)


def sample_uniform(replay: Replay, key: jax.Array, batch_size: int) -> jax.Array:
    """``batch_size`` slot indices drawn uniformly, with replacement, from the filled slots."""
    return jax.random.randint(key, (batch_size,), 0, jnp.maximum(replay_size(replay), 1))


def sample_without_replacement(replay: Replay, key: jax.Array, batch_size: int) -> jax.Array:
    """``batch_size`` distinct slot indices drawn uniformly from the filled slots (as numpy's
    ``choice(n, batch_size, replace=False)``, which OMD's official replay buffer uses).

    Floyd's algorithm (Bentley & Floyd 1987): with m = n - B, for i = 0, ..., B - 1 draw t_i uniform in
    [0, m + i] and take t_i unless already taken, else m + i; every B-subset is equally likely. Written
    as that loop it is B sequential steps of a few tiny XLA ops (about 1 us each on CPU, ~250 us per
    draw for 5 vmapped seeds at B = 256), so the same result is computed in parallel: t_i was already
    taken iff it repeats an earlier draw t_k, or it equals m + k for an earlier k whose own draw was
    already taken (what was taken before i is {t_k : k < i} plus those m + k). Repeats come from one
    sort; the second condition follows links to strictly smaller indices, resolved by pointer jumping,
    which stops as soon as every link reaches the end of its chain (with n >> B almost no draw is a
    link, so usually at once). With fewer than ``batch_size`` filled slots no such batch exists and the
    draw falls back to ``sample_uniform``.
    """
    n = replay_size(replay)
    first = n - batch_size
    order = jnp.arange(batch_size)
    last = first + order
    draws = jax.random.randint(key, (batch_size,), 0, jnp.maximum(last, 0) + 1)
    taken = _repeats_earlier(draws, replay_capacity(replay))
    # The earlier k with m + k == t_i; a draw without one links to itself, where OR-ing is a no-op.
    link = draws - first
    link = jnp.where((link >= 0) & (link < order), link, order)

    def jump(carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        taken, link = carry
        return taken | taken[link], link[link]

    taken, link = jax.lax.while_loop(lambda c: jnp.any(c[1][c[1]] != c[1]), jump, (taken, link))
    taken = taken | taken[link]  # every link now ends its chain: add that last draw's own repeat
    chosen = jnp.where(taken, last, draws)
    return jnp.where(n >= batch_size, chosen, sample_uniform(replay, key, batch_size))


def _repeats_earlier(values: jax.Array, bound: int) -> jax.Array:
    """Whether ``values[i]`` equals some ``values[k]`` with k < i, for values in [0, bound)."""
    size = values.shape[0]
    order = jnp.arange(size)
    if bound * size < 2**31:  # one int32 key (value, position): a single-operand sort
        key = jnp.sort(values * size + order)
        value, position = key // size, key % size
    else:
        value, position = jax.lax.sort((values, order), num_keys=2)
    repeat = jnp.concatenate([jnp.zeros(1, bool), value[1:] == value[:-1]])
    return jnp.zeros(size, bool).at[position].set(repeat, unique_indices=True)


class SumTree(NamedTuple):
    """Priorities of ``capacity`` leaves and their partial sums; ``nodes[1]`` is the total."""

    nodes: jax.Array


def sumtree_init(capacity: int) -> SumTree:
    """A tree of zero priorities with room for ``capacity`` leaves (rounded up to a power of two)."""
    if capacity < 1:
        raise ValueError(f"sum-tree capacity must be >= 1, got {capacity!r}")
    size = 1 << max(capacity - 1, 0).bit_length()
    return SumTree(jnp.zeros(2 * size, jnp.float32))


def _size(tree: SumTree) -> int:
    return tree.nodes.shape[0] // 2


def sumtree_total(tree: SumTree) -> jax.Array:
    """Sum of all priorities."""
    return tree.nodes[1]


def sumtree_get(tree: SumTree, idx: jax.Array) -> jax.Array:
    """Priorities of leaves ``idx``."""
    return tree.nodes[_size(tree) + idx]


def sumtree_set(tree: SumTree, idx: jax.Array, values: jax.Array) -> SumTree:
    """Set leaves ``idx`` (scalar or 1-D) to ``values`` and recompute their ancestors."""
    size = _size(tree)
    node = jnp.atleast_1d(idx).astype(jnp.int32) + size
    nodes = tree.nodes.at[node].set(jnp.atleast_1d(values).astype(jnp.float32))

    def level(_: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        nodes, node = carry
        node = node // 2
        return nodes.at[node].set(nodes[2 * node] + nodes[2 * node + 1]), node

    nodes, _ = jax.lax.fori_loop(0, size.bit_length() - 1, level, (nodes, node))
    return SumTree(nodes)


def sumtree_find(tree: SumTree, mass: jax.Array) -> jax.Array:
    """For each query in ``mass`` (in [0, total)), the leaf whose cumulative-priority interval holds it.

    Leaves of priority 0 are never returned while the total is positive: at a node whose right child is
    empty the descent goes left even if float rounding put the query past the left sum.
    """
    size = _size(tree)

    def level(_: int, carry: tuple[jax.Array, jax.Array]) -> tuple[jax.Array, jax.Array]:
        mass, node = carry
        left = tree.nodes[2 * node]
        right = tree.nodes[2 * node + 1]
        go_right = ((mass >= left) & (right > 0)) | (left <= 0)
        return jnp.where(go_right, mass - left, mass), 2 * node + go_right.astype(jnp.int32)

    _, node = jax.lax.fori_loop(0, size.bit_length() - 1, level, (mass, jnp.ones(mass.shape, jnp.int32)))
    return node - size


def sumtree_sample(tree: SumTree, key: jax.Array, batch_size: int) -> jax.Array:
    """``batch_size`` leaves drawn with probability proportional to priority, stratified.

    The total mass is cut into ``batch_size`` equal segments and one query is drawn uniformly in each
    (Schaul et al. 2016, Appendix B.2.1): each draw is still marginally proportional, with less variance
    in the batch's make-up than independent draws.
    """
    u = jax.random.uniform(key, (batch_size,))
    mass = (jnp.arange(batch_size) + u) / batch_size * sumtree_total(tree)
    return sumtree_find(tree, mass)


def importance_weights(
    priorities: jax.Array, total: jax.Array, num_items: jax.Array, beta: jax.Array
) -> jax.Array:
    """w_i = (N P(i))^-beta / max_batch w, with P(i) = priority_i / total (Schaul et al. 2016, Sec. 3.4).

    Normalised by the batch's largest weight, as Dopamine and most implementations do (the paper's
    max over the whole buffer needs the minimum priority as well): weights lie in (0, 1] and only
    scale the loss down.
    """
    probs = priorities / total
    w = (num_items * probs) ** (-beta)
    return w / jnp.max(w)
