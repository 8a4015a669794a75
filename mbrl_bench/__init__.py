"""mbrl-bench: model-based RL under model misspecification.

Importing the package registers its environments with Gymnasium under the namespace ``mbrl_bench``,
so ``gymnasium.make("mbrl_bench:mbrl_bench/CartPoleDistractor-v0")`` works from any code.
"""

from importlib.metadata import PackageNotFoundError, version

from mbrl_bench.envs import AppendDistractors, env_ids, get_task, make, make_jax
from mbrl_bench.envs.registration import register_all

try:
    __version__ = version("mbrl-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

register_all()

__all__ = ["AppendDistractors", "__version__", "env_ids", "get_task", "make", "make_jax"]
