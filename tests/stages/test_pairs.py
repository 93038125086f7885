"""`pairs` (seed 002): same label, same split, seeded, even image reuse, every audio item
paired or rejected, and the pairs table."""
from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.recipe import build_params
from emoprep.stages.pairs import Pairs, PairsParams, assign_images, balanced_keep, keyed_order


def test_assignment_is_even_seeded_and_order_free():
    audio = [f"deam:{i}" for i in range(10)]
    images = [f"foodpics:{i}" for i in range(3)]
    got = assign_images(audio, images, seed=0)
    assert set(got) == set(audio) and set(got.values()) == set(images)
    assert sorted(Counter(got.values()).values()) == [3, 3, 4]          # ⌊10/3⌋ or ⌈10/3⌉ each
    assert assign_images(audio[::-1], images[::-1], seed=0) == got      # input order does not matter
    assert assign_images(audio, images, seed=1) != got                  # the seed does
    few = assign_images(audio[:2], images, seed=0)
    assert len(set(few.values())) == 2                                   # n < m: no image twice
    assert assign_images(audio, [], seed=0) == {}
    assert keyed_order(["a", "b", "c"], 3, "x") == keyed_order(["c", "a", "b"], 3, "x")


def _split_manifest() -> pd.DataFrame:
    rows = []
    # audio: two songs with two segments each in train, one song in test; one unlabelled
    for sid, src, emo, split in [("deam:1:0", "deam:1", "happy", "train"), ("deam:1:1", "deam:1", "happy", "train"),
                                 ("deam:2:0", "deam:2", "calm", "train"), ("deam:2:1", "deam:2", "calm", "train"),
                                 ("deam:3:0", "deam:3", "happy", "test"), ("deam:4:0", "deam:4", "angry", "test"),
                                 ("deam:5:0", "deam:5", None, "train")]:
        rows.append({"sample_id": sid, "source_id": src, "modality": 1, "emotion": emo, "split": split,
                     "valence": 0.5, "arousal": 0.1})
    for i, emo, split in [(1, "happy", "train"), (2, "happy", "train"), (3, "calm", "train"),
                          (4, "happy", "val"), (5, "angry", "train")]:
        rows.append({"sample_id": f"foodpics:{i}", "source_id": f"foodpics:{i}", "modality": 0, "emotion": emo,
                     "split": split, "valence": -0.2, "arousal": 0.3})
    return pd.DataFrame(rows)


def _run(tmp_path: Path, **params):
    split = _split_manifest()
    audio = pd.DataFrame({"sample_id": split.loc[split.modality == 1, "sample_id"],
                          "path": [f"salient/fp/audio/{i}.flac" for i in range((split.modality == 1).sum())]})
    images = pd.DataFrame({"sample_id": split.loc[split.modality == 0, "sample_id"],
                           "path": [f"images/fp/png/{i}.png" for i in range((split.modality == 0).sum())]})
    p = build_params(Pairs.Params, params, "pairs")
    out_dir = tmp_path / "pairs" / "fp"
    out_dir.mkdir(parents=True)
    ctx: StageContext[PairsParams] = StageContext(stage="pairs", params=p, out_root=tmp_path, out_dir=out_dir,
                                                  manifests={"split": split, "salient": audio, "images": images})
    return Pairs().run(ctx), out_dir


def test_pairs_share_label_and_split_and_every_audio_item_is_accounted_for(tmp_path):
    out, out_dir = _run(tmp_path)
    pairs = {r["audio_id"]: r for r in out.rows}
    assert {r.sample_id: r.reason for r in out.rejects} == {
        "deam:3:0": "no-image-for-label",      # happy images exist, but not in test
        "deam:4:0": "no-image-for-label",      # angry image only in train
        "deam:5:0": "missing-label"}
    assert len(out.rows) + len(out.rejects) == 7
    images = _split_manifest().set_index("sample_id")
    for r in out.rows:
        assert images.loc[r["image_id"], "emotion"] == r["label"] == images.loc[r["audio_id"], "emotion"]
        assert images.loc[r["image_id"], "split"] == r["split"] == images.loc[r["audio_id"], "split"]
        assert r["sample_id"] == r["audio_id"]
        assert r["audio_path"].endswith(".flac") and r["image_path"].endswith(".png")
    assert pairs["deam:2:0"]["image_id"] == pairs["deam:2:1"]["image_id"] == "foodpics:3"
    assert {pairs["deam:1:0"]["image_id"], pairs["deam:1:1"]["image_id"]} == {"foodpics:1", "foodpics:2"}
    with (out_dir / "pairs.csv").open(newline="") as fh:
        table = list(csv.DictReader(fh))
    assert [t["audio_id"] for t in table] == ["deam:1:0", "deam:1:1", "deam:2:0", "deam:2:1"]
    assert list(table[0]) == ["audio_id", "image_id", "label", "split", "audio_path", "image_path"]
    summary = json.loads((out_dir / "pairs_summary.json").read_text())
    assert summary["pairs"] == {"train": 4} and summary["images_unused"] == 2 and summary["max_image_uses"] == 2


def test_pool_all_draws_across_splits(tmp_path):
    out, _ = _run(tmp_path, image_pool="all")
    pairs = {r["audio_id"]: r for r in out.rows}
    assert pairs["deam:3:0"]["label"] == "happy" and pairs["deam:3:0"]["split"] == "test"
    assert pairs["deam:4:0"]["image_id"] == "foodpics:5"
    assert [r.sample_id for r in out.rejects] == ["deam:5:0"]


def test_pairs_need_a_split_and_a_label_column(tmp_path):
    with pytest.raises(ConfigError, match="label_column"):
        _run(tmp_path, label_column="genre")


def _unbalanced(tmp_path: Path, rows_order: int = 1, **params):
    """train: happy 5, angry 3, calm 2 audio items; val: happy 2, calm 1; test: happy 1 with
    no test image; every pool of train and val has images."""
    rows = []
    audio = [("happy", "train", 5), ("angry", "train", 3), ("calm", "train", 2),
             ("happy", "val", 2), ("calm", "val", 1), ("happy", "test", 1)]
    n = 0
    for emo, split, count in audio:
        for _ in range(count):
            n += 1
            rows.append({"sample_id": f"deam:{n}", "source_id": f"deam:{n}", "modality": 1, "emotion": emo,
                         "split": split, "valence": 0.1, "arousal": 0.1})
    images = [("happy", "train", 2), ("angry", "train", 1), ("calm", "train", 1), ("happy", "val", 1),
              ("calm", "val", 1)]
    for emo, split, count in images:
        for _ in range(count):
            n += 1
            rows.append({"sample_id": f"foodpics:{n}", "source_id": f"foodpics:{n}", "modality": 0,
                         "emotion": emo, "split": split, "valence": 0.1, "arousal": 0.1})
    split_df = pd.DataFrame(rows[::rows_order])
    p = build_params(Pairs.Params, params, "pairs")
    out_dir = tmp_path / "pairs" / "fp"
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx: StageContext[PairsParams] = StageContext(stage="pairs", params=p, out_root=tmp_path, out_dir=out_dir,
                                                  manifests={"split": split_df}, roots={})
    return Pairs().run(ctx), out_dir


def test_undersample_gives_equal_pairs_per_label_in_each_split(tmp_path):
    out, out_dir = _unbalanced(tmp_path, audio_paths="", image_paths="", balance="undersample")
    assert Counter((r["split"], r["label"]) for r in out.rows) == {
        ("train", "happy"): 2, ("train", "angry"): 2, ("train", "calm"): 2,   # train: calm has 2
        ("val", "happy"): 1, ("val", "calm"): 1}                               # val: calm has 1
    reasons = Counter(r.reason for r in out.rejects)
    assert reasons == {"class-balance": 3 + 1 + 1, "no-image-for-label": 1}  # happy 3 + angry 1 (train), happy 1 (val)
    assert len(out.rows) + len(out.rejects) == 14                            # every audio item accounted for
    dropped = {r.sample_id: r.message for r in out.rejects if r.reason == "class-balance"}
    assert all("keeps 2" in m for sid, m in dropped.items() if int(sid.split(":")[1]) <= 10)
    uses = Counter(r["image_id"] for r in out.rows if (r["split"], r["label"]) == ("train", "happy"))
    assert sorted(uses.values()) == [1, 1]            # images assigned among the kept items: even reuse
    assert all(r["pool_audio"] == 2 for r in out.rows if r["split"] == "train")
    summary = json.loads((out_dir / "pairs_summary.json").read_text())
    assert summary["balance"] == {"mode": "undersample", "pairs_per_label": {"train": 2, "val": 1}, "left_out": 5}
    assert summary["pairs"] == {"train": 6, "val": 2}


def test_undersample_is_seeded_and_order_free(tmp_path):
    a, _ = _unbalanced(tmp_path / "a", audio_paths="", image_paths="", balance="undersample")
    b, _ = _unbalanced(tmp_path / "b", rows_order=-1, audio_paths="", image_paths="", balance="undersample")
    def pairs(rows):
        return sorted((r["audio_id"], r["image_id"]) for r in rows)

    assert pairs(a.rows) == pairs(b.rows)
    kept = {seed: {r["audio_id"] for r in _unbalanced(tmp_path / str(seed), audio_paths="", image_paths="",
                                                       balance="undersample", seed=seed)[0].rows}
            for seed in range(4)}
    assert len({frozenset(k) for k in kept.values()}) > 1   # the seed picks which items stay


def test_default_pairs_every_item_and_keeps_the_summary_as_it_was(tmp_path):
    out, out_dir = _unbalanced(tmp_path, audio_paths="", image_paths="")
    assert Counter((r["split"], r["label"]) for r in out.rows) == {
        ("train", "happy"): 5, ("train", "angry"): 3, ("train", "calm"): 2, ("val", "happy"): 2, ("val", "calm"): 1}
    assert [r.reason for r in out.rejects] == ["no-image-for-label"]
    summary = json.loads((out_dir / "pairs_summary.json").read_text())
    assert "balance" not in summary and summary["pairs"] == {"train": 10, "val": 3}
    explicit, _ = _unbalanced(tmp_path / "explicit", audio_paths="", image_paths="", balance="none")
    assert explicit.rows == out.rows


def test_balanced_keep_and_a_bad_mode(tmp_path):
    groups = {("train", "a"): ["x1", "x2", "x3"], ("train", "b"): ["y1"], ("test", "a"): ["z1", "z2"]}
    got = balanced_keep(groups, seed=0)
    assert got.per_label == {"test": 2, "train": 1} and len(got.keep) == 4
    assert {"y1", "z1", "z2"} <= got.keep and len(got.keep & {"x1", "x2", "x3"}) == 1
    with pytest.raises(ConfigError, match="balance"):
        _run(tmp_path, balance="oversample")
