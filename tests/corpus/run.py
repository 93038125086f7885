"""Run the real pipeline (the `emoprep` CLI, in a subprocess) on a corpus tree and read back
what it recorded: the published manifests, `manifests/rejects.parquet`, each stage's
`_DONE.json`."""
from __future__ import annotations

import json
import math
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from tests.helpers.paths import EMOPREP


@dataclass
class RunResult:
    out: Path
    returncode: int
    stderr: str
    manifests: dict[str, pd.DataFrame] = field(default_factory=dict)
    rejects: pd.DataFrame = field(default_factory=pd.DataFrame)
    done: dict[str, dict[str, Any]] = field(default_factory=dict)

    @classmethod
    def read(cls, out: Path, returncode: int, stderr: str) -> RunResult:
        res = cls(out, returncode, stderr)
        current = out / "manifests" / "_current.json"
        if not current.exists():
            return res
        for stage, entry in json.loads(current.read_text()).items():
            res.manifests[stage] = pd.read_parquet(out / "manifests" / f"{stage}.parquet")
            res.done[stage] = json.loads((out / entry["dir"] / "_DONE.json").read_text())
        res.rejects = pd.read_parquet(out / "manifests" / "rejects.parquet")
        return res

    def ids(self, stage: str) -> set[str]:
        df = self.manifests.get(stage)
        return set() if df is None else set(df["sample_id"].astype(str))

    def row(self, stage: str, sample_id: str) -> dict[str, Any]:
        """The manifest row of `sample_id` in `stage` (NaN as None); KeyError if absent."""
        df = self.manifests[stage]
        hit = df[df["sample_id"] == sample_id]
        if len(hit) != 1:
            raise KeyError(f"{sample_id} is in {stage}'s manifest {len(hit)} times")
        return {str(k): (None if isinstance(v, float) and math.isnan(v) else v) for k, v in hit.iloc[0].items()}

    def rejects_of(self, sample_id: str) -> pd.DataFrame:
        return self.rejects[self.rejects["sample_id"] == sample_id]

    def counters(self, stage: str) -> dict[str, int]:
        counters: dict[str, int] = self.done[stage]["counts"].get("counters", {})
        return counters

    def counts(self, stage: str) -> dict[str, Any]:
        counts: dict[str, Any] = self.done[stage]["counts"]
        return counts


def write_recipe(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def run_emoprep(recipe: Path, data: Path, out: Path, *extra: str, timeout: float = 600) -> RunResult:
    """`emoprep run` on `data` into `out` (2 worker processes, quiet), read back."""
    cmd = [str(EMOPREP), "run", "--recipe", str(recipe), "--data-root", str(data), "--out", str(out),
           "--workers", "2", "-q", *extra]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    return RunResult.read(out, proc.returncode, proc.stderr)
