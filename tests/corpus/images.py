"""Broken and odd pictures: FoodPics (ingest `foodpics` decodes every image it keeps, then
`images` converts it) and the generic image table (`generic` decodes, `images` converts)."""
from __future__ import annotations

from collections.abc import Callable

from tests.corpus import Content, Expect, Kind, media
from tests.corpus.run import RunResult
from tests.corpus.trees import FoodPicsTree, GenericTree


def _rgb_224(sample_id: str, counter: str | None = None) -> Callable[[RunResult], None]:
    """Check: the converted picture is an RGB PNG of 224 x 224 pixels (and `images`
    counted the conversion `counter`)."""
    def check(result: RunResult) -> None:
        from PIL import Image

        path = result.row("images", sample_id)["path"]
        with Image.open(result.out / path) as im:
            assert (im.mode, im.size) == ("RGB", (224, 224)), (im.mode, im.size)
        if counter:
            assert result.counters("images").get(counter, 0) >= 1, f"images did not count {counter!r}"
    return check


def _foodpics(kind: str, bad: str, n: int, data: Content, reason: str | None, handling: str = "",
              name: str | None = None, counter: str | None = None) -> Kind:
    """Picture number `n` (file `name`, default 000n.jpg) with the given bytes and a full
    ratings row: `foodpics` decodes it at ingest, so that is where a broken one is rejected."""
    fname = name or f"{n:04d}.jpg"

    def inject(tree: FoodPicsTree) -> None:
        tree.add_image(n, data=data() if callable(data) else data, name=fname)

    sid = f"foodpics:{n}"
    if reason is not None:
        return Kind(kind, "foodpics", bad, inject, (Expect("foodpics", reason, (sid,), names=fname),))
    return Kind(kind, "foodpics", bad, inject,
                (Expect("foodpics", None, (sid,)), Expect("images", None, (sid,), check=_rgb_224(sid, counter))),
                handling)


FOODPICS = [
    _foodpics("corrupt-jpeg", "JPEG start marker followed by noise", 11, media.corrupt_jpeg, "undecodable-image"),
    _foodpics("truncated-jpeg", "JPEG cut at 45 % of its bytes", 12,
              lambda: media.truncated(media.jpeg((9, 9, 9), (96, 80))), "undecodable-image"),
    _foodpics("corrupt-png", "PNG with one IDAT byte flipped (CRC mismatch)", 13, media.corrupt_png,
              "undecodable-image", name="0013.png"),
    _foodpics("truncated-png", "PNG cut at 45 % of its bytes", 14, lambda: media.truncated(media.png()),
              "undecodable-image", name="0014.png"),
    _foodpics("zero-length-image", "0015.jpg of 0 bytes", 15, b"", "undecodable-image"),
    _foodpics("non-image", "a text file named 0016.jpg", 16, b"not a picture\n" * 40, "undecodable-image"),
    _foodpics("cmyk", "CMYK JPEG without an ICC profile", 17, media.cmyk_jpeg, None,
              handling="converted to RGB (Pillow's CMYK formula; counted `cmyk-naive`)", counter="cmyk-naive"),
    _foodpics("16-bit", "16-bit grayscale PNG", 18, media.gray16_png, None, name="0018.png",
              handling="scaled 255/65535 to 8-bit, then RGB (counted `gray16-scaled`)", counter="gray16-scaled"),
    _foodpics("1x1", "a 1 x 1 pixel picture", 19, media.one_pixel_png, None, name="0019.png",
              handling="kept: Lanczos-upscaled to 224 x 224"),
    _foodpics("decompression-bomb", "~120-byte PNG whose header claims 50,000 x 50,000 px (7.5 GB)", 20,
              media.png_bomb, "image-too-large", name="0020.png"),
    _foodpics("decompression-bomb-jpeg", "small JPEG whose SOF header claims 50,000 x 50,000 px", 21,
              media.jpeg_bomb, "image-too-large"),
    _foodpics("wrong-extension", "a PNG file named 0022.jpg", 22, lambda: media.png((250, 120, 0)), None,
              handling="decoded by content (Pillow sniffs the format); kept"),
    _foodpics("bad-exif-orientation", "EXIF Orientation = 99 (not 1-8)", 23, lambda: media.exif_jpeg(99), None,
              handling="orientation ignored (read as 1); kept"),
]


def _generic(kind: str, bad: str, item: str, name: str, data: Content, reason: str | None,
             handling: str = "") -> Kind:
    path = f"files/{name}"

    def inject(tree: GenericTree) -> None:
        tree.add_item(item, path, data() if callable(data) else data)

    sid = f"corpus:{item}"
    if reason is not None:
        return Kind(kind, "generic-image", bad, inject, (Expect("generic", reason, (sid,), names=path),))
    return Kind(kind, "generic-image", bad, inject,
                (Expect("generic", None, (sid,)), Expect("images", None, (sid,), check=_rgb_224(sid))), handling)


GENERIC = [
    _generic("decompression-bomb", "PNG whose header claims 50,000 x 50,000 px", "bomb", "bomb.png",
             media.png_bomb, "image-too-large"),
    _generic("corrupt-png", "PNG with a CRC mismatch", "crc", "crc.png", media.corrupt_png, "undecodable-image"),
    _generic("truncated-jpeg", "JPEG cut at 45 %", "cut", "cut.jpg",
             lambda: media.truncated(media.jpeg((9, 9, 9), (96, 80))), "undecodable-image"),
    _generic("cmyk", "CMYK JPEG", "cmyk", "cmyk.jpg", media.cmyk_jpeg, None, handling="converted to RGB"),
    _generic("16-bit", "16-bit grayscale PNG", "g16", "g16.png", media.gray16_png, None,
             handling="scaled to 8-bit, then RGB"),
]

KINDS = [*FOODPICS, *GENERIC]
