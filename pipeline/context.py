"""What a stage sees while it runs: its parameters, folders and upstream manifests.

`ItemContext` travels to worker processes with every batch of items, so it holds only
picklable values (paths, parameters, no open handles). `StageContext` adds what only the
main process has: the upstream manifests (read whole or streamed by row group), the raw-file
hasher and the run log.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from emoprep.pipeline.filehash import FileHasher
from emoprep.pipeline.lazy import pd
from emoprep.pipeline.paths import output_file
from emoprep.pipeline.upstream import InMemoryManifests, UpstreamManifests

P = TypeVar("P")


@dataclass(frozen=True)
class ItemContext(Generic[P]):
    """What a worker needs to process an item: picklable, no open handles.

    out_root: the run's output root; out_dir: this stage's fingerprint folder;
    input_dirs: fingerprint folders of the upstream stages; roots: dataset roots resolved by
    the engine (e.g. {"deam": Path(...)}); device: "cpu" / "cuda" (resolved).
    """

    stage: str
    params: P
    out_root: Path
    out_dir: Path
    input_dirs: dict[str, Path] = field(default_factory=dict)
    roots: dict[str, Path] = field(default_factory=dict)
    device: str = "cpu"

    def rel(self, path: Path | str) -> str:
        """`path` relative to the output root, POSIX style, as manifests store it."""
        return Path(path).resolve().relative_to(self.out_root.resolve()).as_posix()

    def abs(self, rel_path: str) -> Path:
        """Resolve a manifest `path` (relative to the output root) to a file; ValueError
        when it would lead out of the output root (emoprep.pipeline.paths.output_file)."""
        return output_file(self.out_root, rel_path)


class StageContext(ItemContext[P]):
    """Main-process context: adds reading upstream manifests. Not sent to workers."""

    _manifests: UpstreamManifests
    _log: Callable[..., None] | None
    hasher: FileHasher
    # The run's StageCatalog (emoprep.pipeline.catalog), for a stage that reads another recipe
    # (the report's comparison); None when a test drives one stage alone. Typed Any: the
    # catalog module imports the stage protocol, which imports this module.
    catalog: Any

    def __init__(self, *, manifests: UpstreamManifests | Mapping[str, pd.DataFrame] | None = None,
                 hasher: FileHasher | None = None, log: Callable[..., None] | None = None,
                 catalog: Any = None, **kw: Any):
        super().__init__(**kw)
        object.__setattr__(self, "catalog", catalog)
        if not isinstance(manifests, UpstreamManifests):
            manifests = InMemoryManifests(dict(manifests or {}))
        object.__setattr__(self, "_manifests", manifests)
        object.__setattr__(self, "_log", log)
        # content hashes of raw files, cached by stat (emoprep.pipeline.filehash.FileHasher)
        object.__setattr__(self, "hasher", hasher if hasher is not None else FileHasher())

    def _declared(self, name: str) -> None:
        if name not in self._manifests:
            raise KeyError(f"stage {self.stage!r} did not declare input {name!r}")

    def input_manifest(self, name: str) -> pd.DataFrame:
        """The manifest (kept rows) of upstream stage `name`, whole (loaded on first use)."""
        self._declared(name)
        return self._manifests[name]

    def iter_manifest(self, name: str, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The same rows, one Parquet row group at a time, in manifest order (sorted by
        sample_id): for plans that must not hold a 10× manifest in memory."""
        self._declared(name)
        yield from self._manifests.iter_batches(name, columns)

    def manifest_columns(self, name: str) -> list[str]:
        """Column names of an input manifest without reading its rows."""
        self._declared(name)
        return self._manifests.columns(name)

    def manifest_rows(self, name: str) -> int:
        """Row count of an input manifest without reading its rows."""
        self._declared(name)
        return self._manifests.num_rows(name)

    def item_context(self) -> ItemContext[P]:
        return ItemContext(stage=self.stage, params=self.params, out_root=self.out_root,
                           out_dir=self.out_dir, input_dirs=dict(self.input_dirs),
                           roots=dict(self.roots), device=self.device)

    def info(self, msg: str, **fields: Any) -> None:
        if self._log is not None:
            self._log(msg, **fields)
