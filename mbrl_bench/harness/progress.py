"""The live progress display of ``mbrl-bench run``: per cell, env steps done of total, the latest
evaluation return, and the ETA.

On a terminal it is a rich progress table; elsewhere (CI logs, pipes) it prints one line when a cell
finishes, so logs stay readable.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeRemainingColumn
from rich.table import Column

from mbrl_bench.harness.cells import CellSpec
from mbrl_bench.harness.runner import CellResult, ProgressEvent


def _fmt_return(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


class ProgressDisplay:
    """Context manager fed with ``ProgressEvent``s and ``CellResult``s by the session."""

    def __init__(self, specs: Sequence[CellSpec], console: Console | None = None, live: bool | None = None):
        self.console = console or Console(stderr=True)
        self.live = self.console.is_terminal if live is None else live
        self._progress = Progress(
            TextColumn("{task.description}", table_column=Column(ratio=3, overflow="fold")),
            BarColumn(table_column=Column(ratio=1)),
            MofNCompleteColumn(),
            TextColumn("return {task.fields[ret]}"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[state]}"),
            console=self.console,
            disable=not self.live,
            expand=True,
        )
        self._tasks: dict[str, TaskID] = {
            s.key: self._progress.add_task(s.key, total=s.steps, ret="-", state="pending") for s in specs
        }

    def __enter__(self) -> ProgressDisplay:
        self._progress.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._progress.stop()

    def update(self, event: ProgressEvent) -> None:
        task = self._tasks.get(event.key)
        if task is not None:
            self._progress.update(
                task, completed=event.env_step, ret=_fmt_return(event.last_return), state=event.state
            )
        if event.note:  # e.g. a stalled worker killed and resumed: worth a line even on a terminal
            self.console.print(f"{event.state:<9} {event.key}  {event.note}", highlight=False, soft_wrap=True)

    def finish(self, result: CellResult) -> None:
        """A cell ended: show its final state (and print a line when not on a terminal)."""
        task = self._tasks.get(result.key)
        finals = [c[-1]["eval_return"] for c in result.curves.values() if c]
        last = sum(finals) / len(finals) if finals else None
        state = f"{result.state} (already finished)" if result.skipped else result.state
        if task is not None:
            total = self._progress.tasks[task].total
            self._progress.update(task, completed=total, ret=_fmt_return(last), state=state)
        if not self.live:
            line = f"{state:<9} {result.key}  final return {_fmt_return(last)}"
            text = line + (f"  error: {result.error}" if result.error else "")
            self.console.print(text, highlight=False, soft_wrap=True)
