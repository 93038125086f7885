"""Hostile media bytes, crafted by hand where the libraries refuse; the ordinary media
come from `emoprep.stages.demo.media` (tones, encoders, pictures in every mode).

RIFF/WAVE and FLAC headers crafted with `struct` for what libsndfile will not write (0
channels, a 0 Hz or 2 GHz rate, 2,000 channels); PNG / JPEG headers that claim 50,000 ×
50,000 pixels over a few hundred bytes (decompression bombs that must never be decoded).
Everything is deterministic and small; encodings are cached per process.
"""
from __future__ import annotations

import functools
import struct
import zlib

import numpy as np

from emoprep.stages.demo.media import SR, audio_bytes, encode_variant, image_bytes, picture, tone
from emoprep.stages.demo.media import truncated as truncated  # the kinds cut files with it


@functools.cache
def tone_file(seconds: float, freq: float = 440.0, fmt: str = "MP3", sr: int = SR) -> bytes:
    """A tone encoded as MP3 / WAV / FLAC (cached: many ids share a few files)."""
    return audio_bytes(tone(seconds, freq, sr), sr, fmt)


@functools.cache
def silent_file(seconds: float, fmt: str = "MP3", sr: int = SR) -> bytes:
    return audio_bytes(np.zeros(round(seconds * sr), np.float32), sr, fmt)


@functools.cache
def clipped_file(seconds: float, fmt: str = "MP3", sr: int = SR) -> bytes:
    """A sine driven 4x past full scale and hard-clipped: a square-ish wave at +-1."""
    return audio_bytes(np.clip(4.0 * tone(seconds, 220.0, sr, amp=1.0), -1.0, 1.0), sr, fmt)


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
    return audio_bytes(x, sr, "WAV", "FLOAT")


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
def jpeg(color: tuple[int, int, int] = (200, 60, 40), size: tuple[int, int] = (64, 48)) -> bytes:
    return encode_variant(picture(size, color), "rgb")


def png(color: tuple[int, int, int] = (40, 160, 60), size: tuple[int, int] = (64, 48)) -> bytes:
    return image_bytes(picture(size, color), "PNG")


def cmyk_jpeg() -> bytes:
    return encode_variant(picture((64, 48), (30, 90, 200)), "cmyk")


def gray16_png() -> bytes:
    return encode_variant(picture((64, 48), (30, 90, 200)), "i16")


def one_pixel_png() -> bytes:
    return image_bytes(picture((1, 1), (120, 30, 200), background=(120, 30, 200)), "PNG")


def exif_jpeg(orientation: int) -> bytes:
    """A JPEG whose EXIF Orientation tag holds `orientation` (99: not a valid value)."""
    return encode_variant(picture((64, 48), (220, 180, 30)), f"exif{orientation}")


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
