"""Issue 18 probe: riffusion's mel image computed from a 24 kHz resample of the song.

The mel filters stop at 10 kHz, so the 44.1 kHz transform (n_fft 17,640, window 4,410,
hop 441) discards most FFT bins. The candidate resamples each song once (soxr) to 24 kHz and
computes the same 2.5 Hz bins there (n_fft 9,600, window 2,400, hop 240: 24000/9600 =
44100/17640), with the same HTK filterbank on the shared bins, scaling magnitudes by
44100/24000 (a DFT sums sr × 100 ms samples). What is compared, on MP3-decoded synthetic
songs (stages/demo/music.py; 44.1, 48, 22.05 and 16 kHz sources decoded the pipeline's way,
`audio_io.decode_mono`: one read, channel mean, soxr HQ to 44.1 kHz; each with and without a
-80 dBFS white noise floor added to the decoded source before the resample), chunked as the
`chunks` stage does (5 s from 15 s, a >= 4.5 s tail zero-padded):

  exact  the stage's transform (`riffusion.riffusion_mel` / `image_from_mel`), float32 MKL;
  C0     naive: every frame at 24 kHz, the chunk reflect-padded at 24 kHz (as riffusion_mel
         does at 44.1 kHz);
  C1(E)  hybrid: frames E..500-E at 24 kHz from the song-level resample (for E >= 5 these
         frames lie inside the chunk and need no padding), the first and last E frames with
         the exact 44.1 kHz transform of the reflect-padded chunk (bit-identical to the
         stage's); the image max is taken over the assembled mel. Variants: soxr HQ instead
         of VHQ; `eq` = filterbank columns divided by soxr's measured gain (it rolls off by
         1e-4 at 10 kHz; zero run-time cost); `zero` = frames whose 44.1 kHz window is all
         digital zeros get mel 0, as the exact transform does (the resample rings ~6 ms into
         a padded tail, and any non-zero magnitude turns 255 into 254); 24 kHz FFT by torch
         (MKL) float32, scipy pocketfft float32, or torch float64;
  C2     reflect-pad the 44.1 kHz chunk (by 2,205 + a margin, a multiple of 147 samples so the
         24 kHz grid stays aligned), resample that padded chunk to 24 kHz, frame with no
         padding: no song-level resample.

Pixels: max |diff| and share of differing pixels at 512 x 501 and after the stage's Lanczos
resize to 224 x 224, per chunk and over all chunks, against the exact stage image and against
riffusion's formula in float64 (the torch replica, exact=True); the bar is riffusion's own
float32 output (the replica) against that float64 image. CPU time per chunk of each part,
single-threaded (OMP/MKL/torch threads = 1), best of --rounds interleaved rounds, plus the FFT
floor (one torch rfft call on 501 frames of 17,640 vs 9,600 points).

    .venv/bin/python bench/retired/transform_probe.py [--songs 10] [--seed 0] [--rounds 3]
        [--edges 5,10] [--quality VHQ] [--margin 735] [--per-chunk] [--no-timing] [--markdown]

Findings (bench/RESULTS.md, issue 18): with the float32 FFT the 24 kHz interior is noisier
than the 44.1 kHz one where MP3 leaves spectral holes, so no float32 candidate meets the bar
there; the float64 FFT meets the share bar but costs more than the exact transform.
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_var] = "1"  # before numpy / torch load their thread pools

import argparse  # noqa: E402
import dataclasses  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from functools import lru_cache  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import scipy  # noqa: E402
import scipy.fft  # noqa: E402
import soundfile as sf  # noqa: E402
import soxr  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import tests.helpers.riffusion_reference as rr  # noqa: E402
from emoprep.stages.common.audio_io import decode_mono  # noqa: E402
from emoprep.stages.demo.music import synth_music  # noqa: E402
from emoprep.stages.segments.spans import chunk_spans_samples  # noqa: E402
from emoprep.stages.spectrogram import riffusion  # noqa: E402
from emoprep.stages.spectrogram.params import DEFAULT_PARAMS, SpectrogramParams  # noqa: E402

torch.set_num_threads(1)

P44 = DEFAULT_PARAMS
P24 = SpectrogramParams(sample_rate=24000, n_fft=9600, win_length=2400, hop_length=240)
PLAN44 = riffusion._riffusion_plan(riffusion._transform_key(P44))
PLAN24 = riffusion._riffusion_plan(riffusion._transform_key(P24))
RATIO = 44100 / 24000                 # |DFT| scales with the samples per window
WINDOW24 = (PLAN24.window * np.float32(RATIO)).astype(np.float32)  # the scale, folded in
GRID44, GRID24 = 147, 80              # 147 samples at 44.1 kHz = 80 at 24 kHz (1/300 s)
N_FRAMES = 501
CHUNK44, CHUNK24 = 220_500, 120_000
FIRST_INSIDE = -(-PLAN24.left_pad // P24.hop_length)  # first frame needing no left padding: 5

# (label, source rate, channels)
SOURCES = (("mp3 44.1k mono", 44100, 1), ("mp3 44.1k stereo", 44100, 2), ("mp3 48k", 48000, 1),
           ("mp3 22.05k", 22050, 1), ("mp3 16k", 16000, 1))
NOISE_DBFS = -80.0


def clock() -> int:
    return time.process_time_ns()


def lap(timers: dict[str, int] | None, key: str, t0: int) -> int:
    if timers is None:
        return 0
    t1 = clock()
    timers[key] = timers.get(key, 0) + t1 - t0
    return t1


# ---------------------------------------------------------------- data
@dataclass
class Song:
    label: str
    noise: bool
    audio44: np.ndarray          # decode_mono's output (float32, 44.1 kHz)
    spans: list                  # chunk_spans_samples(...)
    chunks: list[np.ndarray] = field(default_factory=list)  # 44.1 kHz chunks as the stage sees them


def make_songs(n_songs: int, seed: int, tmp: Path) -> list[Song]:
    rng = np.random.default_rng(seed)
    songs = []
    for i in range(n_songs):
        label, sr, ch = SOURCES[i % len(SOURCES)]
        noise = (i // len(SOURCES)) % 2 == 1
        dur = float(rng.uniform(44.6, 45.6))  # DEAM's 45 s excerpts; < 45 s gives a padded tail
        va = rng.uniform(1, 9, 2)
        x = synth_music(float(va[0]), float(va[1]), dur, sr, ch, seed * 1000 + i)
        mp3 = tmp / f"song{i}.mp3"
        sf.write(mp3, x, sr, format="MP3")
        ref = mp3.name
        if noise:  # a noise floor in the decoded source, before the pipeline's resample
            dec, sr_dec = sf.read(mp3, dtype="float32", always_2d=True)
            dec = dec + (rng.standard_normal(dec.shape) * 10 ** (NOISE_DBFS / 20)).astype(np.float32)
            ref = f"song{i}.wav"
            sf.write(tmp / ref, dec, sr_dec, subtype="FLOAT")
        audio = decode_mono(tmp, ref, 44100).samples
        spans, _ = chunk_spans_samples(len(audio), 15.0, 5.0, 4.5, 44100)
        song = Song(label + (" +noise" if noise else ""), noise, audio, spans)
        for sp in spans:
            c = np.zeros(CHUNK44, np.float32)
            c[:sp.n_audio] = audio[sp.first:sp.first + sp.n_audio]
            song.chunks.append(c)
        songs.append(song)
    return songs


# ---------------------------------------------------------------- transforms
FFTS = ("mkl-f32", "pocketfft-f32", "mkl-f64")
WINDOW24_F64 = PLAN24.window.astype(np.float64) * RATIO


def mel_frames(src: np.ndarray, start: int, n: int, p: SpectrogramParams, plan, window: np.ndarray,
               timers: dict[str, int] | None, fft: str = "mkl-f32") -> np.ndarray:
    """mel [n_mels, n] of the frames src[start + i·hop : … + win] × window: the stage's
    riffusion_mel loop (blocks of FRAME_BLOCK, window support at the start of a zeroed
    n_fft buffer, bins < n_bins, sparse mel), with its parts timed. `fft`: torch's (MKL)
    float32 rfft as the stage, scipy's pocketfft float32, or torch's float64 (window product
    and FFT in float64, magnitudes rounded to float32)."""
    frames = np.lib.stride_tricks.sliding_window_view(src, p.win_length)[start::p.hop_length][:n]
    assert frames.shape[0] == n, (frames.shape, n)
    block = riffusion.FRAME_BLOCK
    buf = np.zeros((min(block, n), p.n_fft), dtype=np.float64 if fft == "mkl-f64" else np.float32)
    frames_in = torch.from_numpy(buf)
    magnitude = np.empty((n, plan.n_bins), dtype=np.float32)
    for s in range(0, n, block):
        k = min(block, n - s)
        t0 = clock() if timers is not None else 0
        np.multiply(frames[s:s + k], window, out=buf[:k, :p.win_length])
        t0 = lap(timers, "framing", t0)
        if fft == "pocketfft-f32":
            spectrum = scipy.fft.rfft(buf[:k], axis=-1)
        else:
            spectrum = torch.fft.rfft(frames_in[:k], dim=-1).numpy()
        t0 = lap(timers, "rfft", t0)
        np.abs(spectrum[:, :plan.n_bins], out=magnitude[s:s + k])
        lap(timers, "abs", t0)
    t0 = clock() if timers is not None else 0
    mel = np.asarray(plan.filterbank @ magnitude.T, dtype=np.float32)
    lap(timers, "mel matmul", t0)
    return mel


def exact_mel(chunk44: np.ndarray, timers: dict[str, int] | None = None) -> np.ndarray:
    """The stage's transform (riffusion_mel), timed by part."""
    t0 = clock() if timers is not None else 0
    n = riffusion.n_frames_for(chunk44.size, P44)
    right = (n - 1) * P44.hop_length + P44.win_length - PLAN44.left_pad - chunk44.size
    padded = np.pad(chunk44, (PLAN44.left_pad, max(right, 0)), mode="reflect")
    lap(timers, "framing", t0)
    return mel_frames(padded, 0, n, P44, PLAN44, PLAN44.window, timers)


def exact_edge_mels(chunk44: np.ndarray, e: int, timers: dict[str, int] | None) -> tuple[np.ndarray, np.ndarray]:
    """Exact 44.1 kHz mel of frames [0, e) and [501-e, 501), from short reflect-padded
    segments at the chunk's two ends (the same values np.pad gives for the whole chunk)."""
    hop, win, lp, n_all = P44.hop_length, P44.win_length, PLAN44.left_pad, CHUNK44
    t0 = clock() if timers is not None else 0
    # padded index j <-> chunk index j - lp; frames t < e need padded [0, (e-1)·hop + win)
    need = max((e - 1) * hop + win - lp, lp + 1)
    left = np.pad(chunk44[:need], (lp, 0), mode="reflect")
    right_pad = (N_FRAMES - 1) * hop + win - lp - n_all
    c0 = (N_FRAMES - e) * hop - lp                 # chunk index where frame 501-e starts
    c0 = min(c0, n_all - right_pad - 1)            # reflect needs more samples than it pads
    right = np.pad(chunk44[c0:], (0, right_pad), mode="reflect")
    lap(timers, "framing", t0)
    mel_l = mel_frames(left, 0, e, P44, PLAN44, PLAN44.window, timers)
    mel_r = mel_frames(right, (N_FRAMES - e) * hop - lp - c0, e, P44, PLAN44, PLAN44.window, timers)
    return mel_l, mel_r


def resample_song(audio44: np.ndarray, spans, quality: str, margin44: int,
                  timers: dict[str, int] | None = None) -> tuple[np.ndarray, int]:
    """The song at 24 kHz from `margin44` samples before its first chunk to `margin44` after
    its last chunk's end (zeros past the song's end, as padded tails have); returns it and the
    44.1 kHz index of its first sample (a multiple of 147, so the grids align)."""
    start = max(0, spans[0].first - margin44)
    start -= start % GRID44
    end = spans[-1].first + CHUNK44 + margin44
    seg = np.zeros(end - start, np.float32)
    avail = audio44[start:end]
    seg[:avail.size] = avail
    t0 = clock() if timers is not None else 0
    y = soxr.resample(seg, 44100, 24000, quality=quality)
    lap(timers, "resample (song, amortised)", t0)
    assert y.size == seg.size * GRID24 // GRID44
    return np.asarray(y, np.float32), start


@lru_cache(maxsize=4)
def soxr_gain(quality: str) -> np.ndarray:
    """|H(f)| of soxr's 44.1 -> 24 kHz filter at the kept bins (k·2.5 Hz, k < n_bins), from the
    resampled unit impulse: |DTFT of the output| × 44100/24000. It rolls off gently inside
    10 kHz (VHQ: -0.0013 dB at 10 kHz), which moves the top bands by ~1e-4."""
    n44 = 147 * 400
    x = np.zeros(2 * n44, np.float64)
    x[n44] = 1.0
    y = soxr.resample(x, 44100, 24000, quality=quality)
    c = n44 * GRID24 // GRID44
    m = np.arange(-3000, 3001)
    f = np.arange(PLAN24.n_bins) * 2.5
    h = np.exp(-2j * np.pi * np.outer(f, m) / 24000) @ y[c + m]
    return np.abs(h) * RATIO


@lru_cache(maxsize=4)
def eq_plan(quality: str):
    """PLAN24 with each filterbank column divided by soxr's gain at that bin (zero run-time cost)."""
    import scipy.sparse

    fb = PLAN24.filterbank.toarray().astype(np.float64) / soxr_gain(quality)[None, :]
    return dataclasses.replace(PLAN24, filterbank=scipy.sparse.csr_matrix(fb.astype(np.float32)))


def win24(fft: str) -> np.ndarray:
    return WINDOW24_F64 if fft == "mkl-f64" else WINDOW24


def c0_mel(song24: np.ndarray, first24: int, timers=None, fft: str = "mkl-f32", plan24=None) -> np.ndarray:
    """Naive: the 24 kHz chunk with riffusion_mel's own reflect padding at 24 kHz."""
    t0 = clock() if timers is not None else 0
    chunk = song24[first24:first24 + CHUNK24]
    right = (N_FRAMES - 1) * P24.hop_length + P24.win_length - PLAN24.left_pad - CHUNK24
    padded = np.pad(chunk, (PLAN24.left_pad, right), mode="reflect")
    lap(timers, "framing", t0)
    return mel_frames(padded, 0, N_FRAMES, P24, plan24 or PLAN24, win24(fft), timers, fft)


def c1_mel(chunk44: np.ndarray, song24: np.ndarray, first24: int, e: int,
           timers: dict[str, int] | None = None, edge_timers: dict[str, int] | None = None,
           fft: str = "mkl-f32", plan24=None, zero: bool = False) -> np.ndarray:
    """Hybrid: exact 44.1 kHz frames [0, e) and [501-e, 501), 24 kHz frames in between.
    `zero`: interior frames whose 4,410 window samples at 44.1 kHz are all exactly zero (digital
    silence, e.g. a padded tail) get mel 0, as the exact transform gives; the 24 kHz resample
    rings into such silence for ~6 ms, and any non-zero magnitude there turns 255 into 254."""
    out = np.empty((P44.n_mels, N_FRAMES), np.float32)
    n_mid = N_FRAMES - 2 * e
    if e >= FIRST_INSIDE:   # interior frames lie inside the chunk: frame straight from the song
        src, start = song24, first24 - PLAN24.left_pad + e * P24.hop_length
    else:                   # some 24 kHz frames need the chunk's reflect padding
        t0 = clock() if timers is not None else 0
        chunk = song24[first24:first24 + CHUNK24]
        right = (N_FRAMES - 1) * P24.hop_length + P24.win_length - PLAN24.left_pad - CHUNK24
        src = np.pad(chunk, (PLAN24.left_pad, right), mode="reflect")
        start = e * P24.hop_length
        lap(timers, "framing", t0)
    mid = mel_frames(src, start, n_mid, P24, plan24 or PLAN24, win24(fft), timers, fft)
    t0 = clock() if timers is not None else 0
    out[:, e:N_FRAMES - e] = mid
    t0 = lap(timers, "assemble (copy into the image mel)", t0)
    if zero:
        assert e >= FIRST_INSIDE and PLAN44.left_pad % P44.hop_length == 0
        nb = CHUNK44 // P44.hop_length                       # 500 blocks of one hop
        block_nz = chunk44[:nb * P44.hop_length].reshape(nb, P44.hop_length).any(axis=1)
        k = P44.win_length // P44.hop_length                 # a window = 10 blocks
        counts = np.convolve(block_nz, np.ones(k, np.int64), mode="valid")  # frame t: blocks t-5..t+4
        silent = np.flatnonzero(counts[e - PLAN44.left_pad // P44.hop_length:][:n_mid] == 0) + e
        out[:, silent] = 0.0
        lap(timers, "silent-frame check", t0)
    if e:
        t0 = clock() if edge_timers is not None else 0
        mel_l, mel_r = exact_edge_mels(chunk44, e, None)
        out[:, :e] = mel_l
        out[:, N_FRAMES - e:] = mel_r
        lap(edge_timers, "edge frames @44.1k (all parts)", t0)
    return out


def c2_mel(chunk44: np.ndarray, quality: str, margin44: int, timers=None, fft: str = "mkl-f32",
           plan24=None) -> np.ndarray:
    """Reflect-pad the 44.1 kHz chunk, resample the padded chunk, frame without padding."""
    pad = PLAN44.left_pad + margin44
    assert pad % GRID44 == 0
    t0 = clock() if timers is not None else 0
    padded = np.pad(chunk44, pad, mode="reflect")
    t0 = lap(timers, "framing", t0)
    y = np.asarray(soxr.resample(padded, 44100, 24000, quality=quality), np.float32)
    lap(timers, "resample (per chunk)", t0)
    pad24 = pad * GRID24 // GRID44
    return mel_frames(y, pad24 - PLAN24.left_pad, N_FRAMES, P24, plan24 or PLAN24, win24(fft), timers, fft)


def image(mel: np.ndarray, timers=None) -> tuple[np.ndarray, float]:
    t0 = clock() if timers is not None else 0
    out = riffusion.image_from_mel(mel, P44.image_power)
    lap(timers, "image", t0)
    return out


def resize(img: np.ndarray, timers=None) -> np.ndarray:
    t0 = clock() if timers is not None else 0
    out = riffusion.to_model_size(img, P44.size)
    lap(timers, "resize 224 (Lanczos)", t0)
    return out


# ---------------------------------------------------------------- comparison helpers
def diff(a: np.ndarray, b: np.ndarray) -> tuple[int, float]:
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    return int(d.max()), float(np.mean(d != 0))


@dataclass
class Stat:
    maxd: list[int] = field(default_factory=list)
    share: list[float] = field(default_factory=list)

    def add(self, md: tuple[int, float]) -> None:
        self.maxd.append(md[0])
        self.share.append(md[1])

    def row(self) -> str:
        s = np.array(self.share) * 100
        return (f"{max(self.maxd)} | {np.mean(s):.4f} % | {np.median(s):.4f} % | {s.max():.4f} % | "
                f"{sum(m > 1 for m in self.maxd)}")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


# ---------------------------------------------------------------- main
@dataclass(frozen=True)
class Cand:
    """One candidate: kind C0 / C1 / C2, edge frames, soxr quality, FFT of the 24 kHz frames."""

    kind: str
    e: int
    quality: str
    fft: str
    eq: bool = False
    zero: bool = False

    @property
    def name(self) -> str:
        how = f"{self.quality}, {self.fft}{', eq' if self.eq else ''}{', zero' if self.zero else ''}"
        if self.kind == "C0":
            return f"C0 naive 24k ({how})"
        if self.kind == "C1":
            return f"C1 E={self.e} ({how})"
        return f"C2 per-chunk ({how})"

    def mel(self, chunk44, song24, first24, margin, timers=None) -> np.ndarray:
        plan = eq_plan(self.quality) if self.eq else PLAN24
        if self.kind == "C0":
            return c0_mel(song24, first24, timers, self.fft, plan)
        if self.kind == "C1":
            return c1_mel(chunk44, song24, first24, self.e, timers, timers, self.fft, plan, self.zero)
        return c2_mel(chunk44, self.quality, margin, timers, self.fft, plan)


def candidates(edges: list[int], quality: str) -> list[Cand]:
    e0 = FIRST_INSIDE
    out = [Cand("C0", 0, quality, "mkl-f32")]
    out += [Cand("C1", e, quality, "mkl-f32") for e in edges]
    out += [Cand("C1", e0, "HQ", "mkl-f32"), Cand("C1", e0, quality, "mkl-f32", True),
            Cand("C1", e0, quality, "mkl-f32", True, True), Cand("C1", e0, quality, "pocketfft-f32", True, True),
            Cand("C1", e0, quality, "mkl-f64", True, True), Cand("C2", 0, quality, "mkl-f32")]
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--songs", type=int, default=10,
                    help="songs, ~6 chunks each (sources cycle through 5 kinds, every other "
                         "5 with a noise floor: 10 covers all 10 combinations)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="timing rounds (best counts)")
    ap.add_argument("--edges", default="5,10", help="E values of the hybrid C1 (exact frames per side)")
    ap.add_argument("--quality", default="VHQ", help="soxr quality of the 44.1 -> 24 kHz resample")
    ap.add_argument("--margin", type=int, default=735,
                    help="44.1 kHz samples of context beyond what the frames need, for resampling "
                         "(multiple of 147; soxr VHQ's impulse response spans ~±250)")
    ap.add_argument("--per-chunk", action="store_true", help="print one row per chunk")
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--markdown", action="store_true", help="print the tables once more at the end")
    args = ap.parse_args()
    if args.margin % GRID44:
        ap.error("--margin must be a multiple of 147 (the 44.1/24 kHz common grid)")
    edges = [int(e) for e in args.edges.split(",") if e.strip()]
    t_start = time.perf_counter()
    load = os.getloadavg()
    head = [(f"machine: {cpu_model()}, {os.cpu_count()} cores; load average at start "
             f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; torch {torch.__version__} threads "
             f"{torch.get_num_threads()}, soxr {soxr.__version__}, numpy {np.__version__}, "
             f"scipy {scipy.__version__}")]

    # ---- the filterbank on shared bins
    fb44 = riffusion.mel_filterbank(44100, 17640, 512, 0.0, 10000.0)
    fb24 = riffusion.mel_filterbank(24000, 9600, 512, 0.0, 10000.0)
    same_fb = np.array_equal(fb44[:, :fb24.shape[1]], fb24)
    head.append(f"filterbank: 44.1 kHz bins {fb44.shape[1]}, 24 kHz bins {fb24.shape[1]}; values on the "
                f"{fb24.shape[1]} shared bins bit-identical: {same_fb}; 44.1 kHz bins beyond 12 kHz all "
                f"zero: {not fb44[:, fb24.shape[1]:].any()}; bins kept (n_bins) {PLAN44.n_bins} vs {PLAN24.n_bins}")
    assert same_fb and PLAN44.n_bins == PLAN24.n_bins

    with tempfile.TemporaryDirectory() as tmp:
        songs = make_songs(args.songs, args.seed, Path(tmp))
    n_chunks = sum(len(s.chunks) for s in songs)
    head.append(f"{len(songs)} songs, {n_chunks} chunks ({sum(sp.n_pad > 0 for s in songs for sp in s.spans)} "
                f"with a zero-padded tail); sources: {', '.join(s.label for s in songs)}")
    print("\n".join(head), flush=True)

    # ---- accuracy
    cands = candidates(edges, args.quality)
    names = [c.name for c in cands]
    qualities = sorted({c.quality for c in cands})
    full = {c: Stat() for c in names}
    small = {c: Stat() for c in names}
    vs64 = {c: Stat() for c in names}
    base = {k: Stat() for k in ("riffusion f32 vs f64", "stage vs f64", "stage vs riffusion f32")}
    base224 = {k: Stat() for k in base}
    frame_max = {c: np.zeros(N_FRAMES, int) for c in names}
    frame_cnt = {c: np.zeros(N_FRAMES, int) for c in names}
    max_rel = dict.fromkeys(names, 0.0)
    max_in_edge = 0
    edge_bitexact = True
    over_bar = dict.fromkeys(names, 0)
    by_source: dict[str, dict[str, list[float]]] = {}
    per_chunk_rows = []
    for si, song in enumerate(songs):
        s24 = {q: resample_song(song.audio44, song.spans, q, args.margin) for q in qualities}
        src = by_source.setdefault(song.label, {})
        for k, (sp, chunk) in enumerate(zip(song.spans, song.chunks, strict=True)):
            mel_e = riffusion.riffusion_mel(chunk, P44)
            img_e, mx_e = riffusion.image_from_mel(mel_e)
            assert np.array_equal(mel_e, exact_mel(chunk)), "instrumented copy != riffusion_mel"
            fr = int(np.unravel_index(np.argmax(mel_e), mel_e.shape)[1])
            max_in_edge += fr < 10 or fr >= N_FRAMES - 10
            sm_e = resize(img_e)
            r32, _ = rr.image_from_float_audio(chunk)
            r64, _ = rr.image_from_float_audio(chunk, exact=True)
            for key, (a, b) in {"riffusion f32 vs f64": (r32, r64), "stage vs f64": (img_e, r64),
                                "stage vs riffusion f32": (img_e, r32)}.items():
                base[key].add(diff(a, b))
                base224[key].add(diff(resize(a), resize(b)))
                src.setdefault(key, []).append(base[key].share[-1])
            bar_chunk = base["riffusion f32 vs f64"].share[-1]
            row = [f"{si}:{k}", song.label + (" (tail)" if sp.n_pad else ""),
                   base["riffusion f32 vs f64"].maxd[-1], bar_chunk]
            for c in cands:
                song24, start44 = s24[c.quality]
                mel = c.mel(chunk, song24, (sp.first - start44) * GRID24 // GRID44, args.margin)
                if c.kind == "C1":
                    edge_bitexact &= bool(np.array_equal(mel[:, :c.e], mel_e[:, :c.e]) and
                                          np.array_equal(mel[:, N_FRAMES - c.e:], mel_e[:, N_FRAMES - c.e:]))
                img_c, mx_c = riffusion.image_from_mel(mel)
                d = np.abs(img_c.astype(np.int16) - img_e.astype(np.int16))  # frames along axis 1
                frame_max[c.name] = np.maximum(frame_max[c.name], d.max(axis=0))
                frame_cnt[c.name] += (d != 0).sum(axis=0)
                max_rel[c.name] = max(max_rel[c.name], abs(mx_c - mx_e) / mx_e)
                full[c.name].add(diff(img_c, img_e))
                small[c.name].add(diff(resize(img_c), sm_e))
                vs64[c.name].add(diff(img_c, r64))
                over_bar[c.name] += full[c.name].share[-1] > bar_chunk
                src.setdefault(c.name, []).append(full[c.name].share[-1])
                src.setdefault(c.name + " max", []).append(full[c.name].maxd[-1])
                row += [full[c.name].maxd[-1], full[c.name].share[-1], small[c.name].maxd[-1], small[c.name].share[-1]]
            per_chunk_rows.append(row)
    t_acc = time.perf_counter() - t_start

    lines: list[str] = []
    out = lines.append
    out(f"\n### Pixels: {n_chunks} chunks from {len(songs)} songs\n")
    out("stage = the exact transform (`riffusion_image`); f64 = riffusion's formula in float64 "
        "(torch replica, exact=True); riffusion f32 = the replica in float32. Share = pixels that "
        "differ; 'chunks >1' = chunks with a pixel more than 1 level off.\n")
    out("| comparison | size | max abs diff | share mean | median | max | chunks >1 |")
    out("|---|---|---:|---:|---:|---:|---:|")
    for k in base:
        out(f"| {k} | 512x501 | {base[k].row()} |")
        out(f"| {k} | 224x224 | {base224[k].row()} |")
    for c in names:
        out(f"| {c} vs stage | 512x501 | {full[c].row()} |")
        out(f"| {c} vs stage | 224x224 | {small[c].row()} |")
        out(f"| {c} vs f64 | 512x501 | {vs64[c].row()} |")
    out("")
    bar_share = float(np.mean(base["riffusion f32 vs f64"].share))
    bar224 = float(np.mean(base224["riffusion f32 vs f64"].share))
    out(f"Bar: every pixel within ±1 of the stage, and share <= riffusion f32 vs f64 "
        f"({bar_share * 100:.4f} % at 512 px, {bar224 * 100:.4f} % at 224 px; riffusion f32 vs f64 itself "
        f"has max diff {max(base['riffusion f32 vs f64'].maxd)}).\n")
    for c in names:
        ok1 = max(full[c].maxd) <= 1
        ok2 = np.mean(full[c].share) <= bar_share
        ok3 = np.mean(small[c].share) <= bar224
        out(f"- {c}: ±1 {'yes' if ok1 else 'NO'} (max {max(full[c].maxd)}, 224 px max {max(small[c].maxd)}); "
            f"share {'yes' if ok2 else 'NO'} ({np.mean(full[c].share) * 100:.4f} %; 224 px "
            f"{np.mean(small[c].share) * 100:.4f} % {'yes' if ok3 else 'NO'}); chunks above their own "
            f"riffusion f32/f64 share {over_bar[c]}/{n_chunks}; max |Δ max_value|/max_value {max_rel[c]:.1e}")
    out(f"- C1 edge frames bit-identical to the stage's: {edge_bitexact}; the exact image's max lies in an "
        f"edge frame (first/last 10) in {max_in_edge}/{n_chunks} chunks")

    out("\n### By source (share of differing pixels at 512 px, mean over the source's chunks; "
        "candidates vs stage, with their max diff)\n")
    cols = list(base) + names
    out("| source | chunks | " + " | ".join(cols) + " |")
    out("|---|---:|" + "---:|" * len(cols))
    for label, d in by_source.items():
        cells = [f"{np.mean(d[k]) * 100:.3f} %" for k in base]
        cells += [f"{np.mean(d[c]) * 100:.3f} % (max {max(d[c + ' max'])})" for c in names]
        out(f"| {label} | {len(d['stage vs f64'])} | " + " | ".join(cells) + " |")

    out("\n### Where candidates differ from the stage (per frame index: max abs diff / differing "
        "pixels, over all chunks)\n")
    shown = list(range(11)) + list(range(N_FRAMES - 11, N_FRAMES))
    out("| candidate | " + " | ".join(str(f) for f in shown) + " | frames 11..489 max / count |")
    out("|---|" + "---:|" * (len(shown) + 1))
    for c in names:
        out(f"| {c} | " + " | ".join(f"{frame_max[c][f]}/{frame_cnt[c][f]}" for f in shown)
            + f" | {frame_max[c][11:N_FRAMES - 11].max()} / {frame_cnt[c][11:N_FRAMES - 11].sum()} |")

    if args.per_chunk:
        out("\n### Per chunk: max diff / share vs the stage at 512 px ; the same at 224 px\n")
        out("| chunk | source | riffusion f32 vs f64 | " + " | ".join(names) + " |")
        out("|---|---|---|" + "---|" * len(names))
        for r in per_chunk_rows:
            cells = [f"{r[2]} / {r[3] * 100:.3f} %"]
            for i in range(len(names)):
                m, s_, m2, s2 = r[4 + 4 * i: 8 + 4 * i]
                cells.append(f"{m} / {s_ * 100:.3f} % ; {m2} / {s2 * 100:.3f} %")
            out(f"| {r[0]} | {r[1]} | " + " | ".join(cells) + " |")
    print("\n".join(lines), flush=True)
    if args.no_timing:
        return 0

    # ---- timing: per part, single-threaded, best of rounds
    t_time0 = time.perf_counter()
    e0 = FIRST_INSIDE
    timed_cands = [c for c in cands if (c.kind == "C1" and c.e == e0) or c.kind == "C2"]
    methods = ["exact (stage)"] + [c.name for c in timed_cands]
    by_name = {c.name: c for c in timed_cands}
    pre = {(id(s), q): resample_song(s.audio44, s.spans, q, args.margin) for s in songs for q in qualities}

    def run(name: str, timers: dict[str, int] | None) -> None:
        c = by_name.get(name)
        for s in songs:
            if c is not None and c.kind == "C1":  # the song-level resample, amortised over its chunks
                resample_song(s.audio44, s.spans, c.quality, args.margin, timers)
            for sp, chunk in zip(s.spans, s.chunks, strict=True):
                if c is None:
                    mel = exact_mel(chunk, timers)
                else:
                    song24, start44 = pre[(id(s), c.quality)]
                    mel = c.mel(chunk, song24, (sp.first - start44) * GRID24 // GRID44, args.margin, timers)
                img, _ = image(mel, timers)
                resize(img, timers)

    for name in methods:  # warm up (FFT plans, filterbanks)
        run(name, None)
    best: dict[str, dict[str, float]] = {}
    best_total: dict[str, tuple[float, float]] = {}
    for _ in range(args.rounds):
        for name in methods:
            timers: dict[str, int] = {}
            run(name, timers)
            parts = {k: v / 1e6 / n_chunks for k, v in timers.items()}
            old = best.get(name)
            best[name] = parts if old is None else {k: min(old.get(k, np.inf), v) for k, v in parts.items()}
            c0, w0 = time.process_time(), time.perf_counter()
            run(name, None)
            cpu, wall = (time.process_time() - c0) * 1e3 / n_chunks, (time.perf_counter() - w0) * 1e3 / n_chunks
            ob = best_total.get(name)
            best_total[name] = (cpu, wall) if ob is None else (min(ob[0], cpu), min(ob[1], wall))

    # FFT floor: one rfft call on 501 frames (n_fft samples each, prepared outside the timer)
    def floor_frames(x: np.ndarray, p: SpectrogramParams) -> np.ndarray:
        padded = np.pad(x, p.n_fft // 2, mode="reflect")
        fr = np.lib.stride_tricks.sliding_window_view(padded, p.n_fft)[::p.hop_length]
        return np.ascontiguousarray(fr[:N_FRAMES], dtype=np.float32)

    def chunk24(s: Song, sp, _chunk44) -> np.ndarray:
        song24, start44 = pre[(id(s), args.quality)]
        f = (sp.first - start44) * GRID24 // GRID44
        return song24[f:f + CHUNK24]

    flat = [(s, sp, c) for s in songs for sp, c in zip(s.spans, s.chunks, strict=True)]
    sample = flat[:: max(1, len(flat) // 12)][:12]
    floor = {}
    for label, p, get, fft in (
            ("17,640 pt (44.1 kHz), torch f32", P44, lambda s, sp, c: c, "t"),
            ("9,600 pt (24 kHz), torch f32", P24, chunk24, "t"),
            ("9,600 pt (24 kHz), pocketfft f32", P24, chunk24, "p"),
            ("9,600 pt (24 kHz), torch f64", P24, chunk24, "t64")):
        arrs = [floor_frames(get(*x), p) for x in sample]
        if fft == "t64":
            arrs = [a.astype(np.float64) for a in arrs]

        def go(a: np.ndarray, fft: str = fft) -> None:
            if fft == "p":
                scipy.fft.rfft(a, axis=-1)
            else:
                torch.fft.rfft(torch.from_numpy(a), dim=-1)
        go(arrs[0])
        vals = []
        for _ in range(args.rounds):
            c0 = time.process_time()
            for a in arrs:
                go(a)
            vals.append((time.process_time() - c0) * 1e3 / len(arrs))
        floor[label] = min(vals)
    load_end = os.getloadavg()

    tl: list[str] = []
    tout = tl.append
    tout(f"\n### CPU ms per chunk, single thread, best of {args.rounds} interleaved rounds over {n_chunks} "
         f"chunks (load average {load_end[0]:.2f} {load_end[1]:.2f} {load_end[2]:.2f} at the end)\n")
    keys = ["resample (song, amortised)", "resample (per chunk)", "framing", "rfft", "abs", "mel matmul",
            "edge frames @44.1k (all parts)", "assemble (copy into the image mel)", "silent-frame check", "image",
            "resize 224 (Lanczos)"]
    tout("| part | " + " | ".join(methods) + " |")
    tout("|---|" + "---:|" * len(methods))
    for k in keys:
        if any(k in best[m] for m in methods):
            tout(f"| {k} | " + " | ".join(f"{best[m][k]:.2f}" if k in best[m] else "–" for m in methods) + " |")
    tout("| sum of parts | " + " | ".join(f"{sum(best[m].values()):.2f}" for m in methods) + " |")
    tout("| sum of parts without resize | " + " | ".join(
        f"{sum(v for k, v in best[m].items() if not k.startswith('resize')):.2f}" for m in methods) + " |")
    tout("| end to end, uninstrumented, CPU | " + " | ".join(f"{best_total[m][0]:.2f}" for m in methods) + " |")
    tout("| end to end, uninstrumented, wall | " + " | ".join(f"{best_total[m][1]:.2f}" for m in methods) + " |")
    tout("")
    for k, v in floor.items():
        tout(f"- FFT floor, one rfft call on 501 frames of {k}: {v:.2f} ms")
    tout(f"- run time: accuracy {t_acc:.0f} s, timing {time.perf_counter() - t_time0:.0f} s")
    print("\n".join(tl))
    if args.markdown:
        print("\n---- markdown ----")
        print("\n".join(head + lines + tl))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
