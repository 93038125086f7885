"""Normalisation to [-1, 1] per modality and the thesis's emotion classes (eq. 2.1)."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from emoprep.manifests.columns import EMOTIONS
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.recipe import build_params
from emoprep.stages.labels import Labels, emotion_class, minmax_to_unit


@pytest.mark.parametrize(("v", "a", "expected"), [
    (0.5, 0.5, "excited"),        # slope 1
    (0.5, 0.33, "delighted"),     # slope 0.66 is in (0.33, 0.66]
    (0.5, 0.1, "happy"),          # 0.2
    (0.5, 0.0, "content"),        # 0 is in (-0.33, 0]
    (0.5, -0.2, "relaxed"),       # -0.4
    (0.5, -0.5, "calm"),          # -1
    (-0.5, -0.5, "tired"),        # slope 1 with negative valence
    (-0.5, -0.25, "bored"),       # 0.5
    (-0.5, -0.1, "depressed"),    # 0.2
    (-0.5, 0.1, "frustrated"),    # -0.2
    (-0.5, 0.25, "angry"),        # -0.5
    (-0.5, 0.5, "tense"),         # -1
])
def test_slope_bands(v, a, expected):
    assert emotion_class(v, a) == expected


def test_zero_valence_is_the_limit_from_negative_valence():
    # v = 0 is on the "valence <= 0" side; the class must equal the one just left of it.
    for a in (0.9, 0.2, -0.2, -0.9, 0.0):
        assert emotion_class(0.0, a) == emotion_class(-1e-12, a)
    assert emotion_class(0.0, 0.5) == "tense"
    assert emotion_class(0.0, -0.5) == "tired"
    assert emotion_class(0.0, 0.0) == "frustrated"
    with pytest.raises(ValueError, match="finite valence and arousal"):
        emotion_class(math.nan, 0.1)


def test_every_class_is_reachable():
    import numpy as np
    grid = np.linspace(-1, 1, 41)
    assert {emotion_class(v, a) for v in grid for a in grid} == set(EMOTIONS)


def test_minmax():
    assert minmax_to_unit(1, 1, 9) == -1 and minmax_to_unit(9, 1, 9) == 1 and minmax_to_unit(5, 1, 9) == 0
    assert minmax_to_unit(3, 3, 3) == 0.0


def _ctx(tmp_path: Path, params, manifests):
    return StageContext(stage="labels", params=params, out_root=tmp_path, out_dir=tmp_path / "labels" / "fp",
                        manifests=manifests)


def test_labels_stage_normalises_per_modality_and_accounts_for_every_row(tmp_path):
    audio = pd.DataFrame({
        "sample_id": ["deam:2:0", "deam:2:1", "deam:3:0", "deam:3:1"], "source_id": ["deam:2"] * 2 + ["deam:3"] * 2,
        "modality": [1] * 4, "start_s": [15.0, 20.0, 15.0, 20.0], "end_s": [20.0, 25.0, 20.0, 25.0],
        "valence_raw": [-0.4, 0.2, 0.6, float("nan")], "arousal_raw": [0.1, -0.3, 0.5, 0.0]})
    images = pd.DataFrame({
        "sample_id": ["foodpics:1", "foodpics:2", "foodpics:3"],
        "source_id": ["foodpics:1", "foodpics:2", "foodpics:3"],
        "modality": [0] * 3, "valence_raw": [20.0, 60.0, 80.0], "arousal_raw": [10.0, 50.0, 30.0]})
    params = build_params(Labels.Params, {"sources": ["chunks", "foodpics"]}, "labels")
    (tmp_path / "labels" / "fp").mkdir(parents=True)
    out = Labels().run(_ctx(tmp_path, params, {"chunks": audio, "foodpics": images}))
    assert len(out.rows) + len(out.rejects) == 7
    assert [(r.sample_id, r.reason) for r in out.rejects] == [("deam:3:1", "missing-va")]
    rows = {r["sample_id"]: r for r in out.rows}
    # audio valence over the kept audio rows: min -0.4, max 0.6
    assert rows["deam:2:0"]["valence"] == pytest.approx(-1.0)
    assert rows["deam:3:0"]["valence"] == pytest.approx(1.0)
    assert rows["deam:2:1"]["valence"] == pytest.approx(2 * (0.2 + 0.4) / 1.0 - 1)
    # images are normalised on their own bounds
    assert rows["foodpics:1"]["valence"] == pytest.approx(-1.0) and rows["foodpics:3"]["valence"] == pytest.approx(1.0)
    assert rows["foodpics:2"]["arousal"] == pytest.approx(1.0)
    assert all(-1 <= r["valence"] <= 1 and -1 <= r["arousal"] <= 1 for r in out.rows)
    assert rows["foodpics:2"]["valence_raw"] == 60.0 and rows["foodpics:2"]["valence_min"] == 20.0
    for r in out.rows:
        assert r["emotion"] == emotion_class(r["valence"], r["arousal"])
    bounds = json.loads((tmp_path / "labels" / "fp" / "normalisation.json").read_text())["bounds"]
    assert bounds["1"]["valence"] == [-0.4, 0.6] and bounds["0"]["arousal"] == [10.0, 50.0]


def test_fixed_scale_rejects_out_of_range_and_needs_declared_scales(tmp_path):
    clips = pd.DataFrame({"sample_id": ["deam:2", "deam:3"], "source_id": ["deam:2", "deam:3"], "modality": [1, 1],
                          "valence_raw": [5.0, 9.5], "arousal_raw": [1.0, 3.0]})
    (tmp_path / "labels" / "fp").mkdir(parents=True)
    params = build_params(Labels.Params, {"sources": ["clips"], "method": "fixed",
                                          "scales": {"clips": [1, 9]}}, "labels")
    out = Labels().run(_ctx(tmp_path, params, {"clips": clips}))
    assert [r["valence"] for r in out.rows] == [0.0] and out.rows[0]["arousal"] == -1.0
    assert [(r.sample_id, r.reason) for r in out.rejects] == [("deam:3", "va-out-of-range")]
    with pytest.raises(ConfigError, match=r"labels\.scales"):
        Labels().run(_ctx(tmp_path, build_params(Labels.Params, {"sources": ["clips"], "method": "fixed"}, "labels"),
                          {"clips": clips}))
