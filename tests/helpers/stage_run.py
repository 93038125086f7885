"""Drive one stage in this process as the runner does (plan → process → finalize → column
kinds), without folders, ledger or fingerprints: for tests of a single stage."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from emoprep.pipeline.assemble import finish_manifest
from emoprep.pipeline.atomic import canonical_json
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.stage import Outcome, Reject, Stage, WorkItem
from emoprep.stages.catalog import builtin_catalog

P = TypeVar("P")


@dataclass
class StageRun:
    items: list[WorkItem]
    outcomes: list[Outcome]
    rows: pd.DataFrame
    rejects: list[Reject]
    ctx: StageContext[Any]
    counters: dict[str, int] = field(default_factory=dict)

    def reasons(self) -> dict[str, str]:
        return {r.sample_id: r.reason for r in self.rejects}


def run_stage(name: str, out_root: Path, *, params: Any = None, roots: dict[str, Path] | None = None,
              manifests: dict[str, pd.DataFrame] | None = None) -> StageRun:
    """Drive the registered stage `name` as the runner will: plan → process each item → finalize."""
    stage = builtin_catalog()[name]
    params = params if params is not None else stage.Params()
    ctx: StageContext[Any] = StageContext(stage=name, params=params, out_root=out_root,
                                          out_dir=out_root / name / "fp", manifests=manifests or {},
                                          roots=roots or {}, catalog=builtin_catalog())
    return run_in_context(stage, ctx)


def run_in_context(stage: Stage[P], ctx: StageContext[P], *, json_payloads: bool = False) -> StageRun:
    """plan → process every item (as a worker would, with an ItemContext) → finalize →
    column kinds. `json_payloads`: also check every payload is plain, JSON-able data."""
    planned = stage.plan(ctx)
    assert planned is not None, f"{stage.name} is a whole-stage stage, not a per-item one"
    items = list(planned)
    if json_payloads:
        for item in items:
            canonical_json(item.payload)  # raises on NaN, numpy values, paths
    ictx = ctx.item_context()
    outcomes = [stage.process(it, ictx) for it in items]
    rows = pd.DataFrame([r for o in outcomes for r in o.rows])
    rejects = [r for o in outcomes for r in o.rejects]
    counters: dict[str, int] = {}
    for o in outcomes:
        for k, v in o.counters.items():
            counters[k] = counters.get(k, 0) + v
    rows, rejects = finish_manifest(stage, ctx, rows, rejects)
    return StageRun(items, outcomes, rows, rejects, ctx, counters)


def assert_accounted(run: StageRun) -> None:
    """Inputs = rows + rejects: every item gives something, and nothing comes from nowhere."""
    keys = [it.key for it in run.items]
    assert len(set(keys)) == len(keys)
    for it, o in zip(run.items, run.outcomes, strict=True):
        assert o.rows or o.rejects, f"{it.key} produced nothing"
        for sid in [r["sample_id"] for r in o.rows] + [r.sample_id for r in o.rejects]:
            assert sid == it.key or sid.startswith(it.key + ":"), (it.key, sid)
