"""The dask executor gives the same outputs as the local one and survives a dying worker."""
from __future__ import annotations

import os
import signal
import threading

import pyarrow.parquet as pq
import pytest

import tests.helpers.toy_stages  # noqa: F401
from emoprep.pipeline.executors.dask_cluster import DaskExecutor, worker_pids
from tests.helpers.paths import pythonpath_with_repo
from tests.helpers.treecmp import diff, snapshot
from tests.pipeline.test_engine import make_data, run


@pytest.fixture
def dask_env(monkeypatch):
    monkeypatch.setenv("EMOPREP_PLUGINS", "tests.helpers.toy_stages")
    monkeypatch.setenv("PYTHONPATH", pythonpath_with_repo())


def test_dask_outputs_equal_inline_outputs_and_a_killed_item_is_accounted(tmp_path, dask_env, monkeypatch):
    data = make_data(tmp_path / "data", n=30)
    run(tmp_path / "inline", data)
    ex = DaskExecutor(workers=2)
    try:
        assert ex.workers == 2
        run(tmp_path / "dask", data, executor=ex)
        assert diff(snapshot(tmp_path / "inline"), snapshot(tmp_path / "dask")) == []
        # The nanny's MALLOC_TRIM_THRESHOLD_ (1.5× slower FFTs) was undone in each worker.
        tuned = ex.client.run(_malloc_tuned_in_worker)
        assert list(tuned.values()) == [True, True]
        # A worker process that dies on an item: rescheduled once, then rejected; the rest lands.
        monkeypatch.setenv("TOY_CRASH_ON", "toy:7")
        ex.client.run(lambda: os.environ.__setitem__("TOY_CRASH_ON", "toy:7"))
        summary = {s.name: s for s in run(tmp_path / "crash", data, ["square.power=4"], executor=ex)}
    finally:
        ex.close()
    assert summary["square"].reasons == {"worker-crashed": 1}
    kept = pq.read_table(tmp_path / "crash" / "manifests" / "square.parquet").column("sample_id").to_pylist()
    assert len(kept) == 29 and "toy:7" not in kept


def test_a_worker_killed_from_outside_mid_run_loses_nothing(tmp_path, dask_env):
    """SIGKILL one dask worker while items are in flight: the nanny restarts it, the items it
    held are retried, and the run ends with every item accounted for and the same bytes."""
    data = make_data(tmp_path / "data", n=40)
    sets = ["square.sleep_s=0.15"]
    run(tmp_path / "inline", data, sets)
    ex = DaskExecutor(workers=2)
    try:
        before = worker_pids(ex.client)
        victim = sorted(before.values())[0]
        killer = threading.Timer(1.0, os.kill, (victim, signal.SIGKILL))
        killer.start()
        summary = {s.name: s for s in run(tmp_path / "dask", data, sets, executor=ex)}
        killer.join()
        after = worker_pids(ex.client)
    finally:
        ex.close()
    assert victim not in after.values()  # the kill happened, and a fresh worker took over
    assert summary["square"].rows == 40 and summary["square"].reasons == {}
    assert summary["square"].seconds > 1.0  # still running when the worker died
    assert diff(snapshot(tmp_path / "inline"), snapshot(tmp_path / "dask")) == []


def _malloc_tuned_in_worker() -> bool | None:
    from emoprep.pipeline.executors import dask_cluster

    return dask_cluster._malloc_tuned
