"""Model stages on several GPUs: one process per GPU, each holding its own model.

A stage that computes on `ctx.device` (tokenization) gets one spawned process per
accelerator. Each process sees only its own GPU (`CUDA_VISIBLE_DEVICES` is set before torch
starts), so `cuda` inside it is that GPU, the model is built there once (the stage caches
it per process) and whole shards are dealt out to whichever GPU is free: the work is split
across GPUs rather than across a batch (no DataParallel, no cross-GPU traffic). Each
process keeps its own CPU DataLoader workers decoding the inputs.

A GPU process that dies takes only its own shards with it: they are retried once, then
reported as `WorkerCrashed`, like the other executors.
"""
from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from emoprep.pipeline.context import ItemContext
from emoprep.pipeline.executors.base import Executor, ItemResult, process_item, run_windowed
from emoprep.pipeline.stage import AnyStage, Outcome, WorkItem

SHARDS_IN_FLIGHT_PER_DEVICE = 2


def visible_gpus() -> list[str]:
    """CUDA device indices this process may use ([] without CUDA)."""
    try:
        import torch
    except ImportError:
        return []
    return [str(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []


def _pin(device: str) -> None:
    """Worker initializer: see one GPU only ('' hides all: a CPU stand-in for tests)."""
    os.environ["CUDA_VISIBLE_DEVICES"] = device
    os.environ["EMOPREP_DEVICE_SLOT"] = device


class DevicePoolExecutor(Executor):
    """One single-process pool per device; whole items (token shards) go to the least loaded."""

    name = "device-pool"

    def __init__(self, devices: list[str]):
        if not devices:
            raise ValueError("DevicePoolExecutor needs at least one device")
        self.devices = list(devices)
        self._pools: dict[str, ProcessPoolExecutor] = {}
        self._broken: set[str] = set()  # devices whose pool lost its process (seen by a future)

    @property
    def workers(self) -> int:
        return len(self.devices)

    def _pool(self, device: str) -> ProcessPoolExecutor:
        if device not in self._pools:
            self._pools[device] = ProcessPoolExecutor(
                max_workers=1, mp_context=mp.get_context("spawn"), initializer=_pin, initargs=(device,))
        return self._pools[device]

    def _restart_broken(self) -> None:
        """Drop the pools a BrokenProcessPool was seen on; the next submit starts a new one."""
        for device in sorted(self._broken):
            pool = self._pools.pop(device, None)
            if pool is not None:
                pool.shutdown(wait=False, cancel_futures=True)
        self._broken.clear()

    def map_unordered(self, stage: AnyStage, items: Iterable[WorkItem],
                      ctx: ItemContext[Any]) -> Iterator[ItemResult]:
        load = dict.fromkeys(self.devices, 0)
        device_of: dict[Future[Outcome], str] = {}

        def submit(item: WorkItem, attempt: int) -> Future[Outcome]:
            device = min(self.devices, key=lambda d: (load[d], self.devices.index(d)))
            try:
                fut = self._pool(device).submit(process_item, stage, item, ctx)
            except BrokenProcessPool:
                self._broken.add(device)
                self._restart_broken()
                fut = self._pool(device).submit(process_item, stage, item, ctx)
            load[device] += 1
            device_of[fut] = device
            return fut

        def wait_any(futures: list[Future[Outcome]], seconds: float | None) -> Iterable[Future[Outcome]]:
            return wait(futures, timeout=seconds, return_when=FIRST_COMPLETED)[0]

        def outcome(fut: Future[Outcome]) -> Outcome | BaseException | None:
            device = device_of.pop(fut)
            load[device] -= 1
            exc = fut.exception()
            if isinstance(exc, BrokenProcessPool):
                self._broken.add(device)
                return None
            return exc or fut.result()

        yield from run_windowed(items, submit, wait_any, outcome,
                                self.workers * SHARDS_IN_FLIGHT_PER_DEVICE, on_crash=self._restart_broken)

    def close(self) -> None:
        for pool in self._pools.values():
            pool.shutdown(wait=True, cancel_futures=True)
        self._pools.clear()
