"""The local pool stops or loses only the worker at fault: the other items in flight finish
once, in their own processes, and the pool stays usable."""
from __future__ import annotations

import os
import signal
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.executors.base import ItemTimedOut, WorkerCrashed
from emoprep.pipeline.executors.process_pool import ProcessPoolExecutorBackend, WorkerTraceback
from emoprep.pipeline.stage import Outcome, WorkItem
from tests.helpers.pool_stages import PROBE, Probe, ProbeParams, alive, pids, started


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "starts.log"


def run_all(ex: ProcessPoolExecutorBackend, items: list[WorkItem], log: Path) -> dict[str, Any]:
    ctx = ItemContext(stage=PROBE, params=ProbeParams(str(log)), out_root=log.parent, out_dir=log.parent / PROBE)
    results = {item.key: result for item, result in ex.map_unordered(Probe(), items, ctx)}
    assert sorted(results) == sorted(item.key for item in items)
    return results


def test_a_timeout_stops_only_the_stuck_worker(log):
    """`hang` never returns. The other worker runs `pre` (2 s from hang's start), then `slow`,
    which returns only once hang's process is gone: slow is running when hang's worker is
    killed, yet well within its own limit. Only hang's worker is killed: slow finishes once, in
    the same process as pre; `q1`, which waited in hang's pipe, runs once in a replacement."""
    items = [WorkItem("hang", {"hang": True, "file": "music/hang.mp3"}),
             WorkItem("pre", {"wait_for": "hang", "sleep": 2}),
             WorkItem("q1", {}),
             WorkItem("slow", {"wait_for": "hang", "wait_gone": "hang"}),
             *(WorkItem(f"q{i}", {"sleep": 0.1}) for i in range(2, 5))]
    ex = ProcessPoolExecutorBackend(2)
    ex.item_timeout = 5
    try:
        results = run_all(ex, items, log)
    finally:
        ex.close()
    hung = results.pop("hang")
    assert isinstance(hung, ItemTimedOut), hung
    assert "no result after 5 s" in str(hung) and "music/hang.mp3" in str(hung)
    assert all(isinstance(r, Outcome) for r in results.values()), results
    runs = pids(log)
    assert {key: len(p) for key, p in runs.items()} == {item.key: 1 for item in items}
    [hang_pid], [pre_pid], [slow_pid] = runs["hang"], runs["pre"], runs["slow"]
    assert slow_pid == pre_pid != hang_pid and results["slow"].rows[0]["pid"] == slow_pid
    assert not alive(hang_pid)
    others = {p for key in ("q1", "q2", "q3", "q4") for p in runs[key]} - {hang_pid, slow_pid}
    assert len(others) == 1 and runs["q1"] == list(others)  # one replacement, q1 ran there


def test_a_worker_that_dies_loses_only_the_item_it_was_running(log):
    """`die` SIGKILLs its worker right after `x` finished in that same worker: x's result is
    kept, the items in flight elsewhere or queued behind die run once, and die, tried once
    more alone, is reported as WorkerCrashed."""
    items = [WorkItem("a0", {"sleep": 0.5}), WorkItem("x", {}), WorkItem("a1", {"sleep": 0.5}),
             WorkItem("die", {"die": True}), *(WorkItem(f"q{i}", {"sleep": 0.05}) for i in range(8))]
    ex = ProcessPoolExecutorBackend(2)
    ex.item_timeout = 600
    try:
        results = run_all(ex, items, log)
    finally:
        ex.close()
    died = results.pop("die")
    assert isinstance(died, WorkerCrashed), died
    assert all(isinstance(r, Outcome) for r in results.values()), results
    runs = pids(log)
    assert len(runs.pop("die")) == 2
    assert {key: len(p) for key, p in runs.items()} == dict.fromkeys(results, 1)
    assert started(log).index("x") < started(log).index("die")


def test_an_item_error_comes_back_with_its_worker_traceback(log):
    items = [WorkItem("bad", {"raise": "no such column"}), WorkItem("good", {})]
    ex = ProcessPoolExecutorBackend(2)
    try:
        results = run_all(ex, items, log)
    finally:
        ex.close()
    err = results["bad"]
    assert isinstance(err, ValueError) and str(err) == "no such column"
    assert isinstance(err.__cause__, WorkerTraceback) and "pool_stages.py" in str(err.__cause__)
    assert isinstance(results["good"], Outcome)


def test_a_caller_that_stops_early_leaves_a_pool_that_gives_the_right_results(log):
    """Stop reading after the first result while items are still running in both workers:
    their replies must not reach the next map call (which reuses the pool)."""
    ex = ProcessPoolExecutorBackend(2)
    ex.item_timeout = 600
    ctx = ItemContext(stage=PROBE, params=ProbeParams(str(log)), out_root=log.parent, out_dir=log.parent / PROBE)
    try:
        first = ex.map_unordered(Probe(), [WorkItem(f"s{i}", {"sleep": 1.0}) for i in range(6)], ctx)
        next(first)
        assert isinstance(first, Generator)
        first.close()  # what dropping it does (the runner on Ctrl-C or an error)
        t0 = time.monotonic()
        second = [WorkItem(f"n{i}", {}) for i in range(10)]
        results = run_all(ex, second, log)
        assert time.monotonic() - t0 < 60
    finally:
        ex.close()
    assert {key: r.rows[0]["sample_id"] for key, r in results.items()} == {key: key for key in results}


def test_a_worker_killed_while_idle_is_replaced(log):
    ex = ProcessPoolExecutorBackend(2)
    try:
        first = run_all(ex, [WorkItem(f"a{i}", {"sleep": 0.2}) for i in range(4)], log)
        victim = next(iter(first.values())).rows[0]["pid"]
        os.kill(victim, signal.SIGKILL)
        time.sleep(0.5)
        second = run_all(ex, [WorkItem(f"b{i}", {}) for i in range(6)], log)
    finally:
        ex.close()
    assert all(isinstance(r, Outcome) for r in second.values()), second
    runs = pids(log)
    assert all(len(runs[key]) == 1 for key in second)
    assert victim not in {p for key in second for p in runs[key]}


def test_a_call_left_unread_does_not_mix_with_the_next_one(log):
    """A caller stops reading a call without closing it and starts another (items of the first
    still running); the first is dropped in the middle of the second: the second's results are
    its own, every one of them, and arrive in time."""
    ex = ProcessPoolExecutorBackend(2)
    ex.item_timeout = 600
    ctx = ItemContext(stage=PROBE, params=ProbeParams(str(log)), out_root=log.parent, out_dir=log.parent / PROBE)
    try:
        unread = [ex.map_unordered(Probe(), [WorkItem(f"s{i}", {"sleep": 1.0}) for i in range(6)], ctx)]
        next(unread[0])
        t0 = time.monotonic()
        results = {}
        for item, result in ex.map_unordered(Probe(), [WorkItem(f"n{i}", {"sleep": 0.05}) for i in range(10)], ctx):
            results[item.key] = result
            unread.clear()  # the first call's generator is finalised here, mid-way through this one
        assert time.monotonic() - t0 < 60
    finally:
        ex.close()
    assert sorted(results) == sorted(f"n{i}" for i in range(10))
    own = {key: r.rows[0]["sample_id"] for key, r in results.items() if isinstance(r, Outcome)}
    assert own == {key: key for key in results}
