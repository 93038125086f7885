"""Test spies shared by the security and property tests."""
from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Iterator
from unittest import mock


@contextlib.contextmanager
def opened_files() -> Iterator[list[Path]]:
    """Every file opened through `open` / `io.open` (pathlib, soundfile file objects,
    np.load, PIL via bytes) while the block runs."""
    seen: list[Path] = []
    real = io.open

    def spy(file, *a, **kw):
        if isinstance(file, (str, bytes, os.PathLike)):
            seen.append(Path(os.fsdecode(file)))
        return real(file, *a, **kw)

    with mock.patch("io.open", spy), mock.patch("builtins.open", spy):
        yield seen
