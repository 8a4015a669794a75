"""What an `mbpo` checkpoint's model and critic say about rewards, against MuJoCo's true reward.

For real states drawn uniformly from the checkpoint's replay buffer (where MBPO starts its rollouts), with
the buffer's own actions and with actions sampled from the checkpoint's policy (the rollouts' actions):
the ensemble's predicted reward (mean over the elites, and one draw as the rollouts take it), the true
reward (the env's simulator set to each state and stepped with the action), and the critic's
min(Q1, Q2). A model that overrates the policy's actions where the buffer's are predicted well is what
"the critic exploits the model's errors" would look like; a critic far outside the scale of the rewards it
is trained on, with the model's rewards close to the true ones, points at the critic instead.

    python scripts/probe_mbpo_rewards.py results/DIR/mbpo/ENV/CAPACITY/seed_0/  # needs its checkpoint.pkl

MuJoCo ids whose observation holds the whole qpos and qvel (the task layout's ``positions`` and
``velocities``, e.g. HalfCheetah-v0 and its distractor twin) only.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import gymnasium as gym
import jax
import jax.numpy as jnp
import numpy as np
from mbrl_bench.baselines.common.replay import replay_size

import mbrl_bench  # noqa: F401  (registers the ids)
from mbrl_bench.harness import store
from mbrl_bench.harness.cells import build_agent, plan_cell
from mbrl_bench.harness.runner import stack_checkpoint_leaves


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("seed_dir", type=Path, help="a seed directory with config.json and checkpoint.pkl")
    parser.add_argument("--samples", type=int, default=2000, help="real states probed (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the state and action draws")
    args = parser.parse_args()
    checkpoint = args.seed_dir / store.CHECKPOINT_FILE
    if not checkpoint.exists():
        parser.exit(2, f"error: no {store.CHECKPOINT_FILE} in {args.seed_dir}\n")
    config = store.read_json(args.seed_dir / store.CONFIG_FILE)
    if config["algo"] != "mbpo":
        parser.exit(2, f"error: {args.seed_dir} is an {config['algo']!r} run; this probe reads 'mbpo' ones\n")
    spec = plan_cell(
        "mbpo",
        config["env_id"],
        env_kwargs=config["env_kwargs"],
        capacity=config["capacity"],
        seeds=(config["seed"],),
        steps=config["steps"],
        eval_every=config["eval_every"],
        eval_episodes=config["eval_episodes"],
    )
    if spec.agent_config != config["agent_config"]:
        parser.exit(2, "error: the run's agent_config is not this version's default; check out its commit\n")
    agent = build_agent(spec)
    payload = store.read_checkpoint(checkpoint)
    template = jax.eval_shape(agent.init, jax.random.PRNGKey(0))
    state = stack_checkpoint_leaves(template, [payload["agent_state"]], batched=False)

    env = gym.make(config["env_id"], **config["env_kwargs"]).unwrapped
    layout = agent.env.task.layout
    positions, velocities = list(layout.get("positions", ())), list(layout.get("velocities", ()))
    if len(positions) != env.model.nq or len(velocities) != env.model.nv:
        parser.exit(2, f"error: {config['env_id']}'s observation does not hold the whole qpos and qvel\n")
    env.reset(seed=args.seed)
    # the learner's dims that are the task's own, not distractors (whose noise no model can predict)
    physical = agent.io.kept < getattr(env, "base_obs_dim", env.observation_space.shape[0])

    k_index, k_policy, k_model_buffer, k_model_policy = jax.random.split(jax.random.PRNGKey(args.seed), 4)
    size = int(replay_size(state.replay))
    index = jax.random.randint(k_index, (args.samples,), 0, size)
    real = jax.tree.map(lambda x: x[index], state.replay.data)
    policy_action, log_prob = agent.sac.sample(state.learner.actor, real.obs, k_policy)
    full_obs = np.asarray(agent.io.unview(real.obs), np.float64)

    def simulate(actions: jax.Array) -> tuple[np.ndarray, jax.Array]:
        """The simulator set to each state (hidden dims 0: x, which no reward or dynamics reads) and stepped:
        true rewards and next observations (the learner's view)."""
        env_actions = np.asarray(agent.io.to_env(actions), np.float64)
        rewards, next_obs = np.empty(args.samples), []
        for i in range(args.samples):
            env.set_state(full_obs[i, positions], full_obs[i, velocities])
            obs, rewards[i] = env.step(env_actions[i])[:2]
            next_obs.append(obs)
        return rewards, agent.io.view(jnp.asarray(np.stack(next_obs), real.obs.dtype))

    def model_step(actions: jax.Array, key: jax.Array) -> tuple[np.ndarray, np.ndarray, jax.Array]:
        """The elites' mean predicted reward, and one draw as a rollout takes it (random elite, sampled):
        its reward and next observation."""
        prediction = agent.dynamics.predict(state.model, real.obs, actions)
        mean = jnp.mean(prediction.mean[state.model.elites, :, -1], axis=0)
        drawn_next, drawn = agent.dynamics.step_balanced(state.model, real.obs, actions, key)
        return np.asarray(mean), np.asarray(drawn), drawn_next

    def q_min(obs: jax.Array, actions: jax.Array) -> np.ndarray:
        return np.asarray(jnp.min(agent.sac.q_values(state.learner.critic, obs, actions), axis=0))

    def next_value(obs: jax.Array, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
        """min(Q1, Q2) of the target critics at ``obs`` and a policy action, and that action's log pi: the
        bootstrap of SAC's target is the first minus alpha times the second."""
        action, log_pi = agent.sac.sample(state.learner.actor, obs, key)
        q = jnp.min(agent.sac.q_values(state.learner.critic_target, obs, action), axis=0)
        return np.asarray(q), np.asarray(log_pi)

    print(f"{args.seed_dir}: env step {payload['env_step']}, {size} real transitions, {args.samples} probed")
    print(f"buffer's stored reward: mean {np.mean(real.reward):.3f}")
    print(
        "actions | true r | model r (elite mean) | model r (drawn) | bias (mean - true) | MAE (mean) | min Q"
    )
    true_mean: dict[str, float] = {}
    for name, actions, key in (
        ("buffer", real.action, k_model_buffer),
        ("policy", policy_action, k_model_policy),
    ):
        true, true_next = simulate(actions)
        true_mean[name] = float(true.mean())
        mean, drawn, model_next = model_step(actions, key)
        q = q_min(real.obs, actions)
        print(
            f"{name} | {true.mean():.3f} (sd {true.std():.3f}) | {mean.mean():.3f} | {drawn.mean():.3f} | "
            f"{(mean - true).mean():+.3f} | {np.abs(mean - true).mean():.3f} | "
            f"{q.mean():.4g} (median {np.median(q):.4g}, range {q.min():.4g} to {q.max():.4g})"
        )
        if name == "buffer":
            gap = np.abs(true - np.asarray(real.reward)).mean()
            print(f"  (the simulator's reward for the buffer's actions vs the stored one: MAE {gap:.2e})")
        k_value = jax.random.fold_in(key, 1)
        v_model, lp_model = next_value(model_next, k_value)
        v_true, lp_true = next_value(true_next, k_value)
        error = np.asarray(model_next - true_next)[:, physical]
        print(
            f"  next state, model draw vs simulator: MSE {np.mean(np.sum(error**2, axis=-1)):.4g} over the "
            f"{int(physical.sum())} physical dims; target critics' min Q there {v_model.mean():.4g} vs "
            f"{v_true.mean():.4g} (medians {np.median(v_model):.4g} vs {np.median(v_true):.4g}); "
            f"the policy's log pi there {lp_model.mean():.4g} vs {lp_true.mean():.4g}"
        )
    # SAC's soft Q counts -alpha log pi at every later step: at a fixed point of the soft Bellman equation,
    # with the policy's reward and log-probability held constant, it is (r - alpha log pi) / (1 - gamma).
    alpha, mean_log_prob = float(jnp.exp(state.learner.log_alpha)), float(jnp.mean(log_prob))
    entropy_term = -alpha * mean_log_prob
    print(
        f"temperature alpha {alpha:.4g}; the policy's mean log pi {mean_log_prob:.4g}, so -alpha log pi "
        f"{entropy_term:.4g} per step; (true policy r + that) / (1 - gamma) = "
        f"{(true_mean['policy'] + entropy_term) / (1 - agent.sac.config.discount):.4g}"
    )


if __name__ == "__main__":
    main()
