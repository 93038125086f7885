"""Audio I/O shared by the audio stages: open a raw file (or a zip member), probe it, decode it
to mono at a target rate, and write fixed-length outputs.

Raw audio is named by a *source reference* relative to its dataset root, so manifests stay
portable: `MEMD_audio/2.mp3` for a file, `DEAM_audio.zip::MEMD_audio/2.mp3` for a member of a
zip that is read in place (the official DEAM download is three zips; unpacking 1.3 GB only to
read it once is wasted time and disk).

Every failure becomes an `AudioError` with a stable reason code, which stages turn into a
`Reject`; nothing here lets a bad file kill a run.
"""
from __future__ import annotations

import contextlib
import io
import os
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO, Iterator

import numpy as np

from emoprep.atomic import atomic_path
from emoprep.stages.manifest_values import error_text

ZIP_SEP = "::"
# A decoded stream may end a little before the length the header announced (encoder padding,
# estimated lengths of VBR files without a Xing header); a real truncation loses far more.
TRUNCATION_TOLERANCE = 0.02
TRUNCATION_SLACK_FRAMES = 2 * 1152


class AudioError(Exception):
    """A file that cannot be used; `reason` is the reject code, the message names the file."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


# ---- source references ---------------------------------------------------------------
def make_ref(rel_path: str, member: str | None = None) -> str:
    """The reference of a file (`rel_path`) or of `member` inside the zip at `rel_path`."""
    return f"{rel_path}{ZIP_SEP}{member}" if member is not None else rel_path


def split_ref(ref: str) -> tuple[str, str | None]:
    """(`rel_path`, zip member or None) of a source reference."""
    if ZIP_SEP in ref:
        rel, member = ref.split(ZIP_SEP, 1)
        return rel, member
    return ref, None


def _safe_join(root: Path, rel: str) -> Path:
    """`root / rel`, refusing references that leave the dataset root (absolute, `..`)."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise AudioError("unreadable-audio", f"{rel}: reference leaves the dataset root")
    return Path(root).joinpath(*parts)


_ZIPS: dict[tuple, zipfile.ZipFile] = {}


def open_zip(path: Path) -> zipfile.ZipFile:
    """A cached ZipFile per (path, file version, process): a forked worker must not share the
    parent's file offset, a replaced zip must be read anew, and re-reading a 1,802-entry
    central directory per item is waste."""
    st = os.stat(path)
    key = (os.fspath(path), st.st_size, st.st_mtime_ns, st.st_ino, os.getpid())
    zf = _ZIPS.get(key)
    if zf is None:
        if len(_ZIPS) >= 8:
            for old in list(_ZIPS.values()):
                with contextlib.suppress(Exception):
                    old.close()
            _ZIPS.clear()
        zf = zipfile.ZipFile(path)
        _ZIPS[key] = zf
    return zf


def read_ref_bytes(root: Path, ref: str) -> bytes:
    """The bytes of a file or zip member. Raises AudioError('unreadable-audio') if absent."""
    rel, member = split_ref(ref)
    path = _safe_join(root, rel)
    try:
        if member is None:
            return path.read_bytes()
        return open_zip(path).read(member)
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError, ValueError) as exc:
        raise AudioError("unreadable-audio", f"{ref}: cannot read ({error_text(exc)})") from None


@contextlib.contextmanager
def open_ref(root: Path, ref: str) -> Iterator[BinaryIO]:
    """A binary file object soundfile can read: the open file, or an in-memory copy of a zip
    member.

    Files are handed over as objects, not paths: given a path, libsndfile also opens a macOS
    resource fork `._<name>` lying next to the file (copies made on macOS have them) and
    fails on it. Empty files are rejected here (`empty-audio`), before libsndfile calls them
    "unknown format".
    """
    rel, member = split_ref(ref)
    if member is None:
        path = _safe_join(root, rel)
        try:
            fh = open(path, "rb")
        except OSError as exc:
            raise AudioError("unreadable-audio", f"{ref}: cannot open ({error_text(exc)})") from None
        with fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise AudioError("empty-audio", f"{ref}: file is empty (0 bytes)")
            yield fh
    else:
        data = read_ref_bytes(root, ref)
        if not data:
            raise AudioError("empty-audio", f"{ref}: zip member is empty (0 bytes)")
        yield io.BytesIO(data)


# ---- probing and decoding ------------------------------------------------------------
@dataclass(frozen=True)
class AudioInfo:
    frames: int
    sample_rate: int
    channels: int
    format: str

    @property
    def duration_s(self) -> float:
        return self.frames / self.sample_rate


def probe(root: Path, ref: str) -> AudioInfo:
    """Length, rate and channels from the header (an MP3's Xing/LAME tag), without decoding."""
    import soundfile as sf

    with open_ref(root, ref) as src:
        try:
            info = sf.info(src)
        except Exception as exc:  # libsndfile raises several types for junk input
            raise AudioError("unreadable-audio", f"{ref}: not decodable audio ({_short(exc)})") from None
    if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
        raise AudioError("empty-audio", f"{ref}: no audio frames ({info.frames} frames)")
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels), str(info.format))


@dataclass(frozen=True)
class Decoded:
    """Mono audio at `sample_rate`, plus what the source was."""

    samples: np.ndarray  # float32, 1-D
    sample_rate: int
    source_rate: int
    source_frames: int
    channels: int

    @property
    def duration_s(self) -> float:
        """Exact duration of the decoded source (source frames / source rate)."""
        return self.source_frames / self.source_rate


def decode_mono(root: Path, ref: str, sample_rate: int) -> Decoded:
    """Decode the whole file once, downmix by channel mean, resample with soxr HQ.

    The file is read in ONE call: libsndfile 1.2.2's MP3 decoder returns wrong samples after
    every boundary when a file is read in blocks (`SoundFile.read(n)` repeatedly, `blocks()`),
    which we measured as a 0.07 RMS error against the encoded signal (0.005 for a single
    read). The output length is exactly round(frames × rate / source rate), so durations
    survive resampling. Raises AudioError: `unreadable-audio`, `empty-audio`, `truncated-audio`.
    """
    import soundfile as sf
    import soxr

    with open_ref(root, ref) as src:
        try:
            with sf.SoundFile(src) as fh:
                sr, channels, announced = int(fh.samplerate), int(fh.channels), int(fh.frames)
                data = fh.read(dtype="float32", always_2d=True)
        except AudioError:
            raise
        except Exception as exc:
            raise AudioError("unreadable-audio", f"{ref}: not decodable audio ({_short(exc)})") from None
    n_src = len(data)
    if n_src == 0:
        raise AudioError("empty-audio", f"{ref}: no audio frames could be decoded")
    if n_src < announced * (1 - TRUNCATION_TOLERANCE) - TRUNCATION_SLACK_FRAMES:
        raise AudioError("truncated-audio",
                         f"{ref}: decoded {n_src} of the {announced} frames its header announces "
                         f"({n_src / sr:.2f} of {announced / sr:.2f} s); the file is cut short")
    mono = downmix(data)
    del data
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ")
    n_out = int(round(n_src * sample_rate / sr))
    return Decoded(fit_length(mono, n_out), sample_rate, sr, n_src, channels)


def downmix(block: np.ndarray) -> np.ndarray:
    """(frames, channels) float32 → mono by channel mean (a mono block is passed through)."""
    if block.shape[1] == 1:
        return np.ascontiguousarray(block[:, 0])
    return np.ascontiguousarray(block.mean(axis=1, dtype=np.float32))


def fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """`x` zero-padded or cut to exactly `n` samples (float32)."""
    x = np.asarray(x, dtype=np.float32)
    if len(x) == n:
        return x
    if len(x) > n:
        return x[:n].copy()
    out = np.zeros(n, dtype=np.float32)
    out[: len(x)] = x
    return out


# ---- writing ---------------------------------------------------------------------------
AUDIO_SUFFIX = {"flac": ".flac", "npy": ".npy"}


def write_audio(path: Path, samples: np.ndarray, sample_rate: int, audio_format: str) -> None:
    """Write mono audio atomically: FLAC PCM_24 (libsndfile clips to [-1, 1]) or float32 NPY."""
    if audio_format == "flac":
        import soundfile as sf

        with atomic_path(path) as tmp:
            sf.write(tmp, samples, sample_rate, format="FLAC", subtype="PCM_24")
    elif audio_format == "npy":
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.save(fh, np.asarray(samples, dtype=np.float32), allow_pickle=False)
    else:
        raise ValueError(f"audio_format must be 'flac' or 'npy', not {audio_format!r}")


def read_audio(path: Path) -> tuple[np.ndarray, int | None]:
    """Read an output written by `write_audio` (rate is None for NPY)."""
    path = Path(path)
    if path.suffix == ".npy":
        return np.load(path, allow_pickle=False), None
    import soundfile as sf

    data, sr = sf.read(path, dtype="float32")
    return data, sr


def _short(exc: BaseException) -> str:
    """libsndfile's message without the repr of the file object it embeds (the caller prints
    the root-relative reference, so messages do not depend on where the data lives)."""
    text = str(exc).replace("\n", " ")
    # libsndfile says this of MP3 data it cannot sync to, even for a file that exists
    text = text.replace("File does not exist or is not a regular file (possibly a pipe?).",
                        "no valid audio stream found")
    text = re.sub(r"Error opening <[^>]*>: ", "", text)
    return text[:160]
