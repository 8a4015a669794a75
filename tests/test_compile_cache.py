"""The CLI's persistent compilation cache: where it goes, how it is turned off, and that a cached
program gives the same curve as a freshly compiled one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from mbrl_bench.harness.compile_cache import (
    CACHE_ENV,
    DEFAULT_MAX_BYTES,
    compile_cache_settings,
    default_cache_dir,
    host_tag,
)


def test_default_directory_follows_xdg_with_a_folder_per_cpu() -> None:
    assert default_cache_dir({"XDG_CACHE_HOME": "/x"}) == Path("/x/mbrl-bench/xla") / host_tag()
    home = Path.home() / ".cache" / "mbrl-bench" / "xla" / host_tag()
    assert default_cache_dir({}) == home
    assert compile_cache_settings({}) == {
        "JAX_COMPILATION_CACHE_DIR": str(home),
        "JAX_COMPILATION_CACHE_MAX_SIZE": str(DEFAULT_MAX_BYTES),
    }


def test_cpus_with_other_features_get_other_folders() -> None:
    xeon = "processor\t: 0\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu sse avx avx512f\n"
    epyc = "processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: fpu sse avx\n"
    second_core = xeon + "processor\t: 1\nmodel name\t: Intel(R) Xeon(R)\nflags\t\t: fpu sse avx avx512f\n"
    assert host_tag(xeon) != host_tag(epyc)
    assert host_tag(xeon) == host_tag(second_core)  # the first core describes the machine


@pytest.mark.parametrize("value", ["off", "OFF", "0", "false", "no", " off "])
def test_off_turns_it_off(value: str) -> None:
    assert compile_cache_settings({CACHE_ENV: value}) == {}


def test_a_directory_and_jax_own_settings() -> None:
    assert compile_cache_settings({CACHE_ENV: "/c"})["JAX_COMPILATION_CACHE_DIR"] == "/c"
    relative = compile_cache_settings({CACHE_ENV: "c"})["JAX_COMPILATION_CACHE_DIR"]
    assert relative == str(Path.cwd() / "c")
    own = {CACHE_ENV: "/c", "JAX_COMPILATION_CACHE_DIR": "/j", "JAX_COMPILATION_CACHE_MAX_SIZE": "7"}
    assert compile_cache_settings(own) == {
        "JAX_COMPILATION_CACHE_DIR": "/j",
        "JAX_COMPILATION_CACHE_MAX_SIZE": "7",
    }


def _run(out: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    # cwd: not the checkout, whose mbrl_bench/ folder would shadow the installed package under `-m`
    argv = [
        sys.executable, "-m", "mbrl_bench.cli", "run", "--algo", "mle-dyna",
        "--env", "mbrl_bench/CartPoleDistractor-v0", "--seeds", "1", "--steps", "400",
        "--eval-every", "200", "--eval-episodes", "2", "--set", "init_steps=100",
        "--workers", "1", "--no-progress", "--out", str(out),
    ]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, env=env, timeout=600, cwd=out.parent)


def _curve(out: Path) -> pd.DataFrame:
    (path,) = out.rglob("curve.csv")
    return pd.read_csv(path).drop(columns="wall_time_s")


def test_a_second_run_loads_the_programs_and_gives_the_same_curve(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = os.environ | {
        CACHE_ENV: str(cache),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",  # cache every program, however quick
        "JAX_LOG_COMPILES": "1",  # logs cache hits as warnings
    }
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    first = _run(tmp_path / "first", env)
    assert first.returncode == 0, first.stderr[-2000:]
    entries = sorted(cache.glob("*-cache"))
    assert any(e.name.startswith("jit_train-") for e in entries), entries  # the JAX backend's segment

    second = _run(tmp_path / "second", env)
    assert second.returncode == 0, second.stderr[-2000:]
    assert "Persistent compilation cache hit for 'jit_train'" in second.stderr
    assert sorted(cache.glob("*-cache")) == entries  # nothing compiled that was not cached
    learned = _curve(tmp_path / "first")
    assert learned["model_loss"].notna().any()  # the learner ran, so the curve depends on its program
    pd.testing.assert_frame_equal(learned, _curve(tmp_path / "second"))
