"""emoprep's Python API, for notebooks and scripts: the command line's `run` and `status`
as functions that return what they found instead of printing it.

    import emoprep
    summaries = emoprep.run("thesis-v3", data_root="/data", out="emoprep-out",
                            sets={"split.seed": 3}, stage="spectrogram")
    [(s.name, s.status, s.rows, s.rejects) for s in summaries]
    emoprep.status("emoprep-out")          # [{"stage", "status", "fingerprint", "dir", "reasons"}]
    emoprep.validate("emoprep-out").ok     # the `emoprep validate` report
    emoprep.export("emoprep-out", "export-hf", format="hf")   # or format="webdataset"
    emoprep.probe("emoprep-out").table()    # probe scores per store x layer (a DataFrame)

Errors raise `emoprep.pipeline.errors.EmoprepError` subclasses (ConfigError: change the call;
DataError: the data failed a check) instead of exiting. This module is the package root
(`import emoprep` is api/__init__.py); everything else lives in emoprep.pipeline, .stages
and .manifests, imported here only when a function is called.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from emoprep.manifests.export.step import ExportResult
    from emoprep.manifests.validate_report import ValidationReport
    from emoprep.pipeline.runner import StageSummary
    from emoprep.stages.probe.step import ProbeResult

__all__ = ["export", "probe", "run", "status", "validate"]

PathLike = str | os.PathLike[str]


def run(recipe: str | None = None, *, data_root: PathLike | None = None, out: PathLike = "emoprep-out",
        sets: Mapping[str, Any] | list[str] | None = None, stage: str | None = None, executor: str = "local",
        workers: int = 0, scheduler: str | None = None, device: str = "auto", weights: PathLike | None = None,
        force: bool = False, allow_random_init: bool = False, max_reject_ratio: float | None = None,
        wait: bool = True, quiet: bool = True, item_timeout: float | None = None) -> list[StageSummary]:
    """Run `recipe` (a shipped name or a TOML file; default thesis-v3) into `out`, as
    `emoprep run` does, and return one summary per stage (name, status "ran" / "up-to-date",
    items, rows, rejects, resumed, seconds, fingerprint, reject reasons). `sets` are --set
    values: {"stage.key": value} or ["stage.key=TOML"]. Without `data_root` (and no dataset
    root in `sets`) it runs on the embedded demo data. `quiet=False` prints stage lines."""
    from emoprep import commands

    all_sets = commands.with_weights(commands.set_args(sets), Path(weights) if weights is not None else None)
    return commands.run_dag(recipe, all_sets, Path(out), Path(data_root) if data_root is not None else None,
                            stage, executor, workers, scheduler, device, force, max_reject_ratio, allow_random_init,
                            wait=wait, quiet=quiet, item_timeout=item_timeout)


def status(out: PathLike = "emoprep-out", *, recipe: str | None = None, data_root: PathLike | None = None,
           sets: Mapping[str, Any] | list[str] | None = None, stage: str | None = None) -> list[dict[str, Any]]:
    """Each stage of what the runs into `out` built (or of `recipe` / `stage` when given):
    {"stage", "status" (done / stale / in-progress / missing), "fingerprint", "dir", "reasons"}."""
    from emoprep import commands

    rec, plan = commands.plan_status(Path(out), recipe, commands.set_args(sets),
                                     Path(data_root) if data_root is not None else None, stage)
    stages: list[dict[str, Any]] = commands.plan_as_json(rec, Path(out).resolve(), plan)["stages"]
    return stages


def validate(out: PathLike = "emoprep-out", *, require_pretrained: bool = False) -> ValidationReport:
    """`emoprep validate`: the report (`.ok`, `.checks`, `.failures`, `.to_dict()`)."""
    from emoprep.manifests.validate import validate as validate_output

    return validate_output(Path(out), require_pretrained=require_pretrained)


def export(out: str | os.PathLike[str] = "emoprep-out", dest: PathLike = "emoprep-export", *,
           format: str = "hf",  # noqa: A002 - the command line's --format
           tokenizers: list[str] | None = None, splits: list[str] | None = None, shard_size: int = 1000,
           with_images: bool = False, storage_options: dict[str, Any] | None = None,
           wait: bool = True) -> ExportResult:
    """`emoprep export`: the token stores of `out` (a folder or an fsspec URL) as a Hugging Face
    dataset folder (`format="hf"`) or WebDataset shards (`"webdataset"`) in `dest`; skipped
    when `dest` is up to date (`.up_to_date`), resumed after a kill."""
    from emoprep.manifests.export.step import export as run_export

    return run_export(out, dest, format, tokenizers, splits, shard_size, with_images,
                      storage_options=storage_options, wait=wait)


def probe(out: str | os.PathLike[str] = "emoprep-out", *, tokenizers: list[str] | None = None,
          layers: list[str] | None = None, poolings: list[str] | None = None, target: str = "va",
          model: str = "ridge", folds: int = 5, seed: int = 0, dest: PathLike | None = None,
          storage_options: dict[str, Any] | None = None, wait: bool = True) -> ProbeResult:
    """`emoprep probe`: frozen-token probes of the stores of `out` (a folder or an fsspec URL),
    written to `dest/<key>/probe.json` (default `<out>/probe`); `.table()` is the results as a
    DataFrame, `.up_to_date` says whether an earlier identical probe was reused."""
    from emoprep.stages.probe.step import probe as run_probe

    return run_probe(out, tokenizers, layers, poolings, target, model, folds, seed, dest,
                     storage_options=storage_options, wait=wait)
