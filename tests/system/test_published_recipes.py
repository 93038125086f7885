"""thesis-v3-published and thesis-v12-published (issue 17): they run on the demo data and
validate, and their report's "as published vs corrected" numbers equal what the manifests of
the published and the corrected run show side by side."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from tests.helpers.cli import invoke, said
from tests.helpers.fixtures import V3_TINY, DemoRun
from tests.helpers.paths import EMOPREP

pytestmark = pytest.mark.system  # end to end in subprocesses; `-m 'not slow and not system'` skips them

TINY = {"thesis-v3": list(V3_TINY),
        "thesis-v12": ["--set", "tokens.tokenizers={clips = 'encodec-tiny-test', images = 'vit-tiny-test'}"]}


def _run(recipe: str, base: str, demo: Path, out: Path) -> Path:
    done = subprocess.run([str(EMOPREP), "run", "--recipe", recipe, "--data-root", str(demo), "--out", str(out),
                           "-q", *TINY[base]], capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return _validated(out)


def _validated(out: Path) -> Path:
    check = invoke("validate", "--out", str(out))
    assert check.exit_code == 0, said(check)
    return out


def _manifest(out: Path, stage: str) -> pd.DataFrame:
    return pd.read_parquet(out / "manifests" / f"{stage}.parquet")


@pytest.fixture(scope="module")
def v3(demo_data, tmp_path_factory, thesis_v3_run: DemoRun) -> tuple[Path, Path]:
    """(thesis-v3-published, thesis-v3): the corrected run is the session's shared one."""
    root = tmp_path_factory.mktemp("v3")
    return (_run("thesis-v3-published", "thesis-v3", demo_data, root / "published"), _validated(thesis_v3_run.out))


def _static_differ(published: Path, corrected: Path) -> set[int]:
    a = _manifest(published, "deam").set_index("song_id")
    b = _manifest(corrected, "deam").set_index("song_id")
    cols = ["static_valence_raw", "static_arousal_raw"]
    return {int(i) for i in a.index if not a.loc[i, cols].equals(b.loc[i, cols])}


def test_v3_published_report_matches_the_two_runs(v3):
    published, corrected = v3
    report = json.loads((published / "report" / "report.json").read_text())
    c = report["published"]
    assert c["corrected_recipe"] == "thesis-v3" and c["error"] is None
    changed = {(p["stage"], p["key"]) for p in c["parameters"]}
    assert {("deam", "static_fix"), ("chunks", "pad_tail_min_s"), ("chunks", "min_frames"),
            ("split", "group_by")} <= changed
    # static VA: the songs whose static columns differ between the two deam manifests
    differ = _static_differ(published, corrected)
    assert differ and c["static_va"]["songs"] == len(differ)
    assert {i for lo, hi in c["static_va"]["song_ids"] for i in range(lo, hi + 1)} == differ
    # chunks: added / removed = the corrected run's chunk ids against this run's
    mine = set(_manifest(published, "chunks")["sample_id"])
    theirs = set(_manifest(corrected, "chunks")["sample_id"])
    ch = c["chunks"]
    assert ch["recomputed_matches_manifest"]
    assert (ch["added"], ch["removed"]) == (len(theirs - mine), len(mine - theirs))
    assert ch["added"] > 0 and ch["removed"] > 0  # the demo has padded tails and an under-annotated chunk
    assert set(ch["added_ids"]) == theirs - mine and set(ch["removed_ids"]) == mine - theirs
    assert ch["chunks_corrected"] == len(theirs)
    # split: songs in two splits and held-out items sharing a song with a train item
    split = _manifest(published, "split")
    per_song = split.groupby("source_id")["split"].nunique()
    train_songs = set(split.loc[split["split"] == "train", "source_id"])
    sharing = split[(split["split"] != "train") & split["source_id"].isin(train_songs)]
    assert c["split"]["sources_in_two_splits"] == int((per_song > 1).sum()) > 0
    assert c["split"]["held_out_items_sharing_a_song_with_train"] == len(sharing) > 0
    corrected_split = _manifest(corrected, "split")
    assert (corrected_split.groupby("source_id")["split"].nunique() == 1).all()
    # the page and the card carry the section; the thesis counts come from the manifests
    html = (published / "report" / "index.html").read_text()
    assert 'id="published"' in html and f'<b id="chunks-added">{ch["added"]}</b>' in html
    assert f'<b id="static-differ">{len(differ)}</b>' in html
    card = (published / "report" / "DATASET.md").read_text()
    assert "## As published vs corrected" in card and "## How this data differs from the paper" in card
    counts = {t["what"]: t["this_run"] for t in report["thesis_counts"]}
    rejects = pd.read_parquet(published / "manifests" / "rejects.parquet")
    assert counts["5 s chunks kept"] == len(mine)
    assert counts["chunks shorter than 5 s dropped (short-tail)"] == int(
        ((rejects["stage"] == "chunks") & (rejects["reason"] == "short-tail")).sum())


def test_the_corrected_report_has_no_comparison_but_its_deviations(v3):
    _, corrected = v3
    report = json.loads((corrected / "report" / "report.json").read_text())
    assert report["published"] is None and len(report["deviations"]) == 5
    assert report["thesis_counts"]


def test_v12_published_static_va_difference(demo_data, tmp_path):
    published = _run("thesis-v12-published", "thesis-v12", demo_data, tmp_path / "published")
    corrected = _run("thesis-v12", "thesis-v12", demo_data, tmp_path / "corrected")
    c = json.loads((published / "report" / "report.json").read_text())["published"]
    differ = _static_differ(published, corrected)
    assert differ and c["static_va"]["songs"] == len(differ) and c["static_va"]["used_by_tokens"]
    clips = _manifest(published, "clips")
    assert c["static_va"]["clips_affected"] == int(clips["song_id"].isin(differ).sum()) > 0
    # the labels of those clips really differ between the runs
    a = _manifest(published, "clips").set_index("sample_id")
    b = _manifest(corrected, "clips").set_index("sample_id")
    moved = [s for s in a.index if a.loc[s, "valence_raw"] != b.loc[s, "valence_raw"]]
    assert {int(a.loc[s, "song_id"]) for s in moved} == {i for i in differ if i in set(clips["song_id"])}
    assert c["chunks"] is None and c["split"]["held_out_items_sharing_a_song_with_train"] == 0
