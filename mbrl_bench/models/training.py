"""Maximum-likelihood training of the neural models: jitted minibatch Adam, held-out split, early
stopping and elite selection, following MBPO's BNN training (Janner et al. 2019, official configs).

``ModelTrainer.fit`` is one pure function (``lax.while_loop`` over epochs, a loop over minibatches
inside), so an agent can call it inside its own jitted, seed-vmapped update on a fixed-size replay
buffer holding ``num_valid`` transitions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from mbrl_bench.models.dynamics import DynamicsModel, ModelParams, Transitions, fit_input_stats
from mbrl_bench.models.metrics import one_step_errors


@dataclass(frozen=True)
class TrainConfig:
    """MLE training of a neural model; defaults are MBPO's (Janner et al. 2019, official configs)."""

    learning_rate: float = 1e-3
    """Adam step size (MBPO: 1e-3)."""
    batch_size: int = 256
    """Minibatch per member per step (MBPO: 256)."""
    holdout_ratio: float = 0.2
    """Share of the data held out for early stopping and elite selection (MBPO: 0.2)."""
    max_holdout: int = 5000
    """Cap on the held-out transitions (MBPO: 5000)."""
    patience: int = 5
    """Stop once this many epochs in a row brought no member a relative improvement (MBPO: 5)."""
    min_improvement: float = 0.01
    """Relative drop of a member's held-out MSE that counts as an improvement (MBPO: 1%)."""
    max_epochs: int | None = None
    """Hard cap on epochs; None trains until early stopping, as MBPO does."""
    bootstrap: bool = False
    """Give each member its own bootstrap resample of the training rows for the whole fit (MBPO's BNN:
    ``idxs = randint(num_train, size=[num_nets, num_train])``), so members see different data. False
    draws every member's minibatches from all training rows."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.holdout_ratio < 1.0:
            raise ValueError(f"holdout_ratio must be in [0, 1), got {self.holdout_ratio}")
        if self.batch_size < 1 or self.max_holdout < 0 or self.patience < 0:
            raise ValueError(
                f"need batch_size >= 1, max_holdout >= 0, patience >= 0; got {self.batch_size}, "
                f"{self.max_holdout}, {self.patience}"
            )
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ValueError(f"max_epochs must be None or >= 1, got {self.max_epochs}")


class FitInfo(NamedTuple):
    """What ``ModelTrainer.fit`` reports."""

    holdout_mse: jax.Array
    """[members] held-out MSE after the last epoch (inf when nothing was held out)."""
    epochs: jax.Array
    """Epochs run."""
    steps: jax.Array
    """Optimiser steps taken."""
    train_mse: jax.Array
    """[members] MSE on the last training minibatch."""


@dataclass(frozen=True)
class ModelTrainer:
    """Trains a ``DynamicsModel``'s parameters by maximum likelihood (MSE for deterministic models).

    The optimiser is Adam followed by the model's capacity transformation (the ``norm:B`` projection),
    over ``params.net`` of all members at once: the loss is a sum over members, so one fused update of
    the stacked parameters equals a separate Adam step per member.
    """

    model: DynamicsModel
    config: TrainConfig = field(default_factory=TrainConfig)

    @property
    def optimizer(self) -> optax.GradientTransformation:
        return optax.chain(optax.adam(self.config.learning_rate), self.model.capacity_transform())

    def init_optimizer(self, params: ModelParams) -> optax.OptState:
        return self.optimizer.init(params.net)

    def train_step(
        self, params: ModelParams, opt_state: optax.OptState, batch: Transitions
    ) -> tuple[ModelParams, optax.OptState, jax.Array]:
        """One Adam step of every member on its own minibatch (``batch`` leaves [members, B, ...]).

        Returns the new params and optimiser state and the per-member MSE of the batch (before the step).
        """
        grads, mse = jax.grad(self.model.loss, has_aux=True)(params.net, params.stats, batch)
        updates, opt_state = self.optimizer.update(grads, opt_state, params.net)
        return params._replace(net=optax.apply_updates(params.net, updates)), opt_state, mse

    def fit(
        self,
        params: ModelParams,
        opt_state: optax.OptState,
        data: Transitions,
        key: jax.Array,
        num_valid: int | jax.Array | None = None,
    ) -> tuple[ModelParams, optax.OptState, FitInfo]:
        """Train on the first ``num_valid`` rows of ``data`` [capacity, ...] (all rows if None) until
        early stopping, as MBPO does.

        1. A random ``min(floor(holdout_ratio * n), max_holdout)`` rows are held out; the input statistics
           are refitted on the rest.
        2. An epoch is ceil(n_train / batch_size) steps; every member draws each minibatch uniformly with
           replacement from the training rows, independently of the other members; with ``bootstrap``,
           from its own bootstrap resample of the training rows (n_train draws with replacement, fixed
           for the fit), as MBPO. MBPO passes over a shuffled resample epoch by epoch; drawing with
           replacement from it keeps each member's data distribution without sorting it every epoch.
        3. After each epoch every member's held-out MSE is compared with its best so far; training stops
           when more than ``patience`` epochs in a row improved no member by ``min_improvement``
           (relative), or at ``max_epochs``. Weights are those of the last epoch, as in MBPO.
        4. The elites are the ``num_elites`` members with the lowest held-out MSE.

        With fewer than 1 / holdout_ratio rows nothing is held out: the held-out MSE is inf, no epoch
        counts as an improvement and training stops after ``patience + 1`` epochs. Needs n >= 1.
        """
        cfg, members = self.config, self.model.config.ensemble_size
        capacity = data.obs.shape[0]
        n = jnp.asarray(capacity if num_valid is None else num_valid, jnp.int32)
        k_split, k_train = jax.random.split(key)
        valid = jnp.arange(capacity) < n
        perm = jnp.argsort(jnp.where(valid, jax.random.uniform(k_split, (capacity,)), 2.0))
        n_hold = jnp.minimum(jnp.floor(cfg.holdout_ratio * n).astype(jnp.int32), cfg.max_holdout)
        hold_size = min(cfg.max_holdout, capacity)
        hold_weights = (jnp.arange(hold_size) < n_hold).astype(data.reward.dtype)
        holdout = jax.tree.map(lambda x: x[perm[:hold_size]], data)
        in_holdout = jnp.zeros(capacity, bool).at[perm[:hold_size]].set(hold_weights > 0)
        features = self.model.features(data.obs, data.action)
        params = params._replace(stats=fit_input_stats(features, valid & ~in_holdout))
        steps_per_epoch = (n - n_hold + cfg.batch_size - 1) // cfg.batch_size
        if cfg.bootstrap:
            k_boot = jax.random.fold_in(k_train, 1)  # a new stream, so bootstrap=False draws as before
            resample = perm[
                jax.random.randint(k_boot, (members, capacity), n_hold, jnp.maximum(n, n_hold + 1))
            ]

        def holdout_mse(p: ModelParams) -> jax.Array:
            mse = one_step_errors(self.model, p, holdout, hold_weights).member_mse
            return jnp.where(n_hold > 0, mse, jnp.inf)

        def minibatch_step(_: jax.Array, carry: tuple) -> tuple:
            p, o, k, _mse = carry
            k, k_batch = jax.random.split(k)
            if cfg.bootstrap:
                draw = jax.random.randint(k_batch, (members, cfg.batch_size), 0, jnp.maximum(n - n_hold, 1))
                rows = jnp.take_along_axis(resample, draw, axis=1)
            else:
                rows = perm[jax.random.randint(k_batch, (members, cfg.batch_size), n_hold, n)]
            p, o, mse = self.train_step(p, o, jax.tree.map(lambda x: x[rows], data))
            return p, o, k, mse

        def epoch(carry: tuple) -> tuple:
            p, o, k, best, since, count, _mse = carry
            p, o, k, train_mse = jax.lax.fori_loop(
                0, steps_per_epoch, minibatch_step, (p, o, k, jnp.zeros(members))
            )
            current = holdout_mse(p)
            improved = current < best * (1.0 - cfg.min_improvement)
            best = jnp.where(improved, current, best)
            since = jnp.where(improved.any(), 0, since + 1)
            return p, o, k, best, since, count + 1, train_mse

        def keep_going(carry: tuple) -> jax.Array:
            *_, since, count, _mse = carry
            go = since <= cfg.patience
            return go if cfg.max_epochs is None else go & (count < cfg.max_epochs)

        zero = jnp.zeros((), jnp.int32)
        init = (params, opt_state, k_train, jnp.full(members, jnp.inf), zero, zero, jnp.zeros(members))
        params, opt_state, _, _, _, epochs, train_mse = jax.lax.while_loop(keep_going, epoch, init)
        final = holdout_mse(params)
        elites = jnp.argsort(final)[: self.model.config.num_elites]
        info = FitInfo(final, epochs, epochs * steps_per_epoch, train_mse)
        return params._replace(elites=elites), opt_state, info
