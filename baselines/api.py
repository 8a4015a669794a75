"""The agent interface every baseline implements, and the registry the harness finds agents through.

An agent is a small class of *pure* functions over an explicit state pytree, so the harness can
``jax.jit`` them, ``jax.vmap`` them over seeds (stacked states) and, over pure-JAX environments, run the
whole loop under ``lax.scan``:

    agent = MyAgent(config, env_info, capacity)
    state = agent.init(key)                                   # one seed's learner state
    action = agent.act(state, obs, key, explore=True)         # one observation -> one action
    state, metrics = agent.update(state, transition, key, step)  # once per env step

``update`` sees every real transition, one env step at a time; the agent keeps whatever replay or
rollout buffer it needs inside its state and decides itself when to learn from ``step``, the number of
env steps taken so far by each seed. ``step`` is the same for all seeds and is *not* vmapped, so a
``lax.cond`` on it stays a real branch when the learner is vmapped over seeds (a condition on a
batched value would turn into a select that runs both branches every step). ``metrics`` is a flat
dict of scalar arrays (losses, model errors...); the harness watches them and the state for NaN/inf.

Writing a new agent: subclass ``Agent``, give it a typed frozen ``Config`` dataclass (each field with
a one-line doc string citing its source), set the class variables, and decorate it with
``@register_agent``. Then ``mbrl-bench algos`` lists it and ``mbrl-bench run --algo NAME`` runs it
(shipped agents' modules are listed in ``_AGENT_MODULES``; an agent in another package is found by
naming its module in the environment variable ``MBRL_BENCH_AGENT_MODULES``).
"""

from __future__ import annotations

import abc
import dataclasses
import importlib
import os
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import gymnasium as gym
import jax

from mbrl_bench.tasks import Task

AgentState = Any
"""A pytree of arrays: everything the agent learns and remembers (params, optimiser, replay, RNG-free)."""


class Transition(NamedTuple):
    """One real env step of one seed, as the harness hands it to ``Agent.update``."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    """The true next observation (the final one when the episode ended, never the reset one)."""
    terminated: jax.Array
    truncated: jax.Array


@dataclass(frozen=True)
class EnvInfo:
    """What an agent is told about its environment."""

    env_id: str
    env_kwargs: dict[str, Any]
    observation_space: gym.spaces.Space
    action_space: gym.spaces.Space
    task: Task
    """True reward/termination functions and observation layout (for model-based agents)."""
    budget: int | None = None
    """The run's total env steps per seed when the harness knows it (``--steps``), else None: for
    schedules that anneal over the run (PPO's learning rate) and buffers sized to it (jaxrl's replay)."""


class Agent(abc.ABC):
    """Base class of all agents. Subclasses set the class variables and implement the three methods."""

    name: ClassVar[str]
    """Registry name, used by ``--algo``."""
    Config: ClassVar[type]
    """A frozen dataclass of hyperparameters; ``--set key=value`` is checked against its fields."""
    action_kinds: ClassVar[frozenset[str]]
    """Subset of {"discrete", "continuous"} the agent supports."""
    uses_model: ClassVar[bool] = False
    """Whether the agent learns a dynamics model; only then do capacities other than ``full`` apply."""
    batch_over_seeds: ClassVar[bool] = True
    """False if the harness must run seeds one by one instead of vmapping the learner over them."""
    float64: ClassVar[bool] = False
    """True if the agent needs float64: the harness runs its cells under ``jax.enable_x64(True)``. An agent
    whose precision is a config option sets ``self.float64`` in ``__init__``."""
    description: ClassVar[str] = ""
    """One line for ``mbrl-bench algos``."""
    kind_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    """Per action kind ("discrete"/"continuous"), config fields whose default differs from ``Config``'s
    own, for an agent whose official setups differ by action kind (OMD: CartPole vs MuJoCo code). The
    harness applies them under ``--set`` values; the resolved config is what ``config.json`` records."""

    def __init__(self, config: Any, env: EnvInfo, capacity: str = "full") -> None:
        self.config = config
        self.env = env
        self.capacity = capacity

    @abc.abstractmethod
    def init(self, key: jax.Array) -> AgentState:
        """The initial learner state of one seed."""

    @abc.abstractmethod
    def act(self, state: AgentState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        """An action for one observation. ``explore`` is static: True while training, False to evaluate."""

    @abc.abstractmethod
    def update(
        self, state: AgentState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[AgentState, dict[str, jax.Array]]:
        """Take in one real transition (the ``step``-th, counting from 1); learn when the schedule says."""


def action_kind(space: gym.spaces.Space) -> str:
    """ "discrete" or "continuous"; ValueError for spaces no agent handles."""
    if isinstance(space, gym.spaces.Discrete):
        return "discrete"
    if isinstance(space, gym.spaces.Box):
        return "continuous"
    raise ValueError(f"unsupported action space {space}; agents handle Discrete and Box")


_REGISTRY: dict[str, type[Agent]] = {}
_AGENT_MODULES: tuple[str, ...] = (
    "mbrl_bench.baselines.random_agent",
    "mbrl_bench.baselines.omd",
    "mbrl_bench.baselines.omd_tabular",
    "mbrl_bench.baselines.ppo",
    "mbrl_bench.baselines.rainbow",
    "mbrl_bench.baselines.sac",
    "mbrl_bench.baselines.mbpo",
    "mbrl_bench.baselines.virel",
    "mbrl_bench.baselines.pal",
)
"""Modules whose import registers the shipped agents (imported on first registry access)."""


def register_agent(cls: type[Agent]) -> type[Agent]:
    """Class decorator adding an agent to the registry under ``cls.name``."""
    if not dataclasses.is_dataclass(cls.Config):
        raise TypeError(f"{cls.__name__}.Config must be a dataclass")
    _REGISTRY[cls.name] = cls
    return cls


AGENT_MODULES_ENV = "MBRL_BENCH_AGENT_MODULES"
"""Environment variable naming extra modules (comma-separated) whose import registers agents: how an
agent outside this package reaches ``mbrl-bench run --algo`` and ``mbrl-bench algos``."""


def _load_shipped() -> None:
    extra = [m.strip() for m in os.environ.get(AGENT_MODULES_ENV, "").split(",") if m.strip()]
    for module in _AGENT_MODULES:
        importlib.import_module(module)
    for module in extra:
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(
                f"cannot import agent module {module!r} named in ${AGENT_MODULES_ENV}: {e}"
            ) from None


def agent_names() -> list[str]:
    _load_shipped()
    return sorted(_REGISTRY)


def get_agent(name: str) -> type[Agent]:
    """The agent class registered as ``name``; ValueError lists the registered names."""
    _load_shipped()
    if name not in _REGISTRY:
        raise ValueError(f"unknown algorithm {name!r}; valid algorithms: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]
