"""The Stage protocol: what a stage declares and the values it hands back to the engine.

A stage module holds the science; the engine (runner, store, executors) holds the
bookkeeping. A stage declares:

- `name`, `version` (bump when outputs change for the same inputs and parameters),
  `libraries` (distributions whose versions enter the fingerprint, e.g. "librosa"; a stage
  whose parameters choose among libraries narrows them in `libraries_for(params)`),
  `Params` (a frozen dataclass filled from the recipe; fields marked `runtime()` stay out of
  the fingerprint because they cannot change results) — the stage is generic over it, so
  `ctx.params` has the stage's own type;
- `inputs(params)`: the upstream stage names it reads (may depend on parameters);
- `columns(ctx)`: its manifest columns and their kinds, declared once; the runner casts every
  manifest of the stage to them, so the schema never depends on the data;
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
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from emoprep.pipeline.columns import ColumnKind
from emoprep.pipeline.lazy import pd
from emoprep.pipeline.reasons import ReasonCode

if TYPE_CHECKING:
    from emoprep.pipeline.context import ItemContext, StageContext
    from emoprep.pipeline.filehash import FileHasher

P = TypeVar("P")


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
    """An input that did not make it, with a stable `reason` code (a constant of
    `emoprep.manifests.reasons`) and a human message naming the file and the fault."""

    sample_id: str
    reason: ReasonCode
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

    @classmethod
    def rejected(cls, sample_id: str, reason: ReasonCode, message: str, **counters: int) -> Outcome:
        """The outcome of an item that is rejected as a whole: what `process` returns for a
        bad input (plus any counters the stage keeps for it)."""
        return cls(rejects=[Reject(sample_id, reason, message)], counters=dict(counters))


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


class Stage(Generic[P]):
    """Base class, generic over the stage's `Params` dataclass; subclasses set the class
    attributes and override what they need."""

    name: ClassVar[str]
    version: ClassVar[str] = "1"
    Params: type[P]
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
    # Seconds one item may take before it becomes a `timeout` reject (None: the run's
    # --item-timeout; set it for stages whose items are legitimately slow).
    item_timeout: ClassVar[float | None] = None
    # The manifest's columns and kinds when they do not depend on the parameters or the
    # upstream data (otherwise override `columns`).
    manifest_columns: ClassVar[Mapping[str, ColumnKind]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if not hasattr(cls, "Params"):  # a stage without parameters
            cls.Params = NoParams  # type: ignore[assignment]

    def inputs(self, params: P) -> list[str]:
        return list(self.default_inputs)

    def libraries_for(self, params: P) -> tuple[str, ...]:
        """Distributions whose versions enter the fingerprint: only those these parameters
        make the stage call, so a release of a library it never imports re-runs nothing."""
        return self.libraries

    def output_subdir(self, params: P) -> str:
        """Folder under the output root that holds `<fingerprint>/` folders."""
        return self.name

    def columns(self, ctx: StageContext[P]) -> Mapping[str, ColumnKind]:
        """The manifest's declared columns, in order, and their kinds. The runner casts the
        assembled manifest to them (absent ones added empty, undeclared ones kept after).
        Default: `manifest_columns`."""
        return self.manifest_columns

    # ---- per-item stages -------------------------------------------------
    def plan(self, ctx: StageContext[P]) -> Iterable[WorkItem] | None:
        """Return the work items, or None for a whole-stage `run`."""
        return None

    def process(self, item: WorkItem, ctx: ItemContext[P]) -> Outcome:
        raise NotImplementedError

    # ---- whole-stage -----------------------------------------------------
    def run(self, ctx: StageContext[P]) -> Outcome:
        raise NotImplementedError

    def finalize(self, ctx: StageContext[P], rows: pd.DataFrame,
                 rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        """Dataset-level step after all items (default: nothing)."""
        return rows, rejects

    # ---- fingerprint inputs beyond params --------------------------------
    def source_signature(self, ctx: StageContext[P]) -> object:
        """For stages reading raw data: a JSON-able description of the data's content
        (relative paths and content hashes), never absolute paths or mtimes."""
        return None

    def fingerprint_extra(self, ctx: StageContext[P]) -> dict[str, Any]:
        """Other things that decide outputs, e.g. model weight identity or compute dtype."""
        return {}

    def on_current(self, out_root: Path, stage_dir: Path) -> None:
        """Called when this stage's output folder becomes the current one (after a run, or
        when an up-to-date folder is switched back to), e.g. to refresh a well-known copy
        such as `<out>/report/`. Default: nothing."""

    def locate_root(self, params: P, data_root: Path | None, hasher: FileHasher | None = None) -> Path:
        """Ingest stages: find their dataset under `data_root` (or the `root` parameter).
        `hasher` (the run's stat-keyed cache, `FileHasher.probe`) lets a stage remember what it
        learnt from opening a file, so an up-to-date run need not open it again.

        Raise `emoprep.pipeline.errors.ConfigError` naming the folder and the expected
        layout when it is not there."""
        raise NotImplementedError(f"stage {self.name!r} reads no dataset")


AnyStage = Stage[Any]
