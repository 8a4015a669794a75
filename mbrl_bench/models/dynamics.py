"""Neural dynamics models: deterministic or Gaussian MLP ensembles predicting (next-obs change, reward).

Every neural model is an ensemble of ``ensemble_size`` members (a single model is an ensemble of one),
held as one pytree whose leaves carry a leading member axis. All members run as one batched forward
(``jax.vmap`` over the stacked parameters), never a Python loop. Everything here is a pure function of
explicit parameters, so agents can jit it, vmap it over seeds and differentiate through it.

A model maps features (the first K visible obs dims, then the action: one-hot if discrete, as is if
continuous), normalised with mean/std statistics of the replay data, to targets
``[next_obs - obs (or next_obs), reward]`` of length ``obs_dim + 1``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, get_args

import jax
import jax.numpy as jnp
import numpy as np
import optax

from mbrl_bench.models.capacity import Capacity, parse_capacity, project_l2_ball, projection_transform
from mbrl_bench.models.mlp import ACTIVATIONS, BOUND_NAMES, Activation, DynamicsMLP, KernelInit
from mbrl_bench.tasks import Task

STD_FLOOR = 1e-6
"""Input stds below this are replaced by 1 (MBPO uses 1e-12 in float64; 1e-6 is safe in float32)."""


@dataclass(frozen=True)
class ModelConfig:
    """Hyperparameters of a neural dynamics model; defaults are MBPO's (Janner et al. 2019) configs.

    OMD's CartPole model is ``ModelConfig.omd_cartpole()``.
    """

    hidden_sizes: tuple[int, ...] = (200, 200, 200, 200)
    """Widths of the hidden layers (MBPO: 4 x 200)."""
    activation: Activation = "swish"
    """Hidden activation: swish, relu, tanh or elu (MBPO: swish)."""
    probabilistic: bool = True
    """Gaussian outputs with learned variance (MBPO, PETS) rather than a deterministic mean (OMD)."""
    predict_delta: bool = True
    """Predict next_obs - obs (MBPO) rather than next_obs itself (OMD CartPole)."""
    ensemble_size: int = 7
    """Number of members (MBPO: 7)."""
    num_elites: int = 5
    """Members with the lowest held-out error, used for propagation (MBPO: 5)."""
    kernel_init: KernelInit = "truncated_normal"
    """Kernel init: MBPO's truncated normal with std 1/(2 sqrt(fan_in)), orthogonal (OMD CartPole), or
    orthogonal_relu, gain sqrt 2 (OMD MuJoCo)."""
    weight_decays: tuple[float, ...] = (2.5e-5, 5e-5, 7.5e-5, 7.5e-5, 1e-4)
    """L2 coefficient per layer, hidden layers then output (MBPO). See ``layer_decays`` for other depths."""
    max_logvar_init: float = 0.5
    """Initial upper soft bound of the log-variance (MBPO's BNN: 0.5)."""
    min_logvar_init: float = -10.0
    """Initial lower soft bound of the log-variance (MBPO's BNN: -10)."""
    logvar_bound_weight: float = 0.01
    """Loss weight on sum(max_logvar) - sum(min_logvar), keeping the bounds tight (MBPO: 0.01)."""
    separate_reward_net: bool = False
    """Two networks per member, one for the next observation and one for the reward, each shaped by the
    capacity spec (OMD's official CartPole model, cartpole/utils.py), instead of one network with both
    outputs (MBPO, OMD's MuJoCo model)."""

    def __post_init__(self) -> None:
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; valid: {', '.join(ACTIVATIONS)}")
        if self.kernel_init not in get_args(KernelInit):
            raise ValueError(
                f"unknown kernel_init {self.kernel_init!r}; valid: {', '.join(get_args(KernelInit))}"
            )
        if any(int(w) != w or w < 1 for w in self.hidden_sizes):
            raise ValueError(f"hidden_sizes must be positive integers, got {self.hidden_sizes!r}")
        if not 1 <= self.num_elites <= self.ensemble_size:
            raise ValueError(
                f"need 1 <= num_elites <= ensemble_size, got num_elites={self.num_elites}, "
                f"ensemble_size={self.ensemble_size}"
            )
        if not self.weight_decays or any(d < 0 for d in self.weight_decays):
            raise ValueError(
                f"weight_decays must be a non-empty tuple of values >= 0, got {self.weight_decays!r}"
            )

    @classmethod
    def omd_cartpole(cls) -> ModelConfig:
        """OMD's CartPole model (official train.py): one deterministic 2 x 32 ReLU MLP, orthogonal init,
        predicting next obs itself and reward, no weight decay."""
        return cls(
            hidden_sizes=(32, 32),
            activation="relu",
            probabilistic=False,
            predict_delta=False,
            ensemble_size=1,
            num_elites=1,
            kernel_init="orthogonal",
            weight_decays=(0.0,),
        )

    def layer_decays(self, num_hidden: int) -> tuple[float, ...]:
        """Decays of ``num_hidden`` hidden layers and the output layer.

        The output layer takes the last value; hidden layer i takes ``weight_decays[min(i, n - 2)]``, so a
        deeper net repeats the last hidden decay and a shallower one keeps MBPO's increasing pattern.
        """
        d = self.weight_decays
        hidden = tuple(d[min(i, max(len(d) - 2, 0))] for i in range(num_hidden))
        return (*hidden, d[-1])


class InputStats(NamedTuple):
    """Mean and std of the model's input features over the replay data (not trained by the optimiser)."""

    mean: jax.Array
    std: jax.Array


def fit_input_stats(features: jax.Array, mask: jax.Array | None = None) -> InputStats:
    """Statistics of ``features`` [N, F] over the rows where ``mask`` is True (all rows if None).

    Stds below ``STD_FLOOR`` become 1 so constant features pass through centred but unscaled. Rows
    outside the mask never reach the result, even if they hold NaN (unfilled replay slots).
    """
    if mask is None:
        mask = jnp.ones(features.shape[0], bool)
    total = jnp.maximum(mask.sum(), 1).astype(features.dtype)
    mean = jnp.where(mask[:, None], features, 0.0).sum(0) / total
    var = jnp.where(mask[:, None], (features - mean) ** 2, 0.0).sum(0) / total
    std = jnp.sqrt(var)
    return InputStats(mean, jnp.where(std < STD_FLOOR, 1.0, std))


class ModelParams(NamedTuple):
    """Everything a neural model's predictions depend on.

    Only ``net`` is trained (and projected by ``norm:B``); ``stats`` are refitted from the replay data
    and ``elites`` are chosen by held-out error, both by ``ModelTrainer.fit``.
    """

    net: dict
    """Flax params of all members, every leaf with a leading member axis."""
    stats: InputStats
    """Input normalisation shared by all members."""
    elites: jax.Array
    """Indices [num_elites] of the members used by ``step`` (MBPO's propagation)."""


class Prediction(NamedTuple):
    """Per-member outputs in target space, shape [members, ..., obs_dim + 1] (reward last)."""

    mean: jax.Array
    logvar: jax.Array
    """Log-variance of a Gaussian model; zeros for a deterministic one."""


class Transitions(NamedTuple):
    """A batch of real or model transitions; leading dims are free (batch, member, time...)."""

    obs: jax.Array
    action: jax.Array
    """Integer indices [...] for discrete actions, vectors [..., action_dim] for continuous ones."""
    reward: jax.Array
    next_obs: jax.Array


@dataclass(frozen=True)
class DynamicsModel:
    """An ensemble of (deterministic or Gaussian) MLP dynamics models under a capacity restriction.

    How each capacity spec shapes the network (``mbrl_bench.models.capacity``):
    ``width:N`` all hidden layers N wide; ``depth:N`` the first N configured hidden layers (repeating
    the last width when N exceeds them); ``linear`` no hidden layer; ``rank:R`` every layer's kernel
    factorised through R units; ``norm:B`` each member's weights and biases (not the variance bounds,
    which are no capacity of the predicted function) projected onto the L2 ball of radius B at init and
    after every update (``project``, ``capacity_transform``); ``obs:K`` the input holds only
    ``obs[..., :K]`` and the action, and the hidden dims ``obs[..., K:]`` are predicted as absolute
    values from those (never as a change added to the hidden obs, which would let it through), so they
    have no effect on any output.
    """

    config: ModelConfig
    obs_dim: int
    action_dim: int
    """Number of actions (discrete) or length of the action vector (continuous)."""
    discrete_actions: bool
    capacity: Capacity = field(default_factory=lambda: Capacity("full"))

    def __post_init__(self) -> None:
        object.__setattr__(self, "capacity", parse_capacity(self.capacity))
        cap = self.capacity
        if cap.kind == "obs" and cap.value > self.obs_dim:  # type: ignore[operator]
            raise ValueError(
                f"capacity {cap} hides more dims than obs_dim={self.obs_dim}; "
                f"valid: obs:0..obs:{self.obs_dim}"
            )
        if cap.kind == "depth" and not self.config.hidden_sizes:
            raise ValueError(f"capacity {cap} needs a configured width, but hidden_sizes is empty")

    @classmethod
    def for_task(
        cls, task: Task, config: ModelConfig | None = None, capacity: Capacity | str = "full"
    ) -> DynamicsModel:
        """A model of ``task``'s observations and actions."""
        return cls(
            config or ModelConfig(),
            task.obs_dim,
            task.action_dim,
            task.action_kind == "discrete",
            parse_capacity(capacity),
        )

    # ---- shape of the network under the capacity -------------------------------------------------
    @property
    def hidden_sizes(self) -> tuple[int, ...]:
        """Hidden widths after the capacity restriction."""
        cap, sizes = self.capacity, self.config.hidden_sizes
        if cap.kind == "width":
            return (int(cap.value),) * len(sizes)  # type: ignore[arg-type]
        if cap.kind == "depth":
            n = int(cap.value)  # type: ignore[arg-type]
            return sizes[:n] + (sizes[-1],) * max(n - len(sizes), 0)
        if cap.kind == "linear":
            return ()
        return sizes

    @property
    def visible_dims(self) -> int:
        """How many leading obs dims the network sees."""
        return int(self.capacity.value) if self.capacity.kind == "obs" else self.obs_dim  # type: ignore[arg-type]

    @property
    def input_dim(self) -> int:
        return self.visible_dims + self.action_dim

    @property
    def output_dim(self) -> int:
        return self.obs_dim + 1

    @property
    def module(self) -> DynamicsMLP:
        """The network of one member (of its next-observation net when ``separate_reward_net``)."""
        return self._module(self.obs_dim if self.config.separate_reward_net else self.output_dim)

    def _module(self, out_dim: int) -> DynamicsMLP:
        c = self.config
        return DynamicsMLP(
            hidden_sizes=self.hidden_sizes,
            out_dim=out_dim,
            activation=c.activation,
            probabilistic=c.probabilistic,
            kernel_init=c.kernel_init,
            rank=int(self.capacity.value) if self.capacity.kind == "rank" else None,  # type: ignore[arg-type]
            max_logvar_init=c.max_logvar_init,
            min_logvar_init=c.min_logvar_init,
        )

    @property
    def _delta_mask(self) -> np.ndarray:
        """Obs dims predicted as a change (visible dims when predict_delta); the rest absolutely."""
        return (np.arange(self.obs_dim) < self.visible_dims) & self.config.predict_delta

    # ---- parameters ----------------------------------------------------------------------------
    def _init_member(self, key: jax.Array) -> dict:
        """One member's params: the net's, or ``{"next_obs": ..., "reward": ...}`` when separate."""
        dummy = jnp.zeros((1, self.input_dim))
        if not self.config.separate_reward_net:
            return self.module.init(key, dummy)["params"]
        k_obs, k_reward = jax.random.split(key)
        return {
            "next_obs": self.module.init(k_obs, dummy)["params"],
            "reward": self._module(1).init(k_reward, dummy)["params"],
        }

    def networks(self, net: dict) -> list[dict]:
        """The separately shaped networks inside ``net``: one, or next-obs and reward nets."""
        return [net["next_obs"], net["reward"]] if self.config.separate_reward_net else [net]

    def init(self, key: jax.Array) -> ModelParams:
        """Fresh parameters of all members (independent inits), identity input stats, first elites."""
        keys = jax.random.split(key, self.config.ensemble_size)
        net = jax.vmap(self._init_member)(keys)
        stats = InputStats(jnp.zeros(self.input_dim), jnp.ones(self.input_dim))
        return ModelParams(self.project(net), stats, jnp.arange(self.config.num_elites))

    def param_count(self) -> int:
        """Trainable parameters of one member (variance bounds included)."""
        shapes = jax.eval_shape(lambda: self._init_member(jax.random.key(0)))
        return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(shapes))

    def member(self, params: ModelParams, index: int) -> ModelParams:
        """Member ``index`` as a one-member ensemble (to compare an ensemble with its members)."""
        net = jax.tree.map(lambda x: x[index : index + 1], params.net)
        return ModelParams(net, params.stats, jnp.zeros(1, dtype=params.elites.dtype))

    def project(self, net: dict) -> dict:
        """Each member's weights onto the L2 ball of ``norm:B`` (identity for other capacities); with
        ``separate_reward_net`` each of the two networks has its own ball."""
        if self.capacity.kind != "norm":
            return net
        radius = float(self.capacity.value)  # type: ignore[arg-type]

        def one(sub: dict) -> dict:
            weights = {k: v for k, v in sub.items() if k not in BOUND_NAMES}
            return {**sub, **jax.vmap(lambda w: project_l2_ball(w, radius))(weights)}

        if self.config.separate_reward_net:
            return {name: one(sub) for name, sub in net.items()}
        return one(net)

    def capacity_transform(self) -> optax.GradientTransformation:
        """Chain last in any optimiser of ``params.net``: projects onto the norm ball under ``norm:B``."""
        if self.capacity.kind != "norm":
            return optax.identity()
        return projection_transform(self.project)

    def weight_decay(self, net: dict) -> jax.Array:
        """MBPO's L2 penalty: sum over layers of decay_i * sum(kernel_i^2) / 2 (U and V when factorised;
        biases and variance bounds are not decayed)."""
        decays = self.config.layer_decays(len(self.hidden_sizes))
        total = jnp.zeros(())
        for sub in self.networks(net):
            for i, decay in enumerate(decays):
                layer = sub[f"layer_{i}"]
                kernels = [layer["dense"]["kernel"]] if "dense" in layer else [layer["U"], layer["V"]]
                total = total + decay * sum(0.5 * jnp.sum(k**2) for k in kernels)
        return total

    # ---- forward ---------------------------------------------------------------------------------
    def features(self, obs: jax.Array, action: jax.Array) -> jax.Array:
        """Unnormalised network input: visible obs dims, then the one-hot or continuous action."""
        if self.discrete_actions:
            act = jax.nn.one_hot(action, self.action_dim, dtype=obs.dtype)
        else:
            act = action.astype(obs.dtype)
        return jnp.concatenate([obs[..., : self.visible_dims], act], axis=-1)

    def forward(
        self, net: dict, stats: InputStats, obs: jax.Array, action: jax.Array, per_member: bool = False
    ) -> Prediction:
        """All members' outputs in one batched forward (``jax.vmap`` over the stacked ``net``).

        With ``per_member`` False every member sees the same ``obs`` [..., obs_dim]; with True, ``obs`` and
        ``action`` carry a leading member axis and member i sees slice i (training on separate batches).
        Differentiate through this with respect to ``net`` (e.g. OMD's model gradient).
        """
        x = (self.features(obs, action) - stats.mean) / stats.std
        mean, logvar = jax.vmap(self._apply_member, in_axes=(0, 0 if per_member else None))(net, x)
        return Prediction(mean, logvar)

    def _apply_member(self, member_net: dict, inputs: jax.Array) -> tuple[jax.Array, jax.Array]:
        if not self.config.separate_reward_net:
            return self.module.apply({"params": member_net}, inputs)
        obs_mean, obs_logvar = self.module.apply({"params": member_net["next_obs"]}, inputs)
        reward_mean, reward_logvar = self._module(1).apply({"params": member_net["reward"]}, inputs)
        return (
            jnp.concatenate([obs_mean, reward_mean], axis=-1),
            jnp.concatenate([obs_logvar, reward_logvar], axis=-1),
        )

    def predict(
        self, params: ModelParams, obs: jax.Array, action: jax.Array, per_member: bool = False
    ) -> Prediction:
        """``forward`` with the parameters' own net and input statistics."""
        return self.forward(params.net, params.stats, obs, action, per_member)

    def targets(self, obs: jax.Array, next_obs: jax.Array, reward: jax.Array) -> jax.Array:
        """The regression targets of transitions: [next_obs - obs on delta dims, reward]."""
        base = jnp.where(self._delta_mask, obs, 0.0)
        return jnp.concatenate([next_obs - base, reward[..., None]], axis=-1)

    def decode(self, obs: jax.Array, output: jax.Array) -> tuple[jax.Array, jax.Array]:
        """(next_obs, reward) from outputs in target space (inverse of ``targets``)."""
        base = jnp.where(self._delta_mask, obs, 0.0)
        return output[..., : self.obs_dim] + base, output[..., -1]

    def step(
        self, params: ModelParams, obs: jax.Array, action: jax.Array, key: jax.Array, sample: bool = True
    ) -> tuple[jax.Array, jax.Array]:
        """MBPO's propagation: each sample uses a uniformly random elite member.

        ``obs`` [..., obs_dim] -> (next_obs [..., obs_dim], reward [...]). A Gaussian model samples from
        the chosen member's Gaussian when ``sample`` (else returns its mean); a deterministic one returns
        the chosen member's mean.
        """
        pred = self.predict(params, obs, action)
        k_member, k_noise = jax.random.split(key)
        batch_shape = obs.shape[:-1]
        choice = jax.random.randint(k_member, batch_shape, 0, params.elites.shape[0])
        member = params.elites[choice][None, ..., None]
        mean = jnp.take_along_axis(pred.mean, member, axis=0)[0]
        if self.config.probabilistic and sample:
            logvar = jnp.take_along_axis(pred.logvar, member, axis=0)[0]
            mean = mean + jnp.exp(0.5 * logvar) * jax.random.normal(k_noise, mean.shape, mean.dtype)
        return self.decode(obs, mean)

    def step_balanced(
        self, params: ModelParams, obs: jax.Array, action: jax.Array, key: jax.Array, sample: bool = True
    ) -> tuple[jax.Array, jax.Array]:
        """``step`` that runs each row through its chosen elite only: 1/members of ``step``'s compute.

        ``obs`` [N, obs_dim], ``action`` [N, ...]. The rows are dealt to the elites by a uniformly random
        permutation in equal shares (N padded up to a multiple of the elite count), so each row's member is
        a uniformly random elite as in ``step`` (MBPO's propagation); only the counts per elite are balanced
        rather than multinomial. Used for MBPO's branched rollouts, which ``step`` would make compute every
        member for every row.
        """
        n, elites = obs.shape[0], params.elites.shape[0]
        per_elite = -(-n // elites)
        k_deal, k_noise = jax.random.split(key)
        slot_row = jax.random.permutation(k_deal, per_elite * elites)
        source = jnp.where(slot_row < n, slot_row, 0)
        group = lambda x: x[source].reshape(elites, per_elite, *x.shape[1:])
        net = jax.tree.map(lambda x: x[params.elites], params.net)
        pred = self.forward(net, params.stats, group(obs), group(action), per_member=True)
        row_slot = jnp.argsort(slot_row)[:n]
        flat = lambda x: x.reshape(elites * per_elite, -1)[row_slot]
        mean = flat(pred.mean)
        if self.config.probabilistic and sample:
            noise = jax.random.normal(k_noise, mean.shape, mean.dtype)
            mean = mean + jnp.exp(0.5 * flat(pred.logvar)) * noise
        return self.decode(obs, mean)

    # ---- training loss ---------------------------------------------------------------------------
    def loss(self, net: dict, stats: InputStats, batch: Transitions) -> tuple[jax.Array, jax.Array]:
        """MBPO's training loss of all members on per-member batches (leading member axis).

        Per member: mean over batch and outputs of ``(mean - y)^2 exp(-logvar) + logvar`` (Gaussian NLL
        up to constants and a factor 2) or of ``(mean - y)^2`` (deterministic); summed over members so
        each member's gradient is its own; plus the bound penalty and the per-layer weight decay.
        Returns (loss, per-member MSE of the mean [members]).
        """
        pred = self.forward(net, stats, batch.obs, batch.action, per_member=True)
        sq = (pred.mean - self.targets(batch.obs, batch.next_obs, batch.reward)) ** 2
        mse = sq.reshape(sq.shape[0], -1).mean(-1)
        if self.config.probabilistic:
            nll = sq * jnp.exp(-pred.logvar) + pred.logvar
            total = nll.reshape(nll.shape[0], -1).mean(-1).sum()
            bounds = sum(
                jnp.sum(sub["max_logvar"]) - jnp.sum(sub["min_logvar"]) for sub in self.networks(net)
            )
            total = total + self.config.logvar_bound_weight * bounds
        else:
            total = mse.sum()
        return total + self.weight_decay(net), mse
