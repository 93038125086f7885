"""The executor interface: where per-item work runs. One interface, one file per back end.

`map_unordered(stage, items, ctx)` yields `(item, Outcome | BaseException)` as items
finish, in any order (the store sorts later, so order never reaches the outputs). Work is
submitted in a bounded window, so memory does not grow with the number of items. A worker
that dies takes only its in-flight items with it: they are retried once, then reported as
`WorkerCrashed`.
"""
from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Generic, TypeVar

from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.stage import AnyStage, Outcome, WorkItem

# What an executor reports per item: the stage's Outcome, or the exception it raised.
ItemResult = tuple[WorkItem, Outcome | BaseException]
H = TypeVar("H", bound=Hashable)


class WorkerCrashed(RuntimeError):
    """The process running an item died (killed, out of memory, segfault in a decoder)."""


class ItemTimedOut(RuntimeError):
    """An item ran past the stage's time limit (a read that never returns, a stalled mount);
    its worker was stopped and replaced."""


class Executor(ABC):
    """What the runner calls. `close()` when the run ends; `release()` when a stage's items
    are done and the executor is kept for later stages (free idle workers' memory)."""

    name: ClassVar[str]
    # Seconds an item may run before it is stopped and reported as ItemTimedOut (None: no
    # limit). The runner sets it per stage; back ends that run items in separate processes
    # enforce it (the local pool), the others document that they do not.
    item_timeout: float | None = None

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many items run at once."""

    @property
    def gpu_workers(self) -> int:
        """Workers that hold a GPU each (model stages go there); 0 = none."""
        return 0

    @abstractmethod
    def map_unordered(self, stage: AnyStage, items: Iterable[WorkItem],
                      ctx: ItemContext[Any]) -> Iterator[ItemResult]:
        """Run `stage.process` on every item; yield results as they finish."""

    def release(self) -> None:  # noqa: B027 - optional hook, most back ends hold nothing
        """Hand back what idle workers hold after a stage (default: nothing to do)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most back ends hold nothing
        """Stop every worker (default: nothing to do)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


POLL_S = 1.0  # how often the loop looks for expired items while nothing finishes


def _inputs_of(item: WorkItem, limit: int = 3) -> str:
    """The input files an item names (payload values under keys ending in "path" or "file"),
    for the timeout message: which file hung is what the user needs to know."""
    found: list[str] = []

    def walk(value: Any, key: str = "") -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, str(k))
        elif isinstance(value, list | tuple):
            for v in value:
                walk(v, key)
        elif isinstance(value, str) and key.endswith(("path", "file")) and value not in found:
            found.append(value)

    walk(item.payload)
    more = f" and {len(found) - limit} more" if len(found) > limit else ""
    return f"; input: {', '.join(found[:limit])}{more}" if found else ""


def process_item(stage: AnyStage, item: WorkItem, ctx: ItemContext[Any]) -> Outcome:
    """Module-level entry point for workers: the stage object travels with the item (its
    class is imported by name where it is unpickled), so no registry is consulted."""
    return stage.process(item, ctx)


@dataclass
class Timeouts(Generic[H]):
    """How a back end stops items that run too long: `seconds` per item, counted from
    `started_at(handle)`, the `time.monotonic()` at which a worker began the item (None while it
    waits for a worker); `stop(handles)` stops the workers running those items, and only them:
    the back end sends whatever else those workers held to other workers."""

    seconds: float
    started_at: Callable[[H], float | None]
    stop: Callable[[list[H]], None]


def run_windowed(items: Iterable[WorkItem], submit: Callable[[WorkItem, int], H],
                 wait_any: Callable[[list[H], float | None], Iterable[H]],
                 outcome: Callable[[H], Outcome | BaseException | None], window: int,
                 on_crash: Callable[[], None] = lambda: None,
                 timeouts: Timeouts[H] | None = None) -> Iterator[ItemResult]:
    """The scheduling loop shared by the pool back ends.

    At most `window` items in flight; results are yielded as they finish. `wait_any(handles,
    seconds)` returns the finished ones (maybe none after `seconds`). `outcome(handle)` gives
    the item's Outcome or exception, or None when the worker died under it. Items lost with a
    worker are retried once, one at a time with nothing else running, so an item that kills
    its worker again is reported as `WorkerCrashed` without taking neighbours down. With
    `timeouts`, an item running longer is reported as `ItemTimedOut` and its worker stopped.
    """
    fresh: Iterator[WorkItem] = iter(items)
    exhausted = False
    retries: deque[WorkItem] = deque()
    running: dict[H, tuple[WorkItem, int]] = {}

    while True:
        if retries:
            if not running:
                item = retries.popleft()
                running[submit(item, 1)] = (item, 1)
        else:
            while not exhausted and len(running) < window:
                new = next(fresh, None)
                if new is None:
                    exhausted = True
                else:
                    running[submit(new, 0)] = (new, 0)
        if not running:
            if exhausted and not retries:
                return
            continue
        crashed = False
        for handle in list(wait_any(list(running), POLL_S if timeouts is not None else None)):
            item, attempt = running.pop(handle)
            result = outcome(handle)
            if result is not None:
                yield item, result
            elif attempt == 0:
                crashed = True
                retries.append(item)
            else:
                crashed = True
                yield item, WorkerCrashed(f"the worker process died twice while processing {item.key}")
        if crashed:
            on_crash()
        if timeouts is not None and running:
            now = time.monotonic()
            late = [h for h in running
                    if (t := timeouts.started_at(h)) is not None and now - t > timeouts.seconds]
            if late:
                timeouts.stop(late)
                for handle in late:
                    item, _ = running.pop(handle)
                    yield item, ItemTimedOut(f"no result after {timeouts.seconds:g} s (--item-timeout); "
                                             f"its worker was stopped and replaced{_inputs_of(item)}")
