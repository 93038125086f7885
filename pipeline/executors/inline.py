"""Items run in this process, one after another (tests, debugging, model stages)."""
from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.executors.base import Executor, ItemResult
from emoprep.pipeline.stage import AnyStage, WorkItem


class InlineExecutor(Executor):
    """Runs items in this process, one after another."""

    name = "inline"

    @property
    def workers(self) -> int:
        return 1

    def map_unordered(self, stage: AnyStage, items: Iterable[WorkItem],
                      ctx: ItemContext[Any]) -> Iterator[ItemResult]:
        for item in items:
            try:
                yield item, stage.process(item, ctx)
            except Exception as exc:  # noqa: BLE001 - reported as a reject by the runner
                yield item, exc
