"""Return curves from a results directory: one panel per environment variant, one line per
(algorithm, capacity), the mean over seeds with a 95% bootstrap band; and, where an algorithm ran a
sweep of ``norm:B`` capacities, the final value against the bound B (``plot_capacity_sweep``).

The band is a percentile bootstrap of the mean over seeds, computed independently at each evaluation
step (seeds resampled with replacement, 2,000 replicates, a fixed RNG seed so the figure is
reproducible). A seed contributes at the steps its curve reaches (a diverged seed stops early); a
single seed draws a line without a band. Where a panel's algorithm has a published curve on that env
(``mbrl_bench.harness.published``), its points up to the panel's last step are drawn beside it, dashed,
in the line's colour, with +- std bars where the source gives one. Drawn with matplotlib's Agg canvas, so
no display is needed.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mbrl_bench.envs import dp
from mbrl_bench.envs.registration import make
from mbrl_bench.envs.tabular import TabularMDP
from mbrl_bench.harness import store
from mbrl_bench.harness.errors import UsageError
from mbrl_bench.harness.published import PublishedCurve, load_published
from mbrl_bench.models.capacity import parse_capacity

BOOTSTRAP_REPLICATES = 2000
BOOTSTRAP_SEED = 0


@dataclass(frozen=True)
class PlotSummary:
    """What was drawn: the file, the panel titles (env labels) and each panel's line labels."""

    path: Path
    panels: tuple[str, ...]
    lines: dict[str, tuple[str, ...]]


def bootstrap_band(
    values: np.ndarray,
    confidence: float = 0.95,
    replicates: int = BOOTSTRAP_REPLICATES,
    seed: int = BOOTSTRAP_SEED,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(mean, low, high) over seeds of ``values`` [seeds, points] (NaN = no value), per point.

    With fewer than two seeds at a point the band collapses onto the mean.
    """
    values = np.asarray(values, dtype=float)
    present = ~np.isnan(values)
    counts = present.sum(axis=0)
    mean = np.where(counts > 0, np.nansum(values, axis=0) / np.maximum(counts, 1), np.nan)
    if values.shape[0] < 2:
        return mean, mean.copy(), mean.copy()
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, values.shape[0], size=(replicates, values.shape[0]))
    sample = values[idx]  # [replicates, seeds, points]
    n = (~np.isnan(sample)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.nansum(sample, axis=1) / n
    alpha = (1.0 - confidence) / 2.0
    low, high = np.nanquantile(means, [alpha, 1.0 - alpha], axis=0)
    single = counts < 2
    return mean, np.where(single, mean, low), np.where(single, mean, high)


def _save(fig: Figure, path: Path) -> None:
    """Render ``fig`` in the format of ``path``'s suffix and write it atomically."""
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format=path.suffix.lstrip(".") or "png")
    store.atomic_write_bytes(path, buf.getvalue())


MAX_LINES = 8
"""A panel with more (algorithm, capacity) lines than this is split into one panel per algorithm."""


def _split_crowded(
    curves: dict[str, dict[tuple[str, str], list[list[dict]]]],
) -> dict[str, dict[tuple[str, str], list[list[dict]]]]:
    """Panels keyed by env label, or by "env label | algo" where one panel would hold too many lines."""
    out: dict[str, dict[tuple[str, str], list[list[dict]]]] = {}
    for label, lines in curves.items():
        if len(lines) <= MAX_LINES:
            out[label] = lines
            continue
        for (algo, capacity), seeds in lines.items():
            out.setdefault(f"{label} | {algo}", {})[(algo, capacity)] = seeds
    return out


def _draw_published(
    ax: Any, curves: list[PublishedCurve], colors: dict[str, str], last_step: int
) -> list[str]:
    """Draw each published curve whose algo has a line (``colors``) up to ``last_step``; its labels."""
    names = []
    for curve in curves:
        if curve.algo not in colors:
            continue
        shown = [i for i, step in enumerate(curve.env_steps) if step <= last_step]
        if not shown:
            continue
        spreads = np.array([curve.spreads[i] for i in shown])
        name = f"{curve.algo}, published: {curve.label}"
        ax.errorbar(
            [curve.env_steps[i] for i in shown],
            [curve.returns[i] for i in shown],
            yerr=None if np.all(np.isnan(spreads)) else np.nan_to_num(spreads),
            color=colors[curve.algo],
            linestyle="--",
            marker="s",
            markersize=4,
            capsize=3,
            label=name,
        )
        names.append(name)
    return names


def plot_results(
    results_dir: str | Path,
    out: str | Path | None = None,
    metric: str = "eval_return",
    log_y: bool = False,
    published: bool = True,
) -> PlotSummary:
    """Draw every curve under ``results_dir`` into ``out``, atomically: the evaluation return, or any other
    ``curve.csv`` column named by ``metric`` (an agent's metric such as VIREL's ``eps_w``), drawn for the
    cells that record it. Default ``out``: ``DIR/curves.png``, for another metric ``DIR/curves_<metric>.png``.
    ``log_y`` draws the y axis on a log scale (zero and negative values are left out). ``published`` draws
    the published return curves of the panels' algorithms on their envs (see the module docstring)."""
    root = Path(results_dir)
    if not root.is_dir():
        raise UsageError(f"results directory {root} does not exist")
    curves: dict[str, dict[tuple[str, str], list[list[dict]]]] = defaultdict(lambda: defaultdict(list))
    columns: set[str] = set()
    for record in store.scan_results(root):
        if record.curve:
            columns.update(record.curve[0])
            if metric in record.curve[0]:
                curves[record.env_label][(record.algo, record.capacity)].append(record.curve)
    if not columns:
        raise UsageError(f"no curve.csv with rows under {root}")
    if not curves:
        valid = ", ".join(sorted(columns - {"env_step"}))
        raise UsageError(f"no curve under {root} has a column {metric!r}; columns there: {valid}")
    curves = _split_crowded(curves)
    panels = sorted(curves)
    reference = load_published() if published and metric == "eval_return" else []
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(5.5 * ncols, 4.0 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    lines: dict[str, tuple[str, ...]] = {}
    for k, label in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        names = []
        colors: dict[str, str] = {}
        last_step = 0
        for (algo, capacity), seeds in sorted(curves[label].items()):
            steps = sorted({row["env_step"] for curve in seeds for row in curve})
            col = {s: j for j, s in enumerate(steps)}
            values = np.full((len(seeds), len(steps)), np.nan)
            for i, curve in enumerate(seeds):
                for row in curve:
                    values[i, col[row["env_step"]]] = row[metric]
            drawn = ~np.all(np.isnan(values), axis=0)  # a metric has no value at step 0 (NaN there)
            steps, values = [s for s, d in zip(steps, drawn, strict=True) if d], values[:, drawn]
            mean, low, high = bootstrap_band(values)
            # A partial cell's seeds end at different steps: say how few reach its last point.
            reached = int(np.sum(~np.isnan(values[:, -1])))
            tail = f"; {reached} at {steps[-1]:,}" if reached < len(seeds) else ""
            name = f"{algo} [{capacity}] (n={len(seeds)}{tail})"
            (line,) = ax.plot(steps, mean, label=name)
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            names.append(name)
            colors.setdefault(algo, line.get_color())
            last_step = max([last_step, *steps])
        env = label.split(" | ")[0]  # a crowded panel is "env label | algo"
        names += _draw_published(ax, [c for c in reference if c.env == env], colors, last_step)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return" if metric == "eval_return" else metric)
        if log_y:
            ax.set_yscale("log", nonpositive="mask")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7 if len(names) > 4 else 8, ncols=2 if len(names) > 4 else 1)
        lines[label] = tuple(names)
    default = "curves.png" if metric == "eval_return" else f"curves_{metric}.png"
    path = Path(out) if out is not None else root / default
    _save(fig, path)
    return PlotSummary(path, tuple(panels), lines)


SWEEP_METRIC = "true_return"
"""The y-axis of the capacity sweep where the agents report it (the exact J(pi) of the tabular agents);
else the final evaluation return."""


def optimal_return(env_id: str, env_kwargs: dict) -> float | None:
    """J* = mu . V* of an env that exposes its exact MDP (``env.unwrapped.mdp``), else None."""
    env = make(env_id, **env_kwargs)
    mdp = getattr(env.unwrapped, "mdp", None)
    env.close()
    if not isinstance(mdp, TabularMDP):
        return None
    q = dp.value_iteration(mdp.P, mdp.R, mdp.gamma, tol=1e-10).q
    return float(dp.expected_return(mdp.P, mdp.R, mdp.gamma, mdp.mu, dp.greedy_policy(q)))


def plot_capacity_sweep(results_dir: str | Path, out: str | Path | None = None) -> PlotSummary | None:
    """Final value against the norm bound B, per env (panel) and algorithm (line), mean and 95% band.

    Uses every (algo, env) with at least two ``norm:B`` cells; the value of a seed is the last row of
    its curve (``SWEEP_METRIC`` if the curve has it, else ``eval_return``); tabular envs get their
    optimal value J* as a dashed line. Returns None (and draws nothing) when no such sweep exists.
    """
    root = Path(results_dir)
    finals: dict[str, dict[str, dict[float, list[float]]]] = defaultdict(lambda: defaultdict(dict))
    metric_of: dict[str, str] = {}
    env_of: dict[str, tuple[str, dict]] = {}
    for record in store.scan_results(root):
        capacity = parse_capacity(record.capacity)
        if capacity.kind != "norm" or not record.curve:
            continue
        last = record.curve[-1]
        metric = SWEEP_METRIC if SWEEP_METRIC in last else "eval_return"
        metric_of[record.env_label] = metric
        env_of[record.env_label] = (record.config.get("env_id", ""), record.config.get("env_kwargs", {}))
        finals[record.env_label][record.algo].setdefault(float(capacity.value), []).append(last[metric])
    sweeps = {
        env: {algo: by_bound for algo, by_bound in algos.items() if len(by_bound) >= 2}
        for env, algos in finals.items()
    }
    sweeps = {env: algos for env, algos in sweeps.items() if algos}
    if not sweeps:
        return None
    panels = sorted(sweeps)
    fig = Figure(figsize=(6.0 * len(panels), 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    lines: dict[str, tuple[str, ...]] = {}
    for k, label in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), k + 1)
        names = []
        for algo, by_bound in sorted(sweeps[label].items()):
            bounds = sorted(by_bound)
            n = max(len(v) for v in by_bound.values())
            values = np.full((n, len(bounds)), np.nan)
            for j, b in enumerate(bounds):
                values[: len(by_bound[b]), j] = by_bound[b]
            mean, low, high = bootstrap_band(values)
            name = f"{algo} (n={n})"
            (line,) = ax.plot(bounds, mean, marker="o", markersize=3, label=name)
            ax.fill_between(bounds, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            names.append(name)
        env_id, kwargs = env_of[label]
        best = optimal_return(env_id, kwargs) if env_id else None
        if best is not None:
            ax.axhline(best, color="black", linestyle="--", linewidth=1, label=f"optimal J* = {best:.4g}")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("model norm bound B (capacity norm:B)")
        ax.set_ylabel("final J(pi), exact" if metric_of[label] == SWEEP_METRIC else "final eval return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        lines[label] = tuple(names)
    path = Path(out) if out is not None else root / "capacity_sweep.png"
    _save(fig, path)
    return PlotSummary(path, tuple(panels), lines)
