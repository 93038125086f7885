"""Image I/O shared by the image stages and the ingests that probe images: open with a
decompression-bomb guard, decode, orient, convert to 8-bit RGB, fit to a square, encode PNG.

Per image, the `images` stage (thesis ch. 2.1.2: "resized to 224x224 pixels using
high-quality Lanczos resampling", "converted to RGB format without additional color
normalization") and the `foodpics` / `generic` probes use:

1. `open_image`: open lazily and refuse images above `max_pixels` *before* any pixel is
   decoded (Pillow's own warning is silenced and its hard error becomes `ImageTooLarge`);
2. `orient`: the EXIF orientation (`ImageOps.exif_transpose`), as any viewer would show it;
3. `to_rgb`: 8-bit RGB — alpha / transparency composited on white (the FoodPics
   background), 16-bit gray scaled by 255/65535 with rounding (never clipped), CMYK through
   its embedded ICC profile when there is one, palette / L / 1 expanded;
4. `fit_square`: Lanczos to `size` × `size`, `"stretch"` (thesis), `"pad"` (letterbox on
   white) or `"crop"` (centre crop) — `Image.resize`, `ImageOps.pad`, `ImageOps.fit`;
5. `png_bytes`: PNG without metadata at a fixed compression level (same pixels, same bytes).

Pillow is imported inside the functions: modules that import this one stay cheap to load.
"""
from __future__ import annotations

import io
import warnings
from typing import Any

from emoprep.pipeline.values import error_text

# Pillow's own warning threshold (Image.MAX_IMAGE_PIXELS default, ~89.5 MP). Pillow refuses
# images above twice its global limit whatever this parameter says.
DEFAULT_MAX_PIXELS = 89_478_485
FITS = ("stretch", "pad", "crop")
ICC_POLICIES = ("cmyk", "all", "none")
WHITE = (255, 255, 255)
GRAY16_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
# zlib level 1: on 224² photos ~7 ms and ~70 KB per PNG against ~25 ms and ~61 KB at Pillow's
# default 6 (measured on this machine); pixels are identical, bytes fixed for a given zlib.
PNG_COMPRESS_LEVEL = 1


class ImageTooLarge(Exception):
    """The image has more pixels than allowed; raised before decoding."""


class UndecodableImage(Exception):
    """Pillow could not identify or decode the image."""


def open_image(data: bytes, max_pixels: int, name: str = "image") -> Any:
    """Open `data` lazily (header only) and enforce the pixel limit before decoding."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"{name}: {error_text(exc)}") from None
        except Exception as exc:  # noqa: BLE001 - Pillow plugins raise many types on garbage input
            raise UndecodableImage(f"{name}: cannot identify image ({type(exc).__name__}: {error_text(exc)})") from None
    width, height = im.size
    if width <= 0 or height <= 0:
        raise UndecodableImage(f"{name}: empty image size {width}x{height}")
    if width * height > max_pixels:
        im.close()
        raise ImageTooLarge(f"{name}: {width}x{height} = {width * height:,} pixels exceeds "
                            f"max_pixels = {max_pixels:,} (decompression-bomb guard)")
    return im


def decode_image(data: bytes, max_pixels: int, name: str = "image", verify: bool = True) -> Any:
    """Open, optionally `verify()` (structure, CRCs), then fully `load()` the pixels.

    `verify()` leaves the image unusable, so the bytes are opened a second time to load."""
    if verify:
        im = open_image(data, max_pixels, name)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                im.verify()
        except Exception as exc:  # noqa: BLE001 - Pillow decoders raise many types on corrupt data
            raise UndecodableImage(f"{name}: verify failed ({type(exc).__name__}: {error_text(exc)})") from None
        finally:
            im.close()
    im = open_image(data, max_pixels, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except Exception as exc:  # noqa: BLE001 - Pillow decoders raise many types on corrupt data
        raise UndecodableImage(f"{name}: decoding failed ({type(exc).__name__}: {error_text(exc)})") from None
    return im


def exif_orientation(im: Any) -> int:
    """The EXIF Orientation tag (1 = as stored); unreadable EXIF counts as 1."""
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:  # noqa: BLE001 - a broken EXIF block raises many types; it counts as 1
        return 1


def orient(im: Any) -> Any:
    """Apply the EXIF orientation; a broken EXIF block leaves the image as stored."""
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ImageOps.exif_transpose(im)
    except Exception:  # noqa: BLE001 - a broken EXIF block raises many types; shown as stored
        return im


# ---------------------------------------------------------------- to RGB ---------
def gray16_to_l(arr: Any) -> Any:
    """uint16 → uint8 by v·255/65535 rounded to nearest (= round(v / 257); no ties exist)."""
    import numpy as np

    v = arr.astype(np.uint32)
    return ((2 * v + 257) // 514).astype(np.uint8)


def stretch_to_l(arr: Any) -> Any:
    """Linear map of [min, max] to [0, 255], rounded; a constant image maps to 0."""
    import numpy as np

    a = np.asarray(arr, dtype=np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(a.shape, np.uint8)
    return np.floor((a - lo) * 255.0 / (hi - lo) + 0.5).clip(0, 255).astype(np.uint8)


def wide_gray_to_l(im: Any) -> tuple[Any, str]:
    """8-bit gray from 16-bit (I;16*), 32-bit int (I) or float (F) images.

    I;16*: scaled 255/65535. I: scaled the same when every value fits 0–65535 (how 16-bit
    files decode), else stretched min–max. F: ×255 when values lie in [0, 1], as is in
    [0, 255], else stretched; non-finite values become 0."""
    import numpy as np
    from PIL import Image

    arr = np.asarray(im)
    if im.mode in GRAY16_MODES:
        out, how = gray16_to_l(arr), "gray16-scaled"
    elif im.mode == "I":
        arr = arr.astype(np.int64)
        if arr.min() >= 0 and arr.max() <= 65535:
            out, how = gray16_to_l(arr.astype(np.uint16)), "int-scaled-16bit"
        else:
            out, how = stretch_to_l(arr), "int-stretched"
    else:  # "F"
        arr = np.where(np.isfinite(arr), arr, 0.0).astype(np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        if lo >= 0.0 and hi <= 1.0:
            out, how = np.floor(arr * 255.0 + 0.5).astype(np.uint8), "float-unit-scaled"
        elif lo >= 0.0 and hi <= 255.0:
            out, how = np.floor(arr + 0.5).astype(np.uint8), "float-8bit"
        else:
            out, how = stretch_to_l(arr), "float-stretched"
    return Image.fromarray(out, mode="L"), how


def on_white(im: Any) -> Any:
    """Composite anything with alpha or a transparency key over opaque white."""
    from PIL import Image

    rgba = (im.convert("LA") if im.mode == "La" else im).convert("RGBA")  # no La → RGBA path
    white = Image.new("RGBA", rgba.size, (*WHITE, 255))
    return Image.alpha_composite(white, rgba).convert("RGB")


def icc_to_srgb(im: Any, icc: bytes) -> Any:
    """Colour-manage `im` from its embedded profile to sRGB (perceptual intent)."""
    from PIL import ImageCms

    src = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    dst = ImageCms.createProfile("sRGB")
    return ImageCms.profileToProfile(im, src, dst, renderingIntent=ImageCms.Intent.PERCEPTUAL,
                                     outputMode="RGB")


def to_rgb(im: Any, apply_icc: str = "cmyk") -> tuple[Any, list[str]]:
    """8-bit RGB for any Pillow mode, plus notes on what was done (for counters).

    `apply_icc`: "cmyk" uses an embedded ICC profile for CMYK only (there is no correct
    profile-free CMYK→RGB; without a profile Pillow's naive formula is used), "all" also
    for RGB / L images, "none" never. Raises ValueError for modes Pillow cannot convert."""
    mode, notes = im.mode, []
    icc = im.info.get("icc_profile")
    if mode in GRAY16_MODES or mode in ("I", "F"):
        gray, how = wide_gray_to_l(im)
        return gray.convert("RGB"), [how]
    if icc and ((apply_icc == "all" and mode in ("RGB", "L")) or (apply_icc != "none" and mode == "CMYK")):
        try:
            return icc_to_srgb(im, icc), [f"icc-{mode.lower()}"]
        except Exception:  # noqa: BLE001 - LittleCMS raises many types on a broken profile
            notes.append("icc-invalid")
    if mode == "CMYK":
        return im.convert("RGB"), [*notes, "cmyk-naive"]
    if mode in ALPHA_MODES or "transparency" in im.info:
        return on_white(im), [*notes, "alpha-on-white"]
    if mode == "RGB":
        return im, notes
    return im.convert("RGB"), [*notes, f"from-{mode.lower()}"]


def fit_square(rgb: Any, size: int, fit: str) -> Any:
    """Lanczos to size × size: stretch (thesis), pad (letterbox on white), crop (centre)."""
    from PIL import Image, ImageOps

    lanczos = Image.Resampling.LANCZOS
    if fit == "stretch":
        out = rgb.resize((size, size), lanczos)
    elif fit == "pad":
        out = ImageOps.pad(rgb, (size, size), method=lanczos, color=WHITE, centering=(0.5, 0.5))
    elif fit == "crop":
        out = ImageOps.fit(rgb, (size, size), method=lanczos, bleed=0.0, centering=(0.5, 0.5))
    else:
        raise ValueError(f"fit must be one of {FITS}, not {fit!r}")
    out.info = {}  # no ICC / EXIF / text chunks in outputs
    return out


def png_bytes(im: Any) -> bytes:
    """PNG without metadata at a fixed compression level: same pixels, same bytes."""
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buf.getvalue()
