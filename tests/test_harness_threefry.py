"""The harness's unrolled threefry lowering on CPU: fewer loops, the same random bits."""

from __future__ import annotations

import json
import subprocess
import sys

import jax

from mbrl_bench.harness.threefry import use_unrolled_threefry

DRAWS = """
import json, jax, jax.numpy as jnp
def draws(key):
    k1, k2, k3 = jax.random.split(key, 3)
    return {
        "normal": jax.random.normal(k1, (7,)),
        "randint": jax.random.randint(k2, (7,), 0, 1000),
        "categorical": jax.random.categorical(k3, jnp.linspace(-1.0, 1.0, 5), shape=(7,)),
        "fold_in": jax.random.key_data(jax.random.fold_in(key, 12345)),
        "vmapped": jax.vmap(lambda k: jax.random.uniform(k, (3,)))(jax.random.split(key, 4)),
    }
out = jax.jit(draws)(jax.random.PRNGKey(2026))
print(json.dumps({name: jnp.asarray(x).tolist() for name, x in out.items()}))
"""


def test_unrolled_threefry_draws_the_same_bits_as_stock_jax() -> None:
    assert use_unrolled_threefry()  # this project's JAX has the rule; the fallback is for later ones
    stock = subprocess.run([sys.executable, "-c", DRAWS], capture_output=True, text=True, check=True)
    namespace: dict = {}
    exec(DRAWS.replace("print(", "result = ("), namespace)
    assert json.loads(namespace["result"]) == json.loads(stock.stdout)


def test_unrolled_threefry_leaves_no_loop_in_a_compiled_draw() -> None:
    use_unrolled_threefry()
    hlo = jax.jit(lambda k: jax.random.normal(k, (4,))).lower(jax.random.PRNGKey(0)).as_text()
    assert "while" not in hlo  # stock JAX lowers the rounds on CPU as a stablehlo.while
