"""A tabular model for the tabular MDPs: transition logits for P[s, a, .] and a reward table R[s, a].

As in OMD's tabular study (Nikishin et al. 2022, official notebook): P^ = softmax(L / temperature)
over s', R^ a table, both initialised uniform(0, 1), and the ``norm:B`` capacity bounds the L2 norm of
the vector (L / temperature, R^), i.e. of the logits actually used and the rewards, after every update.
Observations are state indices (integer arrays of any shape); so are discrete actions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.scipy.special import xlogy

from mbrl_bench.models.capacity import Capacity, parse_capacity, projection_transform
from mbrl_bench.models.dynamics import Transitions
from mbrl_bench.tasks import Task

TABULAR_CAPACITIES = ("full", "norm")
"""Capacity kinds that make sense for a table (the others name network shapes)."""


@dataclass(frozen=True)
class TabularModelConfig:
    """Parametrisation of the tabular model (OMD's tabular notebook)."""

    temperature: float = 0.01
    """P^ = softmax(L / temperature) (OMD: 0.01)."""
    init_low: float = 0.0
    """Lower end of the uniform init of L and R^ (OMD: 0)."""
    init_high: float = 1.0
    """Upper end of the uniform init of L and R^ (OMD: 1)."""

    def __post_init__(self) -> None:
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0, got {self.temperature}")


class TabularParams(NamedTuple):
    logits: jax.Array
    """L [S, A, S]; the model's transition probabilities are softmax(L / temperature) over the last axis."""
    reward: jax.Array
    """R^ [S, A]."""


@dataclass(frozen=True)
class TabularModel:
    """Tabular dynamics and reward of an MDP with ``num_states`` states and ``num_actions`` actions."""

    num_states: int
    num_actions: int
    config: TabularModelConfig = field(default_factory=TabularModelConfig)
    capacity: Capacity = field(default_factory=lambda: Capacity("full"))

    def __post_init__(self) -> None:
        cap = parse_capacity(self.capacity)
        if cap.kind not in TABULAR_CAPACITIES:
            raise ValueError(f"capacity {cap} does not apply to a tabular model; valid forms: full, norm:B")
        object.__setattr__(self, "capacity", cap)
        if self.num_states < 1 or self.num_actions < 1:
            raise ValueError(f"need num_states, num_actions >= 1, got {self.num_states}, {self.num_actions}")

    @classmethod
    def for_task(
        cls, task: Task, config: TabularModelConfig | None = None, capacity: Capacity | str = "full"
    ) -> TabularModel:
        """A model of a tabular task (its layout names ``n_states`` and ``n_actions``)."""
        if "n_states" not in task.layout:
            raise ValueError(f"{task.env_id} is not tabular: its layout has no 'n_states'")
        layout = task.layout
        return cls(
            int(layout["n_states"]), int(layout["n_actions"]), config or TabularModelConfig(), capacity
        )

    def init(self, key: jax.Array) -> TabularParams:
        """Uniform init of L and R^ (OMD), projected into the norm ball under ``norm:B``."""
        k_l, k_r = jax.random.split(key)
        s, a, c = self.num_states, self.num_actions, self.config
        logits = jax.random.uniform(k_l, (s, a, s), minval=c.init_low, maxval=c.init_high)
        reward = jax.random.uniform(k_r, (s, a), minval=c.init_low, maxval=c.init_high)
        return self.project(TabularParams(logits, reward))

    def log_probs(self, params: TabularParams) -> jax.Array:
        """log P^[s, a, s']."""
        return jax.nn.log_softmax(params.logits / self.config.temperature, axis=-1)

    def transition_probs(self, params: TabularParams) -> jax.Array:
        """P^[s, a, s']."""
        return jnp.exp(self.log_probs(params))

    def step(
        self, params: TabularParams, obs: jax.Array, action: jax.Array, key: jax.Array
    ) -> tuple[jax.Array, jax.Array]:
        """Sample s' ~ P^[s, a, .] and return (s', R^[s, a]) for index arrays of any shape."""
        s, a = obs.astype(jnp.int32), action.astype(jnp.int32)
        next_obs = jax.random.categorical(key, self.log_probs(params)[s, a], axis=-1)
        return next_obs.astype(obs.dtype), params.reward[s, a]

    def loss(self, params: TabularParams, batch: Transitions) -> jax.Array:
        """Sample MLE loss: mean over transitions of -log P^(s'|s, a) + (R^(s, a) - r)^2."""
        s, a = batch.obs.astype(jnp.int32), batch.action.astype(jnp.int32)
        nll = -self.log_probs(params)[s, a, batch.next_obs.astype(jnp.int32)]
        return jnp.mean(nll + (params.reward[s, a] - batch.reward) ** 2)

    def exact_mle_loss(self, params: TabularParams, transitions: jax.Array, rewards: jax.Array) -> jax.Array:
        """OMD's MLE objective for a known MDP: mean (R^ - R)^2 + mean over (s, a) of KL(P || P^)."""
        kl = (xlogy(transitions, transitions) - transitions * self.log_probs(params)).sum(-1)
        return jnp.mean((params.reward - rewards) ** 2) + jnp.mean(kl)

    def project(self, params: TabularParams) -> TabularParams:
        """Under ``norm:B``, rescale so ||(L / temperature, R^)||_2 <= B (identity otherwise).

        The ball is round in the scaled coordinates, so the Euclidean projection there is a common
        rescaling of L and R^.
        """
        if self.capacity.kind != "norm":
            return params
        norm = optax.tree.norm((params.logits / self.config.temperature, params.reward))
        scale = jnp.minimum(1.0, self.capacity.value / jnp.maximum(norm, jnp.finfo(norm.dtype).tiny))
        return TabularParams(params.logits * scale, params.reward * scale)

    def capacity_transform(self) -> optax.GradientTransformation:
        """Chain last in an optimiser of the params: the ``norm:B`` projection (identity otherwise)."""
        if self.capacity.kind != "norm":
            return optax.identity()
        return projection_transform(self.project)
