"""Synthetic media as bytes, for the demo trees and for every test tree: tones on the 16-bit
grid, MP3 / WAV / FLAC encoding, pictures of an object on white, JPEG / PNG in every storage
mode the image stages meet (EXIF orientations, CMYK, palette with and without transparency,
16-bit gray, RGBA, LA, L, truncated), and junk behind an ID3 tag. Deterministic bytes.
"""
from __future__ import annotations

import io
import random
from typing import Any

import numpy as np

SR = 22050  # test audio rate: half of DEAM's, so encoding and decoding stay cheap
ID3_HEADER = b"ID3\x04\x00\x00\x00\x00\x00\x00"


def to_16bit_grid(x: np.ndarray) -> np.ndarray:
    """Round to the 16-bit grid and return float32: tiny libm differences between machines
    vanish, and the MP3 encoder gets float input (libsndfile's 16-bit stereo MP3 path is not
    byte-deterministic from run to run; its float path is)."""
    q = np.clip(np.round(np.asarray(x, dtype=np.float64) * 32767), -32768, 32767)
    return (q / 32768).astype(np.float32)


def tone(seconds: float, freq: float = 440.0, sr: int = SR, amp: float = 0.3, channels: int = 1,
         tremolo: float = 0.25) -> np.ndarray:
    """A sine with a slow tremolo (so it is not constant), float32 on the 16-bit grid;
    shape (n,) for one channel, else (n, channels)."""
    t = np.arange(round(seconds * sr)) / sr
    x = to_16bit_grid(amp * np.sin(2 * np.pi * freq * t) * (1 - tremolo + tremolo * np.cos(np.pi * t)))
    return np.stack([x] * channels, axis=1) if channels > 1 else x


def audio_bytes(x: np.ndarray, sr: int = SR, fmt: str = "MP3", subtype: str | None = None) -> bytes:
    """Samples encoded by libsndfile (MP3, WAV, FLAC)."""
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x, sr, format=fmt, subtype=subtype)
    return buf.getvalue()


def junk_mp3(seed: int, n: int) -> bytes:
    """An ID3 tag followed by `n` random bytes: named .mp3, but libsndfile cannot open it."""
    return ID3_HEADER + np.random.default_rng(seed).bytes(n)


def truncated(data: bytes, keep: float = 0.45) -> bytes:
    """The first `keep` of a file (a download cut short)."""
    return data[: int(len(data) * keep)]


def picture(size: tuple[int, int] = (64, 48), color: tuple[int, int, int] = (200, 60, 40),
            background: tuple[int, int, int] = (255, 255, 255)) -> Any:
    """An RGB disc on white, as the FoodPics pictures look (background=color: a flat picture)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", size, background)
    w, h = size
    ImageDraw.Draw(im).ellipse([w // 4, h // 4, 3 * w // 4, 3 * h // 4], fill=color)
    return im


def image_bytes(im: Any, fmt: str, **kw: object) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def exif_bytes(orientation: int) -> bytes:
    from PIL import Image

    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def encode_variant(upright: Any, variant: str, rng: random.Random | None = None) -> bytes:
    """The file bytes of an upright RGB picture in a storage variant: rgb (JPEG), exifN (a
    JPEG stored so that EXIF orientation N shows it upright; N outside 3/6/8 stored as is),
    cmyk, l (JPEG), p, p-trns, i16, rgba, la (PNG), corrupt (a JPEG cut at 3/5)."""
    from PIL import Image

    rng = rng or random.Random(0)
    if variant in ("rgb", "corrupt"):
        data = image_bytes(upright, "JPEG", quality=90)
        return data[: len(data) * 3 // 5] if variant == "corrupt" else data
    if variant.startswith("exif"):
        orientation = int(variant[4:])
        # stored so that exif_transpose (6: ROTATE_270, 3: ROTATE_180, 8: ROTATE_90) shows it upright
        inverse = {6: Image.Transpose.ROTATE_90, 3: Image.Transpose.ROTATE_180,
                   8: Image.Transpose.ROTATE_270}.get(orientation)
        stored = upright.transpose(inverse) if inverse is not None else upright
        return image_bytes(stored, "JPEG", quality=90, exif=exif_bytes(orientation))
    if variant in ("cmyk", "l"):
        return image_bytes(upright.convert(variant.upper()), "JPEG", quality=90)
    if variant in ("p", "p-trns"):
        p = upright.quantize(colors=48, dither=Image.Dither.NONE)
        if variant == "p":
            return image_bytes(p, "PNG")
        return image_bytes(p, "PNG", transparency=p.getpixel((0, p.height - 1)))  # a background index
    if variant == "i16":
        gray = np.asarray(upright.convert("L"), dtype=np.uint16)
        noise = np.array([rng.randrange(256) for _ in range(gray.size)], dtype=np.uint16)
        return image_bytes(Image.fromarray(gray * 256 + noise.reshape(gray.shape)), "PNG")
    if variant in ("rgba", "la"):
        arr = np.asarray(upright)
        alpha = np.where((arr >= 245).all(axis=2), 0, 255).astype(np.uint8)
        rgba = Image.fromarray(np.dstack([arr, alpha]), "RGBA")
        return image_bytes(rgba if variant == "rgba" else rgba.convert("LA"), "PNG")
    raise ValueError(f"unknown image variant {variant!r}")
