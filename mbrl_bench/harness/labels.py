"""Environment variants and their labels: the id plus its non-default kwargs in one canonical form.

A label names exactly what ran and is used as a directory name and as the leaderboard's ``env``
column, so two variants must never share one and equal variants must always get the same one:

    mbrl_bench/CartPoleDistractor-v0
    mbrl_bench/CartPoleDistractor-v0(distractor=linear,num_distractors=20)

Defaults come from the env constructor's signature, overridden by the registration's kwargs. Keys are
sorted; kwargs equal to their default are dropped; values are coerced to the default's type (so
``num_distractors="20"`` from the command line, ``20`` from a suite file and a float ``1`` vs ``1.0``
give one label) and written canonically: ``true``/``false``, ``repr`` for floats, plain ints and strings.
"""

from __future__ import annotations

import inspect
import re
import typing
from typing import Any

from mbrl_bench.envs.registration import entry_point_and_kwargs
from mbrl_bench.harness.errors import UsageError

_EXCLUDED = frozenset({"self", "render_mode"})
"""Constructor arguments that do not define a variant (rendering never changes the dynamics)."""
_SAFE_STR = re.compile(r"^[A-Za-z0-9_.:+-]+$")
"""String values allowed in a label: nothing that would break the label's syntax or a path."""
_TRUE = frozenset({"true", "yes", "on", "1"})
_FALSE = frozenset({"false", "no", "off", "0"})


def _entry_callable(env_id: str) -> Any:
    return entry_point_and_kwargs(env_id)[0]


def env_kwarg_defaults(env_id: str) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(defaults, annotated types, accepts other kwargs) of an env's variant-defining kwargs."""
    target = _entry_callable(env_id)
    func = target.__init__ if inspect.isclass(target) else target
    try:
        hints = typing.get_type_hints(func)
    except (NameError, TypeError):  # unresolvable annotations: fall back to the defaults' types
        hints = {}
    defaults: dict[str, Any] = {}
    accepts_any = False
    for name, p in inspect.signature(func).parameters.items():
        if p.kind is p.VAR_KEYWORD:
            accepts_any = True
        elif name not in _EXCLUDED and p.kind is not p.VAR_POSITIONAL:
            defaults[name] = p.default
    defaults.update(entry_point_and_kwargs(env_id)[1])
    return defaults, hints, accepts_any


def _parse_untyped(raw: str) -> Any:
    """A CLI string with no type to go by: an int, a float, a bool, ``none``, or else the string."""
    low = raw.lower()
    if low in ("true", "false"):
        return low == "true"
    if low in ("none", "null"):
        return None
    for kind in (int, float):
        try:
            return kind(raw)
        except ValueError:
            pass
    return raw


def _coerce(env_id: str, key: str, value: Any, default: Any, hint: Any) -> Any:
    """``value`` as the type of ``default`` (or of the annotation when the default is None/absent)."""
    kinds = [t for t in typing.get_args(hint) if t is not type(None)] if typing.get_args(hint) else [hint]
    target: Any = (
        type(default)
        if default not in (None, inspect.Parameter.empty)
        else (kinds[0] if len(kinds) == 1 and kinds[0] in (bool, int, float, str) else None)
    )
    bad = UsageError(
        f"env kwarg {key}={value!r} for {env_id} must be of type {getattr(target, '__name__', target)}"
    )
    if value is None or (isinstance(value, str) and value.lower() in ("none", "null") and target is not str):
        if default is None or type(None) in typing.get_args(hint):
            return None
        raise bad
    if target is None:
        return _parse_untyped(value) if isinstance(value, str) else value
    if target is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in _TRUE | _FALSE:
            return value.lower() in _TRUE
        raise bad
    if target is int:
        if isinstance(value, bool):
            raise bad
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise bad from None
        raise bad
    if target is float:
        if isinstance(value, bool):
            raise bad
        try:
            return float(value)
        except (TypeError, ValueError):
            raise bad from None
    if target is str:
        if not isinstance(value, str):
            raise bad
        return value
    if isinstance(value, str):
        return _parse_untyped(value)
    return value


def _format(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "none"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def canonical_env_kwargs(env_id: str, kwargs: dict[str, Any] | None) -> dict[str, Any]:
    """The non-default kwargs of a variant, typed and sorted; UsageError names unknown keys and bad values.

    String values (from ``--env-kwarg key=value``) are coerced to the type of the kwarg's default.
    """
    defaults, hints, accepts_any = env_kwarg_defaults(env_id)
    out: dict[str, Any] = {}
    for key in sorted(kwargs or {}):
        if key not in defaults and not accepts_any:
            valid = ", ".join(sorted(defaults)) or "(none)"
            raise UsageError(f"unknown env kwarg {key!r} for {env_id}; valid kwargs: {valid}")
        default = defaults.get(key, inspect.Parameter.empty)
        value = _coerce(env_id, key, kwargs[key], default, hints.get(key))
        if not isinstance(value, bool | int | float | str | type(None)):
            raise UsageError(f"env kwarg {key}={value!r} for {env_id}: only scalar values are supported")
        if isinstance(value, str) and not _SAFE_STR.match(value):
            raise UsageError(
                f"env kwarg {key}={value!r} for {env_id}: string values may only hold letters, digits "
                "and _.:+-"
            )
        if default is inspect.Parameter.empty or value != default:
            out[key] = value
    return out


def env_label(env_id: str, kwargs: dict[str, Any] | None = None) -> str:
    """The canonical label of ``env_id`` with ``kwargs`` (see the module docstring)."""
    canonical = canonical_env_kwargs(env_id, kwargs)
    if not canonical:
        return env_id
    return f"{env_id}({','.join(f'{k}={_format(v)}' for k, v in canonical.items())})"


def parse_kwarg_assignment(text: str, what: str) -> tuple[str, str]:
    """Split ``key=value`` (from ``--env-kwarg`` or ``--set``); UsageError when there is no ``=``."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise UsageError(f"{what} expects key=value, got {text!r}")
    return key.strip(), value.strip()
