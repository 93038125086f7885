"""`salient` (seed 004): the window choice against brute-force references, ties, short songs,
silence, and the stage on real files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.recipe import build_params
from emoprep.stages.segments.salient import (
    Salient,
    SalientParams,
    best_window,
    frame_features,
    frame_span,
    most_salient,
    window_means,
    window_starts,
)

SR = 16000  # a low rate (spectral contrast needs > 12.8 kHz): the tests run fast


def section_signal(duration_s: float, loud: tuple[float, float], sr: int = SR, seed: int = 0) -> np.ndarray:
    """Quiet pure tone everywhere; in [loud) a loud, harmonically rich chord over noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(round(duration_s * sr)) / sr
    y = 0.02 * np.sin(2 * np.pi * 220 * t)
    m = (t >= loud[0]) & (t < loud[1])
    rich = sum(np.sin(2 * np.pi * f * k * t[m]) / k for f in (196, 247, 294) for k in range(1, 6))
    y[m] = 0.12 * rich + 0.05 * rng.standard_normal(m.sum())
    return y.astype(np.float32)


def loop_scores(y: np.ndarray, sr: int, window_s: float, hop_s: float, n_fft: int = 2048,
                hop_length: int = 512) -> np.ndarray:
    """Reference 1: the same frame definition, window by window with explicit loops."""
    rms, contrast = frame_features(y, sr, n_fft, hop_length)
    window, hop = round(window_s * sr), round(hop_s * sr)
    scores = []
    for s in range(0, len(y) - window + 1, hop):
        frames = [j for j in range(len(rms)) if s <= j * hop_length < s + window]
        scores.append(np.mean(rms[frames]) * np.mean(contrast[frames]))
    return np.array(scores)


def slice_scores(y: np.ndarray, sr: int, window_s: float, hop_s: float) -> np.ndarray:
    """Reference 2, seed 004 taken literally: librosa on each window's own audio."""
    import librosa

    window, hop = round(window_s * sr), round(hop_s * sr)
    scores = []
    for s in range(0, len(y) - window + 1, hop):
        seg = y[s:s + window]
        scores.append(librosa.feature.rms(y=seg).mean() * librosa.feature.spectral_contrast(y=seg, sr=sr).mean())
    return np.array(scores)


def test_window_arithmetic():
    assert window_starts(100, 30, 10).tolist() == [0, 10, 20, 30, 40, 50, 60, 70]
    assert window_starts(29, 30, 10).tolist() == []
    assert window_starts(30, 30, 10).tolist() == [0]
    # frames centred at 0, 4, 8, ...: window [4, 16) holds frames 1, 2, 3
    lo, hi = frame_span(np.array([4, 5]), 12, 4, 100)
    assert lo.tolist() == [1, 2] and hi.tolist() == [4, 5]
    x = np.arange(10.0)
    assert window_means(x, np.array([0, 3]), np.array([2, 6])).tolist() == [0.5, 4.0]


def test_cumulative_sums_match_the_loop_reference():
    y = section_signal(14.0, (6.0, 10.0))
    sal = most_salient(y, SR, window_s=4.0, hop_s=0.5)
    np.testing.assert_allclose(sal.scores, loop_scores(y, SR, 4.0, 0.5), rtol=1e-12)


@pytest.mark.parametrize("loud", [(0.0, 4.0), (5.0, 9.0), (10.0, 14.0), (6.5, 10.5)])
def test_choice_matches_brute_force_on_a_known_loud_rich_section(loud):
    y = section_signal(14.0, loud, seed=int(loud[0] * 10))
    sal = most_salient(y, SR, window_s=4.0, hop_s=0.5)
    assert sal.start / SR == pytest.approx(loud[0])      # the section itself
    assert sal.index == int(np.argmax(loop_scores(y, SR, 4.0, 0.5)))
    assert sal.index == int(np.argmax(slice_scores(y, SR, 4.0, 0.5)))


def test_score_is_the_product_of_means_and_prefers_loud_and_rich():
    # loud but poor (a pure tone) vs. less loud but rich: the product decides
    sr, t = SR, np.arange(12 * SR) / SR
    y = np.where(t < 6, 0.3 * np.sin(2 * np.pi * 440 * t), 0.0)
    rng = np.random.default_rng(1)
    rich = 0.25 * sum(np.sin(2 * np.pi * 150 * k * t) / k for k in range(1, 12)) + 0.02 * rng.standard_normal(len(t))
    y = np.where(t >= 6, rich, y).astype(np.float32)
    sal = most_salient(y, sr, window_s=6.0, hop_s=1.0)
    assert sal.score == pytest.approx(sal.rms_mean * sal.contrast_mean)
    ref = loop_scores(y, sr, 6.0, 1.0)
    assert sal.index == int(np.argmax(ref))


def test_ties_go_to_the_earliest_window():
    assert best_window(np.array([1.0, 3.0, 3.0, 2.0])) == 1
    assert best_window(np.array([1.0, 3.0 * (1 - 1e-12), 3.0])) == 1   # equal within the tolerance
    assert best_window(np.array([1.0, 2.9, 3.0])) == 2
    # a steady tone: the inner windows score the same up to cumulative-sum rounding (the
    # first and last lose a little to the zero padding of centred edge frames) → the
    # earliest inner window, whatever the rounding says
    t = np.arange(20 * SR) / SR
    y = (0.3 * np.sin(2 * np.pi * 250 * t)).astype(np.float32)
    sal = most_salient(y, SR, window_s=5.0, hop_s=1.0)
    inner = sal.scores[1:-1]
    assert np.ptp(inner) < 1e-9 * sal.score              # rounding differences at most
    assert sal.scores[0] < inner.min() and sal.index == 1


def test_a_song_shorter_than_the_window_is_taken_whole():
    y = section_signal(3.0, (1.0, 2.0))
    sal = most_salient(y, SR, window_s=4.0, hop_s=0.5)
    assert sal.index == -1 and sal.start == 0 and len(sal.scores) == 1
    rms, contrast = frame_features(y, SR)
    assert sal.score == pytest.approx(rms.mean() * contrast.mean())


# ---- the stage on files ------------------------------------------------------------------
def _tree(tmp_path: Path) -> tuple[Path, pd.DataFrame]:
    root = tmp_path / "data"
    (root / "audio").mkdir(parents=True)
    songs = {"a": section_signal(40.0, (22.0, 34.0), sr=22050, seed=1),
             "b": section_signal(20.0, (5.0, 9.0), sr=22050, seed=2),
             "silent": np.zeros(22050 * 35, np.float32)}
    for name, y in songs.items():
        sf.write(root / "audio" / f"{name}.flac", np.stack([y, y], axis=1), 22050, subtype="PCM_24")
    (root / "audio" / "junk.flac").write_bytes(b"not audio at all" * 10)
    ids = ["a", "b", "silent", "junk"]
    df = pd.DataFrame({"sample_id": [f"deam:{i}" for i in ids], "source_id": [f"deam:{i}" for i in ids],
                       "modality": [1] * 4, "audio_path": [f"audio/{i}.flac" for i in ids],
                       "static_valence_raw": [6.0, 3.0, 5.0, 5.0], "static_arousal_raw": [7.0, 2.0, 5.0, 5.0]})
    return root, df


def _run(tmp_path: Path, root: Path, df: pd.DataFrame, **params):
    params = build_params(Salient.Params, {"window_s": 10.0, **params}, "salient")
    out_dir = tmp_path / "out" / "salient" / "fp"
    ctx: StageContext[SalientParams] = StageContext(
        stage="salient", params=params, out_root=tmp_path / "out", out_dir=out_dir,
        manifests={"deam": df}, roots={"deam": root})
    stage = Salient()
    outcomes = {it.key: stage.process(it, ctx.item_context()) for it in stage.plan(ctx)}
    return ctx, outcomes


def test_stage_keeps_the_loud_section_as_audio_and_accounts_for_every_song(tmp_path):
    root, df = _tree(tmp_path)
    ctx, out = _run(tmp_path, root, df)
    assert set(out) == {"deam:a", "deam:b", "deam:silent", "deam:junk"}
    assert [r.reason for r in out["deam:silent"].rejects] == ["silent-audio"]
    assert [r.reason for r in out["deam:junk"].rejects] == ["unreadable-audio"]
    row = out["deam:a"].rows[0]
    assert 22.0 <= row["start_s"] <= 24.0 and row["end_s"] == row["start_s"] + 10.0 and row["padded_s"] == 0
    assert row["valence_raw"] == 6.0 and row["arousal_raw"] == 7.0 and row["n_windows"] == 31
    audio, sr = sf.read(ctx.out_root / row["path"], dtype="float32")
    assert sr == 44100 and len(audio) == 441000
    # the kept audio is the song's loud part: its RMS is the loud section's
    assert np.sqrt(np.mean(audio ** 2)) > 5 * np.sqrt(np.mean(section_signal(40.0, (0, 0), 22050) ** 2))


def test_short_policy_pad_or_reject(tmp_path):
    root, df = _tree(tmp_path)
    _, out = _run(tmp_path, root, df, window_s=30.0)
    row = out["deam:b"].rows[0]   # 20 s song, 30 s window: whole song + 10 s of zeros
    assert row["start_s"] == 0.0 and row["end_s"] == pytest.approx(20.0) and row["padded_s"] == pytest.approx(10.0)
    audio, _ = sf.read(tmp_path / "out" / row["path"], dtype="float32")
    assert len(audio) == 30 * 44100 and not np.any(audio[20 * 44100 + 10:])
    _, out = _run(tmp_path, root, df, window_s=30.0, short_policy="reject")
    assert [r.reason for r in out["deam:b"].rejects] == ["shorter-than-window"]
    assert out["deam:a"].rows  # 40 s: kept


def test_stage_output_is_deterministic(tmp_path):
    root, df = _tree(tmp_path)
    _, out1 = _run(tmp_path / "1", root, df)
    _, out2 = _run(tmp_path / "2", root, df)
    b1 = (tmp_path / "1" / "out" / out1["deam:a"].rows[0]["path"]).read_bytes()
    b2 = (tmp_path / "2" / "out" / out2["deam:a"].rows[0]["path"]).read_bytes()
    assert b1 == b2


def test_bad_parameters_are_configuration_errors(tmp_path):
    root, df = _tree(tmp_path)
    with pytest.raises(ConfigError, match="hop_s"):
        _run(tmp_path, root, df, hop_s=20.0)
