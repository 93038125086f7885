"""The Stage protocol and the registry.

A stage module holds the science; the engine (runner, store, executors) holds the
bookkeeping. A stage declares:

- `name`, `version` (bump when outputs change for the same inputs and parameters),
  `libraries` (distributions whose versions enter the fingerprint, e.g. "librosa"),
  `Params` (a dataclass filled from the recipe; fields marked `runtime()` stay out of the
  fingerprint because they cannot change results);
- `inputs(params)`: the upstream stage names it reads (may depend on parameters);
- either per-item work — `plan(ctx) -> [WorkItem]` in the main process, then
  `process(item, ctx) -> Outcome` in a worker — or whole-stage work with `run(ctx) -> Outcome`;
- optionally `finalize(ctx, rows, rejects) -> (rows, rejects)` for dataset-level steps after
  all items (e.g. an audit), and `source_signature(ctx)` / `fingerprint_extra(ctx)` when raw
  data or model weights decide the outputs.

Every work item ends as manifest rows or rejects (or both, e.g. a song giving chunks and an
under-annotated chunk); the engine turns an item that yields neither into a `no-output`
reject, so inputs = outputs + rejects always holds.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Iterable, Iterator

import pandas as pd


def runtime(default: Any = dataclasses.MISSING, **kw: Any) -> Any:
    """A parameter that cannot change outputs (batch size, workers): kept out of fingerprints."""
    md = dict(kw.pop("metadata", {}) or {})
    md["runtime"] = True
    if default is dataclasses.MISSING:
        return field(metadata=md, **kw)
    return field(default=default, metadata=md, **kw)


@dataclass(frozen=True)
class WorkItem:
    """One unit of per-item work. `key` is unique within the stage (usually a sample_id);
    `payload` holds plain values (str, int, float, bool, lists, dicts) that `process` needs."""

    key: str
    payload: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reject:
    """An input that did not make it, with a stable `reason` code and a human message."""

    sample_id: str
    reason: str
    message: str


@dataclass
class Outcome:
    """What one work item (or a whole stage) produced.

    rows: manifest rows, each a dict with at least `sample_id`; file paths in `path`
      columns are relative to the output root (use `ctx.rel(...)`).
    rejects: inputs that were not kept.
    counters: named counts that are neither rows nor rejects (e.g. short tails dropped).
    """

    rows: list[dict[str, Any]] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class ItemContext:
    """What a worker needs to process an item: picklable, no open handles.

    out_root: the run's output root; out_dir: this stage's fingerprint folder;
    input_dirs: fingerprint folders of the upstream stages; roots: dataset roots resolved by
    the engine (e.g. {"deam": Path(...)}); device: "cpu" / "cuda" (resolved).
    """

    stage: str
    params: Any
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
        when it would lead out of the output root (emoprep.paths.output_file)."""
        from emoprep.paths import output_file

        return output_file(self.out_root, rel_path)


class StageContext(ItemContext):
    """Main-process context: adds reading upstream manifests. Not sent to workers."""

    def __init__(self, *, manifests: dict[str, pd.DataFrame] | None = None,
                 hasher: Any = None, log: Any = None, **kw: Any):
        super().__init__(**kw)
        object.__setattr__(self, "_manifests", manifests or {})
        object.__setattr__(self, "_log", log)
        if hasher is None:
            from emoprep.filehash import FileHasher
            hasher = FileHasher()
        # content hashes of raw files, cached by stat (emoprep.filehash.FileHasher)
        object.__setattr__(self, "hasher", hasher)

    def input_manifest(self, name: str) -> pd.DataFrame:
        """The manifest (kept rows) of upstream stage `name`, whole (loaded on first use)."""
        if name not in self._manifests:
            raise KeyError(f"stage {self.stage!r} did not declare input {name!r}")
        return self._manifests[name]

    def iter_manifest(self, name: str, columns: list[str] | None = None) -> Iterator[pd.DataFrame]:
        """The same rows, one Parquet row group at a time, in manifest order (sorted by
        sample_id): for plans that must not hold a 10× manifest in memory."""
        if name not in self._manifests:
            raise KeyError(f"stage {self.stage!r} did not declare input {name!r}")
        batches = getattr(self._manifests, "iter_batches", None)
        if batches is not None:
            yield from batches(name, columns)
            return
        df = self._manifests[name]
        yield df if columns is None else df.loc[:, [c for c in columns if c in df.columns]]

    def manifest_columns(self, name: str) -> list[str]:
        """Column names of an input manifest without reading its rows."""
        columns = getattr(self._manifests, "columns", None)
        return columns(name) if columns is not None else list(self.input_manifest(name).columns)

    def manifest_rows(self, name: str) -> int:
        """Row count of an input manifest without reading its rows."""
        rows = getattr(self._manifests, "num_rows", None)
        return rows(name) if rows is not None else len(self.input_manifest(name))

    def item_context(self) -> ItemContext:
        return ItemContext(stage=self.stage, params=self.params, out_root=self.out_root,
                           out_dir=self.out_dir, input_dirs=dict(self.input_dirs),
                           roots=dict(self.roots), device=self.device)

    def info(self, msg: str, **fields: Any) -> None:
        if self._log is not None:
            self._log(msg, **fields)


class PlannedItems:
    """Work items made one at a time as the runner asks for them, with their number known
    up front (for progress): a plan over 10× DEAM never holds every payload at once."""

    def __init__(self, count: int, items: Iterable[WorkItem]):
        self.count = count
        self._items = items

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[WorkItem]:
        return iter(self._items)


@dataclass(frozen=True)
class NoParams:
    """For stages without parameters."""


class Stage:
    """Base class; subclasses set the class attributes and override what they need."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    Params: ClassVar[type] = NoParams
    libraries: ClassVar[tuple[str, ...]] = ()
    default_inputs: ClassVar[tuple[str, ...]] = ()
    # Dataset roots this stage reads directly (ingest stages): {"deam"}.
    datasets: ClassVar[tuple[str, ...]] = ()
    description: ClassVar[str] = ""
    # False: the runner processes items in its own process, one at a time (e.g. a stage
    # that holds one model and batches internally); True: items may go to a worker pool.
    parallel: ClassVar[bool] = True
    # True: the stage computes on `ctx.device` (resolved from --device); the runner only
    # probes for a GPU when a planned stage needs it.
    uses_device: ClassVar[bool] = False

    def inputs(self, params: Any) -> list[str]:
        return list(self.default_inputs)

    def output_subdir(self, params: Any) -> str:
        """Folder under the output root that holds `<fingerprint>/` folders."""
        return self.name

    # ---- per-item stages -------------------------------------------------
    def plan(self, ctx: StageContext) -> Iterable[WorkItem] | None:
        """Return the work items, or None for a whole-stage `run`."""
        return None

    def process(self, item: WorkItem, ctx: ItemContext) -> Outcome:
        raise NotImplementedError

    # ---- whole-stage -----------------------------------------------------
    def run(self, ctx: StageContext) -> Outcome:
        raise NotImplementedError

    def finalize(self, ctx: StageContext, rows: pd.DataFrame,
                 rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        """Dataset-level step after all items (default: nothing)."""
        return rows, rejects

    # ---- fingerprint inputs beyond params --------------------------------
    def source_signature(self, ctx: StageContext) -> Any:
        """For stages reading raw data: a JSON-able description of the data's content
        (relative paths and content hashes), never absolute paths or mtimes."""
        return None

    def fingerprint_extra(self, ctx: StageContext) -> dict[str, Any]:
        """Other things that decide outputs, e.g. model weight identity or compute dtype."""
        return {}

    def on_current(self, out_root: Path, stage_dir: Path) -> None:
        """Called when this stage's output folder becomes the current one (after a run, or
        when an up-to-date folder is switched back to), e.g. to refresh a well-known copy
        such as `<out>/report/`. Default: nothing."""

    def locate_root(self, params: Any, data_root: Path | None) -> Path:
        """Ingest stages: find their dataset under `data_root` (or the `root` parameter).

        Raise `emoprep.errors.ConfigError` naming the folder and the expected layout when
        it is not there."""
        raise NotImplementedError(f"stage {self.name!r} reads no dataset")


_REGISTRY: dict[str, Stage] = {}


def register(cls: type[Stage]) -> type[Stage]:
    """Class decorator: make a stage available to recipes by its `name`."""
    if not getattr(cls, "name", None):
        raise TypeError(f"{cls.__name__} has no stage name")
    if cls.name in _REGISTRY and type(_REGISTRY[cls.name]) is not cls:
        raise ValueError(f"stage name {cls.name!r} registered twice")
    _REGISTRY[cls.name] = cls()
    return cls


def get_stage(name: str) -> Stage:
    load_builtin_stages()
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "(none)"
        raise KeyError(f"unknown stage {name!r}; known stages: {known}") from None


def all_stages() -> dict[str, Stage]:
    load_builtin_stages()
    return dict(_REGISTRY)


def load_builtin_stages() -> None:
    """Import every public module of `emoprep.stages` so their @register decorators run.

    Stage modules import heavy libraries (torch, librosa) inside functions, so this is cheap.
    """
    import importlib
    import pkgutil

    import emoprep.stages as pkg

    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"emoprep.stages.{info.name}")
    # Extra stage modules (your own stages): EMOPREP_PLUGINS=pkg.mod,other.mod
    for mod in filter(None, os.environ.get("EMOPREP_PLUGINS", "").split(",")):
        importlib.import_module(mod.strip())
