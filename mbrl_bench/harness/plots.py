"""Return curves from a results directory: one panel per environment variant, one line per
(algorithm, capacity), the mean over seeds with a 95% bootstrap band.

The band is a percentile bootstrap of the mean over seeds, computed independently at each evaluation
step (seeds resampled with replacement, 2,000 replicates, a fixed RNG seed so the figure is
reproducible). A seed contributes at the steps its curve reaches (a diverged seed stops early); a
single seed draws a line without a band. Drawn with matplotlib's Agg canvas, so no display is needed.
"""

from __future__ import annotations

import io
import math
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from mbrl_bench.harness import store
from mbrl_bench.harness.errors import UsageError

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


def plot_results(results_dir: str | Path, out: str | Path | None = None) -> PlotSummary:
    """Draw every curve under ``results_dir`` into ``out`` (default ``DIR/curves.png``), atomically."""
    root = Path(results_dir)
    if not root.is_dir():
        raise UsageError(f"results directory {root} does not exist")
    curves: dict[str, dict[tuple[str, str], list[list[dict]]]] = defaultdict(lambda: defaultdict(list))
    for record in store.scan_results(root):
        if record.curve:
            curves[record.env_label][(record.algo, record.capacity)].append(record.curve)
    if not curves:
        raise UsageError(f"no curve.csv with rows under {root}")
    panels = sorted(curves)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(5.5 * ncols, 4.0 * nrows), layout="constrained")
    FigureCanvasAgg(fig)
    lines: dict[str, tuple[str, ...]] = {}
    for k, label in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, k + 1)
        names = []
        for (algo, capacity), seeds in sorted(curves[label].items()):
            steps = sorted({row["env_step"] for curve in seeds for row in curve})
            col = {s: j for j, s in enumerate(steps)}
            values = np.full((len(seeds), len(steps)), np.nan)
            for i, curve in enumerate(seeds):
                for row in curve:
                    values[i, col[row["env_step"]]] = row["eval_return"]
            mean, low, high = bootstrap_band(values)
            name = f"{algo} [{capacity}] (n={len(seeds)})"
            (line,) = ax.plot(steps, mean, label=name)
            ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
            names.append(name)
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("env steps")
        ax.set_ylabel("eval return")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        lines[label] = tuple(names)
    path = Path(out) if out is not None else root / "curves.png"
    buf = io.BytesIO()
    fig.savefig(buf, dpi=110, format=path.suffix.lstrip(".") or "png")
    store.atomic_write_bytes(path, buf.getvalue())
    return PlotSummary(path, tuple(panels), lines)
