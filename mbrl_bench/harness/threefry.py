"""Threefry random bits on CPU as straight-line code instead of a 5-trip loop: the same bits, faster.

JAX lowers its default PRNG (threefry2x32) on CPU with its rounds in a ``fori_loop`` (to keep compile
times down), while on GPU/TPU it emits the rounds unrolled. On CPU every loop trip is several separate
XLA thunks, and an agent draws random numbers many times per env step (minibatch indices, model
samples, exploration), so for the small networks of this benchmark the loops are a large share of the
step: OMD's 5-seed CartPole step took 2.7 ms with the unrolled rounds against 3.1-3.8 ms rolled
(interleaved runs, identical parameters after 1,600 steps), and compiled faster (7.7-7.9 s vs 9.3-11.7 s
for start-up and the first 1,100 steps). The hash is the same function either way, so every random
number, and every curve, is bit-for-bit unchanged (``tests/test_harness_runner.py`` checks the bits
against a process without this module).

``use_unrolled_threefry`` registers JAX's own unrolled lowering rule for CPU. It is applied when the
harness is imported (the harness runs the learners), not when ``mbrl_bench`` is: users who import only
the environments or agents keep JAX exactly as configured. It reads two private JAX names; if a JAX
release moves them, it does nothing and the rolled loops remain (slower, same results).
"""

from __future__ import annotations

_applied: list[bool] = []


def use_unrolled_threefry() -> bool:
    """Lower threefry2x32 unrolled on CPU from now on (idempotent); False if this JAX lacks the rule."""
    if _applied:
        return _applied[0]
    try:
        from jax._src.interpreters import mlir
        from jax._src.random import threefry2x32 as threefry
    except ImportError:
        _applied.append(False)
        return False
    rule = getattr(threefry, "_threefry2x32_lowering_rule", None)
    primitive = getattr(threefry, "threefry2x32_p", None)
    if rule is None or primitive is None:
        _applied.append(False)
        return False
    mlir.register_lowering(primitive, rule, platform="cpu")
    _applied.append(True)
    return True
