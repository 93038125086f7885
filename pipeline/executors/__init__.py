"""Executors: where per-item work runs (`base.py` holds the interface the runner calls).

- `inline.py`: in this process, one item after another;
- `process_pool.py`: a local pool of spawned processes (`--executor local`);
- `dask_cluster.py`: a dask LocalCluster or an existing scheduler (`--executor dask`);
- `device_pool.py`: one process per GPU for model stages (chosen by the runner).
"""
from __future__ import annotations

from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.executors.base import Executor
from emoprep.pipeline.executors.inline import InlineExecutor
from emoprep.pipeline.executors.process_pool import ProcessPoolExecutorBackend


def make_executor(kind: str, workers: int, scheduler: str | None = None) -> Executor:
    """Build the executor named on the command line."""
    if kind == "local":
        return InlineExecutor() if workers <= 1 else ProcessPoolExecutorBackend(workers)
    if kind == "inline":
        return InlineExecutor()
    if kind == "dask":
        try:
            from emoprep.pipeline.executors.dask_cluster import DaskExecutor
        except ImportError as exc:
            raise ConfigError(f"--executor dask is not available: {exc}") from None
        return DaskExecutor(workers=workers, scheduler=scheduler)
    raise ConfigError(f"unknown executor {kind!r}: use local, inline or dask")
