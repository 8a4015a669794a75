"""Stable-Baselines3 PPO with CleanRL's ppo_continuous_action.py settings on mbrl-bench ids: the second
implementation our `ppo` references are checked against (issue 14). Not a dependency of the project: run
it from a scratch virtual environment,

    python3 -m venv /tmp/sb3 && /tmp/sb3/bin/pip install torch stable-baselines3 mujoco -e .
    /tmp/sb3/bin/python scripts/sb3_ppo_reference.py --env mbrl_bench/Hopper-v0 --seeds 3 --steps 200000 \
        --out results/sb3-ppo

and it writes ``OUT/<env dir>/seed_<k>.csv`` (env_step, eval_return, eval_return_std, wall_time_s) with the
evaluation protocol of `mbrl-bench calibrate`: every 10K env steps and at the end, 10 episodes with the
deterministic (mean) action, observations normalised with the training statistics frozen.

Settings (CleanRL ppo_continuous_action.py, mapped onto SB3): 1 env x 2048 steps, minibatch 64, 10 epochs,
Adam 3e-4 annealed linearly to 0, gamma 0.99, GAE lambda 0.95, clip 0.2 on the policy and the value
(``clip_range_vf``), no entropy bonus, value coefficient 0.5, gradient norm 0.5, advantage normalisation,
separate 64 x 64 tanh actor and critic, state-independent log-std starting at 0, observations and rewards
normalised by running statistics and clipped to +-10 (``VecNormalize``), actions clipped to the bounds.
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

import mbrl_bench  # noqa: F401  registers the mbrl_bench/ ids

EVAL_EVERY = 10_000
EVAL_EPISODES = 10


def evaluate(model: PPO, train_env: VecNormalize, env_id: str, seed: int) -> np.ndarray:
    """Returns of ``EVAL_EPISODES`` deterministic episodes, observations normalised by frozen statistics."""
    env = gym.make(env_id)
    returns = []
    for episode in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=10_000 * (seed + 1) + episode)
        total, done = 0.0, False
        while not done:
            action, _ = model.predict(train_env.normalize_obs(obs[None]), deterministic=True)
            obs, reward, terminated, truncated, _ = env.step(
                np.clip(action[0], env.action_space.low, env.action_space.high)
            )
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return np.asarray(returns)


class Evaluations(BaseCallback):
    def __init__(self, env_id: str, seed: int, steps: int, rows: list[dict]) -> None:
        super().__init__()
        self.env_id, self.seed, self.steps, self.rows = env_id, seed, steps, rows
        self.next_eval, self.start = EVAL_EVERY, time.perf_counter()

    def _record(self, step: int) -> None:
        returns = evaluate(self.model, self.training_env, self.env_id, self.seed)
        self.rows.append(
            {
                "env_step": step,
                "eval_return": returns.mean(),
                "eval_return_std": returns.std(),
                "wall_time_s": round(time.perf_counter() - self.start, 1),
            }
        )
        print(f"{self.env_id} seed {self.seed} step {step}: {returns.mean():.1f}", flush=True)

    def _on_training_start(self) -> None:
        self._record(0)
        self.next_eval = EVAL_EVERY

    def _on_step(self) -> bool:
        if self.num_timesteps >= self.next_eval:
            self._record(self.num_timesteps)
            self.next_eval += EVAL_EVERY
        return True

    def _on_training_end(self) -> None:
        if self.rows[-1]["env_step"] != self.num_timesteps:
            self._record(self.num_timesteps)


def run(env_id: str, seed: int, steps: int, out: Path) -> None:
    path = out / env_id.replace("/", "__") / f"seed_{seed}.csv"
    if path.exists():
        print(f"{path} exists, skipped")
        return
    env = VecNormalize(DummyVecEnv([lambda: gym.make(env_id)]), gamma=0.99, clip_obs=10.0, clip_reward=10.0)
    env.seed(seed)
    model = PPO(
        "MlpPolicy",
        env,
        n_steps=2048,
        batch_size=64,
        n_epochs=10,
        learning_rate=lambda remaining: 3e-4 * remaining,
        gamma=0.99,
        gae_lambda=0.95,
        clip_range=0.2,
        clip_range_vf=0.2,
        ent_coef=0.0,
        vf_coef=0.5,
        max_grad_norm=0.5,
        normalize_advantage=True,
        policy_kwargs={
            "net_arch": {"pi": [64, 64], "vf": [64, 64]},
            "activation_fn": torch.nn.Tanh,
            "log_std_init": 0.0,
        },
        seed=seed,
        device="cpu",
        verbose=0,
    )
    rows: list[dict] = []
    model.learn(total_timesteps=steps, callback=Evaluations(env_id, seed, steps, rows))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env", action="append", required=True, help="env id (repeatable)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--out", type=Path, default=Path("results/sb3-ppo"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    for env_id in args.env:
        for seed in range(args.seeds):
            run(env_id, seed, args.steps, args.out)


if __name__ == "__main__":
    main()
