"""The FoodPics part of the embedded demo dataset (SPEC §3.5): small, synthetic, deterministic.

`write_foodpics_demo(root)` writes a FoodPics-shaped folder: numbered pictures of simple
objects on white (food < 1000, non-food ≥ 1000) and a ratings sheet (`.xlsx`) with comment
rows above the `Image_No` header, the thesis' rating columns and `type` / `taste` /
`processing` categories. It carries every quirk the `foodpics` and `images` stages must
handle: EXIF orientations 6 / 3 / 8, a CMYK JPEG, palette PNGs with and without
transparency, a 16-bit gray PNG, RGBA / LA / L images, upper-case and unpadded names, a
truncated (corrupt) JPEG, rows with a missing rater group, a rating row without image, an
image without row. `write_foodpics_ratings_csv` writes the same table as a CSV export
(BOM, comment rows, `;` separator, decimal commas).

Ratings are invented on a 1–100 scale, with category means in the thesis' pattern
(sweets: high valence and arousal; vegetables calmer; non-food low). Nothing here is real
FoodPics data. Same seed → byte-identical files (the .xlsx zip is re-packed with fixed
timestamps, since openpyxl stamps the save time: `tables.xlsx_bytes`).
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emoprep.pipeline.atomic import atomic_write_bytes
from emoprep.stages.demo.media import encode_variant
from emoprep.stages.demo.tables import csv_bytes, xlsx_bytes
from emoprep.stages.foodpics.params import THESIS_AROUSAL, THESIS_VALENCE

SHEET_NAME = "FoodPics_Extended_demo.xlsx"
HEADER = ["Image_No", "item", "type", "taste", "processing", *THESIS_VALENCE, *THESIS_AROUSAL]
COMMENT_ROWS = [
    ["food-pics extended: SYNTHETIC DEMO ratings written by emoprep; not real data"],
    ["Valence / Arousal: mean rating per rater group, demo scale 1-100"],
    [],
]

# (type, taste, processing, valence mean, arousal mean, drawing)
CATEGORIES: dict[str, tuple[str, str | None, str | None, float, float]] = {
    "sweets": ("Sweets", "sweet", "processed", 74.0, 68.0),
    "fruit": ("Fruit", "sweet", "whole", 67.0, 50.0),
    "vegetables": ("Vegetables", "tasty", "whole", 58.0, 33.0),
    "savory": ("Savory", "tasty", "processed", 63.0, 56.0),
    "nonfood": ("Non-Food", None, None, 41.0, 24.0),
}
GROUP_OFFSETS = (0.0, 2.0, -3.0, -1.0)  # omnivore M/F, vegetarian M/F


@dataclass(frozen=True)
class DemoItem:
    """One image number of the demo: what is on disk, what is in the sheet, what to expect."""

    number: int
    kind: str
    file: str | None  # file name in the root; None = no image
    variant: str = "rgb"  # rgb exif6 exif3 exif8 cmyk p p-trns i16 rgba la l corrupt
    row: bool = True  # has a ratings row
    drop: tuple[str, ...] = ()  # rating columns left empty
    expect: str = "kept"  # "kept" or the reject reason


def demo_items() -> list[DemoItem]:
    """The demo's image numbers, in sheet order."""
    kinds = ["sweets", "fruit", "vegetables", "savory"]
    items = []
    for n in range(1, 21):
        name = {5: "0005.JPG", 6: "0006.jpeg", 7: "7.jpg"}.get(n, f"{n:04d}.jpg")
        items.append(DemoItem(n, kinds[(n - 1) // 5], name))
    items += [
        DemoItem(21, "sweets", "0021.jpg", "exif6"),
        DemoItem(22, "fruit", "0022.jpg", "exif3"),
        DemoItem(23, "savory", "0023.jpg", "exif8"),
        DemoItem(24, "vegetables", "0024.jpg", "cmyk"),
        DemoItem(25, "fruit", "0025.png", "p"),
        DemoItem(26, "sweets", "0026.png", "p-trns"),
        DemoItem(27, "savory", "0027.png", "i16"),
        DemoItem(28, "fruit", "0028.png", "rgba"),
        DemoItem(29, "vegetables", "0029.png", "la"),
        DemoItem(30, "savory", "0030.jpg", "l"),
        DemoItem(31, "sweets", "0031.jpg", "corrupt", expect="undecodable-image"),
        DemoItem(32, "fruit", "0032.jpg", drop=(THESIS_VALENCE[3],), expect="incomplete-va"),
        DemoItem(33, "savory", "0033.jpg", drop=(THESIS_AROUSAL[0], THESIS_AROUSAL[2]),
                 expect="incomplete-va"),
        DemoItem(34, "vegetables", None, expect="missing-image"),
        DemoItem(35, "sweets", "0035.jpg", row=False, expect="missing-rating"),
    ]
    items += [DemoItem(1000 + k, "nonfood", f"{1000 + k:04d}.jpg", expect="non-food")
              for k in range(1, 5)]
    return items


# ---------------------------------------------------------------- ratings ----------
def demo_ratings(seed: int = 0) -> list[list[Any]]:
    """The ratings table rows (without header): plausible VA per category, 2 decimals."""
    rng = random.Random(seed)
    rows = []
    for item in demo_items():
        type_, taste, processing, v_mean, a_mean = CATEGORIES[item.kind]
        valence = [round(min(99.0, max(1.0, v_mean + off + rng.uniform(-6, 6))), 2)
                   for off in GROUP_OFFSETS]
        arousal = [round(min(99.0, max(1.0, a_mean + off + rng.uniform(-6, 6))), 2)
                   for off in GROUP_OFFSETS]
        if not item.row:
            continue
        values: dict[str, float | None] = dict(zip((*THESIS_VALENCE, *THESIS_AROUSAL), valence + arousal,
                                                   strict=True))
        for name in item.drop:
            values[name] = None
        rows.append([item.number, f"{item.kind} {item.number}", type_, taste, processing,
                     *(values[c] for c in (*THESIS_VALENCE, *THESIS_AROUSAL))])
    return rows


def write_foodpics_ratings_xlsx(path: Path, rows: list[list[Any]] | None = None, *,
                                seed: int = 0, comments: bool = True,
                                header: list[str] | None = None) -> Path:
    """The ratings table as .xlsx (comment rows, then the `Image_No` header row)."""
    table = [*(COMMENT_ROWS if comments else []), header or HEADER, *(demo_ratings(seed) if rows is None else rows)]
    atomic_write_bytes(path, xlsx_bytes(table))
    return Path(path)


def _csv_cell(value: Any, sep: str, decimal_comma: bool) -> str:
    if value is None:
        return ""
    text = f"{value:.2f}".replace(".", "," if decimal_comma else ".") if isinstance(value, float) else str(value)
    if sep in text or '"' in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def write_foodpics_ratings_csv(path: Path, rows: list[list[Any]] | None = None, *,
                               seed: int = 0, sep: str = ";", decimal_comma: bool = True,
                               bom: bool = True, comments: bool = True,
                               header: list[str] | None = None, newline: str = "\r\n") -> Path:
    """The ratings table as a spreadsheet CSV export: BOM, comment rows, `;`, decimal commas."""
    table = [*(COMMENT_ROWS if comments else []), header or HEADER, *(demo_ratings(seed) if rows is None else rows)]
    cells = [[_csv_cell(c, sep, decimal_comma) for c in row] for row in table]
    atomic_write_bytes(path, csv_bytes(cells, sep=sep, eol=newline, bom=bom))
    return Path(path)


# ---------------------------------------------------------------- pictures ---------
def _size(number: int) -> tuple[int, int]:
    return [(400, 300), (300, 400), (360, 360), (480, 320)][number % 4]


def draw_object(kind: str, size: tuple[int, int], rng: random.Random) -> Any:
    """A simple object of the category on white, drawn upright (RGB)."""
    from PIL import Image, ImageDraw

    w, h = size
    im = Image.new("RGB", size, (255, 255, 255))
    d = ImageDraw.Draw(im)
    cx, cy, r = w // 2 + rng.randint(-20, 20), h // 2 + rng.randint(-20, 20), min(w, h) // 3

    def jitter(c: tuple[int, int, int]) -> tuple[int, ...]:
        return tuple(max(0, min(255, v + rng.randint(-25, 25))) for v in c)

    if kind == "sweets":  # a cake: sponge, frosting, sprinkles
        d.rectangle([cx - r, cy - r // 3, cx + r, cy + r // 2], fill=jitter((150, 90, 50)))
        d.ellipse([cx - r, cy - r // 2, cx + r, cy - r // 6], fill=jitter((245, 160, 190)))
        for _ in range(12):
            x, y = cx + rng.randint(-r + 8, r - 8), cy - r // 3 + rng.randint(-8, 8)
            d.ellipse([x - 3, y - 3, x + 3, y + 3], fill=jitter((80, 60, 220)))
    elif kind == "fruit":  # an apple with a leaf
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=jitter((210, 40, 40)))
        d.ellipse([cx, cy - r - 20, cx + 30, cy - r + 5], fill=jitter((60, 160, 60)))
    elif kind == "vegetables":  # broccoli: florets and a stem
        d.rectangle([cx - r // 6, cy, cx + r // 6, cy + r], fill=jitter((150, 190, 110)))
        for dx, dy in ((-r // 2, 0), (r // 2, 0), (0, -r // 2), (-r // 4, -r // 4), (r // 4, -r // 4)):
            d.ellipse([cx + dx - r // 3, cy + dy - r // 3, cx + dx + r // 3, cy + dy + r // 3],
                      fill=jitter((40, 130, 50)))
    elif kind == "savory":  # a pizza slice
        d.polygon([(cx - r, cy - r // 2), (cx + r, cy - r // 2), (cx, cy + r)], fill=jitter((235, 190, 90)))
        for _ in range(5):
            x, y = cx + rng.randint(-r // 2, r // 2), cy + rng.randint(-r // 3, r // 4)
            d.ellipse([x - 9, y - 9, x + 9, y + 9], fill=jitter((190, 40, 30)))
    else:  # non-food: a mug
        d.rectangle([cx - r // 2, cy - r // 2, cx + r // 2, cy + r // 2], fill=jitter((90, 110, 140)))
        d.ellipse([cx + r // 2 - 10, cy - r // 4, cx + r // 2 + 30, cy + r // 4],
                  outline=jitter((90, 110, 140)), width=8)
    return im


def write_foodpics_demo(root: Path, seed: int = 0) -> dict[str, Any]:
    """Write the demo FoodPics folder into `root`; return what a correct ingest must find.

    Returns {"sheet", "files": {number: name relative to `root`}, "kept": [numbers],
    "rejects": {sample_id: reason}, "scale": [1, 100]}."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files: dict[int, str] = {}
    for item in demo_items():
        upright = draw_object(item.kind, _size(item.number), rng)
        if item.file is None:
            continue
        atomic_write_bytes(root / item.file, encode_variant(upright, item.variant, rng))
        files[item.number] = item.file
    write_foodpics_ratings_xlsx(root / SHEET_NAME, seed=seed)
    items = demo_items()
    return {  # no paths: the demo data's bytes must not depend on where it was written
        "sheet": SHEET_NAME,
        "files": files,
        "kept": [i.number for i in items if i.expect == "kept"],
        "rejects": {f"foodpics:{i.number}": i.expect for i in items if i.expect != "kept"},
        "scale": [1, 100],
    }
