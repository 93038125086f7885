"""One run per output folder: an exclusive `flock` on `<out>/.emoprep.lock`, or, where the
filesystem has no `flock` (some cluster filesystems and FUSE mounts), a lock file created
with `O_EXCL` (`<out>/.emoprep.lock.excl`) holding host, pid, the process's start time and
the run's start.

With `flock` the kernel drops the lock when the holder dies (even by SIGKILL), so a crashed
run never leaves a stale lock. The `O_EXCL` file stays behind a killed run, so it is judged:
stale when its process is gone (same host: no such pid, or a pid reused by a younger
process) or when its holder stopped refreshing it (every host: the holder touches the file
every `HEARTBEAT_S`; older than `STALE_AFTER_S` = stale). A stale lock is taken over with a
message. `EMOPREP_LOCK=excl` chooses the lock file where `flock` works but is not shared
between machines (NFS mounts without lock forwarding). A second run waits with a message,
or with `--no-wait` exits 2.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from emoprep.pipeline.errors import ConfigError

LOCK_NAME = ".emoprep.lock"
EXCL_NAME = ".emoprep.lock.excl"
HEARTBEAT_S = 60.0
STALE_AFTER_S = 600.0
POLL_S = 1.0
# flock errors that mean "this filesystem cannot", not "someone holds it"
NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EINVAL, errno.ENOSYS}


def _process_start(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), to tell a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(pid: int, start: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return start is None or _process_start(pid) in (None, start)


class OutputLock:
    """Held for the whole run (a context manager); released by `release()` or process death."""

    def __init__(self, out_root: Path, wait: bool = True,
                 on_wait: Callable[[str], None] | None = None):
        self.path = out_root / LOCK_NAME
        self.excl_path = out_root / EXCL_NAME
        self.wait = wait
        self.on_wait = on_wait
        self.mode = "flock"
        self._fh: TextIO | None = None
        self._beat: threading.Event | None = None
        self._seen = ""  # the lock file's text when it was judged stale

    def _info(self) -> dict[str, Any]:
        return {"pid": os.getpid(), "host": socket.gethostname(), "process_start": _process_start(os.getpid()),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}

    def _holder(self, path: Path | None = None) -> str:
        try:
            info = json.loads((path or self.path).read_text() or "{}")
            return f"pid {info.get('pid')} on {info.get('host')}, since {info.get('since')}"
        except (OSError, ValueError):
            return "another process"

    def _busy(self, holder: str) -> str:
        return f"{self.path.parent} is in use by another emoprep run ({holder})"

    # ---- flock -------------------------------------------------------------------------
    def acquire(self) -> OutputLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if os.environ.get("EMOPREP_LOCK", "").lower() == "excl":
            return self._acquire_excl("EMOPREP_LOCK=excl")
        fh = open(self.path, "a+")  # noqa: SIM115 - held open as the lock until release()
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            if not self.wait:
                fh.close()
                raise ConfigError(f"{self._busy(holder)}; wait for it or use another --out") from None
            if self.on_wait:
                self.on_wait(f"{self._busy(holder)}; waiting for it to finish "
                             "(Ctrl-C to stop, --no-wait to exit instead)")
            fcntl.flock(fh, fcntl.LOCK_EX)
        except OSError as exc:
            fh.close()
            if exc.errno not in NO_FLOCK:
                raise
            return self._acquire_excl(f"flock is not available on this filesystem ({exc.strerror})")
        fh.seek(0)
        fh.truncate()
        fh.write(json.dumps(self._info()))
        fh.flush()
        self._fh = fh
        return self

    # ---- O_EXCL lock file ------------------------------------------------------------------
    def _acquire_excl(self, why: str) -> OutputLock:
        self.mode = "excl"
        said = False
        while True:
            try:
                fd = os.open(self.excl_path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                stale = self._stale_reason()
                if stale:
                    self._take_over(stale)
                    continue
                holder = self._holder(self.excl_path)
                if not self.wait:
                    raise ConfigError(f"{self._busy(holder)} (lock file {self.excl_path}: {why}); wait for it "
                                      "or use another --out; if no run is alive, delete that file") from None
                if self.on_wait and not said:
                    self.on_wait(f"{self._busy(holder)} (lock file {self.excl_path}); waiting for it to finish "
                                 "(Ctrl-C to stop, --no-wait to exit instead)")
                    said = True
                time.sleep(POLL_S)
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(json.dumps({**self._info(), "why": why}))
                fh.flush()
                os.fsync(fh.fileno())
            self._start_heartbeat()
            return self

    def _stale_reason(self) -> str | None:
        """Why the existing lock file belongs to no live run (None: it may)."""
        try:
            st = self.excl_path.stat()
            self._seen = self.excl_path.read_text()
            info = json.loads(self._seen or "{}")
        except FileNotFoundError:
            return "gone"  # released meanwhile: try again
        except (OSError, ValueError):
            info = {}
            st = None
        age = time.time() - st.st_mtime if st is not None else 0.0
        if info.get("host") == socket.gethostname() and isinstance(info.get("pid"), int) \
                and not _alive(info["pid"], info.get("process_start")):
            return f"its process (pid {info['pid']} on this host) is gone"
        if age > STALE_AFTER_S:
            return f"not refreshed for {age:.0f} s (a live run refreshes it every {HEARTBEAT_S:.0f} s)"
        return None

    def _take_over(self, why: str) -> None:
        if why == "gone":
            return
        holder = self._holder(self.excl_path)
        stale = self.excl_path.with_name(f"{EXCL_NAME}.stale-{os.getpid()}")
        try:
            os.rename(self.excl_path, stale)
        except FileNotFoundError:
            return  # another run took it over first
        if stale.read_text() != self._seen:  # a run took it over between our look and the rename
            with contextlib.suppress(FileExistsError):  # give it back, unless yet another run holds it now
                os.link(stale, self.excl_path)
            os.unlink(stale)
            return
        os.unlink(stale)
        if self.on_wait:
            self.on_wait(f"removed a stale lock of {self.path.parent} ({holder}): {why}")

    def _start_heartbeat(self) -> None:
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(HEARTBEAT_S):
                try:
                    os.utime(self.excl_path)
                except OSError:
                    return

        threading.Thread(target=beat, name="emoprep-lock-heartbeat", daemon=True).start()
        self._beat = stop

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None
        if self._beat is not None:
            self._beat.set()
            self._beat = None
            with contextlib.suppress(FileNotFoundError):
                self.excl_path.unlink()

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()
