"""A local pool of spawned worker processes (spawn: no inherited locks or threads)."""
from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import sys
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.executors.base import Executor, ItemResult, Timeouts, process_item, run_windowed
from emoprep.pipeline.stage import AnyStage, Outcome, WorkItem

_started: Any = None  # in a worker: the queue it reports item starts to (item time limits)


def _init_worker(started: Any = None) -> None:
    # One thread per worker process: parallelism comes from processes, and BLAS/torch
    # thread pools inside each worker would oversubscribe the cores.
    global _started
    _started = started
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def _run_item(token: int, stage: AnyStage, item: WorkItem, ctx: ItemContext[Any]) -> Outcome:
    """process_item, after telling the parent that submission `token` really started: a time
    limit counts from here, not from when the item was queued (a pool still spawning its
    workers under load must not time items out)."""
    if _started is not None:
        _started.put(token)
    return process_item(stage, item, ctx)


class ProcessPoolExecutorBackend(Executor):
    """A local pool of spawned worker processes (spawn: no inherited locks or threads)."""

    name = "local"

    def __init__(self, workers: int):
        self._workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None
        self._started: Any = None  # the current pool's start reports
        self._tokens = itertools.count()

    @property
    def workers(self) -> int:
        return self._workers

    def _get_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            spawn = mp.get_context("spawn")
            self._started = spawn.Queue() if self.item_timeout else None
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=spawn,
                                             initializer=_init_worker, initargs=(self._started,))
        return self._pool

    def _restart(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = None
        self._started = None  # a killed worker may have left it mid-message: the next pool gets a new one

    def map_unordered(self, stage: AnyStage, items: Iterable[WorkItem],
                      ctx: ItemContext[Any]) -> Iterator[ItemResult]:
        token_of: dict[Future[Outcome], int] = {}
        started: set[int] = set()

        def submit(item: WorkItem, attempt: int) -> Future[Outcome]:
            token = next(self._tokens)
            try:
                fut = self._get_pool().submit(_run_item, token, stage, item, ctx)
            except BrokenProcessPool:
                self._restart()
                fut = self._get_pool().submit(_run_item, token, stage, item, ctx)
            token_of[fut] = token
            return fut

        def has_started(fut: Future[Outcome]) -> bool:
            """The worker said it began this submission (drains the start reports)."""
            reports = self._started
            while reports is not None:
                try:
                    started.add(reports.get_nowait())
                except (queue.Empty, EOFError, OSError, ValueError):
                    break
            return token_of.get(fut) in started

        def wait_any(futures: list[Future[Outcome]], seconds: float | None) -> Iterable[Future[Outcome]]:
            return wait(futures, timeout=seconds, return_when=FIRST_COMPLETED)[0]

        def outcome(fut: Future[Outcome]) -> Outcome | BaseException | None:
            # A finished submission is never looked up again: forget it, or the future (and
            # the Outcome it holds) lives until the stage ends: +0.1 GiB at 10× DEAM.
            started.discard(token_of.pop(fut, -1))
            exc = fut.exception()
            return None if isinstance(exc, BrokenProcessPool) else (exc or fut.result())

        # A broken pool takes every in-flight future with it: restart and retry them all.
        # An item past the time limit: the pool cannot stop one task, so its workers are
        # killed and replaced, and the other items in flight are submitted again.
        timeouts = None
        if self.item_timeout:
            timeouts = Timeouts[Future[Outcome]](self.item_timeout, has_started, lambda late: self._kill_workers())
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
