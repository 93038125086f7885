"""Plan the DAG, decide what is up to date and why, drive an executor, account for every item.

The runner owns the bookkeeping the stages never see: fingerprints, the output folders, the
item ledger (resume), atomic commits, progress, counts, publishing the current manifests.
"""
from __future__ import annotations

import errno
import inspect
import os
import signal
import sys
import time
import traceback
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence, Sized
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from emoprep.pipeline import __version__
from emoprep.pipeline.assemble import assemble, finish_manifest
from emoprep.pipeline.atomic import sweep_temp_files
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError, DataError
from emoprep.pipeline.executors.base import Executor, ItemTimedOut, WorkerCrashed
from emoprep.pipeline.executors.device_pool import DevicePoolExecutor, visible_gpus
from emoprep.pipeline.executors.inline import InlineExecutor
from emoprep.pipeline.filehash import FileHasher
from emoprep.pipeline.fingerprint import components, explain_change, fingerprint
from emoprep.pipeline.lazy import pa, pd
from emoprep.pipeline.ledger import LEDGER, ItemRecord, Ledger, outputs_intact
from emoprep.pipeline.memory import release_memory
from emoprep.pipeline.progress import ProgressSink
from emoprep.pipeline.reasons import INTERNAL_ERROR, ITEM_TIMEOUT, NO_OUTPUT, WORKER_CRASHED
from emoprep.pipeline.recipe import Recipe
from emoprep.pipeline.runlog import RunLog
from emoprep.pipeline.stage import AnyStage, WorkItem
from emoprep.pipeline.store import MANIFEST, REJECTS, Published, StageDir, rejects_to_table, write_table
from emoprep.pipeline.upstream import ManifestFiles
from emoprep.pipeline.values import natural_key

LEDGER_FLUSH_SECONDS = 2.0
LEDGER_FLUSH_ITEMS = 500


@dataclass
class PlannedStage:
    name: str
    stage: AnyStage
    params: Any
    inputs: list[str]
    components: dict[str, Any]
    fp: str
    sdir: StageDir
    status: str = "missing"          # done | stale | in-progress | missing
    reasons: list[str] = field(default_factory=list)


@dataclass
class StageSummary:
    name: str
    status: str                      # ran | up-to-date | failed
    items: int = 0
    rows: int = 0
    rejects: int = 0
    resumed: int = 0
    seconds: float = 0.0
    fingerprint: str = ""
    reasons: dict[str, int] = field(default_factory=dict)


# Seconds one item may run in a worker process before it is stopped as a `timeout` reject
# (--item-timeout; a stage may declare its own `item_timeout`). Generous: a hung read, not a
# slow item, is what it is for.
DEFAULT_ITEM_TIMEOUT = 1800.0

# Device nodes a GPU that torch.cuda can use needs on Linux: NVIDIA, WSL2, ROCm (HIP).
GPU_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg", "/dev/kfd")


def may_have_gpu() -> bool:
    """False when no GPU can be visible to torch, decided without importing torch (1–2 s):
    on Linux a CUDA/ROCm device needs its driver's device node; elsewhere ask torch."""
    if os.environ.get("CUDA_VISIBLE_DEVICES") in ("", "-1"):
        return False
    if not sys.platform.startswith("linux"):
        return True
    return any(os.path.exists(node) for node in GPU_DEVICE_NODES)


def resolve_device(device: str) -> str:
    """`auto` -> `cuda` when a GPU is visible to torch, else `cpu` (without importing torch
    when the machine has no GPU device node, so planning an up-to-date run stays fast)."""
    if device not in ("auto", "cpu", "cuda"):
        raise ConfigError(f"--device {device!r}: use auto, cpu or cuda")
    if device == "cpu" or (device == "auto" and not may_have_gpu()):
        return "cpu"
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if device == "cuda" and not has_cuda:
        raise ConfigError("--device cuda: torch sees no CUDA device here; use --device cpu or auto")
    return "cuda" if has_cuda else "cpu"


class Runner:
    def __init__(self, recipe: Recipe, out_root: Path, data_root: Path | None = None,
                 device: str = "auto", log: RunLog | None = None, device_slots: list[str] | None = None,
                 item_timeout: float | None = DEFAULT_ITEM_TIMEOUT):
        self.recipe = recipe
        self.item_timeout = item_timeout
        self.out_root = out_root.resolve()
        self.data_root = data_root.resolve() if data_root else None
        self.device_request = device
        self._device: str | None = None
        self.log = log or RunLog(None, quiet=True)
        self.hasher = FileHasher(self.out_root / ".cache" / "filehash.json")
        self.roots: dict[str, Path] = {}
        self.published = Published(self.out_root)
        # GPU processes for model stages (CUDA indices); None = every visible GPU.
        self.device_slots = device_slots

    @property
    def device(self) -> str:
        if self._device is None:
            self._device = resolve_device(self.device_request)
        return self._device

    # ------------------------------------------------------------ planning
    def stage_order(self, target: str | Sequence[str] | None = None) -> list[tuple[str, AnyStage, Any, list[str]]]:
        """Topological order of the stages needed for `target` (one stage or several; default:
        the recipe's targets)."""
        targets = [target] if isinstance(target, str) else list(target or self.recipe.targets)
        if not targets:
            raise ConfigError(f"recipe {self.recipe.name!r} names no targets; pass --stage NAME")
        order: list[tuple[str, AnyStage, Any, list[str]]] = []
        state: dict[str, str] = {}

        def visit(name: str, chain: tuple[str, ...]) -> None:
            if state.get(name) == "done":
                return
            if state.get(name) == "visiting":
                raise ConfigError(f"stage cycle: {' -> '.join((*chain, name))}")
            try:
                stage = self.recipe.stage(name)
            except KeyError as exc:
                raise ConfigError(str(exc.args[0])) from None
            state[name] = "visiting"
            params = self.recipe.params_for(stage)
            inputs = stage.inputs(params)
            for dep in inputs:
                visit(dep, (*chain, name))
            state[name] = "done"
            order.append((name, stage, params, inputs))

        for t in targets:
            visit(t, ())
        return order

    def plan(self, target: str | Sequence[str] | None = None) -> list[PlannedStage]:
        """Resolve data roots, compute every fingerprint and each stage's status."""
        planned: dict[str, PlannedStage] = {}
        current = self.published.current()
        for name, stage, params, inputs in self.stage_order(target):
            if stage.datasets:
                root = locate(stage, params, self.data_root, self.hasher)
                for ds in stage.datasets:
                    self.roots[ds] = Path(root).resolve()
            ctx = self._context(stage, params, self.out_root / stage.output_subdir(params), inputs, planned)
            source = stage.source_signature(ctx)
            extra = stage.fingerprint_extra(ctx)
            comps = components(stage, params, {i: planned[i].fp for i in inputs}, source, extra)
            fp = fingerprint(comps)
            sdir = StageDir(self.out_root, stage.output_subdir(params), fp)
            ps = PlannedStage(name, stage, params, inputs, comps, fp, sdir)
            if sdir.is_done():
                ps.status = "done"
            elif sdir.in_progress_items():
                ps.status, ps.reasons = "in-progress", [f"{sdir.in_progress_items()} items committed"]
            elif name in current and current[name]["fingerprint"] != sdir.fp:
                old = StageDir.at(self.out_root, current[name]["dir"])
                prev = (old.read_done() or {}).get("components")
                ps.status, ps.reasons = "stale", explain_change(prev, comps)
            planned[name] = ps
        self.hasher.save()
        return list(planned.values())

    def _context(self, stage: AnyStage, params: Any, out_dir: Path, inputs: list[str],
                 planned: dict[str, PlannedStage], manifests: ManifestFiles | None = None) -> StageContext[Any]:
        return StageContext(
            stage=stage.name, params=params, out_root=self.out_root, out_dir=out_dir,
            input_dirs={i: planned[i].sdir.path for i in inputs if i in planned},
            roots=dict(self.roots), device=self.device if stage.uses_device else "cpu",
            manifests=manifests, hasher=self.hasher, log=self.log.say, catalog=self.recipe.catalog)

    # ------------------------------------------------------------ running
    def run(self, target: str | None, executor: Executor, force: bool = False,
            max_reject_ratio: float | None = None, progress: ProgressSink | None = None) -> list[StageSummary]:
        # Orphans of a killed run's shared writes (stage folders are swept when used).
        for shared in ("manifests", ".cache"):
            if (self.out_root / shared).is_dir():
                sweep_temp_files(self.out_root / shared)
        plan = self.plan(target)
        by_name = {p.name: p for p in plan}
        summaries = []
        with _sigterm_as_interrupt():
            for ps in plan:
                summary = self._execute(ps, by_name, executor, force, max_reject_ratio, progress)
                summaries.append(summary)
                if summary.status != "up-to-date":  # an up-to-date stage allocated nothing
                    release_memory()
        return summaries

    def _execute(self, ps: PlannedStage, planned: dict[str, PlannedStage], executor: Executor,
                 force: bool, max_reject_ratio: float | None, progress: ProgressSink | None) -> StageSummary:
        t0 = time.time()
        if ps.sdir.is_done() and not force:
            done = ps.sdir.read_done() or {}
            if (ps.sdir.path / LEDGER).is_dir():  # a crash between _DONE and its cleanup
                ps.sdir.cleanup_after_done()
            if self.published.current().get(ps.name, {}).get("fingerprint") != ps.sdir.fp:
                self.published.publish(ps.name, ps.sdir, self.out_root)
                ps.stage.on_current(self.out_root, ps.sdir.path)
            counts = done.get("counts", {})
            self.log.say(f"[dim]{ps.name}: up to date ({ps.sdir.fp}, {counts.get('rows', 0)} rows, "
                         f"{counts.get('rejects', 0)} rejects)[/]")
            self.log.event("stage-skipped", stage=ps.name, fingerprint=ps.fp)
            return StageSummary(ps.name, "up-to-date", counts.get("items", 0), counts.get("rows", 0),
                                counts.get("rejects", 0), 0, time.time() - t0, ps.sdir.fp,
                                counts.get("reasons", {}))
        why = "forced" if force else ("; ".join(ps.reasons) if ps.reasons else "not built yet")
        self.log.say(f"[bold]{ps.name}[/]: running ({why})")
        self.log.event("stage-start", stage=ps.name, fingerprint=ps.fp, reasons=ps.reasons)
        ps.sdir.prepare(force)
        manifests = self.input_manifests(ps, planned)
        ctx = self._context(ps.stage, ps.params, ps.sdir.path, ps.inputs, planned, manifests)

        items = ps.stage.plan(ctx)
        resumed = 0
        if items is None:  # one whole-stage step: progress can only say it is still running
            task = progress.add_task(ps.name, total=None) if progress is not None else None
            try:
                outcome = ps.stage.run(ctx)
            finally:
                if progress is not None:
                    progress.stop_task(task)
            built = assemble(Ledger(ps.sdir.path), wanted=set(), extra=[ItemRecord.from_outcome("__stage__", outcome)])
            n_items = built.table.num_rows + len(built.rejects)
        else:
            n_items, resumed, wanted = self._run_items(ps, items, ctx, executor, progress)
            del items  # the plan's state (e.g. parsed annotations) is not needed to assemble
            release_memory()
            built = assemble(Ledger(ps.sdir.path), wanted)
        counters = built.counters
        df = built.table.to_pandas()
        built.table = pa.table({})  # drop the Arrow copy: only the DataFrame from here on
        df, rejects = finish_manifest(ps.stage, ctx, df, built.rejects)
        table = self._final_table(ps, df)
        reasons = Counter(str(r.reason) for r in rejects)
        undocumented = sorted(set(reasons) - set(self.recipe.catalog.reasons))
        if undocumented:
            self.log.warn(f"{ps.name}: reject reasons documented nowhere (a book of reason codes): {undocumented}")
        counts = {"items": n_items, "rows": table.num_rows, "rejects": len(rejects),
                  "reasons": dict(sorted(reasons.items())), "counters": dict(sorted(counters.items()))}
        if max_reject_ratio is not None and n_items and len(rejects) / n_items > max_reject_ratio:
            raise DataError(f"{ps.name}: {len(rejects)} of {n_items} inputs rejected "
                            f"({len(rejects) / n_items:.0%} > --max-reject-ratio {max_reject_ratio:.0%}); "
                            f"top reasons: {dict(reasons.most_common(3))}")
        meta = {"emoprep.stage": ps.name, "emoprep.fingerprint": ps.fp}
        write_table(table, ps.sdir.path / MANIFEST, meta)
        write_table(rejects_to_table(rejects, ps.name), ps.sdir.path / REJECTS, meta)
        seconds = time.time() - t0
        ps.sdir.write_done({
            "stage": ps.name, "fingerprint": ps.fp, "components": ps.components,
            "inputs": {i: planned[i].sdir.path.relative_to(self.out_root).as_posix() for i in ps.inputs},
            "counts": counts, "outputs": [MANIFEST, REJECTS], "emoprep_version": __version__,
            # Everything above is a pure function of the inputs; "run" describes this run only.
            "run": {"seconds": round(seconds, 3), "resumed_items": resumed,
                    "executor": executor.name, "workers": executor.workers},
        })
        ps.sdir.cleanup_after_done()
        self.published.publish(ps.name, ps.sdir, self.out_root)
        ps.stage.on_current(self.out_root, ps.sdir.path)
        ps.status = "done"
        self.log.event("stage-done", stage=ps.name, fingerprint=ps.fp, counts=counts, seconds=seconds)
        return StageSummary(ps.name, "ran", n_items, table.num_rows, len(rejects), resumed, seconds,
                            ps.sdir.fp, dict(reasons))

    def _run_items(self, ps: PlannedStage, items: Iterable[WorkItem], ctx: StageContext[Any],
                   executor: Executor, progress: ProgressSink | None) -> tuple[int, int, set[str]]:
        """Stream the planned items through the executor, committing results to the ledger
        as they come; items whose committed outputs are intact are skipped (resume).
        Returns (items planned, items resumed, their keys)."""
        ledger = Ledger(ps.sdir.path)
        done = intact_keys(ledger, self.out_root, ps.sdir.path)
        total = len(items) if isinstance(items, Sized) else None
        if done:
            self.log.say(f"  {ps.name}: resuming, {len(done)} items already done")
        wanted: set[str] = set()
        resumed = 0

        def todo() -> Iterator[WorkItem]:
            nonlocal resumed
            for item in items:
                if item.key in wanted:
                    raise DataError(f"stage {ps.name}: duplicate work item key {item.key!r} (a stage bug)")
                wanted.add(item.key)
                if item.key in done:
                    resumed += 1
                else:
                    yield item

        many = total is None or total - len(done) > 1
        ex, own = self._executor_for(ps, executor, many)
        limit = ps.stage.item_timeout if ps.stage.item_timeout is not None else self.item_timeout
        ex.item_timeout = limit or None
        task = progress.add_task(ps.name, total=total, completed=len(done)) if progress else None
        buffer: list[ItemRecord] = []
        last = time.time()
        try:
            for item, result in ex.map_unordered(ps.stage, todo(), ctx.item_context()):
                buffer.append(self._record(ps.name, item, result))
                if progress is not None and task is not None:
                    progress.advance(task)
                if len(buffer) >= LEDGER_FLUSH_ITEMS or time.time() - last > LEDGER_FLUSH_SECONDS:
                    ledger.append(buffer)
                    buffer, last = [], time.time()
            if not own:  # an executor the runner owns is closed below
                ex.release()
        finally:
            ledger.append(buffer)  # commit what finished, also on Ctrl-C
            if progress is not None and task is not None:
                progress.stop_task(task)
            if own:
                ex.close()
        return len(wanted), resumed, wanted

    def _executor_for(self, ps: PlannedStage, executor: Executor, many: bool) -> tuple[Executor, bool]:
        """Where this stage's items run, and whether the runner owns (must close) it.

        A model stage on CUDA goes to GPU-resourced dask workers when the cluster has
        them, else to one local process per GPU when there are several; on one GPU or the
        CPU it runs here (one model, all cores). Other stages use the chosen executor."""
        if not many:
            return InlineExecutor(), False
        if ps.stage.uses_device and (self.device == "cuda" or self.device_slots is not None):
            if executor.gpu_workers:
                return executor, False
            slots = self.device_slots if self.device_slots is not None else visible_gpus()
            if len(slots) > 1:
                self.log.say(f"  {ps.name}: one process per GPU ({', '.join(slots)})")
                return DevicePoolExecutor(slots), True
        return (executor if ps.stage.parallel else InlineExecutor()), False

    def _record(self, stage: str, item: WorkItem, result: Any) -> ItemRecord:
        if isinstance(result, OSError) and result.errno in ENVIRONMENT_ERRNOS:
            # Not the item's fault: rejecting it (and every item after it) would be wrong.
            raise EnvironmentFault(stage, item.key, result)
        if isinstance(result, BaseException):
            reason = (WORKER_CRASHED if isinstance(result, WorkerCrashed)
                      else ITEM_TIMEOUT if isinstance(result, ItemTimedOut) else INTERNAL_ERROR)
            tb = "".join(traceback.format_exception(result)).strip()
            self.log.event("item-error", stage=stage, key=item.key, error=tb)
            self.log.warn(f"{stage}: {item.key}: {type(result).__name__}: {result}")
            return ItemRecord(item.key, rejects=[[item.key, reason, f"{type(result).__name__}: {result}"]])
        rec = ItemRecord.from_outcome(item.key, result)
        if not rec.rows and not rec.rejects:
            rec.rejects = [[item.key, NO_OUTPUT, "the stage produced neither output nor a reason"]]
        return rec

    def _final_table(self, ps: PlannedStage, df: pd.DataFrame) -> pa.Table:
        if "sample_id" in df.columns:
            ids = [str(s) for s in df["sample_id"]]
            dup = sorted(s for s, n in Counter(ids).items() if n > 1)
            if dup:
                raise DataError(f"stage {ps.name} produced duplicate sample_ids {dup[:5]} (a stage bug)")
            df = df.iloc[sorted(range(len(ids)), key=lambda i: natural_key(ids[i]))]
        table = pa.Table.from_pandas(df.reset_index(drop=True), preserve_index=False)
        if "fingerprint" in table.column_names:
            table = table.drop(["fingerprint"])
        return table.append_column("fingerprint", pa.array([ps.sdir.fp] * table.num_rows, pa.string()))

    def input_manifests(self, ps: PlannedStage, planned: dict[str, PlannedStage]) -> ManifestFiles:
        paths = {i: planned[i].sdir.path / MANIFEST for i in ps.inputs}
        for name, path in paths.items():
            if not path.exists():
                raise DataError(f"stage {name} has no manifest at {path}; run it first")
        return ManifestFiles(paths)


def intact_keys(ledger: Ledger, out_root: Path, stage_dir: Path) -> set[str]:
    """Keys whose newest committed record still has its output files (streams the ledger)."""
    intact: dict[str, bool] = {}
    for records in ledger.iter_batches():
        for rec in records:
            intact[rec.key] = outputs_intact(rec, out_root, stage_dir)
    return {k for k, ok in intact.items() if ok}


# A full disk, a quota or a read-only output stops the run (finished items stay committed)
# instead of turning every remaining item into a reject.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}


class EnvironmentFault(DataError):
    def __init__(self, stage: str, key: str, exc: OSError):
        what = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EROFS: "the output folder is read-only"}.get(exc.errno or 0, exc.strerror)
        super().__init__(f"{stage}: {what} while processing {key}"
                         f"{f' (writing {exc.filename})' if exc.filename else ''}; finished items are "
                         "committed and earlier outputs are intact: free space and run the same command again")


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C: finished items are committed before the run stops."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def locate(stage: AnyStage, params: Any, data_root: Path | None, hasher: FileHasher) -> Path:
    """`stage.locate_root`, given the run's hasher when it takes one (stages written before
    the `hasher` parameter existed keep working)."""
    if "hasher" in inspect.signature(stage.locate_root).parameters:
        return stage.locate_root(params, data_root, hasher=hasher)
    return stage.locate_root(params, data_root)
