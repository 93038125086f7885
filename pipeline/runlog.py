"""Run events as JSON lines under `<out>/logs/`, and the console (rich) side of a run.

Logs are for people and tools reading a run afterwards; they are not outputs, so they may
hold times and hosts (outputs never do).
"""
from __future__ import annotations

import json
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, TextIO

from rich.console import Console


class RunLog:
    def __init__(self, out_root: Path | None, console: Console | None = None, quiet: bool = False):
        self.console = console or Console(stderr=True, soft_wrap=True)
        self.quiet = quiet
        self.path: Path | None = None
        self._fh: TextIO | None = None
        self._write = threading.Lock()  # the progress thread logs too
        if out_root is not None:
            logs = out_root / "logs"
            logs.mkdir(parents=True, exist_ok=True)
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
            self.path = logs / f"run-{stamp}-{os.getpid()}.jsonl"
            self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - open for the run, close()d

    def event(self, event: str, **fields: Any) -> None:
        rec = {"t": round(time.time(), 3), "event": event, **fields}
        with self._write:
            if self._fh is not None:
                self._fh.write(json.dumps(rec, default=str) + "\n")
                self._fh.flush()

    def say(self, msg: str, **fields: Any) -> None:
        """A line for the console and the log."""
        self.event("message", message=msg, **fields)
        if not self.quiet:
            self.console.print(msg, highlight=False)

    def progress(self, msg: str, **fields: Any) -> None:
        """A periodic progress line (off a terminal): a `progress` event, and stderr unless quiet."""
        self.event("progress", message=msg, **fields)
        if not self.quiet:
            self.console.print(msg, highlight=False, markup=False)

    def warn(self, msg: str, **fields: Any) -> None:
        self.event("warning", message=msg, **fields)
        self.console.print(f"[bold yellow]WARNING[/] {msg}", highlight=False)

    def close(self) -> None:
        with self._write:
            if self._fh is not None:
                self._fh.close()
                self._fh = None

    def capture_warnings(self) -> None:
        """Route WARNING+ records of the `emoprep` loggers (e.g. random-init weights) to the
        console and this run's log, once each."""
        logger = logging.getLogger("emoprep")
        for h in list(logger.handlers):
            if isinstance(h, _RunLogHandler):
                logger.removeHandler(h)
        logger.addHandler(_RunLogHandler(self))
        logger.propagate = False


class _RunLogHandler(logging.Handler):
    def __init__(self, runlog: RunLog):
        super().__init__(level=logging.WARNING)
        self.runlog = runlog

    def emit(self, record: logging.LogRecord) -> None:
        self.runlog.warn(record.getMessage(), logger=record.name)
