"""What `emoprep run` and `emoprep status` do, without the terminal: the command line
(`cli.py`) prints around these, the Python API (`emoprep.run`, `emoprep.status`) returns them.

Heavy modules (the runner, executors, stages) are imported inside the functions, so importing
this module costs nothing at start-up.
"""
from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from emoprep.composition import ensure_demo_data, is_demo_data, set_random_init_policy, stage_catalog
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.progress import RunProgress

if TYPE_CHECKING:
    from emoprep.pipeline.recipe import Recipe
    from emoprep.pipeline.runlog import RunLog
    from emoprep.pipeline.runner import PlannedStage, StageSummary


def load(recipe: str | None, sets: list[str]) -> Recipe:
    from emoprep.pipeline.recipe import load_recipe
    return load_recipe(recipe, sets, catalog=stage_catalog())


def dataset_roots_configured(recipe: Recipe) -> bool:
    return any(recipe.sections.get(name, {}).get("root") for name, st in recipe.catalog.items() if st.datasets)


def data_root_for_run(recipe: Recipe, data_root: Path | None, out_root: Path, log: RunLog) -> Path | None:
    """The data root to search; the embedded demo dataset when nothing is configured."""
    if data_root is not None:
        if not data_root.is_dir():
            raise ConfigError(f"--data-root {data_root}: no such folder")
        return data_root.resolve()
    if dataset_roots_configured(recipe):
        return None
    demo = out_root / "demo-data"
    log.say(f"No data configured (--data-root / DATA=...): using the embedded demo dataset in {demo}")
    ensure_demo_data(demo)
    return demo


def recipe_ref(recipe: str | None) -> str | None:
    """A recipe as a later command can find it again: a TOML file by its absolute path."""
    return str(Path(recipe).resolve()) if recipe and Path(recipe).is_file() else recipe


def with_weights(sets: list[str], weights: Path | None) -> list[str]:
    """`--weights DIR` is shorthand for `--set tokens.weights=DIR`."""
    if weights is None:
        return list(sets)
    if not weights.is_dir():
        raise ConfigError(f"--weights {weights}: no such folder (expected a folder with config.json + *.safetensors)")
    return [*sets, f"tokens.weights={str(weights.resolve())!r}"]


def set_args(sets: Mapping[str, Any] | list[str] | None) -> list[str]:
    """`{"split.seed": 3, "tokens.tokenizer": "vit-tiny-test"}` → --set values (TOML literals)."""
    if sets is None:
        return []
    if isinstance(sets, list):
        return list(sets)
    return [f"{key}={toml_value(value)}" for key, value in sets.items()]


def toml_value(value: Any) -> str:
    """A Python value as a TOML literal for --set (bool, number, string, path, list, dict)."""
    import json
    import math

    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"--set value {value!r}: TOML has no such number here")
        return repr(value)
    if isinstance(value, str | os.PathLike):
        return json.dumps(os.fspath(value))  # a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise ConfigError(f"--set value {value!r}: expected a bool, number, string, path, list or dict")


def plan_run(recipe: str | None, sets: list[str], out_root: Path, data_root: Path | None, stage: str | None,
             device: str, allow_random_init: bool, log: RunLog) -> tuple[Recipe, list[PlannedStage]]:
    """A dry run: what would run and why (nothing is written)."""
    from emoprep.pipeline.runner import Runner

    rec = load(recipe, sets)
    demo = out_root / "demo-data" if not dataset_roots_configured(rec) else None
    root = data_root if data_root else demo
    if root is not None and not root.is_dir():
        raise ConfigError(f"--data-root {root}: no such folder (run without --dry-run to create the demo data)")
    set_random_init_policy(rec, allow_random_init or is_demo_data(root))
    return rec, Runner(rec, out_root, root, device, log).plan(stage)


def run_dag(recipe: str | None, sets: list[str], out_root: Path, data_root: Path | None = None,
            stage: str | None = None, executor: str = "local", workers: int = 0, scheduler: str | None = None,
            device: str = "auto", force: bool = False, max_reject_ratio: float | None = None,
            allow_random_init: bool = False, wait: bool = True, quiet: bool = False,
            console: Console | None = None, item_timeout: float | None = None) -> list[StageSummary]:
    """Run the recipe's DAG into `out_root` under its lock; records the run (run.json)."""
    from emoprep.pipeline.executors import make_executor
    from emoprep.pipeline.lock import OutputLock
    from emoprep.pipeline.run_record import RunRecord, record_run
    from emoprep.pipeline.runlog import RunLog
    from emoprep.pipeline.runner import DEFAULT_ITEM_TIMEOUT, Runner

    console = console or Console(stderr=True, soft_wrap=True)
    out_root = out_root.resolve()
    rec = load(recipe, sets)
    out_root.mkdir(parents=True, exist_ok=True)
    log = RunLog(out_root, console=console, quiet=quiet)
    log.capture_warnings()
    try:
        with OutputLock(out_root, wait=wait, on_wait=log.warn):
            root = data_root_for_run(rec, data_root, out_root, log)
            record_run(out_root, RunRecord(recipe_ref(recipe), str(root) if root else None, tuple(sets), device,
                                           (stage,) if stage else tuple(rec.targets)))
            set_random_init_policy(rec, allow_random_init or is_demo_data(root))
            runner = Runner(rec, out_root, root, device, log,
                            item_timeout=DEFAULT_ITEM_TIMEOUT if item_timeout is None else item_timeout)
            ex = make_executor(executor, workers or os.cpu_count() or 1, scheduler)
            log.event("run-start", recipe=rec.name, stage=stage, argv=sys.argv)
            try:
                with RunProgress(console, quiet, log) as progress:
                    summaries = runner.run(stage, ex, force=force, max_reject_ratio=max_reject_ratio,
                                           progress=progress)
            finally:
                ex.close()
            log.event("run-done", summaries=[s.__dict__ for s in summaries])
            return summaries
    finally:
        log.close()


def plan_status(out_root: Path, recipe: str | None = None, sets: list[str] | None = None,
                data_root: Path | None = None, stage: str | None = None) -> tuple[Recipe, list[PlannedStage]]:
    """Every stage's status. Without arguments, those the runs into `out_root` built, with their
    recipe, data root and --set values (run.json); an argument overrides its part."""
    from emoprep.pipeline.run_record import read_run_record
    from emoprep.pipeline.runlog import RunLog
    from emoprep.pipeline.runner import Runner

    out_root = out_root.resolve()
    device = "auto"
    targets: str | list[str] | None = stage
    all_sets = list(sets or [])
    record = read_run_record(out_root)
    if record is not None and (recipe is None or recipe_ref(recipe) == record.recipe):
        recipe = record.recipe
        all_sets = all_sets or list(record.sets)
        data_root = data_root or (Path(record.data_root) if record.data_root else None)
        device = record.device
        targets = stage or list(record.targets)
    rec = load(recipe, all_sets)
    root = data_root
    if root is None and not dataset_roots_configured(rec):
        root = out_root / "demo-data"
    if root is not None and not root.is_dir():
        raise ConfigError(f"data root {root} does not exist (pass --data-root, or run first to create the demo data)")
    return rec, Runner(rec, out_root, root, device, RunLog(None, quiet=True)).plan(targets)


def plan_as_json(rec: Recipe, out_root: Path, plan: list[PlannedStage]) -> dict[str, Any]:
    return {"recipe": rec.name, "out": str(out_root), "stages": [
        {"stage": ps.name, "status": ps.status, "fingerprint": ps.sdir.fp,
         "dir": ps.sdir.path.relative_to(out_root).as_posix(), "reasons": ps.reasons} for ps in plan]}
