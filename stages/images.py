"""Stage `images`: FoodPics pictures → 224 × 224 RGB PNGs, as the thesis fed them to the ViT.

Thesis ch. 2.1.2: "resized to 224x224 pixels using high-quality Lanczos resampling" and
"converted to RGB format without additional color normalization". Per image:

1. open lazily and refuse images above `max_pixels` *before* any pixel is decoded (the
   decompression-bomb guard; Pillow's own warning is silenced and its hard error becomes the
   same `image-too-large` reject);
2. check the bytes still match the `content_hash` the ingest recorded (`source-changed`);
3. apply the EXIF orientation (`ImageOps.exif_transpose`), as any viewer would show it;
4. convert to 8-bit RGB (`to_rgb`): alpha / transparency composited on white (the FoodPics
   background), 16-bit gray scaled by 255/65535 with rounding (never clipped), CMYK through
   its embedded ICC profile when there is one, palette / L / 1 expanded;
5. Lanczos to `size` × `size`: `fit = "stretch"` (thesis), `"pad"` (letterbox on white) or
   `"crop"` (centre crop) — `Image.resize`, `ImageOps.pad`, `ImageOps.fit`;
6. write a PNG (no metadata, fixed compression level: the same pixels give the same bytes)
   atomically to `<out_dir>/png/<image_no>.png`.

Manifest rows carry the upstream `foodpics` columns (VA, categories) plus `path`,
`src_width`, `src_height`, `src_mode` (as stored in the file, before orientation) and
`exif_orientation`. The image helpers here (`open_image`, `decode_image`, `to_rgb`,
`fit_square`, `resolve_in_root`) are shared with the `foodpics` ingest.
"""
from __future__ import annotations

import errno
import hashlib
import io
import math
import unicodedata
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoprep.atomic import atomic_path
from emoprep.errors import ConfigError
from emoprep.stage import Outcome, Reject, Stage, WorkItem, register
from emoprep.stages.manifest_values import error_text, kinds_like, with_kinds

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

# Reason codes used here are documented in emoprep.manifests.schema.REJECT_CODES.

# Columns of the upstream row that are replaced, and the kinds of the columns added here
# (carried columns keep the upstream manifest's kinds).
REPLACED = ("width", "height", "mode", "path", "fingerprint")
OWN_KINDS = {"sample_id": "str", "source_id": "str", "modality": "int", "path": "str",
             "src_width": "int", "src_height": "int", "src_mode": "str", "exif_orientation": "int"}


class ImageTooLarge(Exception):
    """The image has more pixels than allowed; raised before decoding."""


class UndecodableImage(Exception):
    """Pillow could not identify or decode the image."""


# ---------------------------------------------------------------- paths ----------
def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def resolve_in_root(root: Path, rel: str) -> Path:
    """The file `rel` (POSIX, NFC, relative to `root`) on disk.

    Manifests store NFC names, but archives made on macOS unpack with NFD names, so a part
    that does not exist as written is looked up among its siblings by NFC equality. Raises
    FileNotFoundError when absent and ValueError when the path would leave `root`; their
    messages name `rel` only, never the absolute root (outputs must not depend on it)."""
    root = Path(root)
    parts = Path(rel).parts
    if Path(rel).is_absolute() or any(p in ("..", "") for p in parts):
        raise ValueError(f"{rel!r} is not a plain path inside the dataset root")
    path = root
    for part in parts:
        nxt = path / part
        if not nxt.exists() and path.is_dir():
            matches = [c for c in path.iterdir() if nfc(c.name) == nfc(part)]
            if len(matches) == 1:
                nxt = matches[0]
        path = nxt
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such file in the dataset root")
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f"{rel}: resolves to a file outside the dataset root")
    return path


# ---------------------------------------------------------------- decoding -------
def open_image(data: bytes, max_pixels: int, name: str = "image") -> Any:
    """Open `data` lazily (header only) and enforce the pixel limit before decoding."""
    from PIL import Image

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(f"{name}: {error_text(exc)}") from None
        except Exception as exc:  # Pillow plugins raise many types on garbage input
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
        except Exception as exc:
            raise UndecodableImage(f"{name}: verify failed ({type(exc).__name__}: {error_text(exc)})") from None
        finally:
            im.close()
    im = open_image(data, max_pixels, name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            im.load()
    except Exception as exc:
        raise UndecodableImage(f"{name}: decoding failed ({type(exc).__name__}: {error_text(exc)})") from None
    return im


def exif_orientation(im: Any) -> int:
    """The EXIF Orientation tag (1 = as stored); unreadable EXIF counts as 1."""
    try:
        value = im.getexif().get(0x0112, 1)
        return int(value) if int(value) in range(1, 9) else 1
    except Exception:
        return 1


def orient(im: Any) -> Any:
    """Apply the EXIF orientation; a broken EXIF block leaves the image as stored."""
    from PIL import ImageOps

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return ImageOps.exif_transpose(im)
    except Exception:
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
    white = Image.new("RGBA", rgba.size, WHITE + (255,))
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
    if icc and (apply_icc == "all" and mode in ("RGB", "L") or apply_icc != "none" and mode == "CMYK"):
        try:
            return icc_to_srgb(im, icc), [f"icc-{mode.lower()}"]
        except Exception:
            notes.append("icc-invalid")
    if mode == "CMYK":
        return im.convert("RGB"), notes + ["cmyk-naive"]
    if mode in ALPHA_MODES or "transparency" in im.info:
        return on_white(im), notes + ["alpha-on-white"]
    if mode == "RGB":
        return im, notes
    return im.convert("RGB"), notes + [f"from-{mode.lower()}"]


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


def plain(value: Any) -> Any:
    """Manifest cell → plain Python value (NaN / NA → None) for payloads and rows."""
    if value is None:
        return None
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict, str)):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    try:
        import pandas as pd

        if value is pd.NA or value is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return value


# ---------------------------------------------------------------- the stage ------
@register
class Images(Stage):
    name = "images"
    version = "2"
    libraries = ("pillow", "numpy")
    default_inputs = ("foodpics",)
    description = "FoodPics images → oriented RGB, Lanczos 224×224 PNG (thesis ch. 2.1.2)"

    @dataclass(frozen=True)
    class Params:
        size: int = 224
        fit: str = "stretch"  # stretch (thesis) | pad | crop
        max_pixels: int = DEFAULT_MAX_PIXELS
        apply_icc: str = "cmyk"  # cmyk | all | none
        dataset: str = "foodpics"  # the upstream ingest stage and dataset root to read

    def inputs(self, params: Any) -> list[str]:
        return [params.dataset]

    def check_params(self, params: Any) -> None:
        if params.fit not in FITS:
            raise ConfigError(f"images.fit = {params.fit!r}: choose one of {', '.join(FITS)}")
        if params.apply_icc not in ICC_POLICIES:
            raise ConfigError(f"images.apply_icc = {params.apply_icc!r}: choose one of "
                              f"{', '.join(ICC_POLICIES)}")
        if params.size < 1 or params.max_pixels < 1:
            raise ConfigError(f"images.size ({params.size}) and images.max_pixels "
                              f"({params.max_pixels}) must be positive")

    def plan(self, ctx: Any) -> list[WorkItem]:
        params = ctx.params
        self.check_params(params)
        if params.dataset not in ctx.roots:
            raise ConfigError(f"stage images needs the {params.dataset} dataset root; set "
                              f"--data-root or --set {params.dataset}.root=DIR (SPEC §3.2)")
        df = ctx.input_manifest(params.dataset)
        records = [{k: plain(v) for k, v in rec.items()} for rec in df.to_dict("records")]
        records.sort(key=lambda r: (r.get("image_no") is None, r.get("image_no") or 0,
                                    str(r["sample_id"])))
        return [WorkItem(key=str(r["sample_id"]), payload={"row": r}) for r in records]

    def process(self, item: WorkItem, ctx: Any) -> Outcome:
        params, row = ctx.params, item.payload["row"]
        sid = str(row["sample_id"])
        root = Path(ctx.roots[params.dataset])
        rel = str(row["image_path"])
        try:
            src = resolve_in_root(root, rel)
            data = src.read_bytes()
        except ValueError as exc:
            return Outcome(rejects=[Reject(sid, "path-outside-root", str(exc))])
        except OSError as exc:
            return Outcome(rejects=[Reject(sid, "missing-image", f"{rel}: {error_text(exc)}")])
        expected = row.get("content_hash")
        if expected and hashlib.sha256(data).hexdigest() != expected:
            return Outcome(rejects=[Reject(sid, "source-changed",
                                           f"{rel}: content differs from the ingest's hash "
                                           f"{str(expected)[:12]}…; re-run the ingest stage")])
        try:
            return self._convert(sid, row, data, rel, ctx)
        except ImageTooLarge as exc:
            return Outcome(rejects=[Reject(sid, "image-too-large", str(exc))])
        except UndecodableImage as exc:
            return Outcome(rejects=[Reject(sid, "undecodable-image", str(exc))])

    def _convert(self, sid: str, row: dict, data: bytes, rel: str, ctx: Any) -> Outcome:
        """Decode, orient, convert and resize one image; `rel` names it in messages."""
        params = ctx.params
        im = decode_image(data, params.max_pixels, name=rel, verify=False)
        src_size, src_mode, orientation = im.size, im.mode, exif_orientation(im)
        try:
            rgb, notes = to_rgb(orient(im), params.apply_icc)
        except (ValueError, OSError) as exc:
            return Outcome(rejects=[Reject(sid, "unsupported-mode",
                                           f"{rel}: cannot convert mode {src_mode} to RGB ({error_text(exc)})")])
        out_img = fit_square(rgb, params.size, params.fit)
        image_no = row.get("image_no")
        stem = str(image_no) if image_no is not None else sid.replace(":", "_")
        out = Path(ctx.out_dir) / "png" / f"{stem}.png"
        payload = png_bytes(out_img)
        with atomic_path(out) as tmp:
            tmp.write_bytes(payload)
        carried = {k: v for k, v in row.items() if k not in REPLACED}
        carried.update({
            "sample_id": sid, "source_id": row.get("source_id", sid), "modality": 0,
            "path": ctx.rel(out), "src_width": src_size[0], "src_height": src_size[1],
            "src_mode": src_mode, "exif_orientation": orientation,
        })
        counters = {note: 1 for note in notes}
        if orientation != 1:
            counters["exif-rotated"] = 1
        return Outcome(rows=[carried], counters=counters)

    def finalize(self, ctx: Any, rows: Any, rejects: list[Reject]) -> tuple[Any, list[Reject]]:
        """Rows typed: one Parquet type per column, whatever the data."""
        upstream = kinds_like(ctx.input_manifest(ctx.params.dataset))
        kinds = {k: v for k, v in upstream.items() if k not in REPLACED}
        return with_kinds(rows, {**kinds, **OWN_KINDS}), rejects
