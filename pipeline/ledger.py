"""The item ledger: what a stage folder has committed so far, so a killed run resumes.

Finished items are recorded under `<stage folder>/_ledger/` as small JSON-lines batches,
each written atomically (temp file + rename, fsynced), every few seconds. On restart the
runner reads the batches, keeps the items whose output files are intact and redoes the rest;
at the end the manifest is assembled from the ledger (`emoprep.pipeline.assemble`) and the
ledger removed.
"""
from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoprep.pipeline.atomic import atomic_path
from emoprep.pipeline.stage import Outcome
from emoprep.pipeline.values import plain

LEDGER = "_ledger"


@dataclass
class ItemRecord:
    key: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[list[str]] = field(default_factory=list)  # [sample_id, reason, message]
    counters: dict[str, int] = field(default_factory=dict)

    @classmethod
    def from_outcome(cls, key: str, outcome: Outcome) -> ItemRecord:
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
