"""On-disk state of stage outputs: the item ledger, manifests, `_DONE.json`, publishing.

A stage output folder `<out>/<subdir>/<fingerprint>/` is *in progress* while it has no
`_DONE.json`; finished items are recorded in `_ledger/` as small JSON-lines batches (each
written atomically), so a killed run resumes without redoing them. At the end the manifest
and rejects are assembled from the ledger in a deterministic order (natural sort of
`sample_id`) — so an interrupted-and-resumed run writes the same bytes as a clean one —
then `_DONE.json` is written last and the ledger removed.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Mapping
from typing import Any, Iterable, Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from emoprep.atomic import atomic_path, atomic_write_json, sweep_temp_files
from emoprep.stage import Outcome, Reject

DONE = "_DONE.json"
LEDGER = "_ledger"
MANIFEST = "manifest.parquet"
REJECTS = "rejects.parquet"
REJECT_COLUMNS = ("sample_id", "stage", "reason", "message")
# Manifests are written (and streamed back by later stages) in row groups of this size.
ROW_GROUP_ROWS = 8192


# ---------------------------------------------------------------- values

def plain(value: Any) -> Any:
    """Convert numpy scalars/arrays and paths to JSON/Arrow-friendly Python values."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return [plain(v) for v in value.tolist()]
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return value.as_posix()
    return value


_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> tuple:
    """`deam:2:0` < `deam:10:0`: numbers compare as numbers, the rest as text."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in _DIGITS.split(text) if p)


# ---------------------------------------------------------------- ledger

@dataclass
class ItemRecord:
    key: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[list[str]] = field(default_factory=list)  # [sample_id, reason, message]
    counters: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_outcome(cls, key: str, outcome: Outcome) -> "ItemRecord":
        return cls(key=key,
                   rows=[plain(r) for r in outcome.rows],
                   rejects=[[r.sample_id, r.reason, r.message] for r in outcome.rejects],
                   counters={k: int(v) for k, v in outcome.counters.items()})

    def to_json(self) -> str:
        # Row keys keep the stage's order (it becomes the manifest's column order).
        return json.dumps({"key": self.key, "rows": self.rows, "rejects": self.rejects,
                           "counters": dict(sorted(self.counters.items()))}, allow_nan=True)


class Ledger:
    """Committed item records of one stage output folder, as atomic JSON-lines batches."""

    def __init__(self, stage_dir: Path):
        self.dir = stage_dir / LEDGER

    def iter_batches(self) -> Iterator[list[ItemRecord]]:
        """The committed batches in commit order, one at a time (memory: one batch)."""
        if not self.dir.is_dir():
            return
        for batch in sorted(self.dir.glob("batch-*.jsonl")):
            records = []
            for line in batch.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    d = json.loads(line)
                    records.append(ItemRecord(d["key"], d["rows"], d["rejects"], d["counters"]))
            yield records

    def load(self) -> dict[str, ItemRecord]:
        """Every key's newest record (small ledgers and tests; the runner streams)."""
        return {rec.key: rec for records in self.iter_batches() for rec in records}

    def keys(self) -> set[str]:
        return {rec.key for records in self.iter_batches() for rec in records}

    def append(self, records: list[ItemRecord]) -> None:
        if not records:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        seq = len(list(self.dir.glob("batch-*.jsonl")))
        path = self.dir / f"batch-{seq:06d}-{uuid.uuid4().hex[:8]}.jsonl"
        with atomic_path(path, fsync=True) as tmp:
            tmp.write_text("".join(r.to_json() + "\n" for r in records), encoding="utf-8")

    def remove(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)


def outputs_intact(record: ItemRecord, out_root: Path, stage_dir: Path) -> bool:
    """Do the files a committed record points to (inside this stage's folder) still exist
    and hold data? Item files are not fsynced one by one, so after a power loss (not a
    mere process kill) a record may outlive its file; such items are simply redone."""
    for row in record.rows:
        for key, value in row.items():
            if (key == "path" or key.endswith("_path")) and isinstance(value, str):
                p = out_root / value
                if p.is_relative_to(stage_dir) and not (p.is_file() and p.stat().st_size > 0):
                    return False
    return True


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
        from emoprep.fingerprint import SHORT

        self.out_root = out_root
        self.subdir = subdir
        self.full_fp = fp
        self.fp = fp[:SHORT]  # folder name
        self.path = out_root / subdir / self.fp

    @classmethod
    def at(cls, out_root: Path, rel_dir: str) -> "StageDir":
        """The folder `rel_dir` (as recorded in manifests/_current.json)."""
        subdir, _, fp = rel_dir.rpartition("/")
        return cls(out_root, subdir, fp)

    @property
    def done_file(self) -> Path:
        return self.path / DONE

    def read_done(self) -> dict[str, Any] | None:
        try:
            return json.loads(self.done_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def is_done(self) -> bool:
        done = self.read_done()
        return (bool(done) and str(done.get("fingerprint", "")).startswith(self.fp)
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
        try:
            return json.loads(self.current_file.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

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
        for stage, entry in sorted(self.current().items()):
            path = out_root / entry["dir"] / REJECTS
            if path.exists():
                tables.append(pq.read_table(path))
        if tables:
            table = pa.concat_tables(tables)
        else:
            table = rejects_to_table([], "")
        write_table(table, self.dir / "rejects.parquet")


class ManifestFiles(Mapping):
    """The upstream manifests of a stage being planned: each read whole on first use
    (`ctx.input_manifest`) or streamed one row group at a time (`ctx.iter_manifest`), so
    a stage that streams never holds a whole upstream manifest."""

    def __init__(self, paths: dict[str, Path]):
        self.paths = dict(paths)
        self._loaded: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self._loaded:
            self._loaded[name] = pq.read_table(self.paths[name]).to_pandas()
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __contains__(self, name: object) -> bool:
        return name in self.paths

    def columns(self, name: str) -> list[str]:
        return list(pq.read_schema(self.paths[name]).names)

    def num_rows(self, name: str) -> int:
        return pq.ParquetFile(self.paths[name]).metadata.num_rows

    def iter_batches(self, name: str, columns: list[str] | None = None) -> Iterator[Any]:
        pf = pq.ParquetFile(self.paths[name])
        cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        for i in range(pf.num_row_groups):
            yield pf.read_row_group(i, columns=cols).to_pandas()


def disk_free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize
