"""Published learning curves to draw beside ours: the points an agent's paper or reference code reports.

``mbrl_bench/data/published_curves.csv`` holds one row per published point: ``algo`` (our agent's name),
``env`` (the env label of ours it is compared with), ``env_step``, ``return`` (mean evaluation return),
``spread`` (+- std where the source gives one, else empty), ``label`` (short, for a legend: whose runs,
on which stock env, how many seeds) and ``source`` (where the number comes from, and how it was read).
The stock envs behind these numbers (MuJoCo v2/v3 ids with the x position hidden) are not our ids, so a
published point says where to expect to be, not what to equal. The numbers are collected, with their
caveats, in the project's reference notes; the curve plots draw them, nothing scores them.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

import pandas as pd

from mbrl_bench.harness.errors import UsageError

COLUMNS: tuple[str, ...] = ("algo", "env", "env_step", "return", "spread", "label", "source")


@dataclass(frozen=True)
class PublishedCurve:
    """One source's points for one (algo, env), in env-step order."""

    algo: str
    env: str
    label: str
    source: str
    env_steps: tuple[int, ...]
    returns: tuple[float, ...]
    spreads: tuple[float, ...]
    """+- std per point, NaN where the source gives none."""


def default_path() -> Path:
    """The shipped table."""
    return Path(str(files("mbrl_bench") / "data" / "published_curves.csv"))


def load_published(path: str | Path | None = None) -> list[PublishedCurve]:
    """Every curve of the table at ``path`` (default: the shipped one); UsageError on a malformed file."""
    path = Path(path) if path is not None else default_path()
    try:
        table = pd.read_csv(path)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise UsageError(f"cannot read published curves {path}: {e}") from None
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise UsageError(
            f"published curves {path} lack columns {', '.join(missing)}; need {', '.join(COLUMNS)}"
        )
    for column, optional in (("env_step", False), ("return", False), ("spread", True)):
        given = table[column].notna() if optional else True  # only spread may be left empty
        if (pd.to_numeric(table[column], errors="coerce").isna() & given).any():
            raise UsageError(f"published curves {path}: column {column!r} must be numeric")
    curves = []
    for (algo, env, label, source), rows in table.groupby(["algo", "env", "label", "source"], sort=True):
        rows = rows.sort_values("env_step")
        curves.append(
            PublishedCurve(
                algo=str(algo),
                env=str(env),
                label=str(label),
                source=str(source),
                env_steps=tuple(int(s) for s in rows["env_step"]),
                returns=tuple(float(r) for r in rows["return"]),
                spreads=tuple(float(s) for s in rows["spread"]),
            )
        )
    return curves
