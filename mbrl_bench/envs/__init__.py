"""mbrl-bench environments: Gymnasium envs, their tasks and their pure-JAX twins."""

from mbrl_bench.envs.distractors import DISTRACTOR_KINDS, AppendDistractors, DistractorSpec
from mbrl_bench.envs.registration import all_entries, entry, env_ids, get_task, make, make_jax

__all__ = [
    "DISTRACTOR_KINDS",
    "AppendDistractors",
    "DistractorSpec",
    "all_entries",
    "entry",
    "env_ids",
    "get_task",
    "make",
    "make_jax",
]
