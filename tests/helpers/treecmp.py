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


def done_but_incomplete(root: Path) -> list[str]:
    """Stage folders that say done (`_DONE.json`) while an output they list, or a file
    their manifest's `path` column points to, is missing: what a kill must never leave
    behind. (`audio_path`/`image_path` name source files under the data root, not outputs.)"""
    import pyarrow.parquet as pq

    bad = []
    for done in sorted(root.rglob("_DONE.json")):
        folder = done.parent
        info = json.loads(done.read_text())
        bad += [f"{folder.relative_to(root)}: no {name}" for name in info.get("outputs", [])
                if not (folder / name).is_file()]
        if (folder / "manifest.parquet").is_file():
            table = pq.read_table(folder / "manifest.parquet")
            if "path" in table.column_names:
                bad += [f"{folder.relative_to(root)}: {rel} missing"
                        for rel in set(table.column("path").to_pylist())
                        if isinstance(rel, str) and not (root / rel).is_file()]
    return bad
