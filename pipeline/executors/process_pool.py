"""A local pool of spawned worker processes (spawn: no inherited locks or threads)."""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.executors.base import Executor, ItemResult, Timeouts, process_item, run_windowed
from emoprep.pipeline.stage import Outcome, WorkItem


def _init_worker() -> None:
    # One thread per worker process: parallelism comes from processes, and BLAS/torch
    # thread pools inside each worker would oversubscribe the cores.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


class ProcessPoolExecutorBackend(Executor):
    """A local pool of spawned worker processes (spawn: no inherited locks or threads)."""

    name = "local"

    def __init__(self, workers: int):
        self._workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

    @property
    def workers(self) -> int:
        return self._workers

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                             mp_context=mp.get_context("spawn"),
                                             initializer=_init_worker)
        return self._pool

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None

    def map_unordered(self, stage_name: str, items: Iterable[WorkItem],
                      ctx: ItemContext[Any]) -> Iterator[ItemResult]:
        def submit(item: WorkItem, attempt: int) -> Future[Outcome]:
            try:
                return self._get_pool().submit(process_item, stage_name, item, ctx)
            except BrokenProcessPool:
                self._restart()
                return self._get_pool().submit(process_item, stage_name, item, ctx)

        def wait_any(futures: list[Future[Outcome]], seconds: float | None) -> Iterable[Future[Outcome]]:
            return wait(futures, timeout=seconds, return_when=FIRST_COMPLETED)[0]

        def outcome(fut: Future[Outcome]) -> Outcome | BaseException | None:
            exc = fut.exception()
            return None if isinstance(exc, BrokenProcessPool) else (exc or fut.result())

        # A broken pool takes every in-flight future with it: restart and retry them all.
        # An item past the time limit: the pool cannot stop one task, so its workers are
        # killed and replaced, and the other items in flight are submitted again.
        timeouts = None
        if self.item_timeout:
            timeouts = Timeouts[Future[Outcome]](self.item_timeout, lambda fut: fut.running(),
                                                 lambda late: self._kill_workers())
        yield from run_windowed(items, submit, wait_any, outcome, self.workers * 4,
                                on_crash=self._restart, crash_loses_all=True, timeouts=timeouts)

    def _kill_workers(self) -> None:
        """Stop every worker now (one of them is stuck in an item that never returns)."""
        if self._pool is not None:
            for proc in list(getattr(self._pool, "_processes", {}).values()):  # the pool has no public handle
                proc.kill()
        self._restart()

    def release(self) -> None:
        """Stop the idle workers once a stage's items are done (the next stage starts new
        ones): workers keep their peak heap and imported models, which would otherwise sit
        beside the runner while it assembles the manifest and through every later stage."""
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
