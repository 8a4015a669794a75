"""The learned termination classifier that ends model rollouts on ids without a true termination."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mbrl_bench.models.termination import Labelled, TerminationConfig, TerminationModel


def _data(key: jax.Array, n: int, rule) -> Labelled:
    k = jax.random.split(key, 3)
    obs = jax.random.normal(k[0], (n, 4))
    action = jax.random.uniform(k[1], (n, 2), minval=-1.0, maxval=1.0)
    next_obs = obs + 0.5 * jax.random.normal(k[2], (n, 4))
    return Labelled(obs, action, next_obs, rule(obs, action, next_obs).astype(jnp.float32))


def test_it_learns_a_hopper_like_height_rule_and_fits_only_the_valid_rows() -> None:
    falls = lambda obs, action, next_obs: next_obs[:, 1] < -1.0  # ~16% of transitions end
    model = TerminationModel(TerminationConfig(hidden_sizes=(64, 64), steps=800), 4, 2, discrete=False)
    state = model.init(jax.random.PRNGKey(0))
    train = _data(jax.random.PRNGKey(1), 4000, falls)
    # rows past num_valid say "always terminal": a fit that read them would predict far too many ends
    garbage = jax.tree.map(lambda x: jnp.concatenate([x, x]), train)._replace(
        terminated=jnp.concatenate([train.terminated, jnp.ones(4000)])
    )
    state, loss = jax.jit(model.fit)(state, garbage, jnp.asarray(4000), jax.random.PRNGKey(2))
    test = _data(jax.random.PRNGKey(3), 4000, falls)
    predicted = np.asarray(model.terminated(state, test.obs, test.action, test.next_obs))
    assert np.mean(predicted == np.asarray(test.terminated, bool)) > 0.97
    assert float(loss) < 0.2


def test_nothing_is_terminal_until_a_terminal_transition_is_seen() -> None:
    """An env that never terminates must not end rollouts, even far from the data (states x 100)."""
    model = TerminationModel(TerminationConfig(hidden_sizes=(16,), steps=100), 4, 3, discrete=True)
    state = model.init(jax.random.PRNGKey(0))
    data = _data(jax.random.PRNGKey(1), 500, lambda o, a, n: jnp.zeros(o.shape[0], bool))
    data = data._replace(action=jax.random.randint(jax.random.PRNGKey(4), (500,), 0, 3))
    # the one terminal row lies past num_valid, so it is not seen
    data = data._replace(terminated=data.terminated.at[-1].set(1.0))
    state, _ = model.fit(state, data, jnp.asarray(499), jax.random.PRNGKey(2))
    far = jax.tree.map(lambda x: 100.0 * x, (data.obs, data.next_obs))
    assert not bool(state.seen_terminal)
    assert not np.asarray(model.terminated(state, far[0], data.action, far[1])).any()
    # with the terminal row counted, the flag is up (what the net predicts is its own business)
    state, _ = model.fit(state, data, jnp.asarray(500), jax.random.PRNGKey(3))
    assert bool(state.seen_terminal)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="termination steps must be >= 1"):
        TerminationConfig(steps=0)
