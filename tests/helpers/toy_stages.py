"""Tiny stages for engine tests: the engine must not care what a stage computes.

toy data layout: a folder holding `numbers/` with `<id>.txt` files each containing an integer;
`toy` ingests them, `square` writes one file per item, `total` sums (a whole-stage reduction).
Behaviour hooks for crash tests come from environment variables, read in the worker.
"""
from __future__ import annotations

import errno
import os
import time
from dataclasses import dataclass
from pathlib import Path

from emoprep.pipeline.atomic import atomic_path
from emoprep.pipeline.catalog import register
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.reasons import reason_code
from emoprep.pipeline.stage import Outcome, Stage, WorkItem, runtime
from emoprep.stages.common.naming import safe_name

# A slow start of every process that loads the toy stages (a loaded machine spawning workers).
time.sleep(float(os.environ.get("TOY_IMPORT_DELAY") or 0))

# Plugin reason codes: not in emoprep.manifests.reasons (the runner warns about them).
NOT_A_NUMBER = reason_code("not-a-number")
TOO_SMALL = reason_code("too-small")


@dataclass(frozen=True)
class ToyParams:
    root: str = runtime("")
    min_value: int = 0


@register
class Toy(Stage[ToyParams]):
    name = "toy"
    datasets = ("toy",)
    Params = ToyParams

    # Written like a plugin from before locate_root's `hasher` parameter: the runner passes
    # it only to stages that take it (pipeline.runner.locate).
    def locate_root(self, params: ToyParams, data_root: Path | None) -> Path:  # type: ignore[override]
        root = Path(params.root) if params.root else data_root
        for cand in ([root, *sorted(p for p in root.iterdir() if p.is_dir())] if root and root.is_dir() else []):
            if (cand / "numbers").is_dir():
                return cand
        raise ConfigError(f"no numbers/ under {root}: expected the toy layout (numbers/<id>.txt)")

    def source_signature(self, ctx: StageContext[ToyParams]) -> list[tuple[str, str]]:
        root = ctx.roots["toy"]
        return sorted((p.relative_to(root).as_posix(), ctx.hasher.hash(p))
                      for p in (root / "numbers").glob("*.txt"))

    def plan(self, ctx: StageContext[ToyParams]) -> list[WorkItem]:
        root = ctx.roots["toy"]
        return [WorkItem(f"toy:{p.stem}", {"file": p.relative_to(root).as_posix()})
                for p in sorted((root / "numbers").glob("*.txt"))]

    def process(self, item: WorkItem, ctx: ItemContext[ToyParams]) -> Outcome:
        text = (ctx.roots["toy"] / item.payload["file"]).read_text().strip()
        try:
            value = int(text)
        except ValueError:
            return Outcome.rejected(item.key, NOT_A_NUMBER, f"{item.payload['file']}: {text!r}")
        if value < ctx.params.min_value:
            return Outcome.rejected(item.key, TOO_SMALL, f"{value} < {ctx.params.min_value}")
        return Outcome(rows=[{"sample_id": item.key, "source_id": item.key, "value": value}])


@dataclass(frozen=True)
class SquareParams:
    power: int = 2
    sleep_s: float = runtime(0.0)


@register
class Square(Stage[SquareParams]):
    name = "square"
    default_inputs = ("toy",)
    Params = SquareParams

    def plan(self, ctx: StageContext[SquareParams]) -> list[WorkItem]:
        df = ctx.input_manifest("toy")
        return [WorkItem(sid, {"value": int(v)}) for sid, v in zip(df["sample_id"], df["value"], strict=True)]

    def process(self, item: WorkItem, ctx: ItemContext[SquareParams]) -> Outcome:
        if ctx.params.sleep_s:
            time.sleep(ctx.params.sleep_s)
        if os.environ.get("TOY_CRASH_ON") == item.key:
            os._exit(3)  # a worker dying hard, as a segfaulting decoder would
        if os.environ.get("TOY_RAISE_ON") == item.key:
            raise RuntimeError("boom")
        if os.environ.get("TOY_ENOSPC_ON") == item.key:
            raise OSError(errno.ENOSPC, "No space left on device", "values/x.txt")
        result: int = item.payload["value"] ** ctx.params.power
        out = ctx.out_dir / "values" / f"{safe_name(item.key)}.txt"
        with atomic_path(out) as tmp:
            tmp.write_text(f"{result}\n")
        return Outcome(rows=[{"sample_id": item.key, "source_id": item.key, "result": result,
                              "path": ctx.rel(out)}], counters={"squared": 1})


@dataclass(frozen=True)
class TotalParams:
    offset: int = 0


@register
class Total(Stage[TotalParams]):
    name = "total"
    default_inputs = ("square",)
    Params = TotalParams

    def on_current(self, out_root: Path, stage_dir: Path) -> None:
        (out_root / "total-current.txt").write_text(stage_dir.name)

    def run(self, ctx: StageContext[TotalParams]) -> Outcome:
        df = ctx.input_manifest("square")
        return Outcome(rows=[{"sample_id": "total", "value": int(df["result"].sum()) + ctx.params.offset}])
