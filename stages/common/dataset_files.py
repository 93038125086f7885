"""Files named by a dataset's own tables: found under the dataset root, never outside it.

A ratings sheet or a generic table names files by relative path. Those names are data: they
may be NFC while the disk has NFD (archives unpacked on macOS), or may try to leave the root
(`..`, an absolute path, a symlink). `resolve_in_root` finds the file or says why not, in a
message that names the relative path only (outputs must not depend on where data lives).
"""
from __future__ import annotations

import errno
from pathlib import Path

from emoprep.stages.common.naming import nfc


def resolve_in_root(root: Path, rel: str) -> Path:
    """The file `rel` (POSIX, NFC, relative to `root`) on disk.

    Manifests store NFC names, but archives made on macOS unpack with NFD names, so a part
    that does not exist as written is looked up among its siblings by NFC equality. Raises
    FileNotFoundError when absent and ValueError when the path would leave `root`; their
    messages name `rel` only, never the absolute root (outputs must not depend on it)."""
    root = Path(root)
    parts = Path(rel).parts
    if Path(rel).is_absolute() or any(p in ("..", "") for p in parts):
        raise ValueError(f"{rel!r} is not a plain path inside the dataset root")
    path = root
    for part in parts:
        nxt = path / part
        if not nxt.exists() and path.is_dir():
            matches = [c for c in path.iterdir() if nfc(c.name) == nfc(part)]
            if len(matches) == 1:
                nxt = matches[0]
        path = nxt
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such file in the dataset root")
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{rel}: resolves to a file outside the dataset root")
    return path


# ---------------------------------------------------------------- decoding -------


def visible_subdirs(folder: Path) -> list[Path]:
    """The folders directly in `folder`, sorted, without hidden ones and macOS's `__MACOSX`
    (what unzipping an archive made on a Mac adds); [] when `folder` cannot be listed.
    Where the ingests look for a dataset's wrapper folders."""
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX")))
    except OSError:
        return []
