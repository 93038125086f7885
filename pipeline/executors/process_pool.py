"""A local pool of spawned worker processes, each fed through its own pipe.

The parent knows which process runs which item and since when, so an item past its time
limit costs only its own worker (killed, then replaced), and a worker that dies (SIGKILL,
segfault, out of memory) loses only the item it was running: results it sent before dying
are kept, items waiting in its pipe go to another worker. Spawn: no inherited locks or threads.
"""
from __future__ import annotations

import atexit
import contextlib
import itertools
import multiprocessing as mp
import os
import signal
import sys
import time
import traceback
import weakref
from collections import deque
from collections.abc import Collection, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from multiprocessing.reduction import ForkingPickler
from typing import Any

from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.executors.base import Executor, ItemResult, Timeouts, process_item, run_windowed
from emoprep.pipeline.stage import AnyStage, Outcome, WorkItem

# Items sent to a worker at once: the next one waits in its pipe, so a worker does not idle
# while the parent hands a result over. Only the first is running (the clock is its).
ITEMS_PER_WORKER = 2
# A bigger message goes only to an idle worker: a full pipe must not block the parent behind
# an item that never returns (it could no longer stop it).
QUEUE_MAX_BYTES = 16 * 1024
STOP_WAIT_S = 5.0  # an idle worker asked to stop is killed after this
def _dumps(obj: object) -> bytes:
    """A message between this pool's own processes, serialised as `Connection.send` would
    (multiprocessing's pickler): work items, stages, contexts and outcomes, never data files."""
    return bytes(ForkingPickler.dumps(obj))


STOP = _dumps(None)  # the message that ends a worker's loop
_JOB, _ITEM = "job", "item"


def _init_worker() -> None:
    # One thread per worker process: parallelism comes from processes, and BLAS/torch
    # thread pools inside each worker would oversubscribe the cores.
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        os.environ[var] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    # Ctrl-C reaches the whole process group: the parent stops the workers, they do not die
    # mid-item on their own.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


class WorkerTraceback(Exception):
    """Where an item's exception was raised in its worker (set as the exception's __cause__)."""


def _error_reply(exc: BaseException) -> bytes:
    """An item's exception and its traceback text, as bytes the parent can load (an exception
    whose class cannot be rebuilt from its args is sent as a RuntimeError naming it)."""
    where = "".join(traceback.format_exception(exc))
    try:
        data = _dumps((exc, where))
        ForkingPickler.loads(data)  # bytes this process just made
    except Exception:  # noqa: BLE001 - any failure to round-trip: send a plain stand-in
        data = _dumps((RuntimeError(f"{type(exc).__name__}: {exc}"), where))
    return data


def _serve(conn: Connection, started: Any) -> None:
    """A worker's loop: a job message (stage and context, once per map call), then items, one
    at a time, each answered with its Outcome or exception. `started` is shared with the
    parent: the time.monotonic() at which the current item began, 0.0 between items."""
    _init_worker()
    job: tuple[AnyStage, ItemContext[Any]] | None = None
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return  # the parent is gone
        if message is None:
            return
        kind, *body = message
        if kind == _JOB:
            job = (body[0], body[1])
            continue
        if job is None:
            raise RuntimeError("an item came before its job message")  # a bug in the parent
        stage, ctx = job
        item: WorkItem = body[0]
        started.value = time.monotonic()
        try:
            reply = _dumps((process_item(stage, item, ctx), None))
        except BaseException as exc:  # noqa: BLE001 - reported to the runner, as a reject
            reply = _error_reply(exc)
        started.value = 0.0
        conn.send_bytes(reply)


def _with_cause(reply: tuple[Outcome | BaseException, str | None]) -> Outcome | BaseException:
    result, where = reply
    if where is not None and isinstance(result, BaseException):
        result.__cause__ = WorkerTraceback(where)
    return result


class _Task:
    """One submission: its item, and once known its result or that its worker died under it."""

    __slots__ = ("item", "lost", "message", "result", "worker")

    def __init__(self, item: WorkItem):
        self.item = item
        self.message: bytes | None = None  # pickled while it waits for a worker
        self.worker: _Worker | None = None
        self.result: Outcome | BaseException | None = None
        self.lost = False


class _Worker:
    """One spawned process, the parent's end of its pipe, its item clock, and the tasks sent
    to it, oldest first (the first is the one it runs)."""

    def __init__(self, context: Any):
        self.conn, child = context.Pipe()
        self.started = context.RawValue("d", 0.0)
        self.process = context.Process(target=_serve, args=(child, self.started), name="emoprep-worker")
        self.process.start()
        child.close()
        self.tasks: deque[_Task] = deque()
        self.job = -1  # the map call whose stage and context it holds

    def started_at(self, task: _Task) -> float | None:
        if self.tasks and self.tasks[0] is task:
            return float(self.started.value) or None
        return None

    def ask_to_stop(self) -> None:
        with contextlib.suppress(OSError):  # already gone
            self.conn.send_bytes(STOP)

    def end(self, kill: bool) -> None:
        """Stop the process (killed, or given STOP_WAIT_S after `ask_to_stop`) and close the pipe."""
        if not kill:
            self.process.join(STOP_WAIT_S)
        if self.process.is_alive():
            self.process.kill()
        self.process.join()
        self.process.close()
        self.conn.close()


class ProcessPoolExecutorBackend(Executor):
    """A local pool of spawned worker processes, each fed through its own pipe."""

    name = "local"

    def __init__(self, workers: int):
        self._workers = max(1, workers)
        self._context = mp.get_context("spawn")
        self._live: list[_Worker] = []
        self._pending: deque[_Task] = deque()  # submitted, not yet sent to a worker
        self._done: list[_Task] = []  # finished or lost, not yet handed to the loop
        self._jobs = itertools.count()
        self._job = (-1, b"")  # the current map call: its number and its pickled job message
        _open_pools.add(self)

    @property
    def workers(self) -> int:
        return self._workers

    def map_unordered(self, stage: AnyStage, items: Iterable[WorkItem],
                      ctx: ItemContext[Any]) -> Iterator[ItemResult]:
        self._abandon()  # what a caller that stopped reading an earlier call left in flight
        job = next(self._jobs)
        self._job = (job, _dumps((_JOB, stage, ctx)))
        timeouts = Timeouts[_Task](self.item_timeout, self._started_at, self._stop) if self.item_timeout else None
        try:
            yield from run_windowed(items, self._submit, self._wait_any, self._outcome,
                                    self.workers * ITEMS_PER_WORKER, timeouts=timeouts)
        finally:
            if self._job[0] == job:  # (a generator dropped late must not stop a newer call's items)
                self._abandon()

    # The loop's callbacks (base.run_windowed).

    def _submit(self, item: WorkItem, attempt: int) -> _Task:
        task = _Task(item)
        self._pending.append(task)
        self._dispatch()
        return task

    def _wait_any(self, tasks: list[_Task], seconds: float | None) -> list[_Task]:
        self._dispatch()  # tasks a stopped worker held wait again
        if not self._done:
            busy = [w for w in self._live if w.tasks]
            if not busy:
                raise RuntimeError("items in flight but no worker holds any")  # a bug in this module
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], seconds))
            for w in busy:
                if w.process.sentinel in ready:
                    self._retire(w, killed=False)
                elif w.conn in ready:
                    self._receive(w)
            self._dispatch()
        done, self._done = self._done, []
        return done

    def _outcome(self, task: _Task) -> Outcome | BaseException | None:
        result, task.result = task.result, None  # handed over: the pool keeps no result
        return None if task.lost else result

    def _started_at(self, task: _Task) -> float | None:
        return task.worker.started_at(task) if task.worker is not None else None

    def _stop(self, late: list[_Task]) -> None:
        """Kill the workers running `late` items; what else they held goes to other workers."""
        for worker in {id(t.worker): t.worker for t in late if t.worker is not None}.values():
            self._retire(worker, killed=True, late={id(t) for t in late})

    # Workers.

    def _dispatch(self) -> None:
        """Send waiting tasks to the least busy workers, starting workers up to the pool size."""
        job, job_message = self._job
        while self._pending:
            task = self._pending[0]
            if task.message is None:
                task.message = _dumps((_ITEM, task.item))
            worker = self._worker_for(len(task.message))
            if worker is None:
                return
            try:
                if worker.job != job:
                    worker.conn.send_bytes(job_message)
                    worker.job = job
                worker.conn.send_bytes(task.message)
            except OSError:  # it died idle: its sentinel was not watched
                self._retire(worker, killed=False)
                continue
            self._pending.popleft()
            task.message, task.worker = None, worker
            worker.tasks.append(task)

    def _worker_for(self, size: int) -> _Worker | None:
        idle = [w for w in self._live if not w.tasks]
        if idle:
            return idle[0]
        if len(self._live) < self.workers:
            worker = _Worker(self._context)
            self._live.append(worker)
            return worker
        if size > QUEUE_MAX_BYTES:
            return None
        least = min(self._live, key=lambda w: len(w.tasks))
        return least if len(least.tasks) < ITEMS_PER_WORKER else None

    def _receive(self, worker: _Worker, drop: Collection[int] = ()) -> None:
        """Take the replies waiting in a worker's pipe (for tasks in `drop`: discard them)."""
        while worker.tasks and worker.conn.poll():
            try:
                reply = _with_cause(worker.conn.recv())
            except (EOFError, OSError):
                return  # it died mid-reply
            except Exception as exc:  # noqa: BLE001 - an unreadable reply is that item's error
                reply = RuntimeError(f"the worker's reply could not be read: {type(exc).__name__}: {exc}")
            task = worker.tasks.popleft()
            task.worker = None
            if id(task) not in drop:
                task.result = reply
                self._done.append(task)

    def _retire(self, worker: _Worker, killed: bool, late: Collection[int] = ()) -> None:
        """Take a worker out of the pool: killed (it held a `late` task) or found dead. Keep the
        replies it sent; a task it died under (not killed) is lost; the rest go back to wait."""
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join()
        self._receive(worker, drop=late)
        self._live.remove(worker)
        back: list[_Task] = []
        for i, task in enumerate(worker.tasks):
            task.worker = None
            if id(task) in late:
                continue
            if i == 0 and not killed:
                task.lost = True
                self._done.append(task)
            else:
                back.append(task)
        worker.tasks.clear()
        self._pending.extendleft(reversed(back))
        worker.end(kill=True)

    def _abandon(self) -> None:
        """The caller stopped early (Ctrl-C, an error): stop the workers still holding items,
        whose replies nobody will read, and forget what waits."""
        for worker in [w for w in self._live if w.tasks]:
            self._live.remove(worker)
            worker.end(kill=True)
        self._pending.clear()
        self._done.clear()

    def release(self) -> None:
        """Stop the idle workers once a stage's items are done (the next stage starts new
        ones): workers keep their peak heap and imported models, which would otherwise sit
        beside the runner while it assembles the manifest and through every later stage."""
        self.close()

    def close(self) -> None:
        self._abandon()
        live, self._live = self._live, []
        for worker in live:
            worker.ask_to_stop()
        for worker in live:
            worker.end(kill=False)


# Workers are not daemons (a stage may start processes of its own, e.g. DataLoader workers), so
# a pool left open would make multiprocessing's exit handler wait for them forever: stop them
# before it runs (atexit runs the last registered first; multiprocessing.util, imported with
# multiprocessing.connection above, registered its handler then).
_open_pools: weakref.WeakSet[ProcessPoolExecutorBackend] = weakref.WeakSet()


@atexit.register
def _close_open_pools() -> None:
    for pool in list(_open_pools):
        pool.close()
