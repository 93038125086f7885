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
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from emoprep.manifests.reasons import (
    ABSURD_SAMPLE_RATE,
    EMPTY_AUDIO,
    PATH_OUTSIDE_ROOT,
    TRUNCATED_AUDIO,
    UNREADABLE_AUDIO,
)
from emoprep.pipeline.atomic import atomic_path
from emoprep.pipeline.lazy import np
from emoprep.pipeline.reasons import ReasonCode
from emoprep.pipeline.values import error_text

ZIP_SEP = "::"
# A decoded stream may end a little before the length the header announced (encoder padding,
# estimated lengths of VBR files without a Xing header); a real truncation loses far more.
TRUNCATION_TOLERANCE = 0.02
TRUNCATION_SLACK_FRAMES = 2 * 1152
# Real recordings use 8 kHz (telephone) to 768 kHz (the fastest audio converters). A header
# outside [1 kHz, 768 kHz] is corrupt or hand-made, and resampling from it would cost absurd
# memory (1 Hz → 44.1 kHz multiplies the samples by 44,100): `absurd-sample-rate`.
MIN_SAMPLE_RATE, MAX_SAMPLE_RATE = 1_000, 768_000


class AudioError(Exception):
    """A file that cannot be used; `reason` is the reject code, the message names the file."""

    def __init__(self, reason: ReasonCode, message: str):
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


# The audio folders of the dataset layouts (deam_layout.AUDIO_DIR, pmemo.AUDIO_DIR).
LINKABLE_AUDIO_DIRS = frozenset({"MEMD_audio", "chorus"})


def _safe_join(root: Path, rel: str) -> Path:
    """`root / rel`, refusing references that leave the root (absolute, `..`, a symlink
    pointing out of it) with `path-outside-root`, before anything is read.

    A dataset's own audio folder (`MEMD_audio/` of DEAM, `chorus/` of PMEmo) may itself be
    a symlink, as when the audio sits on another disk: files must then stay inside its
    target. Any other linked folder (in an output root, in a generic dataset) is refused."""
    parts = PurePosixPath(rel).parts
    if not parts or PurePosixPath(rel).is_absolute() or ".." in parts:
        raise AudioError(PATH_OUTSIDE_ROOT, f"{rel}: reference leaves the dataset root")
    path = Path(root).joinpath(*parts)
    target = path.resolve()
    bases = [Path(root).resolve()]
    if len(parts) > 1 and parts[0] in LINKABLE_AUDIO_DIRS and Path(root, parts[0]).is_symlink():
        bases.append(Path(root, parts[0]).resolve())
    if not any(target.is_relative_to(base) for base in bases):
        raise AudioError(PATH_OUTSIDE_ROOT, f"{rel}: a symlink leading out of the dataset root")
    return path


def leaves_root(root: Path, ref: str) -> bool:
    """Does the file part of `ref` lead out of `root` ('..', absolute, a symlink)? Stages
    reject such files `path-outside-root` and never read them, not even to hash them."""
    try:
        _safe_join(root, split_ref(ref)[0])
    except AudioError:
        return True
    return False


# (path, size, mtime_ns, inode, pid) -> the open archive
_ZIPS: dict[tuple[str, int, int, int, int], zipfile.ZipFile] = {}


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
        raise AudioError(UNREADABLE_AUDIO, f"{ref}: cannot read ({error_text(exc)})") from None


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
            fh = open(path, "rb")  # noqa: SIM115 - closed by the `with fh` below
        except OSError as exc:
            raise AudioError(UNREADABLE_AUDIO, f"{ref}: cannot open ({error_text(exc)})") from None
        with fh:
            if os.fstat(fh.fileno()).st_size == 0:
                raise AudioError(EMPTY_AUDIO, f"{ref}: file is empty (0 bytes)")
            yield fh
    else:
        data = read_ref_bytes(root, ref)
        if not data:
            raise AudioError(EMPTY_AUDIO, f"{ref}: zip member is empty (0 bytes)")
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
        except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for junk input
            raise AudioError(UNREADABLE_AUDIO, f"{ref}: not decodable audio ({_short(exc)})") from None
    if info.frames <= 0 or info.samplerate <= 0 or info.channels <= 0:
        raise AudioError(EMPTY_AUDIO, f"{ref}: no audio frames ({info.frames} frames)")
    check_sample_rate(ref, int(info.samplerate))
    return AudioInfo(int(info.frames), int(info.samplerate), int(info.channels), str(info.format))


def check_sample_rate(ref: str, rate: int) -> None:
    """AudioError `absurd-sample-rate` unless MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise AudioError(ABSURD_SAMPLE_RATE, f"{ref}: the header announces {rate:,} Hz, outside "
                         f"{MIN_SAMPLE_RATE:,}–{MAX_SAMPLE_RATE:,} Hz (a corrupt or hand-made header)")


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
    survive resampling. Raises AudioError: `unreadable-audio`, `empty-audio`, `truncated-audio`,
    `absurd-sample-rate`, `path-outside-root`.
    """
    import soundfile as sf
    import soxr

    with open_ref(root, ref) as src:
        try:
            with sf.SoundFile(src) as fh:
                sr, channels, announced = int(fh.samplerate), int(fh.channels), int(fh.frames)
                check_sample_rate(ref, sr)
                try:
                    data = fh.read(dtype="float32", always_2d=True)
                except Exception as exc:  # noqa: BLE001 - any decoder failure midway is the file's
                    raise _failed_midway(ref, src, sr, announced, exc) from None
        except AudioError:
            raise
        except Exception as exc:  # noqa: BLE001 - libsndfile raises several types for junk input
            raise AudioError(UNREADABLE_AUDIO, f"{ref}: not decodable audio ({_short(exc)})") from None
    n_src = len(data)
    if n_src == 0:
        raise AudioError(EMPTY_AUDIO, f"{ref}: no audio frames could be decoded")
    if n_src < announced * (1 - TRUNCATION_TOLERANCE) - TRUNCATION_SLACK_FRAMES:
        raise AudioError(TRUNCATED_AUDIO,
                         f"{ref}: decoded {n_src} of the {announced} frames its header announces "
                         f"({n_src / sr:.2f} of {announced / sr:.2f} s); the file is cut short")
    mono = downmix(data)
    del data
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ")
    n_out = round(n_src * sample_rate / sr)
    return Decoded(fit_length(mono, n_out), sample_rate, sr, n_src, channels)


def _failed_midway(ref: str, src: BinaryIO, sr: int, announced: int, exc: Exception) -> AudioError:
    """The error for a stream that opened but failed while decoding: `truncated-audio` when
    well under the announced frames decode before the failure (e.g. a FLAC cut mid-frame:
    libFLAC "lost sync"), else `unreadable-audio`. The good frames are counted by a second,
    block-wise read; only the count is used (block reads of MP3 give wrong samples, see
    decode_mono, but the right number of them)."""
    import soundfile as sf

    n_ok = 0
    with contextlib.suppress(Exception):  # counting stops where decoding fails, whatever the error
        src.seek(0)
        with sf.SoundFile(src) as fh:
            while got := len(fh.read(1 << 13, dtype="float32", always_2d=True)):
                n_ok += got
    if n_ok < announced * (1 - TRUNCATION_TOLERANCE) - TRUNCATION_SLACK_FRAMES:
        return AudioError(TRUNCATED_AUDIO, f"{ref}: decoding fails after {n_ok} of the {announced} frames "
                          f"its header announces ({n_ok / sr:.2f} of {announced / sr:.2f} s; {_short(exc)}); "
                          "the file is cut short or damaged")
    return AudioError(UNREADABLE_AUDIO, f"{ref}: not decodable audio ({_short(exc)})")


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
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            np.save(fh, np.asarray(samples, dtype=np.float32), allow_pickle=False)
    else:
        raise ValueError(f"audio_format must be 'flac' or 'npy', not {audio_format!r}")


def _short(exc: BaseException) -> str:
    """libsndfile's message without the repr of the file object it embeds (the caller prints
    the root-relative reference, so messages do not depend on where the data lives)."""
    text = str(exc).replace("\n", " ")
    # libsndfile says this of MP3 data it cannot sync to, even for a file that exists
    text = text.replace("File does not exist or is not a regular file (possibly a pipe?).",
                        "no valid audio stream found")
    text = re.sub(r"Error opening <[^>]*>: ", "", text)
    return text[:160]
