"""The upstream manifests a stage reads while it plans: from Parquet files in a run, or
from DataFrames in tests and notebooks, behind one interface.

A stage can take a manifest whole (`ctx.input_manifest`) or stream it one row group at a
time (`ctx.iter_manifest`), so a stage that streams never holds a whole 10× manifest.
"""
from __future__ import annotations

from abc import abstractmethod
from collections.abc import Iterator, Mapping
from pathlib import Path

from emoprep.pipeline.lazy import pd, pq


class UpstreamManifests(Mapping[str, "pd.DataFrame"]):
    """Upstream stage name -> its manifest; plus the cheap questions a plan asks first."""

    @abstractmethod
    def columns(self, name: str) -> list[str]:
        """Column names, without reading rows."""

    @abstractmethod
    def num_rows(self, name: str) -> int:
        """Row count, without reading rows."""

    @abstractmethod
    def iter_batches(self, name: str, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The rows in manifest order, a batch at a time, with only `columns` (those that
        exist) when given."""


class ManifestFiles(UpstreamManifests):
    """Manifests on disk: each read whole on first use, or streamed by Parquet row group."""

    def __init__(self, paths: Mapping[str, Path]):
        self.paths = dict(paths)
        self._loaded: dict[str, pd.DataFrame] = {}

    def __getitem__(self, name: str) -> pd.DataFrame:
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
        return int(pq.ParquetFile(self.paths[name]).metadata.num_rows)

    def iter_batches(self, name: str, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        pf = pq.ParquetFile(self.paths[name])
        cols = None if columns is None else [c for c in columns if c in pf.schema_arrow.names]
        for i in range(pf.num_row_groups):
            yield pf.read_row_group(i, columns=cols).to_pandas()


class InMemoryManifests(UpstreamManifests):
    """Manifests already in memory (tests, notebooks): one batch each."""

    def __init__(self, frames: Mapping[str, pd.DataFrame]):
        self.frames = dict(frames)

    def __getitem__(self, name: str) -> pd.DataFrame:
        return self.frames[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self.frames)

    def __len__(self) -> int:
        return len(self.frames)

    def columns(self, name: str) -> list[str]:
        return [str(c) for c in self.frames[name].columns]

    def num_rows(self, name: str) -> int:
        return len(self.frames[name])

    def iter_batches(self, name: str, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        df = self.frames[name]
        yield df if columns is None else df.loc[:, [c for c in columns if c in df.columns]]
