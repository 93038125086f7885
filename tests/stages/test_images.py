"""The `images` stage: orientation, RGB conversion per mode, Lanczos 224 px, fits, bomb guard."""
from __future__ import annotations

import hashlib
import io
import tracemalloc
import unicodedata
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from PIL import Image, ImageCms, ImageOps

from emoprep.manifests.reasons import REJECT_CODES as REASONS
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.stage import Reject, WorkItem
from emoprep.stages.common.image_io import to_rgb
from emoprep.stages.demo import foodpics as demo
from emoprep.stages.foodpics.params import FoodPicsParams
from emoprep.stages.foodpics.stage import FoodPics
from emoprep.stages.images import Images, ImagesParams
from tests.corpus.media import png_bomb
from tests.helpers.stage_run import assert_accounted, run_in_context

STAGE = Images()
LANCZOS = Image.Resampling.LANCZOS
WHITE = np.array([255, 255, 255], np.float64)


# ---------------------------------------------------------------- helpers ----------
def scene(size=(120, 80), seed=0) -> Image.Image:
    """A textured RGB picture: smooth gradients plus noise, so resampling errors show."""
    rng = np.random.default_rng(seed)
    w, h = size
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], axis=2)
    arr = np.clip(arr + rng.normal(0, 20, arr.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(arr, "RGB")


def save(im: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    im.save(buf, fmt, **kw)
    return buf.getvalue()


def exif(orientation: int) -> bytes:
    e = Image.Exif()
    e[0x0112] = orientation
    return e.tobytes()


def manifest(root: Path, files: dict[int, str]) -> pd.DataFrame:
    rows = []
    for n, rel in sorted(files.items()):
        data = (root / rel).read_bytes()
        rows.append({"sample_id": f"foodpics:{n}", "source_id": f"foodpics:{n}", "modality": 0,
                     "image_no": n, "image_path": unicodedata.normalize("NFC", rel),
                     "content_hash": hashlib.sha256(data).hexdigest(), "valence_raw": 5.0,
                     "arousal_raw": 4.0, "width": 1, "height": 1, "mode": "?"})
    return pd.DataFrame(rows)


def make_ctx(tmp: Path, root: Path, df: pd.DataFrame, **params: Any) -> StageContext[ImagesParams]:
    return StageContext(stage="images", params=ImagesParams(**params), out_root=tmp / "out",
                        out_dir=tmp / "out" / "images" / "fp", roots={"foodpics": root},
                        manifests={"foodpics": df})


def run(ctx: StageContext[ImagesParams]
        ) -> tuple[list[WorkItem], pd.DataFrame, list[Reject], dict[str, int]]:
    run = run_in_context(STAGE, ctx)
    assert_accounted(run)
    return run.items, run.rows, run.rejects, run.counters


def output(ctx: StageContext[ImagesParams], row) -> Image.Image:
    im = Image.open(ctx.abs(row["path"]))
    im.load()
    return im


def composite_on_white(rgba: np.ndarray) -> np.ndarray:
    """Independent reference: c·α + 255·(1 − α), rounded."""
    a = rgba[..., 3:4].astype(np.float64) / 255
    return np.floor(rgba[..., :3] * a + WHITE * (1 - a) + 0.5).astype(np.uint8)


def write_files(root: Path, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)


# ---------------------------------------------------------------- pixels ------------
def mode_tree(root: Path) -> dict[int, str]:
    """One file per storage case the converter must handle."""
    base = scene((150, 100))
    rgba = np.dstack([np.asarray(base), np.tile(np.linspace(0, 255, 150, dtype=np.uint8), (100, 1))])
    gray16 = (np.linspace(0, 65535, 150 * 100).reshape(100, 150)).astype(np.uint16)
    p = base.quantize(colors=64, dither=Image.Dither.NONE)
    files = {
        "0001.jpg": save(base, "JPEG", quality=92),
        "0002.jpg": save(base.transpose(Image.Transpose.ROTATE_90), "JPEG", exif=exif(6)),
        "0003.jpg": save(base.transpose(Image.Transpose.ROTATE_180), "JPEG", exif=exif(3)),
        "0004.jpg": save(base.transpose(Image.Transpose.ROTATE_270), "JPEG", exif=exif(8)),
        "0005.jpg": save(base.convert("CMYK"), "JPEG", quality=92),
        "0006.png": save(p, "PNG"),
        "0007.png": save(base.convert("L"), "PNG"),
        "0008.jpg": save(base.convert("L"), "JPEG"),
        "0009.png": save(base.convert("1"), "PNG"),
        "0010.png": save(Image.fromarray(rgba, "RGBA"), "PNG"),
        "0011.png": save(Image.fromarray(rgba, "RGBA").convert("LA"), "PNG"),
        "0012.png": save(p, "PNG", transparency=int(np.asarray(p)[0, 0])),
        "0013.png": save(Image.fromarray(gray16), "PNG"),
    }
    write_files(root, files)
    return {int(name[:4]): name for name in files}


def test_every_mode_gives_the_lanczos_resize_of_the_oriented_rgb_source(tmp_path):
    root = tmp_path / "fp"
    files = mode_tree(root)
    ctx = make_ctx(tmp_path, root, manifest(root, files))
    items, df, rejects, counters = run(ctx)
    assert not rejects and len(df) == len(items) == len(files)
    by_no = df.set_index("image_no")
    for n, rel in files.items():
        out = output(ctx, by_no.loc[n])
        assert (out.mode, out.size) == ("RGB", (224, 224)), rel
        src = ImageOps.exif_transpose(Image.open(root / rel))
        if src.mode in ("RGBA", "LA", "PA") or "transparency" in src.info:
            ref = Image.fromarray(composite_on_white(np.asarray(src.convert("RGBA"))), "RGB")
            ours = to_rgb(src)[0]
            assert np.abs(np.asarray(ours, int) - np.asarray(ref, int)).max() <= 1, rel
            diff = np.abs(np.asarray(out, int) - np.asarray(ref.resize((224, 224), LANCZOS), int))
            assert diff.max() <= 2 and diff.mean() < 0.5, rel
        elif src.mode == "I;16":
            ref8 = np.rint(np.asarray(src).astype(np.float64) * 255 / 65535).astype(np.uint8)
            ref = Image.fromarray(ref8, "L").convert("RGB").resize((224, 224), LANCZOS)
            assert np.array_equal(np.asarray(out), np.asarray(ref)), rel
        else:  # Pillow's own conversion is the reference: pixel for pixel
            ref = src.convert("RGB").resize((224, 224), LANCZOS)
            assert np.array_equal(np.asarray(out), np.asarray(ref)), rel
    assert list(by_no.loc[[2, 3, 4], "exif_orientation"]) == [6, 3, 8]
    assert (by_no.loc[2, "src_width"], by_no.loc[2, "src_height"]) == (100, 150)  # as stored
    assert by_no.loc[13, "src_mode"] == "I;16"
    assert counters["exif-rotated"] == 3 and counters["gray16-scaled"] == 1
    assert counters["alpha-on-white"] == 3 and counters["cmyk-naive"] == 1


def test_sixteen_bit_is_scaled_not_clipped(tmp_path):
    root = tmp_path / "fp"
    ramp = np.tile(np.linspace(0, 65535, 224).astype(np.uint16), (224, 1))
    write_files(root, {"0001.png": save(Image.fromarray(ramp), "PNG")})
    ctx = make_ctx(tmp_path, root, manifest(root, {1: "0001.png"}))
    _, df, _, _ = run(ctx)
    out = np.asarray(output(ctx, df.iloc[0]))[..., 0].astype(int)
    assert out[:, 112].mean() == pytest.approx(128, abs=2)  # clipping would give 255
    assert out[:, 3].max() < 10 and out[:, -3].min() > 245


def test_exif_orientation_puts_the_top_on_top(tmp_path):
    upright = Image.new("RGB", (200, 120), (255, 255, 255))
    upright.paste((255, 0, 0), (0, 0, 200, 20))  # a red band at the top
    stored = {1: upright, 6: upright.transpose(Image.Transpose.ROTATE_90),
              3: upright.transpose(Image.Transpose.ROTATE_180),
              8: upright.transpose(Image.Transpose.ROTATE_270)}
    root = tmp_path / "fp"
    write_files(root, {f"{k:04d}.jpg": save(v, "JPEG", quality=95, exif=exif(k)) for k, v in stored.items()})
    ctx = make_ctx(tmp_path, root, manifest(root, {k: f"{k:04d}.jpg" for k in stored}))
    _, df, _, _ = run(ctx)
    for row in df.to_dict("records"):
        arr = np.asarray(output(ctx, row)).astype(int)
        top, bottom = arr[:20].mean(axis=(0, 1)), arr[-20:].mean(axis=(0, 1))
        assert top[0] > 200 and top[1] < 60, row["image_no"]  # red band
        assert bottom.min() > 240, row["image_no"]  # white


# ---------------------------------------------------------------- fit geometry ------
def test_pad_letterboxes_on_white(tmp_path):
    root = tmp_path / "fp"
    write_files(root, {"0001.png": save(Image.new("RGB", (400, 200), (0, 0, 255)), "PNG"),
                       "0002.png": save(Image.new("RGB", (100, 400), (0, 128, 0)), "PNG")})
    ctx = make_ctx(tmp_path, root, manifest(root, {1: "0001.png", 2: "0002.png"}), fit="pad")
    _, df, _, _ = run(ctx)
    wide = np.asarray(output(ctx, df.iloc[0]))
    # 400×200 → 224×112 centred: rows 56..167 blue, the rest white
    assert (wide[:56] == 255).all() and (wide[168:] == 255).all()
    assert (wide[56:168] == [0, 0, 255]).all()
    tall = np.asarray(output(ctx, df.iloc[1]))
    # 100×400 → 56×224 centred: columns 84..139 green
    assert (tall[:, :84] == 255).all() and (tall[:, 140:] == 255).all()
    assert (tall[:, 84:140] == [0, 128, 0]).all()


def test_crop_takes_the_centre_square(tmp_path):
    arr = np.zeros((200, 400, 3), np.uint8)
    arr[:, :100] = (255, 0, 0)
    arr[:, 100:300] = (0, 255, 0)
    arr[:, 300:] = (0, 0, 255)
    root = tmp_path / "fp"
    write_files(root, {"0001.png": save(Image.fromarray(arr), "PNG")})
    ctx = make_ctx(tmp_path, root, manifest(root, {1: "0001.png"}), fit="crop")
    _, df, _, _ = run(ctx)
    out = np.asarray(output(ctx, df.iloc[0])).astype(int)
    assert (out[:, 8:216] == [0, 255, 0]).all()  # only the green middle, away from filter edges
    assert out[..., 1].mean() > 245


def test_stretch_keeps_the_whole_frame(tmp_path):
    arr = np.zeros((100, 400, 3), np.uint8)
    arr[:, :200] = (255, 0, 0)
    arr[:, 200:] = (0, 0, 255)
    root = tmp_path / "fp"
    write_files(root, {"0001.png": save(Image.fromarray(arr), "PNG")})
    ctx = make_ctx(tmp_path, root, manifest(root, {1: "0001.png"}))
    _, df, _, _ = run(ctx)
    out = np.asarray(output(ctx, df.iloc[0])).astype(int)
    assert (out[:, :100] == [255, 0, 0]).all() and (out[:, 124:] == [0, 0, 255]).all()


# ---------------------------------------------------------------- guards ------------


def test_bomb_guard_rejects_without_allocating_or_warning(tmp_path):
    root = tmp_path / "fp"
    write_files(root, {"0001.png": png_bomb(30_000, 30_000),  # Pillow's hard error
                       "0002.png": png_bomb(12_000, 9_000),  # Pillow would only warn
                       "0003.png": save(scene(), "PNG")})
    ctx = make_ctx(tmp_path, root, manifest(root, {1: "0001.png", 2: "0002.png", 3: "0003.png"}),
                   max_pixels=50_000_000)
    items = STAGE.plan(ctx)
    tracemalloc.start()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        outs = [STAGE.process(item, ctx.item_context()) for item in items[:2]]
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000  # decoding either would take 324 MB or more
    assert not [w for w in caught if issubclass(w.category, Image.DecompressionBombWarning)]
    assert [o.rejects[0].reason for o in outs] == ["image-too-large"] * 2
    assert "108,000,000 pixels exceeds max_pixels = 50,000,000" in outs[1].rejects[0].message
    assert "0002.png" in outs[1].rejects[0].message
    assert STAGE.process(items[2], ctx.item_context()).rows


def test_bad_sources_are_rejected_with_reasons(tmp_path):
    root = tmp_path / "fp"
    good = save(scene(), "JPEG")
    write_files(root, {"0001.jpg": good, "0002.jpg": good[: len(good) // 2], "0003.jpg": good,
                       "0004.jpg": good})
    df = manifest(root, {1: "0001.jpg", 2: "0002.jpg", 3: "0003.jpg", 4: "0004.jpg"})
    (root / "0003.jpg").unlink()
    (root / "0004.jpg").write_bytes(save(scene(seed=1), "JPEG"))  # changed after the ingest
    ctx = make_ctx(tmp_path, root, df)
    _, out, rejects, _ = run(ctx)
    assert list(out["image_no"]) == [1]
    assert {r.sample_id: r.reason for r in rejects} == {
        "foodpics:2": "undecodable-image", "foodpics:3": "missing-image", "foodpics:4": "source-changed"}
    assert all(r.reason in REASONS for r in rejects)
    assert all("000" in r.message for r in rejects)  # every message names the file


def test_paths_leaving_the_root_are_refused(tmp_path):
    root = tmp_path / "fp"
    write_files(root, {"0001.jpg": save(scene(), "JPEG")})
    write_files(tmp_path, {"outside.jpg": save(scene(), "JPEG")})
    df = manifest(root, {1: "0001.jpg"})
    df.loc[0, "image_path"] = "../outside.jpg"
    _, out, rejects, _ = run(make_ctx(tmp_path, root, df))
    assert out.empty and [r.reason for r in rejects] == ["path-outside-root"]


def test_nfc_manifest_path_finds_an_nfd_folder(tmp_path):
    root = tmp_path / "fp"
    nfd = unicodedata.normalize("NFD", "Café Bilder")
    write_files(root, {f"{nfd}/0001.jpg": save(scene(), "JPEG")})
    df = manifest(root, {1: f"{nfd}/0001.jpg"})
    assert df.loc[0, "image_path"] == unicodedata.normalize("NFC", "Café Bilder/0001.jpg")
    _, out, rejects, _ = run(make_ctx(tmp_path, root, df))
    assert not rejects and len(out) == 1


def test_bad_parameters_fail_before_any_work(tmp_path):
    df = manifest(tmp_path, {})
    with pytest.raises(ConfigError, match="fit"):
        STAGE.plan(make_ctx(tmp_path, tmp_path, df, fit="zoom"))
    with pytest.raises(ConfigError, match="apply_icc"):
        STAGE.plan(make_ctx(tmp_path, tmp_path, df, apply_icc="sometimes"))
    ctx: StageContext[ImagesParams] = StageContext(
        stage="images", params=ImagesParams(), out_root=tmp_path, out_dir=tmp_path / "x",
        manifests={"foodpics": df})
    with pytest.raises(ConfigError, match=r"foodpics\.root"):
        STAGE.plan(ctx)


# ---------------------------------------------------------------- determinism -------
def test_output_bytes_are_deterministic_and_metadata_free(tmp_path):
    root = tmp_path / "fp"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    write_files(root, {"0001.jpg": save(scene(), "JPEG", icc_profile=srgb, exif=exif(6))})
    df = manifest(root, {1: "0001.jpg"})
    ctx = make_ctx(tmp_path, root, df)
    item = STAGE.plan(ctx)[0]
    first = STAGE.process(item, ctx.item_context())
    path = ctx.abs(first.rows[0]["path"])
    data = path.read_bytes()
    again = STAGE.process(item, ctx.item_context())
    assert again.rows == first.rows and path.read_bytes() == data
    out = Image.open(path)
    assert "icc_profile" not in out.info and "exif" not in out.info
    assert not list(path.parent.glob(".tmp-*"))


def test_icc_policy(tmp_path):
    """'all' colour-manages RGB through its profile; the default leaves RGB pixels alone."""
    root = tmp_path / "fp"
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    write_files(root, {"0001.png": save(scene(), "PNG", icc_profile=srgb),
                       "0002.png": save(scene(), "PNG", icc_profile=b"not a profile")})
    df = manifest(root, {1: "0001.png", 2: "0002.png"})
    plain_ctx = make_ctx(tmp_path / "a", root, df)
    _, plain_df, _, plain_counts = run(plain_ctx)
    icc_ctx = make_ctx(tmp_path / "b", root, df, apply_icc="all")
    _, icc_df, _, icc_counts = run(icc_ctx)
    ref = scene().resize((224, 224), LANCZOS)
    assert np.array_equal(np.asarray(output(plain_ctx, plain_df.iloc[0])), np.asarray(ref))
    managed = np.asarray(output(icc_ctx, icc_df.iloc[0])).astype(int)
    assert np.abs(managed - np.asarray(ref, int)).max() <= 3  # sRGB → sRGB is near identity
    assert icc_counts == {"icc-rgb": 1, "icc-invalid": 1} and plain_counts == {}


@pytest.mark.parametrize(("arr", "expected"), [
    (np.array([[0, 257, 65535]], np.int32), [0, 1, 255]),  # I holding 16-bit data
    (np.array([[-100, 0, 100]], np.int32), [0, 128, 255]),  # I outside 16 bits: stretched
    (np.array([[0.0, 0.5, 1.0]], np.float32), [0, 128, 255]),  # F in [0, 1]
    (np.array([[0.0, 100.4, 255.0]], np.float32), [0, 100, 255]),  # F in [0, 255]
    (np.array([[np.nan, -1.0, 1.0]], np.float32), [128, 0, 255]),  # F otherwise: stretched, NaN → 0
])
def test_wide_modes_to_rgb(arr, expected):
    rgb, notes = to_rgb(Image.fromarray(arr))
    assert rgb.mode == "RGB" and len(notes) == 1
    assert np.asarray(rgb)[0, :, 0].tolist() == expected


@pytest.mark.parametrize("mode", ["PA", "La", "RGBa"])
def test_other_alpha_modes_composite_on_white(mode):
    """Modes PNG cannot store but other decoders produce (PA, premultiplied La / RGBa)."""
    y, x = np.mgrid[0:40, 0:60]
    rgba = np.dstack([x * 4, y * 6, np.full_like(x, 90), x * 255 // 59]).astype(np.uint8)
    src = Image.fromarray(rgba, "RGBA")
    src = {"PA": lambda: src.convert("P", palette=Image.Palette.ADAPTIVE).convert("PA"),
           "La": lambda: src.convert("LA").convert("La"),
           "RGBa": lambda: src.convert("RGBa")}[mode]()
    straight = src.convert("LA") if mode == "La" else src
    ours, notes = to_rgb(src)
    ref = composite_on_white(np.asarray(straight.convert("RGBA")))
    assert notes == ["alpha-on-white"]
    assert np.abs(np.asarray(ours, int) - ref.astype(int)).max() <= 1


def test_demo_end_to_end(tmp_path):
    """The demo folder through both stages: every kept image becomes a 224² RGB PNG."""
    root = tmp_path / "demo"
    info = demo.write_foodpics_demo(root)
    fp = FoodPics()
    fctx: StageContext[FoodPicsParams] = StageContext(
        stage="foodpics", params=FoodPicsParams(), out_root=tmp_path / "out",
        out_dir=tmp_path / "out" / "foodpics" / "fp", roots={"foodpics": root})
    rows = [r for it in fp.plan(fctx) for r in fp.process(it, fctx.item_context()).rows]
    ctx = make_ctx(tmp_path, root, pd.DataFrame(rows))
    items, df, rejects, _ = run(ctx)
    assert not rejects and sorted(df["image_no"]) == info["kept"] and len(items) == len(df)
    for row in df.to_dict("records"):
        im = output(ctx, row)
        assert (im.mode, im.size) == ("RGB", (224, 224))
        assert row["valence_raw"] > 1 and row["type"] in ("Sweets", "Fruit", "Vegetables", "Savory")


def test_manifest_types_follow_the_upstream_manifest(tmp_path):
    """Carried columns keep the ingest's kinds even when every value is empty here."""
    import pyarrow as pa

    root = tmp_path / "fp"
    write_files(root, {"0001.jpg": save(scene(), "JPEG")})
    df = manifest(root, {1: "0001.jpg"}).assign(taste=pd.Series([None], dtype="str"))
    _, out, _, _ = run(make_ctx(tmp_path, root, df))
    types = {f.name: f.type for f in pa.Table.from_pandas(out, preserve_index=False).schema}
    assert types["taste"] == pa.large_string() and types["image_no"] == pa.int64()
    assert types["src_width"] == pa.int64() and types["path"] == pa.large_string()
    assert "width" not in types and "mode" not in types
    _, none, _, _ = run(make_ctx(tmp_path / "empty", root, df.iloc[:0]))
    assert {f.name: f.type for f in pa.Table.from_pandas(none, preserve_index=False).schema} == types


def test_outputs_do_not_depend_on_where_the_data_lives(tmp_path):
    """The same tree at two absolute paths gives identical rows and rejects (messages
    included) in `foodpics` and `images`: every message names files relative to the root."""
    def tree(where: Path) -> Path:
        root = where / "FoodPics"
        demo.write_foodpics_demo(root)  # undecodable, missing image, non-food, …
        write_files(root, {"sub/0002.png": save(scene(seed=2), "PNG"),  # conflicts with 0002.jpg
                           "cover.jpg": save(scene(), "JPEG"),          # not a number
                           "0006.jpeg": b"not an image at all"})         # Pillow cannot identify it
        (root / "0039.jpg").symlink_to(tmp_path / "outside.jpg")        # leaves the root
        return root

    write_files(tmp_path, {"outside.jpg": save(scene(), "JPEG")})
    fp = FoodPics()
    results = []
    for where in ("a", "deeper/and/elsewhere/b"):
        root = tree(tmp_path / where)
        out = tmp_path / where / "out"
        fctx: StageContext[FoodPicsParams] = StageContext(
            stage="foodpics", params=FoodPicsParams(), out_root=out,
            out_dir=out / "foodpics" / "fp", roots={"foodpics": root})
        ingest = run_in_context(fp, fctx)
        rows, rejects = ingest.rows, ingest.rejects
        # after the ingest: one file removed, one changed, one replaced by a link leaving the root
        (root / "0001.jpg").unlink()
        (root / "0003.jpg").write_bytes(save(scene(seed=3), "JPEG"))
        (root / "0004.jpg").unlink()
        (root / "0004.jpg").symlink_to(tmp_path / "outside.jpg")
        areas = sorted(rows["width"] * rows["height"])
        ctx = make_ctx(tmp_path / where, root, rows, max_pixels=int(areas[len(areas) // 2]))
        _, images, image_rejects, _ = run(ctx)
        results.append((rows, rejects, images, image_rejects))
    (rows_a, rej_a, img_a, irej_a), (rows_b, rej_b, img_b, irej_b) = results
    assert {r.reason for r in rej_a} >= {"undecodable-image", "missing-image", "duplicate-id",
                                         "unmatched-file", "path-outside-root"}
    assert {r.reason for r in irej_a} == {"missing-image", "source-changed", "path-outside-root",
                                          "image-too-large"}
    pd.testing.assert_frame_equal(rows_a, rows_b)
    pd.testing.assert_frame_equal(img_a, img_b)
    assert rej_a == rej_b and irej_a == irej_b  # reason and message of every reject
    for r in rej_a + irej_a:
        assert str(tmp_path) not in r.message and " at 0x" not in r.message, r
    assert "0006.jpeg: cannot identify image (UnidentifiedImageError: cannot identify image file)" in \
        {r.message for r in rej_a}

