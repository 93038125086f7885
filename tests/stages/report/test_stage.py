"""The report stage and command (stage.py, SPEC §8): deterministic and relocatable stage
output, the published copy in `report/`, and `emoprep report`."""
from __future__ import annotations

import json
import subprocess

from tests.helpers.paths import EMOPREP
from tests.helpers.report_fixtures import files_of, make_tree, run_stage

TEXT_FILES = ("index.html", "report.json", "DATASET.md", "SCHEMA.md", "recipe.toml", "report.schema.json")


def test_stage_output_is_deterministic_and_free_of_paths(tmp_path):
    outs = []
    for name in ("a", "b"):
        root = tmp_path / name / "out"
        out_dir = run_stage(root, make_tree(root))
        outs.append((root, files_of(out_dir), files_of(root / "report")))
    (ra, a, pa), (_, b, pb) = outs
    assert a == b and pa == pb == a          # published copy = stage folder, byte for byte
    assert "timings.json" not in a            # timings are not stage output
    for name in TEXT_FILES:
        text = a[name].decode("utf-8")
        assert str(ra) not in text and str(tmp_path) not in text, name
    pngs = [n for n in a if n.endswith(".png")]
    assert len(pngs) >= 8
    for n in pngs:
        assert a[n][:8] == b"\x89PNG\r\n\x1a\n" and b"Matplotlib" not in a[n] and b"tIME" not in a[n]


def test_publish_replaces_stale_files_and_temp_leftovers(tmp_path):
    root = tmp_path / "out"
    dirs = make_tree(root)
    pub = root / "report"
    pub.mkdir(parents=True)
    (pub / "timings.json").write_text("{}")                 # from an earlier `emoprep report`
    (pub / ".tmp-0123456789ab-index.html").write_text("x")  # a killed writer's leftover
    (pub / "old-fingerprint").mkdir()                       # another stage folder: kept
    out_dir = run_stage(root, dirs)
    assert files_of(pub) == files_of(out_dir)
    assert (pub / "old-fingerprint").is_dir()


def test_report_command_adds_timings_and_says_where(tmp_path):
    root = tmp_path / "out"
    make_tree(root)
    proc = subprocess.run([str(EMOPREP), "report", "--out", str(root)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    index = root / "report" / "index.html"
    assert str(index) in proc.stdout.replace("\n", "")
    timings = json.loads((root / "report" / "timings.json").read_text())
    assert {t["name"]: t["seconds"] for t in timings["stages"]}["deam"] == 1.25
    html = index.read_text()
    assert 'id="timings"' in html and "1.25" in html and "report.json" in html


def test_report_command_with_nothing_to_report_exits_2(tmp_path):
    empty = tmp_path / "empty"
    (empty / "manifests").mkdir(parents=True)       # a run that finished no stage
    for out in (tmp_path / "nowhere", empty):
        proc = subprocess.run([str(EMOPREP), "report", "--out", str(out)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 2, proc.stderr
        assert "nothing to report" in proc.stderr and "emoprep run" in proc.stderr
