"""One run per output folder: an exclusive `flock` on `<out>/.emoprep.lock`.

The kernel drops the lock when the holder dies (even by SIGKILL), so a crashed run never
leaves a stale lock behind. A second run waits with a message, or with `--no-wait` exits 2.
"""
from __future__ import annotations

import fcntl
import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import TextIO

from emoprep.pipeline.errors import ConfigError

LOCK_NAME = ".emoprep.lock"


class OutputLock:
    """Held for the whole run (a context manager); released by `release()` or process death."""

    def __init__(self, out_root: Path, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None):
        self.path = out_root / LOCK_NAME
        self.wait = wait
        self.on_wait = on_wait
        self._fh: TextIO | None = None

    def _holder(self) -> str:
        try:
            info = json.loads(self.path.read_text() or "{}")
            return f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}"
        except (OSError, ValueError):
            return "another process"

    def acquire(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")  # noqa: SIM115 - held open as the lock until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            if not self.wait:
                fh.close()
                raise ConfigError(f"{self.path.parent} is in use by another emoprep run ({holder}); "
                                  "wait for it or use another --out") from None
            if self.on_wait:
                self.on_wait(f"{self.path.parent} is in use by another emoprep run ({holder}); "
                             "waiting for it to finish (Ctrl-C to stop, --no-wait to exit instead)")
            fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                             "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
