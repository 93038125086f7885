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
`exif_orientation`. The image helpers are in `emoprep.stages.common.image_io`, shared with
the `foodpics` and `generic` ingests.
"""
from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoprep.manifests.columns import ITEM_COLUMNS
from emoprep.manifests.reasons import (
    IMAGE_TOO_LARGE,
    MISSING_IMAGE,
    PATH_OUTSIDE_ROOT,
    SOURCE_CHANGED,
    UNDECODABLE_IMAGE,
    UNSUPPORTED_MODE,
)
from emoprep.pipeline.atomic import atomic_path
from emoprep.pipeline.columns import ColumnKind, kinds_like
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.stage import Outcome, Stage, WorkItem
from emoprep.pipeline.values import cell, error_text
from emoprep.stages.common.dataset_files import resolve_in_root
from emoprep.stages.common.image_io import (
    DEFAULT_MAX_PIXELS,
    FITS,
    ICC_POLICIES,
    ImageTooLarge,
    UndecodableImage,
    decode_image,
    exif_orientation,
    fit_square,
    orient,
    png_bytes,
    to_rgb,
)
from emoprep.stages.common.naming import safe_name

# Columns of the upstream row that are replaced, and the kinds of the columns added here
# (carried columns keep the upstream manifest's kinds).
REPLACED = ("width", "height", "mode", "path", "fingerprint")
OWN_KINDS: dict[str, ColumnKind] = {
    **ITEM_COLUMNS, "path": "str",
    "src_width": "int", "src_height": "int", "src_mode": "str", "exif_orientation": "int"}


@dataclass(frozen=True)
class ImagesParams:
    size: int = 224
    fit: str = "stretch"  # stretch (thesis) | pad | crop
    max_pixels: int = DEFAULT_MAX_PIXELS
    apply_icc: str = "cmyk"  # cmyk | all | none
    dataset: str = "foodpics"  # the upstream ingest stage and dataset root to read


class Images(Stage[ImagesParams]):
    name = "images"
    version = "3"  # 3: PNGs named safe_name(sample_id) (was the image number, or a non-injective id rule)
    libraries = ("pillow", "numpy")
    default_inputs = ("foodpics",)
    description = "FoodPics images → oriented RGB, Lanczos 224×224 PNG (thesis ch. 2.1.2)"
    Params = ImagesParams

    def inputs(self, params: ImagesParams) -> list[str]:
        return [params.dataset]

    def columns(self, ctx: StageContext[ImagesParams]) -> Mapping[str, ColumnKind]:
        """The upstream ingest's columns (their kinds read back from its manifest) with the
        replaced ones dropped, then the columns this stage adds."""
        upstream = kinds_like(ctx.input_manifest(ctx.params.dataset))
        return {**{k: v for k, v in upstream.items() if k not in REPLACED}, **OWN_KINDS}

    def check_params(self, params: ImagesParams) -> None:
        if params.fit not in FITS:
            raise ConfigError(f"images.fit = {params.fit!r}: choose one of {', '.join(FITS)}")
        if params.apply_icc not in ICC_POLICIES:
            raise ConfigError(f"images.apply_icc = {params.apply_icc!r}: choose one of "
                              f"{', '.join(ICC_POLICIES)}")
        if params.size < 1 or params.max_pixels < 1:
            raise ConfigError(f"images.size ({params.size}) and images.max_pixels "
                              f"({params.max_pixels}) must be positive")

    def plan(self, ctx: StageContext[ImagesParams]) -> list[WorkItem]:
        params = ctx.params
        self.check_params(params)
        if params.dataset not in ctx.roots:
            raise ConfigError(f"stage images needs the {params.dataset} dataset root; set "
                              f"--data-root or --set {params.dataset}.root=DIR (SPEC §3.2)")
        df = ctx.input_manifest(params.dataset)
        records = [{str(k): cell(v) for k, v in rec.items()} for rec in df.to_dict("records")]
        records.sort(key=lambda r: (r.get("image_no") is None, r.get("image_no") or 0,
                                    str(r["sample_id"])))
        return [WorkItem(key=str(r["sample_id"]), payload={"row": r}) for r in records]

    def process(self, item: WorkItem, ctx: ItemContext[ImagesParams]) -> Outcome:
        params, row = ctx.params, item.payload["row"]
        sid = str(row["sample_id"])
        root = Path(ctx.roots[params.dataset])
        rel = str(row["image_path"])
        try:
            src = resolve_in_root(root, rel)
            data = src.read_bytes()
        except ValueError as exc:
            return Outcome.rejected(sid, PATH_OUTSIDE_ROOT, str(exc))
        except OSError as exc:
            return Outcome.rejected(sid, MISSING_IMAGE, f"{rel}: {error_text(exc)}")
        expected = row.get("content_hash")
        if expected and hashlib.sha256(data).hexdigest() != expected:
            return Outcome.rejected(sid, SOURCE_CHANGED, f"{rel}: content differs from the ingest's hash "
                                                         f"{str(expected)[:12]}…; re-run the ingest stage")
        try:
            return self._convert(sid, row, data, rel, ctx)
        except ImageTooLarge as exc:
            return Outcome.rejected(sid, IMAGE_TOO_LARGE, str(exc))
        except UndecodableImage as exc:
            return Outcome.rejected(sid, UNDECODABLE_IMAGE, str(exc))

    def _convert(self, sid: str, row: dict[str, Any], data: bytes, rel: str,
                 ctx: ItemContext[ImagesParams]) -> Outcome:
        """Decode, orient, convert and resize one image; `rel` names it in messages."""
        params = ctx.params
        im = decode_image(data, params.max_pixels, name=rel, verify=False)
        src_size, src_mode, orientation = im.size, im.mode, exif_orientation(im)
        try:
            rgb, notes = to_rgb(orient(im), params.apply_icc)
        except (ValueError, OSError) as exc:
            return Outcome.rejected(sid, UNSUPPORTED_MODE,
                                    f"{rel}: cannot convert mode {src_mode} to RGB ({error_text(exc)})")
        out_img = fit_square(rgb, params.size, params.fit)
        out = Path(ctx.out_dir) / "png" / f"{safe_name(sid)}.png"
        payload = png_bytes(out_img)
        with atomic_path(out) as tmp:
            tmp.write_bytes(payload)
        carried = {k: v for k, v in row.items() if k not in REPLACED}
        carried.update({
            "sample_id": sid, "source_id": row.get("source_id", sid), "modality": 0,
            "path": ctx.rel(out), "src_width": src_size[0], "src_height": src_size[1],
            "src_mode": src_mode, "exif_orientation": orientation,
        })
        counters = dict.fromkeys(notes, 1)
        if orientation != 1:
            counters["exif-rotated"] = 1
        return Outcome(rows=[carried], counters=counters)
