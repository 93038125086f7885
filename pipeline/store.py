"""On-disk state of stage outputs: fingerprint folders, `_DONE.json`, manifest tables,
publishing the current manifests.

A stage output folder `<out>/<subdir>/<fingerprint>/` is *in progress* while it has no
`_DONE.json` (its finished items are in the ledger, `emoprep.pipeline.ledger`). At the end
the manifest and rejects are written in a deterministic order (natural sort of `sample_id`)
— so an interrupted-and-resumed run writes the same bytes as a clean one — then
`_DONE.json` is written last and the ledger removed.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from emoprep.pipeline.atomic import atomic_path, atomic_write_json, sweep_temp_files
from emoprep.pipeline.fingerprint import SHORT
from emoprep.pipeline.lazy import pa, pq
from emoprep.pipeline.ledger import LEDGER, Ledger
from emoprep.pipeline.stage import Reject
from emoprep.pipeline.values import natural_key

DONE = "_DONE.json"
MANIFEST = "manifest.parquet"
REJECTS = "rejects.parquet"
# Manifests are written (and streamed back by later stages) in row groups of this size.
ROW_GROUP_ROWS = 8192


# ---------------------------------------------------------------- tables

def rejects_to_table(rejects: Iterable[Reject], stage: str) -> pa.Table:
    items = sorted(rejects, key=lambda r: (natural_key(r.sample_id), r.reason, r.message))
    return pa.table({
        "sample_id": pa.array([r.sample_id for r in items], pa.string()),
        "stage": pa.array([stage] * len(items), pa.string()),
        "reason": pa.array([r.reason for r in items], pa.string()),
        "message": pa.array([r.message for r in items], pa.string()),
    })


def write_table(table: pa.Table, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Deterministic Parquet write (same table -> same bytes), atomically."""
    if metadata:
        meta = dict(table.schema.metadata or {})
        meta.update({k.encode(): v.encode() for k, v in metadata.items()})
        table = table.replace_schema_metadata(meta)
    with atomic_path(path, fsync=True) as tmp:
        pq.write_table(table, tmp, compression="zstd", write_statistics=True,
                       row_group_size=ROW_GROUP_ROWS)


def read_table(path: Path) -> pa.Table:
    return pq.read_table(path)


# ---------------------------------------------------------------- stage folders

class StageDir:
    """One fingerprint folder of one stage."""

    def __init__(self, out_root: Path, subdir: str, fp: str):
        self.out_root = out_root
        self.subdir = subdir
        self.fp = fp[:SHORT]  # folder name
        self.path = out_root / subdir / self.fp

    @classmethod
    def at(cls, out_root: Path, rel_dir: str) -> StageDir:
        """The folder `rel_dir` (as recorded in manifests/_current.json)."""
        subdir, _, fp = rel_dir.rpartition("/")
        return cls(out_root, subdir, fp)

    @property
    def done_file(self) -> Path:
        return self.path / DONE

    def read_done(self) -> dict[str, Any] | None:
        """The `_DONE.json` record, or None when there is none (or it is unreadable)."""
        try:
            done = json.loads(self.done_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return done if isinstance(done, dict) else None

    def is_done(self) -> bool:
        done = self.read_done()
        return (done is not None and bool(done) and str(done.get("fingerprint", "")).startswith(self.fp)
                and (self.path / MANIFEST).exists())

    def in_progress_items(self) -> int:
        return len(Ledger(self.path).keys()) if (self.path / LEDGER).is_dir() else 0

    def prepare(self, force: bool) -> None:
        """Make the folder ready for (re)building: wipe on --force, sweep orphan temp files."""
        if force and self.path.exists():
            # Drop _DONE first so a crash during the wipe leaves an in-progress folder.
            self.done_file.unlink(missing_ok=True)
            shutil.rmtree(self.path)
        self.path.mkdir(parents=True, exist_ok=True)
        sweep_temp_files(self.path)

    def cleanup_after_done(self) -> None:
        # Sweep first, drop the ledger last: a folder that still has a ledger may still
        # hold orphans, so the runner only needs to look again when the ledger is there.
        sweep_temp_files(self.path)
        Ledger(self.path).remove()

    def write_done(self, info: dict[str, Any]) -> None:
        atomic_write_json(self.done_file, info)


# ---------------------------------------------------------------- publishing

class Published:
    """`<out>/manifests/`: the current manifest of each stage, and all current rejects."""

    def __init__(self, out_root: Path):
        self.dir = out_root / "manifests"
        self.current_file = self.dir / "_current.json"

    def current(self) -> dict[str, dict[str, str]]:
        """Stage name -> {"dir": its current folder, "fingerprint": ...} ({} before any run)."""
        try:
            current = json.loads(self.current_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return current if isinstance(current, dict) else {}

    def publish(self, stage: str, sdir: StageDir, out_root: Path) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        with atomic_path(self.dir / f"{stage}.parquet") as tmp:
            shutil.copyfile(sdir.path / MANIFEST, tmp)
        cur = self.current()
        cur[stage] = {"dir": sdir.path.relative_to(out_root).as_posix(), "fingerprint": sdir.fp}
        atomic_write_json(self.current_file, dict(sorted(cur.items())))
        self.rebuild_rejects(out_root)

    def rebuild_rejects(self, out_root: Path) -> None:
        tables = []
        for _stage, entry in sorted(self.current().items()):
            path = out_root / entry["dir"] / REJECTS
            if path.exists():
                tables.append(pq.read_table(path))
        table = pa.concat_tables(tables) if tables else rejects_to_table([], "")
        write_table(table, self.dir / "rejects.parquet")
