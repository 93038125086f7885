"""Test spies shared by the security and property tests."""
from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any
from unittest import mock


@contextlib.contextmanager
def opened_files() -> Iterator[list[Path]]:
    """Every file opened through `open` / `io.open` (pathlib, soundfile file objects,
    np.load, PIL via bytes) while the block runs."""
    seen: list[Path] = []
    real = io.open

    def spy(file: int | str | bytes | os.PathLike[str] | os.PathLike[bytes], *a: Any, **kw: Any) -> IO[Any]:
        if isinstance(file, (str, bytes, os.PathLike)):
            seen.append(Path(os.fsdecode(file)))
        handle: IO[Any] = real(file, *a, **kw)
        return handle

    with mock.patch("io.open", spy), mock.patch("builtins.open", spy):
        yield seen
