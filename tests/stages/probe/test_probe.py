"""The probe's acceptance: a planted signal is found on its layer and nowhere else, permuted
labels and random features score nothing, songs never straddle a fold or the test split, the
same seed gives the same bytes, and an up-to-date probe is reused."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from emoprep.pipeline.errors import DataError
from emoprep.stages.probe import protocol, step
from emoprep.stages.probe.schema import probe_problems
from emoprep.stages.probe.synthetic import chunk_items, planted_layers, write_pooled_store
from tests.stages.probe.conftest import SIGNAL_LAYER

VA = ["valence", "arousal"]


def item_r2(table: pd.DataFrame, model: str, layer: str | None = None) -> pd.Series:
    sel = (table["level"] == "item") & (table["model"] == model) & table["target"].isin(VA)
    if layer is not None:
        sel &= table["layer"] == layer
    return table.loc[sel, "r2"]


def test_planted_signal_found_on_its_layer_only(planted, tmp_path):
    folder, _ = planted
    result = step.probe(folder, dest=tmp_path / "probe")
    table = result.table()
    assert not probe_problems(result.doc)
    assert sorted(set(table["layer"].dropna())) == ["0", "1", "2", "3"]
    for layer in ("0", "1", "2", "3"):
        r2 = item_r2(table, "ridge", layer)
        assert len(r2) == 2
        if layer == str(SIGNAL_LAYER):
            assert (r2 >= 0.9).all(), r2
        else:
            assert (r2 <= 0.1).all(), r2
    random = item_r2(table, "random-features")
    assert len(random) == 2 and (random <= 0.05).all(), random
    mean = item_r2(table, "mean")
    assert len(mean) == 2 and (mean <= 0.05).all()
    # chunks of a song: song-level records too, each with a CI around its estimate
    song = table[(table["level"] == "song") & (table["model"] == "ridge") & (table["layer"] == str(SIGNAL_LAYER))]
    assert len(song) == 2 and (song["r2"] >= 0.9).all()
    for _, rec in table[(table["model"] == "ridge") & table["r2"].notna()].iterrows():
        lo, hi = rec["r2_ci95"]
        assert lo <= rec["r2"] <= hi


def test_labels_permuted_across_songs_score_nothing(tmp_path):
    items = chunk_items(n_songs=60, chunks=4, seed=1)
    hidden = planted_layers(items, 2, 32, 1, seed=2)   # features follow the true labels ...
    songs = items["source_id"].unique()
    rng = np.random.default_rng(7)
    song_va = items.groupby("source_id")[VA].mean()
    moved = dict(zip(songs, rng.permutation(songs), strict=True))
    permuted = items.copy()
    permuted[VA] = song_va.loc[[moved[s] for s in items["source_id"]]].to_numpy()  # ... the labels of other songs
    folder = write_pooled_store(tmp_path / "store", permuted, hidden)
    table = step.probe(folder, dest=tmp_path / "probe").table()
    assert (item_r2(table, "ridge", "1") <= 0.05).all(), table


def test_folds_used_never_split_a_song(planted, tmp_path, monkeypatch):
    folder, _ = planted
    used = []
    real = protocol.fit_targets

    def spy(x, items, plan, targets, grid, seed):
        used.append((items, plan))
        return real(x, items, plan, targets, grid, seed)

    monkeypatch.setattr(protocol, "fit_targets", spy)
    step.probe(folder, dest=tmp_path / "probe", folds=4)
    assert used
    for items, plan in used:
        songs = items["source_id"].to_numpy()
        assert not set(songs[plan.train]) & set(songs[plan.test])
        assert len(plan.folds) == 4
        for fit_rows, val_rows in plan.folds:
            assert not set(songs[fit_rows]) & set(songs[val_rows])
            assert sorted([*fit_rows, *val_rows]) == sorted(plan.train)
        held_out = np.concatenate([v for _, v in plan.folds])
        assert sorted(held_out) == sorted(plan.train)   # each train item validated exactly once


def test_chunk_straddling_split_is_refused(tmp_path):
    items = chunk_items(n_songs=20, chunks=3, seed=1)
    items.loc[items["sample_id"] == "deam:2:0", "split"] = "test"   # one chunk of a train song in test
    folder = write_pooled_store(tmp_path / "store", items, planted_layers(items, 1, 8, 0))
    with pytest.raises(DataError, match="train and in test"):
        step.probe(folder, dest=tmp_path / "probe")


def test_same_seed_same_bytes_and_up_to_date(planted, tmp_path):
    folder, _ = planted
    a = step.probe(folder, dest=tmp_path / "a", target="both", seed=3)
    b = step.probe(folder, dest=tmp_path / "b", target="both", seed=3)
    assert a.path.read_bytes() == b.path.read_bytes()
    assert (a.path.parent / "probe.png").read_bytes() == (b.path.parent / "probe.png").read_bytes()
    other = step.probe(folder, dest=tmp_path / "a", target="both", seed=4)
    assert other.key != a.key and other.path.read_bytes() != a.path.read_bytes()
    before = a.path.stat().st_mtime_ns
    again = step.probe(folder, dest=tmp_path / "a", target="both", seed=3)
    assert again.up_to_date and again.key == a.key and a.path.stat().st_mtime_ns == before
    assert json.loads(a.path.read_text())["results"] == again.records


def test_a_changed_store_is_probed_again(tmp_path):
    items = chunk_items(n_songs=20, chunks=2, seed=1)
    hidden = planted_layers(items, 1, 8, 0)
    folder = write_pooled_store(tmp_path / "store", items, hidden)
    first = step.probe(folder, dest=tmp_path / "probe", folds=3)
    relabelled = items.assign(valence=-items["valence"])
    write_pooled_store(folder, relabelled, hidden)
    second = step.probe(folder, dest=tmp_path / "probe", folds=3)
    assert not second.up_to_date and second.key != first.key


def test_emotion_target_scores_classes(planted, tmp_path):
    folder, _ = planted
    table = step.probe(folder, dest=tmp_path / "probe", target="emotion").table()
    emo = table[(table["level"] == "item") & (table["model"] == "ridge")]
    assert set(emo["target"]) == {"emotion"} and emo["r2"].isna().all()
    # the quadrant classes are a function of VA: the signal layer separates them, noise does not
    f1 = emo.set_index("layer")["f1_macro"]
    assert f1[str(SIGNAL_LAYER)] >= 0.8 and f1.drop(str(SIGNAL_LAYER)).max() < 0.5


def test_mlp_finds_the_planted_layer(tmp_path):
    items = chunk_items(n_songs=40, chunks=3, seed=1)
    folder = write_pooled_store(tmp_path / "store", items, planted_layers(items, 2, 16, 1, seed=2))
    a = step.probe(folder, dest=tmp_path / "a", model="mlp", folds=3)
    table = a.table()
    assert set(table["model"]) == {"mlp", "mean", "random-features"}
    assert (item_r2(table, "mlp", "1") >= 0.8).all(), table
    assert (item_r2(table, "mlp", "0") <= 0.1).all(), table
    assert step.probe(folder, dest=tmp_path / "b", model="mlp", folds=3).path.read_bytes() == a.path.read_bytes()
