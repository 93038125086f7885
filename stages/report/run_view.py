"""What a run left on disk, read for the report: stage folders, `_DONE.json`, manifests.

The report sees a set of finished stage folders, `{stage name: folder relative to the output
root}`. The `report` stage takes the upstream closure of its inputs (following each
`_DONE.json` "inputs"), so its output depends only on what its fingerprint covers; the
`emoprep report` command takes every stage in `manifests/_current.json`. Either way a
missing or unreadable folder is skipped with a warning, never an exception, and stages the
report does not know are still listed with their counts and parameters.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoprep.pipeline.lazy import pd

DONE = "_DONE.json"
MANIFEST = "manifest.parquet"
REJECTS = "rejects.parquet"

# Tie-break for the DAG order (ingest first, tokenizers last); unknown stages sort by name.
PREFERRED_ORDER = ("deam", "pmemo", "foodpics", "clips", "chunks", "salient", "spectrogram",
                   "features", "images", "labels", "split", "tokens")


@dataclass
class StageInfo:
    """One finished stage folder as the report sees it."""

    name: str
    dir: str                      # relative to the output root, POSIX
    path: Path
    done: dict[str, Any]          # `_DONE.json`

    @property
    def inputs(self) -> dict[str, str]:
        return {str(k): str(v) for k, v in (self.done.get("inputs") or {}).items()}

    @property
    def components(self) -> dict[str, Any]:
        return self.done.get("components") or {}

    @property
    def params(self) -> dict[str, Any]:
        return self.components.get("params") or {}

    @property
    def counts(self) -> dict[str, Any]:
        return self.done.get("counts") or {}

    @property
    def fingerprint(self) -> str:
        return str(self.done.get("fingerprint", ""))


@dataclass
class RunView:
    """The finished stages of one output root, in DAG order, with cached manifest reads."""

    out_root: Path
    stages: dict[str, StageInfo]
    warnings: list[str] = field(default_factory=list)
    _frames: dict[str, pd.DataFrame | None] = field(default_factory=dict, repr=False)

    def manifest(self, name: str) -> pd.DataFrame | None:
        """The stage's kept rows (its own folder's manifest), or None if absent/unreadable."""
        if name not in self._frames:
            self._frames[name] = self._read(name, MANIFEST)
        return self._frames[name]

    def stage_rejects(self, name: str) -> pd.DataFrame | None:
        return self._read(name, REJECTS)

    def rejects(self) -> pd.DataFrame:
        """Every reject of the stages in view (sample_id, stage, reason, message), DAG order."""
        frames = [df for name in self.stages if (df := self.stage_rejects(name)) is not None and len(df)]
        cols = ["sample_id", "stage", "reason", "message"]
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=str) for c in cols})
        df = pd.concat(frames, ignore_index=True)
        return df[[c for c in cols if c in df.columns]].astype(str)

    def columns(self, name: str) -> list[str]:
        """Column names of the stage's manifest (schema only, no data read)."""
        p = self.file(name, MANIFEST)
        if p is None:
            return []
        try:
            import pyarrow.parquet as pq
            return list(pq.read_schema(p).names)
        except Exception:  # noqa: BLE001
            return []

    def file(self, name: str, filename: str) -> Path | None:
        """A side file of a stage folder (e.g. `audit.json`), if it exists."""
        st = self.stages.get(name)
        if st is None:
            return None
        p = st.path / filename
        return p if p.is_file() else None

    def json_file(self, name: str, filename: str) -> dict[str, Any] | None:
        p = self.file(name, filename)
        if p is None:
            return None
        try:
            loaded: dict[str, Any] | None = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            self.warnings.append(f"{name}: cannot read {self.stages[name].dir}/{filename}: {self._short(exc)}")
            return None
        return loaded

    def with_file(self, filename: str) -> list[str]:
        """Stages (DAG order) whose folder holds `filename`."""
        return [n for n in self.stages if self.file(n, filename) is not None]

    def _read(self, name: str, filename: str) -> pd.DataFrame | None:
        p = self.file(name, filename)
        if p is None:
            return None
        try:
            return pd.read_parquet(p)
        except Exception as exc:  # noqa: BLE001 - a broken file is reported, not fatal
            self.warnings.append(f"{name}: cannot read {self.stages[name].dir}/{filename}: {self._short(exc)}")
            return None

    def _short(self, exc: BaseException) -> str:
        """The error without the output root's absolute path (report files never hold one)."""
        return f"{type(exc).__name__}: {exc}".replace(str(self.out_root), "<out>")[:300]


def read_done(path: Path) -> dict[str, Any] | None:
    try:
        done = json.loads((path / DONE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return done if isinstance(done, dict) else None


def current_stages(out_root: Path) -> dict[str, str]:
    """`manifests/_current.json` as {stage: folder}; {} when absent or unreadable."""
    try:
        cur = json.loads((Path(out_root) / "manifests" / "_current.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v["dir"]) for k, v in cur.items() if isinstance(v, dict) and "dir" in v}


def upstream_closure(out_root: Path, start: dict[str, str]) -> dict[str, str]:
    """`start` plus every stage folder reachable through `_DONE.json` "inputs"."""
    seen: dict[str, str] = {}
    todo = sorted(start.items())
    while todo:
        name, rel = todo.pop()
        if name in seen:
            continue
        seen[name] = rel
        done = read_done(Path(out_root) / rel) or {}
        todo.extend(sorted((str(k), str(v)) for k, v in (done.get("inputs") or {}).items()))
    return seen


def dag_order(inputs: dict[str, list[str]]) -> list[str]:
    """Topological order (Kahn); among ready stages the PREFERRED_ORDER, then by name.
    Inputs outside the set are ignored; a cycle (never written by the engine) falls back
    to the tie-break order for what is left."""
    rank = {n: i for i, n in enumerate(PREFERRED_ORDER)}
    key = lambda n: (rank.get(n, len(rank)), n)  # noqa: E731
    deps = {n: {d for d in ds if d in inputs and d != n} for n, ds in inputs.items()}
    order: list[str] = []
    while deps:
        ready = sorted((n for n, ds in deps.items() if not ds), key=key) or sorted(deps, key=key)[:1]
        n = ready[0]
        order.append(n)
        deps.pop(n)
        for ds in deps.values():
            ds.discard(n)
    return order


def load_view(out_root: Path, dirs: dict[str, str]) -> RunView:
    """Read the `_DONE.json` of each folder in `dirs`; unfinished or missing ones are
    skipped with a warning."""
    out_root = Path(out_root)
    found: dict[str, StageInfo] = {}
    warnings = []
    for name, rel in sorted(dirs.items()):
        done = read_done(out_root / rel)
        if done is None:
            warnings.append(f"{name}: {rel} has no readable {DONE} (not finished or removed); left out")
            continue
        found[name] = StageInfo(name, rel, out_root / rel, done)
    order = dag_order({n: list(s.inputs) for n, s in found.items()})
    return RunView(out_root, {n: found[n] for n in order}, warnings)
