"""The executor interface: where per-item work runs. One interface, one file per back end.

`map_unordered(stage_name, items, ctx)` yields `(item, Outcome | BaseException)` as items
finish, in any order (the store sorts later, so order never reaches the outputs). Work is
submitted in a bounded window, so memory does not grow with the number of items. A worker
that dies takes only its in-flight items with it: they are retried once, then reported as
`WorkerCrashed`.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from types import TracebackType
from typing import Any, ClassVar, TypeVar

from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.registry import get_stage
from emoprep.pipeline.stage import Outcome, WorkItem

# What an executor reports per item: the stage's Outcome, or the exception it raised.
ItemResult = tuple[WorkItem, Outcome | BaseException]
H = TypeVar("H", bound=Hashable)


class WorkerCrashed(RuntimeError):
    """The process running an item died (killed, out of memory, segfault in a decoder)."""


class Executor(ABC):
    """What the runner calls. `close()` when the run ends; `release()` when a stage's items
    are done and the executor is kept for later stages (free idle workers' memory)."""

    name: ClassVar[str]

    @property
    @abstractmethod
    def workers(self) -> int:
        """How many items run at once."""

    @property
    def gpu_workers(self) -> int:
        """Workers that hold a GPU each (model stages go there); 0 = none."""
        return 0

    @abstractmethod
    def map_unordered(self, stage_name: str, items: Iterable[WorkItem],
                      ctx: ItemContext[Any]) -> Iterator[ItemResult]:
        """Run `stage_name`'s `process` on every item; yield results as they finish."""

    def release(self) -> None:  # noqa: B027 - optional hook, most back ends hold nothing
        """Hand back what idle workers hold after a stage (default: nothing to do)."""

    def close(self) -> None:  # noqa: B027 - optional hook, most back ends hold nothing
        """Stop every worker (default: nothing to do)."""

    def __enter__(self) -> Executor:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def process_item(stage_name: str, item: WorkItem, ctx: ItemContext[Any]) -> Outcome:
    """Module-level entry point for workers: look the stage up by name and run it."""
    return get_stage(stage_name).process(item, ctx)


def run_windowed(items: Iterable[WorkItem], submit: Callable[[WorkItem, int], H],
                 wait_any: Callable[[list[H]], Iterable[H]],
                 outcome: Callable[[H], Outcome | BaseException | None], window: int,
                 on_crash: Callable[[], None] = lambda: None,
                 crash_loses_all: bool = False) -> Iterator[ItemResult]:
    """The scheduling loop shared by the pool back ends.

    At most `window` items in flight; results are yielded as they finish. `outcome(handle)`
    gives the item's Outcome or exception, or None when the worker died under it. Items lost
    with a worker are retried once, one at a time with nothing else running, so an item that
    kills its worker again is reported as `WorkerCrashed` without taking neighbours down.
    """
    fresh: Iterator[WorkItem] = iter(items)
    exhausted = False
    retries: deque[WorkItem] = deque()
    running: dict[H, tuple[WorkItem, int]] = {}

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
