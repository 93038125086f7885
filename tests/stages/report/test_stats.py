"""report.json's numbers (stats.py): they match the manifests and rejects they come from, on a
generated tree and on the demo data; absent and unknown stages are still reported."""
from __future__ import annotations

import json
import re
from collections import Counter

import pandas as pd
import pytest

from emoprep.stages.report.stage import ReportParams, build_files
from tests.helpers.report_fixtures import UNKNOWN, all_rejects, make_tree


def test_reject_counts_match_the_rejects_files(built):
    root, dirs, _, r = built
    rej = all_rejects(root, dirs)
    want = Counter(zip(rej["reason"], rej["stage"], strict=True))
    got = Counter({(x["reason"], s): n for x in r["rejects"]["by_reason"] for s, n in x["by_stage"].items()})
    assert got == want and r["rejects"]["total"] == len(rej)
    non_food = next(x for x in r["rejects"]["by_reason"] if x["reason"] == "non-food")
    assert non_food["by_stage"] == {"foodpics": 2} and non_food["documented"]
    assert [e["sample_id"] for e in non_food["examples"]] == ["foodpics:1001", "foodpics:1002"]
    odd = next(x for x in r["rejects"]["by_reason"] if x["reason"] == "odd-thing")
    assert not odd["documented"] and "undocumented" in odd["meaning"]


def test_label_split_and_emotion_numbers_match_the_split_manifest(built):
    root, dirs, _, r = built
    split = pd.read_parquet(root / dirs["split"] / "manifest.parquet")
    assert r["labels"]["stage"] == "split"
    assert r["splits"]["rows"] == dict(Counter(split["split"]))
    names: dict[object, str] = {0: "image", 1: "audio"}
    for m, g in split.groupby("modality"):
        mod = r["labels"]["by_modality"][names[m]]
        assert mod["samples"] == len(g) and mod["sources"] == g["source_id"].nunique()
        assert mod["valence"]["min"] == pytest.approx(g["valence"].min(), abs=1e-6)
        for s, gs in g.groupby("split"):
            want = Counter(gs["emotion"])
            got = r["emotions"]["counts"][names[m]][s]
            assert {k: v for k, v in got.items() if v} == dict(want)
            assert set(got) == set(r["emotions"]["classes"])  # zeros included


def test_categories_durations_and_chunks_match_their_manifests(built):
    root, dirs, _, r = built
    images = pd.read_parquet(root / dirs["images"] / "manifest.parquet")
    assert r["categories"]["column"] == "type"
    assert {c["category"]: c["n"] for c in r["categories"]["by_category"]} == dict(Counter(images["type"]))
    deam = pd.read_parquet(root / dirs["deam"] / "manifest.parquet")
    d = r["durations"]["deam"]
    assert d["n"] == len(deam) and sum(d["histogram"]["counts"]) == len(deam)
    assert d["max_s"] == pytest.approx(deam["duration_s"].max(), abs=1e-3)
    chunks = pd.read_parquet(root / dirs["chunks"] / "manifest.parquet")
    per_song = Counter(chunks["source_id"])
    want = Counter(per_song.get(s, 0) for s in deam["source_id"])
    c = r["chunks_per_song"]["chunks"]
    assert c["histogram"] == {str(k): v for k, v in sorted(want.items())}
    assert c["songs_without_chunks"] == want[0] == 1


def test_audit_weights_and_unknown_stage_are_reported(built):
    _, dirs, _, r = built
    (audit,) = r["audit"]
    assert [b["verdict"] for b in audit["blocks"]] == ["crossed", "straight", "insufficient"]
    assert audit["n_fixed"] == 8 and audit["blocks"][0]["fixed"] is True
    (w,) = r["weights"]
    assert w["random_init"] and w["tokenizer"] == "vit-tiny-test"
    assert w["rows_by_weights"] == {"random-init": sum(r["splits"]["rows"].values())}
    order = [s["name"] for s in r["stages"]]
    assert set(order) == set(dirs)
    for a, b in (("deam", "chunks"), ("chunks", "labels"), ("images", "labels"), ("labels", "split"),
                 ("split", "tokens"), ("chunks", UNKNOWN)):
        assert order.index(a) < order.index(b)
    mystery = next(s for s in r["stages"] if s["name"] == UNKNOWN)
    assert mystery["counters"] == {"frames": 12} and mystery["params"] == {"n_mfcc": 20}
    assert r["warnings"] == []


def test_each_tokenizer_of_a_multi_tokenizer_stage_is_listed(tmp_path):
    root = tmp_path / "out"
    dirs = make_tree(root, unknown_stage=False, two_tokenizers=True)
    files = build_files(root, dirs, ReportParams(), timings=False)
    r = json.loads(files["report.json"])
    tok = pd.read_parquet(root / dirs["tokens"] / "manifest.parquet")
    got = {w["tokenizer"]: (w["random_init"], w["sha256"], w["rows_by_weights"]) for w in r["weights"]}
    assert got == {"codes-test": (True, "random-init", {"random-init": int((tok["tokenizer"] == "codes-test").sum())}),
                   "vit-test": (False, "ab" * 32, {"ab" * 32: int((tok["tokenizer"] == "vit-test").sum())})}
    html = files["index.html"].decode()
    assert re.findall(r'class="banner danger" data-random-init="([^"]+)"', html) == ["codes-test"]
    assert "RANDOM-INIT WEIGHTS" in files["DATASET.md"].decode()


def test_demo_report_shows_the_swapped_block_and_the_non_food_rejects(demo_run):
    r = json.loads((demo_run / "report" / "report.json").read_text())
    deam = pd.read_parquet(demo_run / "manifests" / "deam.parquet")
    (audit,) = r["audit"]
    low = next(b for b in audit["blocks"] if b["id_max"] == 1000)
    assert low["verdict"] == "crossed" and low["fixed"]
    assert all(b["verdict"] != "crossed" for b in audit["blocks"] if b["id_min"] > 1000)
    fixed = deam.loc[deam["static_fixed"], "song_id"]
    assert len(fixed) > 0 and (fixed <= 1000).all()
    assert all(hi <= 1000 for _, hi in audit["fixed_song_ids"])
    rejects = pd.read_parquet(demo_run / "manifests" / "rejects.parquet")
    n_non_food = int((rejects["reason"] == "non-food").sum())
    got = next(x for x in r["rejects"]["by_reason"] if x["reason"] == "non-food")
    assert n_non_food > 0 and got["count"] == n_non_food
    assert set(r["labels"]["by_modality"]) == {"image", "audio"}
    assert {f["file"] for f in r["figures"]} >= {"va_scatter.png", "va_by_category.png", "va_by_emotion.png",
                                                  "audit.png", "durations.png", "chunks_per_song.png", "rejects.png"}
    assert (demo_run / "manifests" / "report.parquet").is_file()
