"""`salient`: the most salient 30 s of each song, kept as audio (seed 004, CoverGen §3.4).

Seed 004 slides a 30 s window over the song and scores each window as
mean(RMS) × mean(spectral contrast) (librosa), keeping the best one as "the chorus". Here:

- frame features are computed ONCE per song at `analysis_rate` (librosa's default 22,050 Hz;
  STFT `n_fft` 2048, hop 512, centred): RMS of the waveform frames and the spectral contrast
  averaged over its bands (7 by default); the window means come from cumulative sums, so a
  song costs one STFT whatever the number of windows;
- a window starting at `start` covers the frames whose centre lies in [start, start + window);
  windows start at 0, hop_s, 2·hop_s, … while they fit inside the song (a tail shorter than
  hop_s past the last window is never its start);
- ties: windows whose score is within a relative 1e-9 of the best are equal (cumulative
  sums differ in the last bits for equal content); the EARLIEST of them wins;
- songs shorter than the window: `short_policy = "pad"` (default) keeps the whole song,
  zero-padded at the end to the window length (its score covers all its frames, `padded_s`
  says how much is silence); `"reject"` rejects them `shorter-than-window`;
- digital silence (every sample 0) has no salient part: rejected `silent-audio`.

The kept window is cut from the song decoded at `sample_rate` (44.1 kHz mono, soxr HQ) and
written as FLAC PCM_24 (or float32 NPY) of exactly window_s × sample_rate samples, one per
song, sample id = the song's. Rows carry the song's static VA (`valence_raw`/`arousal_raw`,
the dataset's own scale) and, where the song has dynamic frames, their mean over the window
(frames with both values, as `chunks` does).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from emoprep.manifests.columns import ITEM_COLUMNS
from emoprep.manifests.reasons import NON_FINITE_AUDIO, SHORTER_THAN_WINDOW, SILENT_AUDIO
from emoprep.pipeline.columns import ColumnKind
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import np
from emoprep.pipeline.stage import Outcome, Stage, WorkItem
from emoprep.stages.common.audio_io import AUDIO_SUFFIX, AudioError, fit_length, write_audio
from emoprep.stages.common.audio_source import audio_payloads, load_mono
from emoprep.stages.common.naming import safe_name
from emoprep.stages.segments.spans import chunk_va, float_frames, frame_times_ms, pair_frames

TIE_RTOL = 1e-9
# librosa's spectral contrast (fmin 200 Hz, 6 bands) has a band edge at 6.4 kHz below Nyquist
CONTRAST_MIN_RATE = 2 * 200 * 2 ** 5

KINDS: dict[str, ColumnKind] = {
    **ITEM_COLUMNS, "dataset": "str", "start_s": "float",
    "end_s": "float", "padded_s": "float", "duration_s": "float", "score": "float",
    "rms_mean": "float", "contrast_mean": "float", "n_windows": "int", "window_scores": "floats",
    "valence_raw": "float", "arousal_raw": "float", "dyn_valence_mean": "float",
    "dyn_arousal_mean": "float", "dyn_n_frames": "int", "n_samples": "int", "sample_rate": "int",
    "path": "str"}


# ---- the science -----------------------------------------------------------------------------
def frame_features(y: np.ndarray, sr: int, n_fft: int = 2048, hop_length: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame RMS of the waveform and band-mean spectral contrast (librosa, centred frames;
    frame j is centred on sample j × hop_length)."""
    import librosa

    y = np.asarray(y, dtype=np.float32)
    rms = librosa.feature.rms(y=y, frame_length=n_fft, hop_length=hop_length, center=True)[0]
    mag = np.abs(librosa.stft(y, n_fft=n_fft, hop_length=hop_length, center=True))
    contrast = librosa.feature.spectral_contrast(S=mag, sr=sr, n_fft=n_fft, hop_length=hop_length)
    return rms.astype(np.float64), contrast.mean(axis=0).astype(np.float64)


def window_starts(n_samples: int, window: int, hop: int) -> np.ndarray:
    """Start samples 0, hop, 2·hop, … of the windows that fit in `n_samples` (none if the
    song is shorter than one window)."""
    if n_samples < window:
        return np.zeros(0, dtype=np.int64)
    return np.arange((n_samples - window) // hop + 1, dtype=np.int64) * hop


def frame_span(starts: np.ndarray, window: int, hop_length: int, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """[first, last) frame of each window: frames whose centre j·hop_length is in [s, s + window)."""
    lo = -(-starts // hop_length)
    hi = np.minimum(-(-(starts + window) // hop_length), n_frames)
    return lo, np.maximum(hi, lo + 1)


def window_means(x: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Mean of x[lo:hi] for every (lo, hi), by one cumulative sum."""
    cs = np.concatenate([[0.0], np.cumsum(np.asarray(x, dtype=np.float64))])
    means: np.ndarray = (cs[hi] - cs[lo]) / (hi - lo)
    return means


def best_window(scores: np.ndarray, rtol: float = TIE_RTOL) -> int:
    """Index of the best score; among scores within `rtol` of the best, the earliest."""
    scores = np.asarray(scores, dtype=np.float64)
    top = float(scores.max())
    return int(np.flatnonzero(scores >= top - rtol * abs(top))[0])


@dataclass(frozen=True)
class Salience:
    start: int               # first sample of the kept window (analysis rate)
    index: int               # its window index (-1: the whole short song)
    score: float
    rms_mean: float
    contrast_mean: float
    scores: np.ndarray       # every window's score


def most_salient(y: np.ndarray, sr: int, window_s: float = 30.0, hop_s: float = 1.0,
                 n_fft: int = 2048, hop_length: int = 512) -> Salience:
    """The best window of `y` (mono, rate `sr`) by mean RMS × mean spectral contrast. A song
    shorter than the window gives the whole song (index -1)."""
    window, hop = round(window_s * sr), round(hop_s * sr)
    rms, contrast = frame_features(y, sr, n_fft, hop_length)
    starts = window_starts(len(y), window, hop)
    if not len(starts):
        rms_mean, contrast_mean = float(rms.mean()), float(contrast.mean())
        score = rms_mean * contrast_mean
        return Salience(0, -1, score, rms_mean, contrast_mean, np.array([score]))
    lo, hi = frame_span(starts, window, hop_length, len(rms))
    r, c = window_means(rms, lo, hi), window_means(contrast, lo, hi)
    scores = r * c
    k = best_window(scores)
    return Salience(int(starts[k]), k, float(scores[k]), float(r[k]), float(c[k]), scores)


# ---- the stage -------------------------------------------------------------------------------
@dataclass(frozen=True)
class SalientParams:
    sources: tuple[str, ...] = ("deam",)   # ingest (or audio) stages to read songs from
    window_s: float = 30.0
    hop_s: float = 1.0
    sample_rate: int = 44100                # of the kept audio
    analysis_rate: int = 22050              # of the scoring (librosa's default rate)
    n_fft: int = 2048
    hop_length: int = 512
    short_policy: Literal["pad", "reject"] = "pad"
    audio_format: Literal["flac", "npy"] = "flac"


class Salient(Stage[SalientParams]):
    name = "salient"
    version = "3"  # 2: hostile-input hardening of the audio reader; 3: files named safe_name(sample_id)
    libraries = ("librosa", "soundfile", "soxr", "numpy")
    default_inputs = ("deam",)
    description = "most salient window per song (mean RMS x mean spectral contrast), kept as audio (seed 004)"
    Params = SalientParams
    manifest_columns = KINDS

    def inputs(self, params: SalientParams) -> list[str]:
        return list(params.sources)

    def plan(self, ctx: StageContext[SalientParams]) -> list[WorkItem]:
        q = ctx.params
        if not (q.window_s > 0 and 0 < q.hop_s <= q.window_s):
            raise ConfigError(f"salient: need window_s > 0 and 0 < hop_s <= window_s "
                              f"(window_s={q.window_s}, hop_s={q.hop_s})")
        if q.analysis_rate <= CONTRAST_MIN_RATE:
            raise ConfigError(f"salient.analysis_rate = {q.analysis_rate}: spectral contrast's top band "
                              f"starts at 6.4 kHz, so the rate must exceed {CONTRAST_MIN_RATE} Hz")
        if q.short_policy not in ("pad", "reject") or q.audio_format not in AUDIO_SUFFIX:
            raise ConfigError("salient.short_policy must be 'pad' or 'reject', audio_format 'flac' or 'npy'")
        return [WorkItem(p["sample_id"], p) for p in audio_payloads(ctx, q.sources, "salient")]

    def process(self, item: WorkItem, ctx: ItemContext[SalientParams]) -> Outcome:
        import soxr

        p, q = item.payload, ctx.params
        try:
            dec = load_mono(p, ctx, q.sample_rate)
        except AudioError as exc:
            return Outcome.rejected(item.key, exc.reason, exc.message)
        if not np.any(dec.samples):
            return Outcome.rejected(item.key, SILENT_AUDIO, f"{p['ref']}: every sample is 0; no salient segment")
        if not np.all(np.isfinite(dec.samples)):
            return Outcome.rejected(item.key, NON_FINITE_AUDIO, f"{p['ref']}: NaN or infinite samples")
        window_out = round(q.window_s * q.sample_rate)
        if len(dec.samples) < window_out and q.short_policy == "reject":
            return Outcome.rejected(item.key, SHORTER_THAN_WINDOW, f"{p['ref']}: {dec.duration_s:.3f} s is "
                                    f"shorter than the {q.window_s:g} s window (short_policy = 'pad' keeps "
                                    "it, zero-padded)")
        y = dec.samples if q.analysis_rate == q.sample_rate else \
            soxr.resample(dec.samples, q.sample_rate, q.analysis_rate, quality="HQ")
        sal = most_salient(y, q.analysis_rate, q.window_s, q.hop_s, q.n_fft, q.hop_length)
        start_s = 0.0 if sal.index < 0 else sal.index * q.hop_s
        first = round(start_s * q.sample_rate)
        segment = dec.samples[first:first + window_out]
        out = Path(ctx.out_dir) / "audio" / p["dataset"] / f"{safe_name(p['sample_id'])}{AUDIO_SUFFIX[q.audio_format]}"
        write_audio(out, fit_length(segment, window_out), q.sample_rate, q.audio_format)
        row = _row(p, q, sal, start_s, len(segment), dec.duration_s, window_out, ctx.rel(out))
        return Outcome(rows=[row], counters={"padded-short-songs": 1} if len(segment) < window_out else {})


def _row(p: dict[str, Any], q: SalientParams, sal: Salience, start_s: float, kept: int, duration_s: float,
         window_out: int, rel: str) -> dict[str, Any]:
    dv = dav = None
    n_dyn = 0
    if "dyn_valence" in p:
        v, a = pair_frames(float_frames(p["dyn_valence"]), float_frames(p["dyn_arousal"]))
        times = frame_times_ms(p["dyn_t0_s"], p["dyn_hz"], len(v))
        dv, dav, n_dyn = chunk_va(v, a, times, start_s, start_s + q.window_s)
    return {
        "sample_id": p["sample_id"], "source_id": p["source_id"], "modality": 1, "dataset": p["dataset"],
        "start_s": start_s, "end_s": start_s + kept / q.sample_rate, "padded_s": (window_out - kept) / q.sample_rate,
        "duration_s": duration_s, "score": sal.score, "rms_mean": sal.rms_mean, "contrast_mean": sal.contrast_mean,
        "n_windows": len(sal.scores) if sal.index >= 0 else 0,
        "window_scores": [float(s) for s in sal.scores],
        "valence_raw": p["valence_raw"], "arousal_raw": p["arousal_raw"],
        "dyn_valence_mean": dv if n_dyn else None, "dyn_arousal_mean": dav if n_dyn else None,
        "dyn_n_frames": n_dyn, "n_samples": window_out, "sample_rate": q.sample_rate, "path": rel,
    }
