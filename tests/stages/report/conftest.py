"""Fixtures of the report tests: a generated output tree reported once, and the real DAG on
the demo data up to the split, then the report stage."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.paths import EMOPREP
from tests.helpers.report_fixtures import UNKNOWN, make_tree, run_stage


@pytest.fixture(scope="session")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str], Path, dict[str, Any]]:
    """(output root, {stage: folder}, report folder, report.json) of the generated tree,
    reported after `tokens` and the unknown stage."""
    root = tmp_path_factory.mktemp("tree") / "out"
    dirs = make_tree(root)
    out_dir = run_stage(root, dirs, after=("tokens", UNKNOWN))
    return root, dirs, out_dir, json.loads((out_dir / "report.json").read_text())


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory, demo_data: Path) -> Path:
    """The real DAG on the demo data up to the split, then the report stage. Labels read the
    chunks directly and no tokenizer runs: the report's code path is the same, the test
    stays fast (the demo data themselves take ~12 s)."""
    demo = demo_data
    out = tmp_path_factory.mktemp("run") / "out"
    proc = subprocess.run([str(EMOPREP), "run", "--data-root", str(demo), "--out", str(out), "-q",
                           "--stage", "report", "--set", "report.after=['split']",
                           "--set", "labels.sources=['chunks', 'images']"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return out
