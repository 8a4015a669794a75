"""The harness: runs algorithms x environment variants x capacities x seeds and writes results that
can be trusted, resumed and plotted (see ``store`` for the results layout, ``runner`` for one cell)."""

from mbrl_bench.harness.cells import CellSpec, plan_cell
from mbrl_bench.harness.errors import ConfigMismatchError, ResumeError, UsageError
from mbrl_bench.harness.runner import CellResult, ProgressEvent, run_cell

__all__ = [
    "CellResult",
    "CellSpec",
    "ConfigMismatchError",
    "ProgressEvent",
    "ResumeError",
    "UsageError",
    "plan_cell",
    "run_cell",
]
