"""A stage for executor tests whose items say what to do in the worker: wait for another
item to start (or for its process to be gone), sleep, hang, die, raise. Every start is
appended to a log file (key, pid), so a test can tell how many times, and in which process,
each item ran."""
from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from emoprep.pipeline.catalog import register
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.stage import Outcome, Stage, WorkItem

PROBE = "pool-probe"


@dataclass(frozen=True)
class ProbeParams:
    log: str = ""  # the start log


@register
class Probe(Stage[ProbeParams]):
    name = PROBE
    Params = ProbeParams

    def plan(self, ctx: StageContext[ProbeParams]) -> list[WorkItem]:
        return []

    def process(self, item: WorkItem, ctx: ItemContext[ProbeParams]) -> Outcome:
        todo = item.payload
        log = Path(ctx.params.log)
        with log.open("a") as fh:
            fh.write(f"{item.key} {os.getpid()}\n")
        deadline = time.monotonic() + 120
        if "wait_for" in todo:
            while todo["wait_for"] not in started(log) and time.monotonic() < deadline:
                time.sleep(0.02)
        if "wait_gone" in todo:
            while alive(pids(log)[todo["wait_gone"]][0]) and time.monotonic() < deadline:
                time.sleep(0.02)
        if todo.get("die"):
            os.kill(os.getpid(), signal.SIGKILL)
        if "raise" in todo:
            raise ValueError(todo["raise"])
        time.sleep(3600 if todo.get("hang") else todo.get("sleep", 0))
        return Outcome(rows=[{"sample_id": item.key, "pid": os.getpid()}])


def started(log: Path) -> list[str]:
    """Keys in the order their items started (once per start)."""
    return [line.split()[0] for line in log.read_text().splitlines()] if log.exists() else []


def pids(log: Path) -> dict[str, list[int]]:
    """key -> the processes that started it, in order."""
    out: dict[str, list[int]] = {}
    for line in log.read_text().splitlines():
        key, pid = line.split()
        out.setdefault(key, []).append(int(pid))
    return out


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
