"""A learned termination classifier, for Gymnasium ids mbrl-bench has no true termination function for.

Agents that roll a model out (MBPO) end a branch at a terminal transition. On mbrl-bench's own ids they
call the task's true termination, as MBPO's static termination functions; on any other Gymnasium id
(``Task.true_functions`` False) they learn it: a classifier of p(terminated | s, a, s') trained by binary
cross-entropy on the real transitions, as DreamerV2 learns its discount ("continue") predictor, with a
transition terminal when p > 1/2. Until a terminal transition has been seen it predicts none: a net fitted
to negatives only may still say "terminal" far from its data, where model rollouts often go, and an env
that never terminates (Pendulum, HalfCheetah) must not end rollouts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from mbrl_bench.models.mlp import DynamicsMLP


@dataclass(frozen=True)
class TerminationConfig:
    """The classifier's settings (ours: no reference code learns MBPO's termination)."""

    hidden_sizes: tuple[int, ...] = (200, 200)
    """Hidden swish widths; MBPO's model width, two layers since the rule is usually a few thresholds."""
    learning_rate: float = 1e-3
    """Adam step size (MBPO's model learning rate)."""
    batch_size: int = 256
    """Minibatch of each step, drawn uniformly from the real transitions."""
    steps: int = 250
    """Adam steps per fit (one fit per model retrain)."""

    def __post_init__(self) -> None:
        for name in ("batch_size", "steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"termination {name} must be >= 1, got {getattr(self, name)!r}")
        if not self.hidden_sizes or any(w < 1 for w in self.hidden_sizes):
            raise ValueError(f"termination hidden_sizes must be positive widths, got {self.hidden_sizes!r}")


class Labelled(NamedTuple):
    """Real transitions with their termination flags; actions as the learner stores them."""

    obs: jax.Array
    action: jax.Array
    next_obs: jax.Array
    terminated: jax.Array


class TerminationState(NamedTuple):
    params: Any
    opt_state: optax.OptState
    seen_terminal: jax.Array
    """Whether any fitted transition was terminal; until then nothing is predicted terminal."""


class TerminationModel:
    """p(terminated | s, a, s') as a logit; its inputs are s, a (one-hot if discrete) and s' - s."""

    def __init__(self, config: TerminationConfig, obs_dim: int, action_dim: int, discrete: bool) -> None:
        self.config, self.obs_dim, self.action_dim, self.discrete = config, obs_dim, action_dim, discrete
        self.net = DynamicsMLP(
            hidden_sizes=tuple(config.hidden_sizes),
            out_dim=1,
            activation="swish",
            probabilistic=False,
            kernel_init="truncated_normal",
            rank=None,
            max_logvar_init=0.0,
            min_logvar_init=0.0,
        )
        self.optimizer = optax.adam(config.learning_rate)

    def features(self, obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
        action = jax.nn.one_hot(action, self.action_dim) if self.discrete else action
        return jnp.concatenate([obs, action.astype(obs.dtype), next_obs - obs], axis=-1)

    def init(self, key: jax.Array) -> TerminationState:
        dummy = jnp.zeros((1, 2 * self.obs_dim + self.action_dim))
        params = self.net.init(key, dummy)
        return TerminationState(params, self.optimizer.init(params), jnp.zeros((), bool))

    def logit(self, params: Any, obs: jax.Array, action: jax.Array, next_obs: jax.Array) -> jax.Array:
        return self.net.apply(params, self.features(obs, action, next_obs))[0][..., 0]

    def terminated(
        self, state: TerminationState, obs: jax.Array, action: jax.Array, next_obs: jax.Array
    ) -> jax.Array:
        """Whether each transition is terminal: p > 1/2, once a terminal transition has been seen."""
        return (self.logit(state.params, obs, action, next_obs) > 0.0) & state.seen_terminal

    def loss(self, params: Any, batch: Labelled) -> jax.Array:
        logit = self.logit(params, batch.obs, batch.action, batch.next_obs)
        return jnp.mean(optax.sigmoid_binary_cross_entropy(logit, batch.terminated.astype(logit.dtype)))

    def fit(
        self, state: TerminationState, data: Labelled, num_valid: jax.Array, key: jax.Array
    ) -> tuple[TerminationState, jax.Array]:
        """``steps`` Adam steps on minibatches drawn uniformly from the first ``num_valid`` rows of ``data``
        (one ``lax.scan``); returns the new state and the last minibatch's loss."""

        def step(
            carry: tuple[Any, optax.OptState], k: jax.Array
        ) -> tuple[tuple[Any, optax.OptState], jax.Array]:
            params, opt_state = carry
            rows = jax.random.randint(k, (self.config.batch_size,), 0, jnp.maximum(num_valid, 1))
            loss, grads = jax.value_and_grad(self.loss)(params, jax.tree.map(lambda x: x[rows], data))
            updates, opt_state = self.optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), loss

        carry = (state.params, state.opt_state)
        (params, opt_state), losses = jax.lax.scan(step, carry, jax.random.split(key, self.config.steps))
        rows = jnp.arange(data.terminated.shape[0]) < num_valid
        seen = state.seen_terminal | jnp.any(rows & (data.terminated > 0))
        return TerminationState(params, opt_state, seen), losses[-1]
