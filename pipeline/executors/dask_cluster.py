"""dask.distributed behind the executor interface: a LocalCluster or an existing scheduler.

Items are submitted in a bounded window (never a million-future graph) and results stream
back to the runner, which commits them to the ledger as they arrive, exactly as with the
local pool; outputs are therefore identical. Workers must see the same filesystem paths as
the client (output root and data roots) and have emoprep installed.
A worker that dies mid-item loses only that item: the items it held are retried once, one
at a time; an item whose retry kills a worker again becomes a `worker-crashed` reject.

That holds on any cluster, whatever its scheduler's `allowed-failures` (which a client cannot
set for a scheduler it did not start, and which reruns a task after a worker death on its
own): each task marks its start in a file under `<out>/.cache/dask-attempts/` (the workers
share the output folder anyway), and a task that finds its mark was started before, on a
worker that died, stops at once with `AttemptLost`; emoprep's own retry takes it from there.
A task that was only queued on the dead worker never marked anything and simply runs.
"""
from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.executors.base import Executor, ItemResult, process_item, run_windowed
from emoprep.pipeline.memory import release_memory
from emoprep.pipeline.stage import AnyStage, Outcome, WorkItem

if TYPE_CHECKING:  # distributed is imported when a DaskExecutor is made
    from distributed import Client, Future

SINGLE_THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
                     "NUMBA_NUM_THREADS": "1"}


# glibc mallopt parameters, and the values its dynamic thresholds settle at on their own.
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
SETTLED_MMAP_THRESHOLD, SETTLED_TRIM_THRESHOLD = 32 * 2**20, 64 * 2**20
_malloc_tuned: bool | None = None  # per worker process: None until its first item


def undo_nanny_malloc_trim() -> bool:
    """dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536. Setting it freezes glibc's
    mmap threshold at 128 KiB, so every FFT block, padded chunk and image buffer is a fresh
    mmap + page faults + munmap: the spectrogram stage ran 1.5× slower per worker than in the
    local pool (rfft of a 32-frame block 1.30 → 1.97 ms, same process otherwise). Restore the
    thresholds glibc would settle at; the runner trims the heap after each stage instead.
    True when this process was tuned (once; not glibc or not started by a nanny: False)."""
    global _malloc_tuned
    if _malloc_tuned is None:
        _malloc_tuned = False
        if "MALLOC_TRIM_THRESHOLD_" in os.environ:
            try:
                mallopt = ctypes.CDLL(None).mallopt
                _malloc_tuned = bool(mallopt(M_MMAP_THRESHOLD, SETTLED_MMAP_THRESHOLD)
                                     and mallopt(M_TRIM_THRESHOLD, SETTLED_TRIM_THRESHOLD))
            except (OSError, AttributeError):  # not glibc
                pass
    return _malloc_tuned


class AttemptLost(RuntimeError):
    """This task already started once, on a worker that died: the scheduler's own rerun."""


ATTEMPTS_DIR = ".cache/dask-attempts"


def mark_attempt(marks: Path, key: str) -> None:
    """Record that task `key` starts now; AttemptLost if it started before."""
    marks.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(marks / hashlib.sha256(key.encode()).hexdigest(), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        raise AttemptLost(f"task {key} started before on a worker that died") from None


def process_item_on_worker(stage: AnyStage, item: WorkItem, ctx: ItemContext[Any], marks: str, key: str) -> Outcome:
    undo_nanny_malloc_trim()
    mark_attempt(Path(marks), key)
    return process_item(stage, item, ctx)


class DaskExecutor(Executor):
    """Items as dask tasks, a bounded window of them in flight."""

    name = "dask"

    def __init__(self, workers: int, scheduler: str | None = None, window_per_worker: int = 4):
        import dask
        from distributed import Client, LocalCluster

        dask.config.set({"distributed.worker.daemon": False,
                         "distributed.logging.distributed": "error"})
        if scheduler:
            self.cluster = None
            self.client = Client(scheduler, timeout="30s")
        else:
            self.cluster = LocalCluster(n_workers=max(1, workers), threads_per_worker=1, processes=True,
                                        dashboard_address=None, env=SINGLE_THREAD_ENV,
                                        silence_logs=40)
            self.client = Client(self.cluster)
        self.window_per_worker = window_per_worker

    @property
    def workers(self) -> int:
        return max(1, len(self.client.scheduler_info().get("workers", {})))

    @property
    def gpu_workers(self) -> int:
        """Workers started with `--resources GPU=1` (one per GPU): model stages go there."""
        infos = self.client.scheduler_info().get("workers", {}).values()
        return sum(1 for w in infos if w.get("resources", {}).get("GPU", 0) >= 1)

    def map_unordered(self, stage: AnyStage, items: Iterable[WorkItem],
                      ctx: ItemContext[Any]) -> Iterator[ItemResult]:
        from distributed import wait
        from distributed.scheduler import KilledWorker

        run_id = uuid.uuid4().hex[:8]
        marks = ctx.out_root / ATTEMPTS_DIR / run_id

        # A model stage holds one GPU per task: each GPU worker builds its model once (the
        # stage caches it per process) and gets whole shards, never a slice of a batch.
        gpu = stage.uses_device and ctx.device == "cuda" and self.gpu_workers > 0
        resources = {"GPU": 1} if gpu else None
        window = self.gpu_workers if gpu else self.workers

        def submit(item: WorkItem, attempt: int) -> Future[Outcome]:
            key = f"{stage.name}-{run_id}-{attempt}-{item.key}"
            return self.client.submit(process_item_on_worker, stage, item, ctx, str(marks), key, pure=False,
                                      resources=resources, key=key)

        def wait_any(futures: list[Future[Outcome]], seconds: float | None) -> Iterable[Future[Outcome]]:
            done: set[Future[Outcome]] = wait(futures, return_when="FIRST_COMPLETED").done
            return done

        def outcome(fut: Future[Outcome]) -> Outcome | BaseException | None:
            try:
                result: Outcome = fut.result()
                return result
            except (KilledWorker, AttemptLost):
                return None  # its worker died while running it: emoprep's retry (once, alone) decides
            except Exception as exc:  # noqa: BLE001 - a stage error becomes a reject
                return exc
            finally:
                fut.release()

        try:
            yield from run_windowed(items, submit, wait_any, outcome, window * self.window_per_worker)
        finally:
            shutil.rmtree(marks, ignore_errors=True)

    def release(self) -> None:
        """Workers may belong to a shared cluster and outlive this run: instead of stopping
        them, hand the heap each one freed after the stage back to the OS."""
        with contextlib.suppress(Exception):  # trimming is an optimisation, never a failure
            self.client.run(release_memory)

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def worker_pids(client: Client) -> dict[str, int]:
    """address -> pid of every worker (used by tests that kill a worker)."""
    pids: dict[str, int] = client.run(os.getpid)
    return pids
