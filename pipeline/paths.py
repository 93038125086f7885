"""Paths named by manifests: they must stay inside the root they are relative to.

A manifest is data: hand-edited, produced by a plugin, or damaged. Whatever it says, a stage
must never read a file outside the output root because of it (`..`, an absolute path, or a
symlink inside the root that leads out)."""
from __future__ import annotations

from pathlib import Path, PurePosixPath
from typing import Any


def output_file(out_root: str | Path, rel: Any) -> Path:
    """The file a manifest `path` (relative to the output root) names. ValueError, naming
    `rel` only, for anything but a plain relative path that stays inside the root (absolute,
    `..`, empty, a symlink leading out). Stages reject such rows `bad-path`."""
    pure = PurePosixPath(rel) if isinstance(rel, str) and "\x00" not in rel else None
    if pure is None or not pure.parts or pure.is_absolute() or ".." in pure.parts:
        raise ValueError(f"{rel!r} is not a path inside the output root")
    path = Path(out_root).joinpath(*pure.parts)
    if not path.resolve().is_relative_to(Path(out_root).resolve()):
        raise ValueError(f"{rel}: a symlink leading out of the output root")
    return path
