"""Executors: where per-item work runs. One interface, several back ends.

`map_unordered(stage_name, items, ctx)` yields `(item, Outcome | BaseException)` as items
finish, in any order (the store sorts later, so order never reaches the outputs). Work is
submitted in a bounded window, so memory does not grow with the number of items. A worker
that dies takes only its in-flight items with it: they are retried once, then reported as
`WorkerCrashed`.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator

from emoprep.stage import ItemContext, Outcome, WorkItem, get_stage


class WorkerCrashed(RuntimeError):
    """The process running an item died (killed, out of memory, segfault in a decoder)."""


def process_item(stage_name: str, item: WorkItem, ctx: ItemContext) -> Outcome:
    """Module-level entry point for workers: look the stage up by name and run it."""
    return get_stage(stage_name).process(item, ctx)


def run_windowed(items: Iterable[WorkItem], submit: Callable[[WorkItem, int], Any],
                 wait_any: Callable[[list[Any]], Iterable[Any]],
                 outcome: Callable[[Any], Outcome | BaseException | None], window: int,
                 on_crash: Callable[[], None] = lambda: None,
                 crash_loses_all: bool = False) -> Iterator[tuple[WorkItem, Outcome | BaseException]]:
    """The scheduling loop shared by the pool back ends.

    At most `window` items in flight; results are yielded as they finish. `outcome(handle)`
    gives the item's Outcome or exception, or None when the worker died under it. Items lost
    with a worker are retried once, one at a time with nothing else running, so an item that
    kills its worker again is reported as `WorkerCrashed` without taking neighbours down.
    """
    fresh: Iterator[WorkItem] = iter(items)
    exhausted = False
    retries: deque[WorkItem] = deque()
    running: dict[Any, tuple[WorkItem, int]] = {}

    def lost(item: WorkItem, attempt: int) -> Iterator[tuple[WorkItem, BaseException]]:
        if attempt == 0:
            retries.append(item)
        else:
            yield item, WorkerCrashed(f"the worker process died twice while processing {item.key}")

    while True:
        if retries:
            if not running:
                item = retries.popleft()
                running[submit(item, 1)] = (item, 1)
        else:
            while not exhausted and len(running) < window:
                item = next(fresh, None)
                if item is None:
                    exhausted = True
                else:
                    running[submit(item, 0)] = (item, 0)
        if not running:
            if exhausted and not retries:
                return
            continue
        crashed = False
        for handle in wait_any(list(running)):
            item, attempt = running.pop(handle)
            result = outcome(handle)
            if result is None:
                crashed = True
                yield from lost(item, attempt)
            else:
                yield item, result
        if crashed:
            if crash_loses_all:
                for handle, (item, attempt) in list(running.items()):
                    running.pop(handle)
                    yield from lost(item, attempt)
            on_crash()


def _init_worker() -> None:
    # One thread per worker process: parallelism comes from processes, and BLAS/torch
    # thread pools inside each worker would oversubscribe the cores.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


class InlineExecutor:
    """Runs items in this process, one after another (tests, debugging, model stages)."""

    name = "inline"
    workers = 1

    def map_unordered(self, stage_name: str, items: Iterable[WorkItem],
                      ctx: ItemContext) -> Iterator[tuple[WorkItem, Outcome | BaseException]]:
        stage = get_stage(stage_name)
        for item in items:
            try:
                yield item, stage.process(item, ctx)
            except Exception as exc:  # noqa: BLE001 - reported as a reject by the runner
                yield item, exc

    def release(self) -> None:
        pass

    def close(self) -> None:
        pass


class ProcessPoolExecutorBackend:
    """A local pool of spawned worker processes (spawn: no inherited locks or threads)."""

    name = "local"

    def __init__(self, workers: int):
        self.workers = max(1, workers)
        self._pool: ProcessPoolExecutor | None = None

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
                      ctx: ItemContext) -> Iterator[tuple[WorkItem, Outcome | BaseException]]:
        def submit(item: WorkItem, attempt: int) -> Future:
            try:
                return self._get_pool().submit(process_item, stage_name, item, ctx)
            except BrokenProcessPool:
                self._restart()
                return self._get_pool().submit(process_item, stage_name, item, ctx)

        def wait_any(futures: list[Future]) -> Iterable[Future]:
            return wait(futures, return_when=FIRST_COMPLETED)[0]

        def outcome(fut: Future) -> Outcome | BaseException | None:
            exc = fut.exception()
            return None if isinstance(exc, BrokenProcessPool) else (exc or fut.result())

        # A broken pool takes every in-flight future with it: restart and retry them all.
        yield from run_windowed(items, submit, wait_any, outcome, self.workers * 4,
                                on_crash=self._restart, crash_loses_all=True)

    def release(self) -> None:
        """Stop the idle workers once a stage's items are done (the next stage starts new
        ones): workers keep their peak heap and imported models, which would otherwise sit
        beside the runner while it assembles the manifest and through every later stage."""
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def make_executor(kind: str, workers: int, scheduler: str | None = None):
    """Build the executor named on the command line."""
    from emoprep.errors import ConfigError

    if kind == "local":
        return InlineExecutor() if workers <= 1 else ProcessPoolExecutorBackend(workers)
    if kind == "inline":
        return InlineExecutor()
    if kind == "dask":
        try:
            from emoprep.dask_executor import DaskExecutor
        except ImportError as exc:
            raise ConfigError(f"--executor dask is not available: {exc}") from None
        return DaskExecutor(workers=workers, scheduler=scheduler)
    raise ConfigError(f"unknown executor {kind!r}: use local, inline or dask")
