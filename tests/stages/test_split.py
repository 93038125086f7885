"""The split stage: deterministic, grouped by source, stratified, stable when data is added."""
from __future__ import annotations

import json
import math
from collections.abc import Hashable
from typing import Any

import numpy as np
import pandas as pd
import pytest

from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.stages.split import Split, SplitParams, split_plan, unit_hash
from tests.helpers.token_fixtures import EMOTIONS, split_rows

# A skewed class distribution, like real VA data (few "tense" songs, many "happy" ones).
CLASS_P = np.array([3, 6, 12, 10, 8, 4, 2, 3, 5, 6, 3, 1], dtype=float)
CLASS_P /= CLASS_P.sum()


def realistic_labels(n_songs: int = 1802, chunks: int = 6, n_images: int = 1066, seed: int = 0,
                     first_song: int = 2) -> pd.DataFrame:
    """DEAM-sized chunk rows (a song's chunks mostly share a class) and FoodPics-sized image rows."""
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(first_song, first_song + n_songs):
        base = rng.choice(12, p=CLASS_P)
        for k in range(chunks):
            emo = base if rng.random() < 0.7 else rng.choice(12, p=CLASS_P)
            rows.append({"sample_id": f"deam:{s}:{k}", "source_id": f"deam:{s}", "modality": 1,
                         "valence": 0.0, "arousal": 0.0, "emotion": EMOTIONS[emo]})
    rows.extend({"sample_id": f"foodpics:{i:04d}", "source_id": f"foodpics:{i:04d}", "modality": 0,
                 "valence": 0.0, "arousal": 0.0, "emotion": EMOTIONS[rng.choice(12, p=CLASS_P)]}
                for i in range(1, n_images + 1))
    return pd.DataFrame(rows)


def source_split(df: pd.DataFrame) -> dict[Hashable, Any]:
    return df.drop_duplicates("source_id").set_index("source_id")["split"].to_dict()


def test_deterministic_grouped_and_complete(tmp_path):
    labels = realistic_labels(n_songs=300, n_images=200)
    a = split_rows(labels, tmp_path / "a", seed=7)
    b = split_rows(labels.sample(frac=1, random_state=3), tmp_path / "b", seed=7)  # row order must not matter
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == len(labels) and set(a["sample_id"]) == set(labels["sample_id"])
    assert (a.groupby("source_id")["split"].nunique() == 1).all()      # chunks of a song stay together
    assert set(a["split"]) == {"train", "test"}
    assert list(a.columns) == [*labels.columns, "split"]


def test_hash_method_is_stable_when_sources_are_added_or_classes_change(tmp_path):
    old = realistic_labels(n_songs=400, n_images=300, seed=1)
    before = source_split(split_rows(old, tmp_path / "a", seed=3, method="hash"))
    # New songs and images arrive; renormalisation over the larger set changes old classes too.
    new = realistic_labels(n_songs=500, n_images=400, seed=2, first_song=5000)
    new["sample_id"] = new["sample_id"].str.replace("foodpics:", "foodpics:9", regex=False)
    new["source_id"] = new["source_id"].str.replace("foodpics:", "foodpics:9", regex=False)
    grown = pd.concat([old.assign(emotion=np.random.default_rng(9).choice(EMOTIONS, len(old))), new])
    after = source_split(split_rows(grown, tmp_path / "b", seed=3, method="hash"))
    assert {s: after[s] for s in before} == before
    # and removing sources does not move the rest either
    shrunk = old[~old["source_id"].isin(list(before)[:100])]
    again = source_split(split_rows(shrunk, tmp_path / "c", seed=3, method="hash"))
    assert all(again[s] == before[s] for s in again)


def test_seed_changes_the_assignment(tmp_path):
    labels = realistic_labels(n_songs=200, n_images=100)
    a = source_split(split_rows(labels, tmp_path / "a", seed=0))
    b = source_split(split_rows(labels, tmp_path / "b", seed=1))
    moved = sum(a[s] != b[s] for s in a)
    assert 0.15 * len(a) < moved < 0.5 * len(a)  # independent 80/20 draws disagree on ~32%


def test_hash_ratios_per_stratum_on_dataset_sizes(tmp_path):
    """DEAM + FoodPics sizes: overall 80/20 within 2 points, each stratum within its binomial 4σ."""
    labels = realistic_labels()
    out = split_rows(labels, tmp_path, seed=0, method="hash")
    summary = json.loads((tmp_path / "split" / "fp0" / "split_summary.json").read_text())
    src = out.drop_duplicates("source_id")
    assert abs((src["split"] == "train").mean() - 0.8) < 0.02
    assert abs((out["split"] == "train").mean() - 0.8) < 0.02
    assert len(summary["strata"]) == 24  # 12 classes × 2 modalities
    for st in summary["strata"]:
        n = st["sources"]
        assert st["train"] + st["test"] == n
        sigma = math.sqrt(0.8 * 0.2 / n)
        assert abs(st["train"] / n - 0.8) <= 4 * sigma + 1 / n, st


def test_default_quota_is_exact_per_stratum(tmp_path):
    labels = realistic_labels(n_songs=600, n_images=400)
    out = split_rows(labels, tmp_path, seed=0)
    summary = json.loads((tmp_path / "split" / "fp0" / "split_summary.json").read_text())
    for st in summary["strata"]:
        assert abs(st["train"] - 0.8 * st["sources"]) <= 1, st
    assert (out.groupby("source_id")["split"].nunique() == 1).all()


def test_three_way_split_names_and_ratios(tmp_path):
    labels = realistic_labels(n_songs=1000, n_images=600)
    out = split_rows(labels, tmp_path, seed=0, ratios=(0.8, 0.1, 0.1))
    frac = out.drop_duplicates("source_id")["split"].value_counts(normalize=True)
    assert set(frac.index) == {"train", "val", "test"}
    assert abs(frac["train"] - 0.8) < 0.03 and abs(frac["val"] - 0.1) < 0.02 and abs(frac["test"] - 0.1) < 0.02


def test_unit_hash_is_uniform_and_keyed():
    u = np.array([unit_hash(0, f"deam:{i}") for i in range(20000)])
    assert ((u >= 0) & (u < 1)).all()
    assert abs(u.mean() - 0.5) < 0.01
    assert np.histogram(u, bins=10, range=(0, 1))[0].min() > 1800  # ~2000 per decile
    assert unit_hash(0, "deam:2") != unit_hash(1, "deam:2")


@pytest.mark.parametrize(("ratios", "names"), [((0.8, 0.3), ()), ((1.0,), ()), ((0.9, -0.1, 0.2), ()),
                                          ((0.5, 0.25, 0.25), ("a", "b")), ((0.8, 0.2), ("x", "x")),
                                          ((0.5, 0.2, 0.2, 0.1), ())])
def test_bad_ratios_are_configuration_errors(ratios, names):
    with pytest.raises(ConfigError):
        split_plan(ratios, names)


def test_unknown_method_is_a_configuration_error(tmp_path):
    with pytest.raises(ConfigError, match="method"):
        split_rows(realistic_labels(n_songs=3, n_images=2), tmp_path, method="random")


def test_duplicate_ids_and_missing_sources_are_rejected(tmp_path):
    labels = realistic_labels(n_songs=5, n_images=3)
    dup = labels.iloc[[0]]
    nosrc = labels.iloc[[1]].assign(sample_id="deam:999:0", source_id=None)
    ctx: StageContext[SplitParams] = StageContext(stage="split", params=Split.Params(), out_root=tmp_path,
                                                  out_dir=tmp_path / "split",
                                                  manifests={"labels": pd.concat([labels, dup, nosrc])})
    out = Split().run(ctx)
    reasons = {(r.sample_id, r.reason) for r in out.rejects}
    assert reasons == {(labels.sample_id[0], "duplicate-id"), ("deam:999:0", "missing-source-id")}
    assert len(out.rows) == len(labels)


def test_pinned_split_keeps_old_sources_and_stratifies_the_new_ones(tmp_path):
    old = realistic_labels(n_songs=400, n_images=300, seed=1)
    first = split_rows(old, tmp_path / "a", seed=3)
    pin = tmp_path / "old_split.parquet"
    first.to_parquet(pin)
    new = realistic_labels(n_songs=500, n_images=400, seed=2, first_song=5000)
    new["sample_id"] = new["sample_id"].str.replace("foodpics:", "foodpics:9", regex=False)
    new["source_id"] = new["source_id"].str.replace("foodpics:", "foodpics:9", regex=False)
    grown = pd.concat([old, new])
    after = split_rows(grown, tmp_path / "b", seed=3, pin=str(pin))
    assert {s: source_split(after)[s] for s in source_split(first)} == source_split(first)
    summary = json.loads((tmp_path / "b" / "split" / "fp0" / "split_summary.json").read_text())
    for st in summary["strata"]:  # old quotas were exact, so the grown strata stay close
        assert abs(st["train"] - 0.8 * st["sources"]) <= 2, st
    # unpinned, the same grown data would move some old sources: the pin is what keeps them
    free = source_split(split_rows(grown, tmp_path / "c", seed=3))
    assert any(free[s] != v for s, v in source_split(first).items())


def test_a_bad_pin_is_a_configuration_error(tmp_path):
    labels = realistic_labels(n_songs=20, n_images=10)
    bad = tmp_path / "bad.parquet"
    pd.DataFrame({"source_id": ["deam:2"], "split": ["holdout"]}).to_parquet(bad)
    with pytest.raises(ConfigError, match="holdout"):
        split_rows(labels, tmp_path / "x", seed=0, pin=str(bad))


def test_sample_level_split_places_items_alone_stratified_by_their_class(tmp_path):
    """group_by = "sample" (the thesis's split, §2.1.5): every chunk is placed on its own, each
    emotion class of each modality is cut 80/20 exactly, and chunks of a song straddle."""
    labels = realistic_labels(n_songs=300, n_images=200)
    out = split_rows(labels, tmp_path, seed=0, group_by="sample")
    assert set(out["source_id"]) == set(labels["source_id"])  # the real source is kept
    per_class = out.groupby(["modality", "emotion"])["split"].agg(lambda s: (s == "train").sum() - 0.8 * len(s))
    assert (per_class.abs() <= 1).all(), per_class
    assert (out.groupby("source_id")["split"].nunique() == 2).sum() > 100  # songs straddle
    summary = json.loads((tmp_path / "split" / "fp0" / "split_summary.json").read_text())
    assert summary["group_by"] == "sample" and sum(summary["sources"].values()) == len(out)
    grouped = split_rows(labels, tmp_path / "g", seed=0)
    assert (grouped.groupby("source_id")["split"].nunique() == 1).all()


def test_unstratified_split_is_exact_per_modality_only(tmp_path):
    """stratify = false: one stratum per modality, so each modality's totals are within one
    source of the ratios while single classes may drift."""
    labels = realistic_labels(n_songs=97, n_images=53)
    out = split_rows(labels, tmp_path, seed=0, ratios=(0.8, 0.1, 0.1), stratify=False)
    src = out.drop_duplicates("source_id")
    for _mod, grp in src.groupby("modality"):
        counts = grp["split"].value_counts()
        for name, r in {"train": 0.8, "val": 0.1, "test": 0.1}.items():
            assert abs(counts.get(name, 0) - r * len(grp)) <= 1, counts.to_dict()
    summary = json.loads((tmp_path / "split" / "fp0" / "split_summary.json").read_text())
    assert {s["emotion"] for s in summary["strata"]} == {"*"}
    assert (out.groupby("source_id")["split"].nunique() == 1).all()
