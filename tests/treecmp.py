"""Compare output trees byte for byte (what a resumed run must reproduce)."""
from __future__ import annotations

import json
from pathlib import Path

# Not outputs: run logs, the hash cache, the lock file, the demo data a run may create.
IGNORED_TOP = {"logs", ".cache", ".emoprep.lock", "demo-data"}


def snapshot(root: Path) -> dict[str, bytes]:
    """relative path -> bytes for every output file; `_DONE.json` without its "run" key
    (timings of this particular run)."""
    snap = {}
    for p in sorted(root.rglob("*")):
        rel = p.relative_to(root)
        if rel.parts[0] in IGNORED_TOP or not p.is_file():
            continue
        data = p.read_bytes()
        if p.name == "_DONE.json":
            d = json.loads(data)
            d.pop("run", None)
            data = json.dumps(d, sort_keys=True).encode()
        snap[rel.as_posix()] = data
    return snap


def diff(a: dict[str, bytes], b: dict[str, bytes]) -> list[str]:
    out = [f"only in first: {k}" for k in sorted(set(a) - set(b))]
    out += [f"only in second: {k}" for k in sorted(set(b) - set(a))]
    out += [f"differs: {k}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return out


def temp_files(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob(".tmp-*"))
