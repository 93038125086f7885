"""Progress of a run on a terminal: one rich bar per stage (items, rate, elapsed, ETA).

Off a terminal (a log file, CI) nothing is drawn; the run log says when stages start and end.
"""
from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class _Rate(ProgressColumn):
    """Items per second, from the finished speed once a stage is done."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} it/s" if speed else "     - it/s", style="cyan")


class RunProgress:
    """Context manager giving a rich `Progress` (or None when quiet or not on a terminal)."""

    def __init__(self, console: Console, quiet: bool):
        self.console = console
        self.enabled = not quiet and console.is_terminal
        self._p: Progress | None = None

    def __enter__(self) -> Progress | None:
        if not self.enabled:
            return None
        self._p = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                           _Rate(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                           console=self.console)
        self._p.__enter__()
        return self._p

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._p is not None:
            self._p.__exit__(exc_type, exc, tb)
