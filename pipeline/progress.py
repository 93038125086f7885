"""Progress of a run: one rich bar per stage on a terminal; off a terminal (nohup, SLURM, CI)
one line per running stage every 30 s (items done/total, rate, ETA) on stderr and as a
`progress` event in the JSON-lines log, so an hour of tokenization shows signs of life.

The runner talks to either through `ProgressSink` (add_task / advance / stop_task).
"""
from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

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

if TYPE_CHECKING:
    from emoprep.pipeline.runlog import RunLog

LINE_SECONDS = 30.0  # off a terminal: a line per running stage this often (EMOPREP_PROGRESS_SECONDS)


class ProgressSink(Protocol):
    """What the runner reports to: rich's `Progress` or `LineProgress`."""

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0,
                 completed: int = 0) -> Any: ...

    def advance(self, task_id: Any, advance: float = 1) -> None: ...

    def stop_task(self, task_id: Any) -> None: ...


class _Rate(ProgressColumn):
    """Items per second, from the finished speed once a stage is done."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:6.1f} it/s" if speed else "     - it/s", style="cyan")


@dataclass
class _Line:
    stage: str
    total: float | None
    done: int
    start_done: int
    started: float
    running: bool = True


def _duration(seconds: float) -> str:
    s = round(seconds)
    h, m = divmod(s // 60, 60)
    return f"{h}h {m:02d}m" if h else (f"{m}m {s % 60:02d}s" if m else f"{s}s")


class LineProgress:
    """Periodic plain lines for runs whose stderr is not a terminal. A daemon thread writes
    them, so a stage whose items take minutes each still reports every `interval` seconds."""

    def __init__(self, log: RunLog, interval: float = LINE_SECONDS):
        self.log, self.interval = log, interval
        self._tasks: dict[int, _Line] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add_task(self, description: str, start: bool = True, total: float | None = 100.0,
                 completed: int = 0) -> int:
        with self._lock:
            task = len(self._tasks)
            self._tasks[task] = _Line(description, total, int(completed), int(completed), time.monotonic())
        return task

    def advance(self, task_id: Any, advance: float = 1) -> None:
        with self._lock:
            self._tasks[task_id].done += int(advance)

    def stop_task(self, task_id: Any) -> None:
        with self._lock:
            self._tasks[task_id].running = False

    def report(self) -> None:
        """One line (and one log event) per running stage."""
        now = time.monotonic()
        with self._lock:
            lines = [(t.stage, t.total, t.done, t.done - t.start_done, now - t.started)
                     for t in self._tasks.values() if t.running]
        for stage, total, done, new, elapsed in lines:
            rate = new / elapsed if elapsed > 0 else 0.0
            eta = (total - done) / rate if total is not None and rate > 0 else None
            if total is None:
                text = f"{stage}: running for {_duration(elapsed)}"
            else:
                pct = 100.0 * done / total if total else 100.0
                text = (f"{stage}: {done:,}/{int(total):,} items ({pct:.1f} %), {rate:.2f} items/s, "
                        f"ETA {_duration(eta) if eta is not None else '?'}, running for {_duration(elapsed)}")
            self.log.progress(text, stage=stage, done=done, total=total, rate=round(rate, 3),
                              eta_s=None if eta is None else round(eta, 1), elapsed_s=round(elapsed, 1))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.report()

    def __enter__(self) -> LineProgress:
        self._thread = threading.Thread(target=self._loop, name="emoprep-progress", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class RunProgress:
    """Context manager giving the run's progress sink: rich bars on a terminal (none when
    quiet), periodic lines off a terminal (in the log always, on stderr unless quiet)."""

    def __init__(self, console: Console, quiet: bool, log: RunLog | None = None):
        self.console, self.quiet, self.log = console, quiet, log
        self._cm: Progress | LineProgress | None = None

    def __enter__(self) -> ProgressSink | None:
        if self.console.is_terminal:
            if self.quiet:
                return None
            bars = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                            _Rate(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                            console=self.console)
            self._cm = bars
            bars.__enter__()
            return bars
        if self.log is None:
            return None
        lines = LineProgress(self.log, float(os.environ.get("EMOPREP_PROGRESS_SECONDS") or LINE_SECONDS))
        self._cm = lines.__enter__()
        return lines

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._cm is not None:
            self._cm.__exit__(exc_type, exc, tb)
