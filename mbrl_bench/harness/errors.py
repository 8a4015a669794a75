"""Errors the command line maps to exit codes: bad input is exit 2 with one line, never a traceback."""

from __future__ import annotations


class UsageError(ValueError):
    """Bad input from the user (unknown algorithm, malformed spec, conflicting options...).

    The CLI prints its message as one line and exits 2. It subclasses ``ValueError`` so library callers
    that already catch the ``ValueError`` of the lower layers (env registry, agent registry, capacity
    parser) catch it too.
    """


class ConfigMismatchError(UsageError):
    """A results directory already holds a cell whose stored config differs from the requested one.

    Resuming would mix two different runs in one curve, so the harness refuses instead.
    """


class ResumeError(RuntimeError):
    """A checkpoint cannot be restored faithfully (e.g. the environment is not reproducible)."""
