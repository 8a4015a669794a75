"""Settings of the whole test session."""

import os

# The CLI caches compiled programs in the user's cache directory (mbrl_bench.harness.compile_cache); tests
# that run the CLI, in this process or as subprocesses, leave it alone. test_compile_cache turns it on
# in a directory of its own.
os.environ["MBRL_BENCH_COMPILE_CACHE"] = "off"
