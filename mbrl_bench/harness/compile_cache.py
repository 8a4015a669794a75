"""The persistent XLA compilation cache that ``mbrl-bench`` turns on for its runs.

A cell's programs take seconds to compile for the small agents and up to a quarter of an hour for MBPO's
JAX-backend segment (XLA reported 14 min 16 s once for the first cell of ``misspecification-cartpole-mbpo``
on a loaded machine). Without a cache every resumed run, every worker process and every cell with the same
shapes pays that again. JAX's persistent cache keeps compiled programs on disk, keyed by the program, the
XLA flags, the jax/jaxlib versions and the device; a hit loads the same executable, so curves do not
change (``tests/test_compile_cache.py`` runs a cell twice and compares).

Only the command line turns it on (library users choose for themselves, with JAX's own settings):

- ``MBRL_BENCH_COMPILE_CACHE=off`` turns it off; ``MBRL_BENCH_COMPILE_CACHE=DIR`` puts it in DIR;
- otherwise ``$XDG_CACHE_HOME/mbrl-bench/xla/<machine>-<cpu>`` (``~/.cache/...``), one folder per CPU
  type, since XLA:CPU refuses a program compiled for other CPU features and a home directory may be
  shared by machines with different CPUs;
- JAX's own ``JAX_COMPILATION_CACHE_DIR`` and ``JAX_COMPILATION_CACHE_MAX_SIZE``, when set, win.

The directory is bounded (``DEFAULT_MAX_BYTES``, least recently used entries go first); bounding it also
makes JAX take a file lock around every read and write, so concurrent worker processes never read an
entry another one is still writing.
"""

from __future__ import annotations

import hashlib
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path

CACHE_ENV = "MBRL_BENCH_COMPILE_CACHE"
"""Environment variable: ``off`` or a directory."""
OFF_VALUES = frozenset({"off", "0", "false", "no"})
DEFAULT_MAX_BYTES = 4 << 30
"""Size bound of the cache directory: a few hundred compiled cells (an MBPO segment is tens of MB)."""


def host_tag(cpuinfo: str | None = None) -> str:
    """``<machine>-<12 hex digits>``: the machine type and a hash of the CPU's model name and feature
    flags (the first of each in /proc/cpuinfo, or ``cpuinfo``; the processor's name elsewhere)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text()
        except OSError:
            cpuinfo = platform.processor()
    wanted = ("model name", "flags", "Features", "CPU part")  # x86 and ARM spellings
    lines = []
    for key in wanted:
        lines += [line for line in cpuinfo.splitlines() if line.split(":")[0].strip() == key][:1]
    digest = hashlib.sha1("\n".join(lines or [cpuinfo]).encode()).hexdigest()[:12]
    return f"{platform.machine() or 'unknown'}-{digest}"


def default_cache_dir(environ: Mapping[str, str]) -> Path:
    """``$XDG_CACHE_HOME/mbrl-bench/xla/<host_tag()>``, under ``~/.cache`` when XDG_CACHE_HOME is unset."""
    base = environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mbrl-bench" / "xla" / host_tag()


def compile_cache_settings(environ: Mapping[str, str]) -> dict[str, str]:
    """The JAX environment variables that turn the cache on under ``environ``; empty when
    ``MBRL_BENCH_COMPILE_CACHE`` is off."""
    setting = environ.get(CACHE_ENV, "").strip()
    if setting.lower() in OFF_VALUES:
        return {}
    chosen = str(Path(setting).absolute()) if setting else ""  # workers and restarts may change cwd
    directory = environ.get("JAX_COMPILATION_CACHE_DIR") or chosen or str(default_cache_dir(environ))
    max_size = environ.get("JAX_COMPILATION_CACHE_MAX_SIZE", str(DEFAULT_MAX_BYTES))
    return {"JAX_COMPILATION_CACHE_DIR": directory, "JAX_COMPILATION_CACHE_MAX_SIZE": max_size}


def enable_compile_cache() -> None:
    """Turn the cache on for this process and the worker processes it starts (they inherit the
    environment), unless ``MBRL_BENCH_COMPILE_CACHE`` is off.

    Call before the first compilation: JAX decides at its first compile whether the process caches.
    """
    settings = compile_cache_settings(os.environ)
    if not settings:
        return
    os.environ.update(settings)
    if "jax" in sys.modules:  # imported already: JAX read its environment variables at import
        import jax

        jax.config.update("jax_compilation_cache_dir", settings["JAX_COMPILATION_CACHE_DIR"])
        jax.config.update("jax_compilation_cache_max_size", int(settings["JAX_COMPILATION_CACHE_MAX_SIZE"]))
