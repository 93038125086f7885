"""The synthetic DEAM trees: real layout, every quirk present, music that follows its labels,
byte-determinism, and the DEAM-scale id set and durations."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from bench.trees.deam_scale_tree import REAL_MONO_IDS, scale_specs, write_deam_scale_tree
from emoprep.stages.demo.deam import write_deam_demo
from emoprep.stages.demo.deam_files import DYNAMIC_DIR, SONG_LEVEL, STATIC_1, STATIC_2
from tests.helpers.deam import demo_tree, ingest


@pytest.fixture(scope="session")
def deam_demo(tmp_path_factory):
    """(root, truth) of the demo DEAM tree (the DEAM tests' copy, written once per session)."""
    return demo_tree(tmp_path_factory)


def _files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_demo_is_byte_deterministic(deam_demo, tmp_path):
    root, _ = deam_demo
    write_deam_demo(tmp_path / "again", seed=0)
    a, b = _files(root), _files(tmp_path / "again")
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_demo_has_the_real_layout_and_csv_quirks(deam_demo):
    root, _ = deam_demo
    s1 = (root / SONG_LEVEL / STATIC_1).read_bytes()
    s2 = (root / SONG_LEVEL / STATIC_2).read_bytes().decode()
    assert s1.startswith(b"song_id, valence_mean, valence_std, arousal_mean, arousal_std\r\n")
    assert s1.count(b"\r\n") == s1.count(b"\n")  # CRLF throughout
    header, first = s2.splitlines()[:2]
    assert "valence_ max_mean" in header and len(header.split(",")) == 13
    assert first.startswith(" ") and len(first.split(",")) == 13  # space-padded fixed width
    val = (root / DYNAMIC_DIR / "valence.csv").read_text().splitlines()
    aro = (root / DYNAMIC_DIR / "arousal.csv").read_text().splitlines()
    assert val[0].startswith("song_id,sample_15000ms,sample_15500ms,")
    width = len(val[0].split(","))
    assert any(len(ln.split(",")) < width for ln in val[1:])           # ragged rows
    assert all(len(ln.split(",")) == width for ln in aro)               # explicit empty cells
    assert any(ln.endswith(",,") for ln in aro[1:])
    heads = [(root / "metadata" / f"metadata_{y}.csv").read_text().split(",", 1)[0] for y in (2013, 2014, 2015)]
    assert heads == ["song_id", "Id", "id"]
    m14 = (root / "metadata" / "metadata_2014.csv").read_text()
    assert "\t" in m14 and max(len(r.split(",")) for r in m14.splitlines()) > 5


def test_demo_audio_matches_its_truth_and_covers_the_quirks(deam_demo):
    root, truth = deam_demo
    songs = truth["songs"]
    q = truth["quirks"]
    on_disk = {int(p.stem) for p in (root / "MEMD_audio").glob("*.mp3")}
    assert on_disk == {i for i, s in songs.items() if s["audio"]}
    rates, channels = set(), set()
    for sid, s in songs.items():
        if not s["audio"] or s["corrupt"]:
            continue
        info = sf.info(root / "MEMD_audio" / f"{sid}.mp3")
        assert (info.samplerate, info.channels) == (s["sample_rate"], s["channels"])
        assert abs(info.duration - s["duration_s"]) < 1e-3
        rates.add(info.samplerate)
        channels.add(info.channels)
        lo, hi = (44.6, 45.62) if s["kind"] == "excerpt" else (60, 130)
        assert lo <= s["duration_s"] <= hi
    assert rates == {44100, 48000, 22050, 16000} and channels == {1, 2}
    assert any(s["duration_s"] < 45 for s in songs.values() if s["kind"] == "excerpt" and s["audio"])
    assert any(s["duration_s"] > 45 for s in songs.values() if s["kind"] == "excerpt")
    assert sum(s["kind"] == "full" for s in songs.values()) in (2, 3)
    with pytest.raises(sf.LibsndfileError):
        sf.info(root / "MEMD_audio" / f"{q['corrupt_audio_ids'][0]}.mp3")
    # each audit block has power: ≥ 6 songs with static and dynamic annotations
    annotated = [i for i, s in songs.items() if s["static"] and s["dynamic"]]
    assert sum(i <= 1000 for i in annotated) >= 6 and sum(1000 < i <= 2000 for i in annotated) >= 6
    assert q["static_crossed_ids"] == sorted(i for i in songs if i <= 1000)


def test_crossed_block_is_in_the_static_file(deam_demo):
    import io

    import pandas as pd

    root, truth = deam_demo
    data = (root / SONG_LEVEL / STATIC_1).read_bytes()
    df = pd.read_csv(io.BytesIO(data), skipinitialspace=True).set_index("song_id")
    for sid, s in truth["songs"].items():
        if sid in df.index:
            want = (s["arousal"], s["valence"]) if s["static_crossed"] else (s["valence"], s["arousal"])
            assert (df.loc[sid, "valence_mean"], df.loc[sid, "arousal_mean"]) == pytest.approx(want)


def test_demo_music_follows_its_labels(deam_demo):
    """Brightness and tempo rise with arousal; the mode is major for valence ≥ 5."""
    import librosa
    from scipy.stats import spearmanr

    root, truth = deam_demo
    major = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
    minor = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
    rows = []
    for sid, s in truth["songs"].items():
        if s["kind"] != "excerpt" or not s["audio"] or s["corrupt"] or not s["static"]:
            continue
        y, sr = sf.read(root / "MEMD_audio" / f"{sid}.mp3", dtype="float32", always_2d=True)
        y = librosa.resample(y.mean(axis=1)[: 20 * sr], orig_sr=sr, target_sr=22050)
        centroid = librosa.feature.spectral_centroid(y=y, sr=22050).mean()
        tempo = float(np.atleast_1d(librosa.feature.tempo(y=y, sr=22050))[0])
        chroma = librosa.feature.chroma_stft(y=y, sr=22050).mean(axis=1)
        key = [max(np.corrcoef(chroma, np.roll(p, k))[0, 1] for k in range(12)) for p in (major, minor)]
        rows.append((s["valence"], s["arousal"], centroid, tempo, key[0] > key[1]))
    v, a, centroids, tempos, is_major = map(np.array, zip(*rows, strict=True))
    assert spearmanr(a, centroids)[0] > 0.8
    assert spearmanr(a, tempos)[0] > 0.8
    assert np.mean(is_major == (v >= 5)) >= 0.8


def test_scale_specs_have_the_real_id_set_durations_and_rates():
    specs = scale_specs(seed=0)
    ids = [s.song_id for s in specs]
    assert len(ids) == len(set(ids)) == 1802
    assert sum(2 <= i <= 1000 for i in ids) == 744
    assert set(range(1001, 2059)) <= set(ids)
    ex = [s.duration_s for s in specs if s.song_id <= 2000]
    full = [s.duration_s for s in specs if s.song_id > 2000]
    assert min(ex) == 44.643 and max(ex) == 45.605 and len(ex) == 1744
    assert min(full) == 49.563 and max(full) == 628.616 and len(full) == 58
    rates = [s.sample_rate for s in specs]
    assert (rates.count(48000), rates.count(22050), rates.count(16000)) == (20, 3, 1)
    assert {s.song_id for s in specs if s.channels == 1} >= set(REAL_MONO_IDS)
    assert {s.song_id for s in scale_specs(seed=0, stereo=True) if s.channels == 1} == set(REAL_MONO_IDS)


def test_scale_tree_copies_and_ingests(tmp_path):
    info = write_deam_scale_tree(tmp_path / "t", n_scale=2, only_ids=[2, 3, 1024, 2017], workers=1)
    assert info["n_songs"] == 8
    run = ingest(tmp_path / "t", tmp_path / "out")
    assert sorted(run.rows["song_id"]) == [2, 3, 1024, 2017, 10002, 10003, 11024, 12017]
    rows = run.rows.set_index("song_id")
    assert rows.loc[[2, 10002], "content_hash"].nunique() == 1  # copies reuse the audio
    assert rows.loc[1024, "sample_rate"] == 16000 and rows.loc[2017, "duration_s"] == pytest.approx(49.563, abs=1e-3)
    assert rows.loc[2017, "dyn_n_frames"] == int((49.563 - 0.2 - 15) / 0.5) + 1
