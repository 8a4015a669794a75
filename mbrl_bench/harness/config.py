"""Resolving what a cell runs: the agent's typed config from ``--set``, the capacity, run metadata.

``--set key=value`` values arrive as strings (command line) or typed TOML values (suite files); both
are coerced by the type annotation of the agent ``Config`` field they name, so a typo or a wrong type
is an error that lists the valid keys with their types instead of a silently ignored setting.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import platform
import socket
import subprocess
import sys
import types
import typing
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from mbrl_bench.baselines.api import Agent
from mbrl_bench.harness.errors import UsageError
from mbrl_bench.models.capacity import parse_capacity

_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def type_name(tp: Any) -> str:
    """A readable name for an annotation: ``int``, ``tuple[int, ...]``, ``str | None``."""
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    return str(tp).replace("typing.", "")


def config_fields(config_cls: type) -> list[tuple[str, Any, Any]]:
    """(name, annotated type, default) of every field of an agent's ``Config`` dataclass."""
    hints = typing.get_type_hints(config_cls)
    out = []
    for f in dataclasses.fields(config_cls):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        out.append((f.name, hints[f.name], default))
    return out


def _split_sequence(value: str) -> list[str]:
    inner = value.strip().strip("()[]").strip()
    return [part.strip() for part in inner.split(",") if part.strip()] if inner else []


def coerce_value(value: Any, tp: Any) -> Any:
    """``value`` (a string or a TOML-typed value) as the annotation ``tp``; TypeError/ValueError if not."""
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        is_none = value is None or (isinstance(value, str) and value.lower() in ("none", "null"))
        if is_none and type(None) in args:
            return None
        for arg in (a for a in args if a is not type(None)):
            try:
                return coerce_value(value, arg)
            except (TypeError, ValueError):
                continue
        raise ValueError(f"{value!r} is not a {type_name(tp)}")
    if origin is typing.Literal:
        for choice in args:
            if value == choice or (isinstance(value, str) and str(choice) == value):
                return choice
        raise ValueError(f"{value!r} is not one of {', '.join(map(repr, args))}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise ValueError(f"{value!r} is not a bool (true/false)")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str):
            try:
                return int(value.replace("_", ""))
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not an int")
    if tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ValueError(f"{value!r} is not a float")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ValueError(f"{value!r} is not a str")
    if origin in (tuple, list):
        items = _split_sequence(value) if isinstance(value, str) else value
        if not isinstance(items, list | tuple):
            raise ValueError(f"{value!r} is not a {type_name(tp)}")
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            kinds = [args[0]] * len(items)
        elif origin is tuple and args:
            if len(items) != len(args):
                raise ValueError(f"{value!r} is not a {type_name(tp)} (needs {len(args)} items)")
            kinds = list(args)
        else:
            kinds = [args[0] if args else Any] * len(items)
        coerced = [coerce_value(item, kind) for item, kind in zip(items, kinds, strict=True)]
        return tuple(coerced) if origin is tuple else coerced
    raise TypeError(f"fields of type {type_name(tp)} cannot be set from the command line or a suite")


def describe_fields(config_cls: type) -> str:
    """``key (type), ...`` for error messages and listings."""
    fields = config_fields(config_cls)
    return ", ".join(f"{name} ({type_name(tp)})" for name, tp, _ in fields) or "(none)"


def resolve_agent_config(
    agent_cls: type[Agent], overrides: dict[str, Any] | None = None, action_kind: str | None = None
) -> Any:
    """``agent_cls.Config()`` with the agent's defaults for ``action_kind`` (``Agent.kind_defaults``), then
    ``overrides``, applied, each override coerced by its field's type.

    Raises ``UsageError`` for unknown keys, values of the wrong type, and values the config's own
    validation rejects; the message lists the valid keys with their types.
    """
    types_by_name = {name: tp for name, tp, _ in config_fields(agent_cls.Config)}
    coerced = {}
    for key, value in (overrides or {}).items():
        if key not in types_by_name:
            raise UsageError(
                f"unknown config key {key!r} for algorithm {agent_cls.name!r}; valid keys: "
                f"{describe_fields(agent_cls.Config)}"
            )
        try:
            coerced[key] = coerce_value(value, types_by_name[key])
        except (TypeError, ValueError) as e:
            raise UsageError(
                f"bad value for {agent_cls.name}.{key} ({type_name(types_by_name[key])}): {e}; valid keys: "
                f"{describe_fields(agent_cls.Config)}"
            ) from None
    try:
        kind_defaults = getattr(agent_cls, "kind_defaults", {}).get(action_kind or "", {})
        return agent_cls.Config(**(kind_defaults | coerced))
    except (TypeError, ValueError) as e:
        raise UsageError(f"invalid config for algorithm {agent_cls.name!r}: {e}") from None


def config_to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists, as JSON has no tuples)."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {str(k): plain(x) for k, x in v.items()}
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(config).items()}


def canonical_capacity(spec: str) -> str:
    """The canonical form of a capacity spec; UsageError (listing the valid forms) if malformed."""
    try:
        return str(parse_capacity(spec))
    except ValueError as e:
        raise UsageError(str(e)) from None


def _git_commit() -> str | None:
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def _version(dist: str) -> str | None:
    try:
        return version(dist)
    except PackageNotFoundError:
        return None


@functools.cache
def cpu_model() -> str | None:
    """The CPU's model name (Linux: /proc/cpuinfo, else ``platform.processor()``); None if unknown.

    Recorded because the same seed, config and code gave different curves on an Intel Xeon and an AMD
    EPYC host (results/README.md, the HalfCheetahDistractor MBPO study), and XLA compiles its CPU
    kernels for the host's instruction set."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip() or None
    except OSError:
        pass
    return platform.processor() or None


@functools.cache
def run_metadata() -> dict[str, Any]:
    """Software and machine a run used, recorded in config.json (not part of a cell's identity)."""
    return {
        "mbrl_bench_version": _version("mbrl-bench"),
        "git_commit": _git_commit(),
        "python": sys.version.split()[0],
        "jax": _version("jax"),
        "jaxlib": _version("jaxlib"),
        "numpy": _version("numpy"),
        "gymnasium": _version("gymnasium"),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "hostname": socket.gethostname(),
    }
