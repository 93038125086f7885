"""Bytes of good and broken media files, written by hand where the libraries refuse.

Audio: tones encoded with soundfile (MP3 / WAV / FLAC), and RIFF/WAVE and FLAC headers
crafted with `struct` for what libsndfile will not write (0 channels, a 0 Hz or 2 GHz rate,
2,000 channels). Images: small Pillow pictures, and PNG / JPEG headers that claim
50,000 × 50,000 pixels over a few hundred bytes (decompression bombs that must never be
decoded). Everything is deterministic and small; encodings are cached per process.
"""
from __future__ import annotations

import functools
import io
import struct
import zlib
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from PIL import Image

SR = 22050  # corpus audio rate: half of DEAM's, so encoding and decoding stay cheap


# ---------------------------------------------------------------- audio -----------
def tone(seconds: float, freq: float = 440.0, sr: int = SR, amp: float = 0.3,
         channels: int = 1) -> np.ndarray:
    """A sine with a slow tremolo (so it is not constant), float32 on the 16-bit grid."""
    t = np.arange(round(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * freq * t) * (0.75 + 0.25 * np.cos(2 * np.pi * 0.5 * t))
    x = np.round(x * 32767) / 32768
    out = np.stack([x] * channels, axis=1) if channels > 1 else x
    return out.astype(np.float32)


def encode(x: np.ndarray, sr: int = SR, fmt: str = "MP3", subtype: str | None = None) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


@functools.cache
def tone_file(seconds: float, freq: float = 440.0, fmt: str = "MP3", sr: int = SR,
              amp: float = 0.3) -> bytes:
    """A tone encoded as MP3 / WAV / FLAC (cached: many ids share a few files)."""
    return encode(tone(seconds, freq, sr, amp), sr, fmt)


@functools.cache
def silent_file(seconds: float, fmt: str = "MP3", sr: int = SR) -> bytes:
    return encode(np.zeros(round(seconds * sr), np.float32), sr, fmt)


@functools.cache
def clipped_file(seconds: float, fmt: str = "MP3", sr: int = SR) -> bytes:
    """A sine driven 4x past full scale and hard-clipped: a square-ish wave at +-1."""
    x = np.clip(4.0 * tone(seconds, 220.0, sr, amp=1.0), -1.0, 1.0)
    return encode(x.astype(np.float32), sr, fmt)


def truncated(data: bytes, keep: float = 0.45) -> bytes:
    """The first `keep` of a file (a download cut short)."""
    return data[: int(len(data) * keep)]


def wav_bytes(channels: int, rate: int, n_frames: int = 2000, bits: int = 16,
              payload: bytes | None = None) -> bytes:
    """A PCM RIFF/WAVE file with exactly the header fields given (no sanity checks): the way
    to write 0 channels or a 2 GHz rate, which soundfile refuses."""
    block = (channels * bits // 8) & 0xFFFF
    if payload is None:  # a saw wave, not silence: silence would be rejected for another reason
        n_bytes = n_frames * max(block, 2)
        payload = ((np.arange(n_bytes // 2) % 64) * 300 - 9600).astype("<i2").tobytes()
    data = payload
    fmt = struct.pack("<HHIIHH", 1, channels & 0xFFFF, rate & 0xFFFFFFFF,
                      (rate * block) & 0xFFFFFFFF, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def float_wav_with_nan(seconds: float = 6.0, sr: int = SR) -> bytes:
    """A 32-bit float WAV whose samples are NaN from the middle on."""
    x = tone(seconds, 330.0, sr)
    x[len(x) // 2:] = np.nan
    return encode(x, sr, "WAV", "FLOAT")


def flac_with_rate(rate: int, seconds: float = 2.0) -> bytes:
    """A valid FLAC whose STREAMINFO sample-rate field (20 bits) is rewritten to `rate`."""
    data = bytearray(tone_file(seconds, 330.0, "FLAC"))
    assert data[:4] == b"fLaC" and data[4] & 0x7F == 0, "STREAMINFO must be the first block"
    off = 8 + 10  # marker, block header, min/max block size, min/max frame size
    v = int.from_bytes(data[off:off + 8], "big")
    v = (v & ~(((1 << 20) - 1) << 44)) | ((rate & ((1 << 20) - 1)) << 44)
    data[off:off + 8] = v.to_bytes(8, "big")
    return bytes(data)


def id3_only() -> bytes:
    """An ID3v2 tag with nothing after it: an MP3 'file' without a single audio frame."""
    return b"ID3\x04\x00\x00\x00\x00\x00\x0a" + b"TIT2" + struct.pack(">I", 0) + b"\x00\x00"


# ---------------------------------------------------------------- images ----------
def picture(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 60, 40)) -> Image.Image:
    """An RGB object on white (a disc), as the FoodPics pictures look."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, (255, 255, 255))
    w, h = size
    ImageDraw.Draw(im).ellipse([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=color)
    return im


def image_bytes(im: Image.Image, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def jpeg(color: tuple[int, int, int] = (200, 60, 40), size: tuple[int, int] = (64, 48)) -> bytes:
    return image_bytes(picture(size, color), "JPEG", quality=90)


def png(color: tuple[int, int, int] = (40, 160, 60), size: tuple[int, int] = (64, 48)) -> bytes:
    return image_bytes(picture(size, color), "PNG")


def cmyk_jpeg() -> bytes:
    return image_bytes(picture((64, 48), (30, 90, 200)).convert("CMYK"), "JPEG", quality=90)


def gray16_png() -> bytes:
    from PIL import Image

    ramp = (np.arange(48)[:, None] * 1300 + np.arange(64)[None, :] * 17).astype(np.uint16)
    return image_bytes(Image.fromarray(ramp), "PNG")


def one_pixel_png() -> bytes:
    from PIL import Image

    return image_bytes(Image.new("RGB", (1, 1), (120, 30, 200)), "PNG")


def exif_jpeg(orientation: int) -> bytes:
    """A JPEG whose EXIF Orientation tag holds `orientation` (99: not a valid value)."""
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    return image_bytes(picture((64, 48), (220, 180, 30)), "JPEG", quality=90, exif=exif.tobytes())


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def png_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A ~100-byte PNG whose IHDR claims width × height RGB pixels (7.5 GB decoded)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 64)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")


def jpeg_bomb(width: int = 50_000, height: int = 50_000) -> bytes:
    """A small real JPEG whose SOF0 frame header is rewritten to claim width × height."""
    data = bytearray(jpeg())
    i = data.index(b"\xff\xc0")  # baseline SOF0: FFC0 len(2) precision(1) height(2) width(2)
    data[i + 5:i + 7] = struct.pack(">H", height)
    data[i + 7:i + 9] = struct.pack(">H", width)
    return bytes(data)


def corrupt_png() -> bytes:
    """A PNG with one IDAT byte flipped: the chunk CRC no longer matches."""
    data = bytearray(png((10, 10, 220), (64, 48)))
    i = data.index(b"IDAT") + 8
    data[i] ^= 0xFF
    return bytes(data)


def corrupt_jpeg() -> bytes:
    """JPEG start-of-image, then noise: no decoder can identify a picture in it."""
    return b"\xff\xd8\xff\xe0" + np.random.default_rng(9).bytes(1500)
