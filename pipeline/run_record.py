"""What `emoprep run` was asked to build, kept in the output folder (`run.json`).

`status` reads it so that `emoprep status --out O` judges the run that built O: its recipe,
data root, `--set` values (with `--weights` among them) and device, and only the stages the
runs targeted (a run with `--stage spectrogram` on a DEAM-only tree is not judged on the
FoodPics stages it never built). A flag given to `status` overrides its field. Runs into the
same folder with the same settings add their targets; different settings start a new record.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from emoprep.pipeline.atomic import atomic_write_text

RECORD_FILE = "run.json"


@dataclass(frozen=True)
class RunRecord:
    recipe: str | None            # as given to --recipe (a shipped name or a TOML path); None = default
    data_root: str | None         # the resolved data root (the demo data's folder too); None = roots set by --set
    sets: tuple[str, ...] = ()    # --set values in order, --weights as tokens.weights
    device: str = "auto"
    targets: tuple[str, ...] = field(default=())  # stages the runs were asked for (the recipe's targets if none)

    def same_settings(self, other: RunRecord) -> bool:
        return (self.recipe, self.data_root, self.sets, self.device) == \
               (other.recipe, other.data_root, other.sets, other.device)

    def to_json(self) -> str:
        data: dict[str, Any] = asdict(self)
        data["sets"], data["targets"] = list(self.sets), list(self.targets)
        return json.dumps(data, indent=2, sort_keys=True) + "\n"


def read_run_record(out_root: Path) -> RunRecord | None:
    """The folder's record, or None (never run, or a record this version cannot read)."""
    try:
        data = json.loads((out_root / RECORD_FILE).read_text(encoding="utf-8"))
        return RunRecord(recipe=data["recipe"], data_root=data["data_root"], sets=tuple(data["sets"]),
                         device=str(data.get("device", "auto")), targets=tuple(data["targets"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def record_run(out_root: Path, new: RunRecord) -> RunRecord:
    """Write `new`, adding the targets of the previous record when its settings are the same."""
    old = read_run_record(out_root)
    if old is not None and old.same_settings(new):
        new = RunRecord(new.recipe, new.data_root, new.sets, new.device,
                        tuple(dict.fromkeys((*old.targets, *new.targets))))
    atomic_write_text(out_root / RECORD_FILE, new.to_json())
    return new
