"""`features` (seed 003): every value equals librosa's own function called on the same audio;
named columns; the stage over raw songs and output clips; the merged DEAM + PMEmo scale."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from emoprep.pipeline.assemble import finish_manifest
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.recipe import build_params
from emoprep.stages.features import (
    FRAME_FEATURES,
    Features,
    FeaturesParams,
    clip_features,
    column_names,
    default_dims,
)
from emoprep.stages.labels import Labels, LabelsParams

SR = 22050


def music(duration_s: float = 6.0, seed: int = 0) -> np.ndarray:
    """A few notes with harmonics, a beat and a little noise: every feature has something."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(duration_s * SR)) / SR
    notes = 220 * 2 ** (np.array([0, 4, 7, 12]) / 12)
    f = notes[(t * 2).astype(int) % 4]
    y = sum(np.sin(2 * np.pi * f * k * t) / k for k in range(1, 5)) * 0.2
    y += 0.3 * (np.mod(t, 0.5) < 0.03) * rng.standard_normal(len(t)) + 0.01 * rng.standard_normal(len(t))
    return np.asarray(y, dtype=np.float32)


def direct_librosa(y: np.ndarray, sr: int = SR) -> tuple[dict[str, np.ndarray], float]:
    """The reference: each librosa function called on its own with its defaults."""
    import librosa

    f = librosa.feature
    feats = {"mfcc": f.mfcc(y=y, sr=sr, n_mfcc=20), "chroma_stft": f.chroma_stft(y=y, sr=sr),
             "chroma_cqt": f.chroma_cqt(y=y, sr=sr), "chroma_cens": f.chroma_cens(y=y, sr=sr),
             "spectral_contrast": f.spectral_contrast(y=y, sr=sr),
             "spectral_centroid": f.spectral_centroid(y=y, sr=sr),
             "spectral_bandwidth": f.spectral_bandwidth(y=y, sr=sr),
             "spectral_rolloff": f.spectral_rolloff(y=y, sr=sr),
             "zcr": f.zero_crossing_rate(y), "rms": f.rms(y=y), "tonnetz": f.tonnetz(y=y, sr=sr)}
    return feats, float(f.tempo(y=y, sr=sr)[0])


def test_values_equal_direct_librosa_calls():
    y = music()
    row, n_frames = clip_features(y, SR)
    ref, tempo = direct_librosa(y)
    assert n_frames == ref["rms"].shape[1]
    for name, m in ref.items():
        for i in range(m.shape[0]):
            key = f"{name}_{i + 1:02d}" if m.shape[0] > 1 else name
            assert row[f"{key}_mean"] == pytest.approx(float(m[i].mean()), rel=1e-6, abs=1e-9), key
            assert row[f"{key}_std"] == pytest.approx(float(m[i].std()), rel=1e-6, abs=1e-9), key
    assert row["tempo"] == pytest.approx(tempo)


def test_column_names_and_count():
    cols = column_names(default_dims())
    assert len(cols) == 2 * (20 + 12 * 3 + 7 + 1 + 1 + 1 + 1 + 1 + 6) + 1 == 149
    assert cols[:3] == ["mfcc_01_mean", "mfcc_01_std", "mfcc_02_mean"]
    assert {"chroma_cens_12_std", "spectral_contrast_07_mean", "spectral_centroid_mean", "zcr_std",
            "rms_mean", "tonnetz_06_std", "tempo"} <= set(cols)
    assert list(clip_features(music(3.0), SR)[0]) == cols
    assert [c for c in cols if c.startswith("mfcc_")][-1] == "mfcc_20_std"
    assert all(any(c.startswith(f) for c in cols) for f in FRAME_FEATURES)


def _ctx(tmp_path: Path, manifests: dict[str, pd.DataFrame], roots: dict[str, Path],
         **params: object) -> StageContext[FeaturesParams]:
    p = build_params(Features.Params, {"sources": list(manifests), **params}, "features")
    return StageContext(stage="features", params=p, out_root=tmp_path / "out",
                        out_dir=tmp_path / "out" / "features" / "fp", manifests=manifests, roots=roots)


def test_stage_reads_raw_songs_and_output_clips_alike(tmp_path):
    root = tmp_path / "pm"
    (root / "chorus").mkdir(parents=True)
    y = music(4.0, seed=3)
    sf.write(root / "chorus" / "7.wav", np.stack([y, y], 1), SR, subtype="FLOAT")
    (root / "chorus" / "8.wav").write_bytes(b"")
    sf.write(root / "chorus" / "9.wav", y[:1000], SR, subtype="FLOAT")
    pm = pd.DataFrame({"sample_id": ["pmemo:7", "pmemo:8", "pmemo:9"], "source_id": ["pmemo:7", "pmemo:8", "pmemo:9"],
                       "modality": 1, "audio_path": ["chorus/7.wav", "chorus/8.wav", "chorus/9.wav"],
                       "static_valence_raw": [0.25, 0.5, 0.5], "static_arousal_raw": [0.75, 0.5, 0.5]})
    out = tmp_path / "out" / "clips" / "fp"
    out.mkdir(parents=True)
    np.save(out / "c.npy", y, allow_pickle=False)
    clips = pd.DataFrame({"sample_id": ["deam:3"], "source_id": ["deam:3"], "modality": [1],
                          "path": ["clips/fp/c.npy"], "sample_rate": [SR], "valence_raw": [6.5], "arousal_raw": [2.0]})
    ctx = _ctx(tmp_path, {"pmemo": pm, "clips": clips}, {"pmemo": root})
    stage = Features()
    res = {it.key: stage.process(it, ctx.item_context()) for it in stage.plan(ctx)}
    assert [r.reason for r in res["pmemo:8"].rejects] == ["empty-audio"]
    assert [r.reason for r in res["pmemo:9"].rejects] == ["shorter-than-window"]
    a, b = res["pmemo:7"].rows[0], res["deam:3"].rows[0]
    assert (a["dataset"], a["valence_raw"], a["arousal_raw"]) == ("pmemo", 0.25, 0.75)
    assert (b["dataset"], b["valence_raw"], b["arousal_raw"]) == ("deam", 6.5, 2.0)
    # the stereo raw file (channel mean of two equal channels) and the mono clip are one signal
    ref, _ = clip_features(y, SR)
    for key in ("mfcc_01_mean", "chroma_cqt_03_std", "tempo", "rms_mean"):
        assert a[key] == pytest.approx(ref[key], rel=1e-5) and b[key] == pytest.approx(ref[key], rel=1e-5)
    df, _ = finish_manifest(stage, ctx, pd.DataFrame([a, b]), [])
    assert list(df.columns[:9]) == ["sample_id", "source_id", "modality", "dataset", "duration_s",
                                    "sample_rate", "n_frames", "valence_raw", "arousal_raw"]
    assert list(df.columns[9:9 + 149]) == column_names(default_dims())


def test_stage_reads_segment_views_as_the_samples_they_name(tmp_path):
    """A `clips`/`chunks` row without a file is cut from its song: offset, length, zero pad."""
    root = tmp_path / "deam"
    root.mkdir()
    y = music(4.0, seed=5)
    sf.write(root / "3.wav", y, SR, subtype="FLOAT")
    view = {"source_id": "deam:3", "modality": 1, "path": None, "audio_root": "deam", "audio_path": "3.wav",
            "sample_rate": SR, "valence_raw": 6.5, "arousal_raw": 2.0}
    chunks = pd.DataFrame([{**view, "sample_id": "deam:3:0", "offset_samples": SR, "n_audio": 2 * SR,
                            "n_samples": 2 * SR},
                           {**view, "sample_id": "deam:3:1", "offset_samples": 3 * SR, "n_audio": SR,
                            "n_samples": 2 * SR}])
    ctx = _ctx(tmp_path, {"chunks": chunks}, {"deam": root})
    stage = Features()
    res = {it.key: stage.process(it, ctx.item_context()) for it in stage.plan(ctx)}
    padded = np.concatenate([y[3 * SR:4 * SR], np.zeros(SR, np.float32)])
    for key, want in (("deam:3:0", y[SR:3 * SR]), ("deam:3:1", padded)):
        ref, _ = clip_features(want, SR)
        row = res[key].rows[0]
        assert row["duration_s"] == pytest.approx(2.0)
        for name in ("mfcc_01_mean", "chroma_cqt_03_std", "rms_mean"):
            assert row[name] == pytest.approx(ref[name], rel=1e-5), (key, name)
    gone = _ctx(tmp_path, {"chunks": chunks}, {})
    with pytest.raises(ConfigError, match="root"):
        stage.plan(gone)


def test_one_item_from_two_sources_is_a_configuration_error(tmp_path):
    a = pd.DataFrame({"sample_id": ["deam:2"], "source_id": ["deam:2"], "modality": [1], "path": ["x.flac"]})
    ctx = _ctx(tmp_path, {"clips": a, "salient": a}, {})
    with pytest.raises(ConfigError, match="both hold deam:2"):
        Features().plan(ctx)


def test_labels_put_deam_and_pmemo_on_one_scale_and_record_the_mapping(tmp_path):
    feats = pd.DataFrame({"sample_id": ["deam:2", "deam:3", "pmemo:1", "pmemo:4", "pmemo:5"],
                          "source_id": ["deam:2", "deam:3", "pmemo:1", "pmemo:4", "pmemo:5"], "modality": 1,
                          "valence_raw": [1.0, 7.0, 0.5, 1.0, 1.2], "arousal_raw": [9.0, 3.0, 0.25, 0.0, 0.5]})
    params = build_params(Labels.Params, {"sources": ["features"], "method": "fixed",
                                          "scales": {"deam": [1, 9], "pmemo": [0, 1]}}, "labels")
    out_dir = tmp_path / "labels" / "fp"
    out_dir.mkdir(parents=True)
    ctx: StageContext[LabelsParams] = StageContext(stage="labels", params=params, out_root=tmp_path,
                                                   out_dir=out_dir, manifests={"features": feats})
    res = Labels().run(ctx)
    rows = {r["sample_id"]: r for r in res.rows}
    assert (rows["deam:2"]["valence"], rows["deam:2"]["arousal"]) == (-1.0, 1.0)
    assert rows["deam:3"]["valence"] == pytest.approx(0.5) and rows["deam:3"]["arousal"] == pytest.approx(-0.5)
    assert (rows["pmemo:1"]["valence"], rows["pmemo:1"]["arousal"]) == (0.0, -0.5)
    assert (rows["pmemo:4"]["valence_min"], rows["pmemo:4"]["valence_max"]) == (0.0, 1.0)
    assert (rows["deam:3"]["arousal_min"], rows["deam:3"]["arousal_max"]) == (1.0, 9.0)
    assert [(r.sample_id, r.reason) for r in res.rejects] == [("pmemo:5", "va-out-of-range")]
    bounds = json.loads((out_dir / "normalisation.json").read_text())["bounds"]
    assert bounds == {"deam": {"valence": [1.0, 9.0], "arousal": [1.0, 9.0]},
                      "pmemo": {"valence": [0.0, 1.0], "arousal": [0.0, 1.0]}}
    # a source's own scale wins over its rows' dataset scale
    params = build_params(Labels.Params, {"sources": ["features"], "method": "fixed",
                                          "scales": {"features": [0, 10], "pmemo": [0, 1]}}, "labels")
    res = Labels().run(StageContext(stage="labels", params=params, out_root=tmp_path, out_dir=out_dir,
                                    manifests={"features": feats}))
    assert {r["sample_id"]: r["valence"] for r in res.rows}["pmemo:1"] == pytest.approx(-0.9)
