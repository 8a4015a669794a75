"""The ``sac`` agent: model-free soft actor-critic (jaxrl's defaults), on continuous and discrete actions.

The reference learner of the continuous agents (OMD, MLE-Dyna, MBPO and VIREL stand on the same
``baselines.common.sac``) and a model-free yardstick beside PPO in the leaderboard. As jaxrl's
``train.py``: uniformly random actions for the first ``start_steps`` env steps, then actions sampled from
the policy; from env step ``start_steps`` on, ``updates_per_step`` SAC updates per env step on uniform
minibatches of the replay (all G of them one ``lax.scan`` inside the one jitted ``update``); evaluation
with the deterministic action tanh(mean).

On Discrete actions it is the discrete SAC of Christodoulou 2019 (``DiscreteSAC``: a categorical policy,
exact expectations over actions, target entropy ``target_entropy_ratio`` x log|A|, the most probable action
to evaluate) with the same jaxrl defaults otherwise: ours, since neither jaxrl nor the paper has a
CartPole setting (the paper's Atari runs are not this budget's). Discrete observations (the tabular ids'
state indices) are read one-hot.
"""

from __future__ import annotations

from typing import ClassVar, NamedTuple

import gymnasium as gym
import jax
import jax.numpy as jnp
from mbrl_bench.baselines.api import Agent, EnvInfo, Transition, action_kind, register_agent
from mbrl_bench.baselines.common.replay import Replay, replay_add, replay_get, replay_init, sample_uniform
from mbrl_bench.baselines.common.sac import SAC, Batch, DiscreteSAC, EnvAdapter, SACConfig, SACState

METRICS: tuple[str, ...] = ("critic_loss", "q_mean", "actor_loss", "entropy", "alpha")
"""Per-step metrics: the critics' TD loss, mean Q(s, a) on the batch, the actor's loss, the policy's
entropy estimate -E[log pi] and the temperature, all from the last of the step's G updates."""


class SACAgentState(NamedTuple):
    learner: SACState
    replay: Replay
    steps: jax.Array
    """Real transitions received so far (decides the initial random phase in ``act``)."""


def check_continuous(agent: Agent, env: EnvInfo) -> None:
    """ValueError unless ``env`` has Box observations and bounded Box actions."""
    kind = action_kind(env.action_space)
    if kind != "continuous":
        raise ValueError(f"{agent.name} supports continuous actions only; {env.env_id} has {kind} actions")
    if not isinstance(env.observation_space, gym.spaces.Box):
        raise ValueError(
            f"{agent.name} needs vector (Box) observations, {env.env_id} has {env.observation_space}"
        )


@register_agent
class SACAgent(Agent):
    """Soft actor-critic (Haarnoja et al. 2018) with jaxrl's defaults (see ``SACConfig``); the discrete SAC
    (Christodoulou 2019) on Discrete actions."""

    name: ClassVar[str] = "sac"
    Config: ClassVar[type] = SACConfig
    action_kinds: ClassVar[frozenset[str]] = frozenset({"continuous", "discrete"})
    description: ClassVar[str] = "soft actor-critic, jaxrl defaults; discrete SAC on Discrete actions"

    def __init__(self, config: SACConfig, env: EnvInfo, capacity: str = "full") -> None:
        super().__init__(config, env, capacity)
        self.io = EnvAdapter.for_spaces(
            env.observation_space, env.action_space, env.task.layout, config.hide_position
        )
        self.sac: SAC = (DiscreteSAC if self.io.discrete else SAC)(
            config, self.io.obs_dim, self.io.action_dim
        )
        self.replay_capacity = min(config.replay_capacity, env.budget or config.replay_capacity)

    def init(self, key: jax.Array) -> SACAgentState:
        return SACAgentState(
            self.sac.init(key),
            replay_init(self.io.example_item(), self.replay_capacity),
            jnp.zeros((), jnp.int32),
        )

    def act(self, state: SACAgentState, obs: jax.Array, key: jax.Array, explore: bool) -> jax.Array:
        random_phase = state.steps < self.config.start_steps
        return self.io.act(self.sac, state.learner.actor, obs, key, explore, random_phase)

    def update(
        self, state: SACAgentState, transition: Transition, key: jax.Array, step: jax.Array
    ) -> tuple[SACAgentState, dict[str, jax.Array]]:
        state = state._replace(
            replay=replay_add(state.replay, self.io.replay_item(transition)), steps=state.steps + 1
        )

        def learn(s: SACAgentState) -> tuple[SACAgentState, dict[str, jax.Array]]:
            sample = lambda k: Batch(
                *replay_get(s.replay, sample_uniform(s.replay, k, self.config.batch_size))
            )
            learner, info = self.sac.updates(s.learner, sample, key, self.config.updates_per_step)
            return s._replace(learner=learner), {name: info[name] for name in METRICS}

        idle = lambda s: (s, {name: jnp.zeros(()) for name in METRICS})
        return jax.lax.cond(step >= self.config.start_steps, learn, idle, state)
