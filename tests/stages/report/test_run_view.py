"""What the report reads (run_view.py): missing folders and unknown stages do not break it."""
from __future__ import annotations

import json
import shutil

from emoprep.stages.report.stage import ReportParams, build_files
from tests.helpers.report_fixtures import UNKNOWN, make_tree


def test_missing_folders_and_unknown_stages_do_not_break_it(tmp_path):
    root = tmp_path / "out"
    dirs = make_tree(root)
    shutil.rmtree(root / dirs["labels"])
    files = build_files(root, dirs, ReportParams(), timings=False)
    r = json.loads(files["report.json"])
    assert any("labels" in w and "left out" in w for w in r["warnings"])
    assert r["labels"]["stage"] == "split" and r["splits"]["rows"]      # the rest is still there
    only = build_files(root, {UNKNOWN: dirs[UNKNOWN]}, ReportParams(), timings=False)
    r2 = json.loads(only["report.json"])
    assert [s["name"] for s in r2["stages"]] == [UNKNOWN] and r2["labels"]["by_modality"] == {}
    assert {f["file"] for f in r2["figures"]} == {"stage_counts.png", "rejects.png"}
    assert b"No stage with normalised valence/arousal" in only["index.html"]
