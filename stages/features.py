"""`features`: hand-crafted librosa features, one row per clip (seed 003, Zhang, §2.3).

Seed 003 feeds a random forest with librosa's MFCC, chroma (STFT, CQT, CENS), spectral
contrast / centroid / bandwidth / rolloff, zero-crossing rate, RMS, tonnetz and tempo over
DEAM + PMEmo. Each frame-wise feature is summarised by its mean and (population) standard
deviation over the clip, per dimension; tempo is one number. Columns are named
`<feature>_<dim>_<stat>` with 1-based, zero-padded dimensions (`mfcc_01_mean`,
`chroma_cqt_12_std`, `spectral_contrast_07_mean`) or `<feature>_<stat>` for one-dimensional
ones (`spectral_centroid_mean`, `zcr_std`), plus `tempo`: 149 feature columns with the
defaults. The values equal librosa's own functions called one by one with their defaults on
the same audio (mono, `sample_rate` = librosa's 22,050 Hz); the work they share is done once:
one STFT for the chroma and spectral features, one mel spectrogram for MFCC and the onset
envelope of tempo, one CQT for chroma CQT, chroma CENS and tonnetz.

The stage's manifest IS the feature table (`manifests/features.parquet`): no files per
clip. Rows also carry ids, the dataset, the raw VA on the dataset's scale (`labels` with
`method = "fixed"` and per-dataset scales puts them on one scale) and the clip length.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from emoprep.manifests.columns import ITEM_COLUMNS
from emoprep.manifests.reasons import NON_FINITE_AUDIO, NON_FINITE_FEATURES, SHORTER_THAN_WINDOW
from emoprep.pipeline.columns import ColumnKind
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.lazy import np
from emoprep.pipeline.stage import Outcome, Stage, WorkItem
from emoprep.stages.common.audio_io import AudioError
from emoprep.stages.common.audio_source import audio_payloads, load_mono

# Frame-wise features in column order: name -> number of dimensions (n_mfcc for mfcc).
FRAME_FEATURES = ("mfcc", "chroma_stft", "chroma_cqt", "chroma_cens", "spectral_contrast",
                  "spectral_centroid", "spectral_bandwidth", "spectral_rolloff", "zcr", "rms", "tonnetz")
STATS = ("mean", "std")
ID_KINDS: dict[str, ColumnKind] = {
    **ITEM_COLUMNS, "dataset": "str",
    "duration_s": "float", "sample_rate": "int", "n_frames": "int", "valence_raw": "float",
    "arousal_raw": "float"}


def frame_features(y: np.ndarray, sr: int = 22050, n_mfcc: int = 20, n_fft: int = 2048,
                   hop_length: int = 512) -> tuple[dict[str, np.ndarray], float]:
    """The frame-wise features (each dims × frames) and the tempo (BPM) of mono `y`."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length))
    power = mag ** 2.0
    mel_db = librosa.power_to_db(librosa.feature.melspectrogram(S=power, sr=sr))
    cqt = np.abs(librosa.cqt(y, sr=sr, hop_length=hop_length, n_bins=7 * 36, bins_per_octave=36,
                             tuning=None))  # None: estimated, as chroma_cqt does (cqt defaults to 0)
    chroma_cqt = librosa.feature.chroma_cqt(C=cqt, sr=sr, hop_length=hop_length)
    feats = {
        "mfcc": librosa.feature.mfcc(S=mel_db, n_mfcc=n_mfcc),
        "chroma_stft": librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, hop_length=hop_length),
        "chroma_cqt": chroma_cqt,
        "chroma_cens": librosa.feature.chroma_cens(C=cqt, sr=sr, hop_length=hop_length),
        "spectral_contrast": librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=n_fft, hop_length=hop_length),
        "spectral_centroid": librosa.feature.spectral_centroid(S=mag, sr=sr, n_fft=n_fft, hop_length=hop_length),
        "spectral_bandwidth": librosa.feature.spectral_bandwidth(S=mag, sr=sr, n_fft=n_fft, hop_length=hop_length),
        "spectral_rolloff": librosa.feature.spectral_rolloff(S=mag, sr=sr, n_fft=n_fft, hop_length=hop_length),
        "zcr": librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop_length),
        "rms": librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop_length),
        "tonnetz": librosa.feature.tonnetz(sr=sr, chroma=chroma_cqt),
    }
    onset = librosa.onset.onset_strength(S=mel_db, sr=sr, hop_length=hop_length)
    tempo = float(np.asarray(librosa.feature.tempo(onset_envelope=onset, sr=sr, hop_length=hop_length)).reshape(-1)[0])
    return feats, tempo


def column_names(dims: dict[str, int]) -> list[str]:
    """Feature column names in table order for the given dimensions per feature."""
    cols = [f"{name}_{i + 1:02d}_{stat}" if dims[name] > 1 else f"{name}_{stat}"
            for name in FRAME_FEATURES for i in range(dims[name]) for stat in STATS]
    return [*cols, "tempo"]


def default_dims(n_mfcc: int = 20) -> dict[str, int]:
    """Dimensions of each feature with librosa's defaults (7 contrast bands, 6 tonnetz)."""
    return {"mfcc": n_mfcc, "chroma_stft": 12, "chroma_cqt": 12, "chroma_cens": 12,
            "spectral_contrast": 7, "spectral_centroid": 1, "spectral_bandwidth": 1,
            "spectral_rolloff": 1, "zcr": 1, "rms": 1, "tonnetz": 6}


def summarise(feats: dict[str, np.ndarray], tempo: float) -> dict[str, float]:
    """Mean and population std over frames of every dimension, named, plus tempo."""
    out: dict[str, float] = {}
    for name in FRAME_FEATURES:
        m = np.asarray(feats[name], dtype=np.float64)
        means, stds = m.mean(axis=1), m.std(axis=1)
        for i in range(m.shape[0]):
            key = f"{name}_{i + 1:02d}" if m.shape[0] > 1 else name
            out[f"{key}_mean"], out[f"{key}_std"] = float(means[i]), float(stds[i])
    out["tempo"] = float(tempo)
    return out


def clip_features(y: np.ndarray, sr: int = 22050, n_mfcc: int = 20, n_fft: int = 2048,
                  hop_length: int = 512) -> tuple[dict[str, float], int]:
    """The named feature row of one clip and its number of frames."""
    feats, tempo = frame_features(y, sr, n_mfcc, n_fft, hop_length)
    return summarise(feats, tempo), int(feats["rms"].shape[1])


@dataclass(frozen=True)
class FeaturesParams:
    sources: tuple[str, ...] = ("deam", "pmemo")  # ingest stages (whole songs) or audio stages
    sample_rate: int = 22050
    n_mfcc: int = 20
    n_fft: int = 2048
    hop_length: int = 512


class Features(Stage[FeaturesParams]):
    name = "features"
    version = "2"  # 2: hostile-input hardening of the audio reader
    libraries = ("librosa", "numpy", "scipy", "soundfile", "soxr")
    default_inputs = ("deam", "pmemo")
    description = "librosa MFCC/chroma/spectral/ZCR/RMS/tonnetz mean+std and tempo, one row per clip (seed 003)"
    Params = FeaturesParams

    def inputs(self, params: FeaturesParams) -> list[str]:
        return list(params.sources)

    def columns(self, ctx: StageContext[FeaturesParams]) -> Mapping[str, ColumnKind]:
        """The id columns, then one float column per feature (their number follows n_mfcc)."""
        feature: ColumnKind = "float"
        kinds = dict(ID_KINDS)
        kinds.update(dict.fromkeys(column_names(default_dims(ctx.params.n_mfcc)), feature))
        return kinds

    def plan(self, ctx: StageContext[FeaturesParams]) -> list[WorkItem]:
        return [WorkItem(p["sample_id"], p) for p in audio_payloads(ctx, ctx.params.sources, "features")]

    def process(self, item: WorkItem, ctx: ItemContext[FeaturesParams]) -> Outcome:
        p, q = item.payload, ctx.params
        try:
            dec = load_mono(p, ctx, q.sample_rate)
        except AudioError as exc:
            return Outcome.rejected(item.key, exc.reason, exc.message)
        if len(dec.samples) < q.n_fft:
            return Outcome.rejected(item.key, SHORTER_THAN_WINDOW, f"{p['ref']}: {len(dec.samples)} samples, "
                                    f"fewer than one {q.n_fft}-sample analysis frame")
        if not np.all(np.isfinite(dec.samples)):
            return Outcome.rejected(item.key, NON_FINITE_AUDIO, f"{p['ref']}: NaN or infinite samples")
        values, n_frames = clip_features(dec.samples, q.sample_rate, q.n_mfcc, q.n_fft, q.hop_length)
        bad = sorted(k for k, v in values.items() if not np.isfinite(v))
        if bad:
            return Outcome.rejected(item.key, NON_FINITE_FEATURES, f"{p['ref']}: {len(bad)} features are NaN "
                                    f"or infinite (e.g. {', '.join(bad[:3])}); silent audio?")
        row = {"sample_id": p["sample_id"], "source_id": p["source_id"], "modality": 1,
               "dataset": p["dataset"], "duration_s": dec.duration_s, "sample_rate": q.sample_rate,
               "n_frames": n_frames, "valence_raw": p["valence_raw"], "arousal_raw": p["arousal_raw"],
               **values}
        return Outcome(rows=[row])
