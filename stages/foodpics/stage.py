"""Stage `foodpics`: ingest FoodPics Extended (ratings sheet + numbered images) into a manifest.

What is publicly known of the release (what this parser is built against)
-------------------------------------------------------------------------
- Blechert, Meule, Busch & Ohla (2014), "Food-pics: an image database for experimental
  research on eating and appetite", Front. Psychol. 5:617, doi:10.3389/fpsyg.2014.00617
  (abstract at frontiersin.org): 568 food and 315 non-food images; normative ratings of
  valence, arousal, palatability, desire to eat, recognizability and visual complexity;
  macronutrients, energy density and physical image properties per image. The extended
  release (Blechert et al. 2019, "FoodPics Extended") is what the thesis used: 1,211 images.
- A public analysis script that reads the release's CSV export (file
  `food.pics.database.value.csv`; a small "Behavioral rating prediction" utility —
  README, `train.py`, `utils.py` — found by code search, its repository not named by the
  index; default target `Valence_omnivore_Male`) shows: a few metadata/comment rows *above* the
  header row, which is found by its `Image_No` cell; a `utf-8-sig` (BOM) fallback; rating
  columns named per rater group such as `Valence_omnivore_Male`; nutrition columns
  `grams_total`, `protein_100g`, `fat_100g`, `carbs_100g`, `kcal_100g`; colour columns
  `red`, `green`, `blue`; and self-describing category headers such as
  `taste:1=sweet 2=tasty` and `food: 1=whole foods, 2=processed foods`.
- The thesis (seed 000, ch. 2.1.2) names the eight rating columns
  `{Valence,Arousal}_{omnivore_Male, omnivore_Female, Vegetarian_Male, Vegetarian_Female}`
  (note the inconsistent capitalisation), a category column `type` with value `Non-Food`,
  and `taste` / `processing` categories; it kept 1,066 of 1,211 images: food only, complete
  VA in all four groups, decodable; VA = mean over the four groups.
- Not found in public sources: the numeric rating scale of the Extended sheet. The raw scale
  is therefore kept as is (`valence_raw`, `arousal_raw`); the `labels` stage normalises.
- Open question: 1,211 − 1,066 = 145 images removed in the thesis, yet the 2014 set alone had
  315 non-food images; either the Extended sheet marks fewer rows non-food than that, or the
  thesis' category filter differed. The rejects table shows what the recipe's filter did.

Because releases differ, the column mapping is a recipe parameter with the thesis names as
default. Header matching ignores case and punctuation (`Valence_Omnivore_Male` matches
`Valence_omnivore_Male`) and accepts a self-describing header by its part before `:`
(`taste` matches `taste:1=sweet 2=tasty`).

Layout (SPEC §3.2): one folder holding the ratings sheet (`.xlsx`/`.xlsm` via pandas +
openpyxl, or `.csv`/`.tsv`) and the numbered images (`0001.jpg`, also `.jpeg`/`.png`, any
case, zero padding optional), either next to the sheet or in its immediate subfolders.
CSV: `utf-8-sig` (else cp1252), `;` / `,` / tab separators, decimal commas.

One work item per image number seen in the sheet or on disk; the first failing check names
the reject, in the thesis' order (category, completeness, quality):
`duplicate-id`, `missing-rating`, `non-food`, `incomplete-va`, `missing-image`,
`image-too-large`, `undecodable-image`. Sheet rows without a usable number are `bad-id`,
image files without a number are `unmatched-file`, links leaving the root `path-outside-root`.
"""
from __future__ import annotations

import csv
import io
import math
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterable

from emoprep.pipeline.errors import ConfigError, DataError
from emoprep.pipeline.stage import Outcome, Reject, Stage, WorkItem, runtime
from emoprep.stages.common.dataset_files import resolve_in_root
from emoprep.stages.common.image_io import decode_image, DEFAULT_MAX_PIXELS, ImageTooLarge, UndecodableImage
from emoprep.stages.common.naming import nfc
from emoprep.pipeline.columns import with_kinds
from emoprep.pipeline.values import error_text
from emoprep.stages.common.naming import printable_name

THESIS_VALENCE = ("Valence_omnivore_Male", "Valence_omnivore_Female",
                  "Valence_Vegetarian_Male", "Valence_Vegetarian_Female")
THESIS_AROUSAL = ("Arousal_omnivore_Male", "Arousal_omnivore_Female",
                  "Arousal_Vegetarian_Male", "Arousal_Vegetarian_Female")
IMAGE_EXTS = (".jpg", ".jpeg", ".png")
SHEET_EXTS = (".xlsx", ".xlsm", ".csv", ".tsv")
HEADER_SEARCH_ROWS = 100
MAX_IMAGE_NO = 2 ** 53  # larger numbers cannot be told apart once read as floats
CSV_SNIFF_BYTES = 1 << 16
SKIP_DIRS = ("__MACOSX",)
LAYOUT = ("a folder holding the ratings sheet (.xlsx or .csv with an `Image_No` header cell, "
          "comment rows above it allowed) and the numbered images (0001.jpg …) next to it or "
          "in a subfolder (SPEC §3.2)")

# Reason codes used here are documented in emoprep.manifests.schema.REJECT_CODES.


# ---------------------------------------------------------------- small parsers ----
def squash(text: Any) -> str:
    """Comparison key: NFC, case-folded, letters and digits only ('Image No' = 'image_no')."""
    return re.sub(r"[\W_]+", "", nfc(str(text)).casefold())


def header_keys(header: str) -> tuple[str, str]:
    """Full key and the key of the part before ':' ('taste:1=sweet 2=tasty' → 'taste')."""
    return squash(header), squash(header.split(":", 1)[0])


def parse_number(cell: Any) -> float | None:
    """A rating cell → float, or None when empty / not a number / not finite.

    Accepts decimal commas ('6,5'), both separators ('1.234,5' / '1,234.5': the last one
    is the decimal mark) and stray spaces; a lone comma is taken as the decimal mark."""
    if cell is None or isinstance(cell, bool):
        return None
    if isinstance(cell, (int, float)) or hasattr(cell, "dtype"):
        try:
            value = float(cell)
        except (TypeError, ValueError):
            return None
        return value if math.isfinite(value) else None
    text = re.sub(r"[\s\u00a0\u2009\u202f]", "", nfc(str(cell)))
    if "," in text and "." in text:
        text = text.replace(".", "").replace(",", ".") if text.rfind(",") > text.rfind(".") \
            else text.replace(",", "")
    elif text.count(",") == 1:
        text = text.replace(",", ".")
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text, re.ASCII):
        return None
    value = float(text)
    return value if math.isfinite(value) else None


def parse_image_no(cell: Any) -> int | None:
    """A sheet id cell → int in [0, MAX_IMAGE_NO) ('0001', 12, 12.0, '12,0'); None otherwise."""
    if isinstance(cell, str) and re.fullmatch(r"[0-9]+", nfc(cell).strip()):
        number = int(nfc(cell).strip())
        return number if number < MAX_IMAGE_NO else None
    value = parse_number(cell)
    if value is None or not 0 <= value < MAX_IMAGE_NO or value != int(value):
        return None
    return int(value)


def category_text(cell: Any) -> str | None:
    """A category cell → stripped NFC string ('1' for 1.0), None when empty."""
    if cell is None or isinstance(cell, bool):
        return None
    if not isinstance(cell, str):
        value = parse_number(cell)
        if value is None:
            return None
        return str(int(value)) if value == int(value) else repr(value)
    text = nfc(cell).strip()
    return text or None


def exact_mean(values: list[float]) -> float:
    """Mean with one rounding (exact rational sum): independent of order and platform."""
    return float(sum(Fraction(v) for v in values) / len(values))


def is_blank(cell: Any) -> bool:
    if cell is None:
        return True
    if isinstance(cell, float) and cell != cell:
        return True
    return isinstance(cell, str) and not cell.strip()


# ---------------------------------------------------------------- sheet reading ----
@dataclass
class Sheet:
    """A ratings table: header cells and data rows (1-based row numbers in the file)."""

    path: Path
    header: list[str]
    rows: list[tuple[int, list[Any]]]
    note: str = ""


def find_header(grid: Iterable[list[Any]], id_column: str) -> int | None:
    """Index of the first row (within HEADER_SEARCH_ROWS) with a cell equal to id_column."""
    key = squash(id_column)
    for i, row in enumerate(grid):
        if i >= HEADER_SEARCH_ROWS:
            break
        if any(not is_blank(c) and squash(c) == key for c in row):
            return i
    return None


def _xlsx_grids(path: Path, nrows: int | None = None) -> dict[str, list[list[Any]]]:
    """Every worksheet as a list of rows of cell values (pandas + openpyxl)."""
    import pandas as pd

    frames = pd.read_excel(path, sheet_name=None, header=None, dtype=object,
                           engine="openpyxl", nrows=nrows)
    return {name: [[None if is_blank(c) else c for c in row] for row in df.itertuples(index=False)]
            for name, df in frames.items()}


def decode_text(data: bytes) -> tuple[str, str]:
    """Text of a CSV export: UTF-8 (BOM tolerated), else Windows-1252, else Latin-1."""
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return data.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"


def _csv_header(lines: list[str], id_column: str) -> tuple[int, str] | None:
    """(line index, separator) of the header line: the first whose fields hold id_column."""
    key = squash(id_column)
    for i, line in enumerate(lines[:HEADER_SEARCH_ROWS]):
        for sep in (";", "\t", ","):
            fields = next(csv.reader([line], delimiter=sep), [])
            if any(squash(f) == key for f in fields if f.strip()):
                return i, sep
    return None


def _csv_sheet(path: Path, id_column: str, limit: int | None = None) -> Sheet | None:
    data = path.read_bytes() if limit is None else path.open("rb").read(limit)
    text, encoding = decode_text(data)
    lines = text.splitlines()
    found = _csv_header(lines, id_column)
    if found is None:
        return None
    start, sep = found
    reader = csv.reader(io.StringIO("\n".join(lines[start:])), delimiter=sep)
    header = [nfc(h).strip() for h in next(reader)]
    rows = [(start + 2 + k, row) for k, row in enumerate(reader)]
    return Sheet(path, header, rows, note=f"encoding {encoding}, separator {sep!r}")


def _xlsx_sheet(path: Path, id_column: str, worksheet: str = "",
                nrows: int | None = None) -> Sheet | None:
    for name, grid in _xlsx_grids(path, nrows).items():
        if worksheet and squash(name) != squash(worksheet):
            continue
        start = find_header(grid, id_column)
        if start is None:
            continue
        header = ["" if is_blank(c) else nfc(str(c)).strip() for c in grid[start]]
        rows = [(start + 2 + k, list(r)) for k, r in enumerate(grid[start + 1:])]
        return Sheet(path, header, rows, note=f"worksheet {name!r}")
    return None


def read_sheet(path: Path, id_column: str, worksheet: str = "", header_only: bool = False) -> Sheet | None:
    """Parse a ratings sheet; None when no `id_column` header cell is found.

    `header_only` reads just enough to find the header (layout detection). A file that cannot
    be parsed is not the sheet while detecting (None); once chosen, it is a DataError naming it.
    """
    suffix = path.suffix.lower()
    try:
        if suffix in (".csv", ".tsv"):
            return _csv_sheet(path, id_column, CSV_SNIFF_BYTES if header_only else None)
        if suffix in (".xlsx", ".xlsm"):
            return _xlsx_sheet(path, id_column, worksheet, HEADER_SEARCH_ROWS if header_only else None)
    except Exception as exc:  # openpyxl and csv raise many types on broken files
        if header_only:
            return None
        raise DataError(f"{path.name}: the ratings sheet cannot be read ({type(exc).__name__}: "
                        f"{error_text(exc)})") from None
    return None


# ---------------------------------------------------------------- column mapping ---
def match_column(header: list[str], name: str) -> int | None:
    """Index of the header cell for a configured column name, or None.

    Exact key match first, then the part before ':'; ConfigError when ambiguous."""
    key = squash(name)
    for which in (0, 1):
        hits = [i for i, h in enumerate(header) if h and header_keys(h)[which] == key]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise ConfigError(f"column {name!r} matches several headers: "
                              f"{[header[i] for i in hits]}; name one exactly in the recipe")
    return None


@dataclass
class Columns:
    id: int
    valence: list[int]
    arousal: list[int]
    category: int | None
    extras: dict[str, int | None]


def map_columns(sheet: Sheet, params: Any) -> Columns:
    """Resolve the recipe's column names against the sheet header (ConfigError if missing)."""
    if len(params.valence_columns) != len(params.arousal_columns) or not params.valence_columns:
        raise ConfigError("foodpics.valence_columns and foodpics.arousal_columns must list the "
                          "same number (≥ 1) of rater groups, in the same order")
    if not 1 <= params.min_groups <= len(params.valence_columns):
        raise ConfigError(f"foodpics.min_groups = {params.min_groups}: must be between 1 and "
                          f"{len(params.valence_columns)} (the number of rater groups)")
    lo, hi = params.rating_range
    if not lo < hi:
        raise ConfigError(f"foodpics.rating_range = {list(params.rating_range)}: needs low < high "
                          "(the ratings' scale, 0-100 in the published sheets)")
    found = {n: match_column(sheet.header, n) for n in (*params.valence_columns, *params.arousal_columns)}
    missing = [n for n, i in found.items() if i is None]
    if missing:
        raise ConfigError(f"{sheet.path}: rating columns {missing} not in the header "
                          f"{[h for h in sheet.header if h]}; set foodpics.valence_columns / "
                          f"foodpics.arousal_columns to this release's names (SPEC §3.2)")
    id_index = match_column(sheet.header, params.id_column)
    assert id_index is not None  # the header row was found by this cell
    return Columns(
        id=id_index,
        valence=[found[n] for n in params.valence_columns],
        arousal=[found[n] for n in params.arousal_columns],
        category=match_column(sheet.header, params.category_column) if params.category_column else None,
        extras={n: match_column(sheet.header, n) for n in params.extra_category_columns},
    )


def cell(row: list[Any], index: int | None) -> Any:
    return row[index] if index is not None and index < len(row) else None


def rating_record(sheet_row: int, row: list[Any], cols: Columns, params: Any) -> dict[str, Any]:
    """One sheet row → plain values for a work item payload."""
    def values(indices: list[int], names: tuple[str, ...]) -> tuple[list, list]:
        out, bad = [], []
        for i, name in zip(indices, names):
            raw = cell(row, i)
            value = parse_number(raw)
            out.append(value)
            if value is None and not is_blank(raw):
                bad.append([name, str(raw)])
        return out, bad

    valence, bad_v = values(cols.valence, params.valence_columns)
    arousal, bad_a = values(cols.arousal, params.arousal_columns)
    return {
        "sheet_row": sheet_row,
        "valence": valence,
        "arousal": arousal,
        "category": category_text(cell(row, cols.category)),
        "extras": {n: category_text(cell(row, i)) for n, i in cols.extras.items()},
        "bad_cells": bad_v + bad_a,
    }


# ---------------------------------------------------------------- folder layout ----
@dataclass
class ImageEntry:
    rel: str  # POSIX, NFC, relative to the root
    path: Path
    number: int | None
    inside: bool


def image_number(name: str) -> int | None:
    """'0001.jpg' / '1.JPG' / '0001 .png' → 1; None for names that are not a number."""
    stem = nfc(Path(name).stem).strip()
    return int(stem) if re.fullmatch(r"[0-9]+", stem) else None


def _visible(p: Path) -> bool:
    return not p.name.startswith((".", "~$")) and p.name not in SKIP_DIRS


def scan_images(root: Path) -> list[ImageEntry]:
    """Image files in `root` and its immediate subfolders, sorted by relative path."""
    root_resolved = root.resolve()
    entries = []
    folders = [root] + sorted(d for d in root.iterdir() if d.is_dir() and _visible(d))
    for folder in folders:
        for p in sorted(folder.iterdir()):
            if not (_visible(p) and p.suffix.lower() in IMAGE_EXTS and p.is_file()):
                continue
            rel = printable_name(nfc(p.relative_to(root).as_posix()))  # bytes that are not UTF-8 escaped
            inside = p.resolve().is_relative_to(root_resolved)
            entries.append(ImageEntry(rel, p, image_number(p.name), inside))
    entries.sort(key=lambda e: e.rel)
    return entries


def sheet_candidates(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and _visible(p) and p.suffix.lower() in SHEET_EXTS)


def find_sheet(root: Path, params: Any) -> Path:
    """The ratings sheet of a FoodPics folder (ConfigError naming the folder otherwise)."""
    if params.sheet:
        path = root / params.sheet
        if not path.is_file():
            raise ConfigError(f"foodpics.sheet = {params.sheet!r}: no such file in {root}")
        return path
    found = [p for p in sheet_candidates(root)
             if read_sheet(p, params.id_column, params.worksheet, header_only=True) is not None]
    if len(found) == 1:
        return found[0]
    if not found:
        legacy = [p.name for p in root.iterdir() if p.suffix.lower() == ".xls"]
        hint = f"; found legacy Excel {legacy}: save it as .xlsx or .csv" if legacy else ""
        raise ConfigError(f"no ratings sheet with an {params.id_column!r} header cell in {root}"
                          f"{hint}; expected {LAYOUT}")
    raise ConfigError(f"several ratings sheets in {root}: {[p.name for p in found]}; choose one "
                      f"with --set foodpics.sheet=NAME")


def layout_problem(folder: Path, params: Any) -> str | None:
    """Why `folder` is not a FoodPics root (None when it is)."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not any(e.number is not None for e in scan_images(folder)):
        return f"no numbered images (0001.jpg …) in {folder} or its subfolders"
    try:
        find_sheet(folder, params)
    except ConfigError as exc:
        return str(exc)
    return None


def candidate_folders(data_root: Path) -> list[list[Path]]:
    """data_root, its subfolders, their subfolders (one wrapper level), by depth."""
    levels, current = [], [data_root]
    for _ in range(3):
        levels.append(current)
        current = [c for d in current for c in sorted(d.iterdir()) if c.is_dir() and _visible(c)]
    return levels


# ---------------------------------------------------------------- decisions --------
def check_rows(rows: list[dict]) -> tuple[dict | None, str | None]:
    """The one ratings row of a number, or a duplicate-id message."""
    if not rows:
        return None, None
    distinct = {repr({k: v for k, v in r.items() if k != "sheet_row"}) for r in rows}
    if len(distinct) > 1:
        lines = ", ".join(str(r["sheet_row"]) for r in rows)
        return None, f"{len(rows)} different ratings rows (sheet rows {lines})"
    return rows[0], None


def check_files(files: list[dict]) -> tuple[dict | None, str | None]:
    """The one image file of a number, or a duplicate-id message (identical copies are fine)."""
    if not files:
        return None, None
    if len({f["hash"] for f in files}) > 1:
        return None, f"{len(files)} different image files: {[f['path'] for f in files]}"
    return files[0], None


def non_food_reason(image_no: int, rating: dict, has_category: bool, params: Any) -> str | None:
    """Why the image is non-food (None when food): category value, else number convention."""
    category = rating["category"]
    if has_category and category is not None:
        if squash(category) in {squash(v) for v in params.non_food_values}:
            return f"{params.category_column} = {category!r}"
        return None
    if image_no >= params.non_food_min_number:
        where = "is empty" if has_category else "is absent"
        return (f"number {image_no} ≥ {params.non_food_min_number} (non-food by convention; "
                f"category column {params.category_column!r} {where})")
    return None


def complete_groups(rating: dict) -> list[int]:
    return [i for i, (v, a) in enumerate(zip(rating["valence"], rating["arousal"]))
            if v is not None and a is not None]


def va_problem(rating: dict, params: Any) -> str | None:
    """Why the row's VA is incomplete (None when enough groups have both V and A)."""
    groups = complete_groups(rating)
    if len(groups) >= params.min_groups:
        return None
    missing = []
    for i, (v_name, a_name) in enumerate(zip(params.valence_columns, params.arousal_columns)):
        missing += [v_name] if rating["valence"][i] is None else []
        missing += [a_name] if rating["arousal"][i] is None else []
    bad = ("; unparseable: " + ", ".join(f"{c}={v!r}" for c, v in rating["bad_cells"])
           if rating["bad_cells"] else "")
    return (f"{len(groups)} of {len(params.valence_columns)} rater groups have valence and "
            f"arousal (need {params.min_groups}); missing {missing}{bad}")


def out_of_range(rating: dict, params: Any) -> str | None:
    """The rating cells outside `rating_range` (None when every given value is inside)."""
    lo, hi = params.rating_range
    bad = [f"{name}={value:g}"
           for names, values in ((params.valence_columns, rating["valence"]),
                                 (params.arousal_columns, rating["arousal"]))
           for name, value in zip(names, values) if value is not None and not lo <= value <= hi]
    return f"{', '.join(bad)} outside foodpics.rating_range [{lo:g}, {hi:g}]" if bad else None


def kept_row(image_no: int, rating: dict, image: dict, probe: Any, params: Any) -> dict[str, Any]:
    """The manifest row of a kept image: VA means over the complete groups, raw scale."""
    groups = complete_groups(rating)
    sid = f"foodpics:{image_no}"
    row: dict[str, Any] = {
        "sample_id": sid, "source_id": sid, "modality": 0, "image_no": image_no,
        "image_path": image["path"], "content_hash": image["hash"],
        "width": probe.size[0], "height": probe.size[1], "mode": probe.mode,
        "valence_raw": exact_mean([rating["valence"][i] for i in groups]),
        "arousal_raw": exact_mean([rating["arousal"][i] for i in groups]),
        "n_groups": len(groups), "sheet_row": rating["sheet_row"],
    }
    row.update(zip(params.valence_columns, rating["valence"]))
    row.update(zip(params.arousal_columns, rating["arousal"]))
    if params.category_column:
        row[params.category_column] = rating["category"]
    row.update(rating["extras"])
    return row


def manifest_kinds(params: Any) -> dict[str, str]:
    """The manifest's columns and their kinds (one Parquet type each, whatever the data):
    rating columns are floats and category columns strings, by the recipe's names."""
    kinds = {"sample_id": "str", "source_id": "str", "modality": "int", "image_no": "int",
             "image_path": "str", "content_hash": "str", "width": "int", "height": "int",
             "mode": "str", "valence_raw": "float", "arousal_raw": "float", "n_groups": "int",
             "sheet_row": "int"}
    kinds.update({c: "float" for c in (*params.valence_columns, *params.arousal_columns)})
    if params.category_column:
        kinds[params.category_column] = "str"
    kinds.update({c: "str" for c in params.extra_category_columns})
    return kinds


# ---------------------------------------------------------------- the stage --------
class FoodPics(Stage):
    name = "foodpics"
    version = "4"  # 4: ratings outside rating_range rejected (va-out-of-range)
    libraries = ("pillow", "pandas", "openpyxl")
    datasets = ("foodpics",)
    description = "FoodPics Extended: ratings sheet + numbered images → food-only manifest"

    @dataclass(frozen=True)
    class Params:
        root: str = runtime("")
        sheet: str = ""  # file name in the root; "" = the one sheet with an id header
        worksheet: str = ""  # xlsx worksheet; "" = the first one with an id header
        id_column: str = "Image_No"
        valence_columns: tuple[str, ...] = THESIS_VALENCE
        arousal_columns: tuple[str, ...] = THESIS_AROUSAL
        category_column: str = "type"
        non_food_values: tuple[str, ...] = ("Non-Food",)
        extra_category_columns: tuple[str, ...] = ("taste", "processing")
        non_food_min_number: int = 1000
        min_groups: int = 4
        # the published ratings are visual-analogue scales of 0-100; a value outside is a
        # data error (a stray 1e6 would squash every image's min-max-normalised VA)
        rating_range: tuple[float, float] = (0.0, 100.0)
        max_pixels: int = DEFAULT_MAX_PIXELS

    # ---- locating and fingerprinting the raw data ---------------------------------
    def locate_root(self, params: Any, data_root: Path | None) -> Path:
        if params.root:
            root = Path(params.root).expanduser()
            problem = layout_problem(root, params)
            if problem:
                raise ConfigError(f"foodpics.root = {root}: {problem}; expected {LAYOUT}")
            return root
        if data_root is None:
            raise ConfigError(f"FoodPics: no --data-root and no foodpics.root; expected {LAYOUT}")
        data_root = Path(data_root)
        if not data_root.is_dir():
            raise ConfigError(f"--data-root {data_root} is not a folder")
        for level in candidate_folders(data_root):
            found = [d for d in level if layout_problem(d, params) is None]
            if len(found) == 1:
                return found[0]
            if found:
                raise ConfigError(f"several FoodPics folders under {data_root}: "
                                  f"{[str(d) for d in found]}; choose one with --set foodpics.root=DIR")
        raise ConfigError(f"no FoodPics folder under {data_root}: expected {LAYOUT}; "
                          f"or name it with --set foodpics.root=DIR")

    def source_signature(self, ctx: Any) -> Any:
        root = Path(ctx.roots["foodpics"])
        sheet = find_sheet(root, ctx.params)
        images = [[e.rel, ctx.hasher.hash(e.path)] for e in scan_images(root) if e.inside]
        return {"sheet": [nfc(sheet.relative_to(root).as_posix()), ctx.hasher.hash(sheet)],
                "images": images}

    # ---- planning -----------------------------------------------------------------
    def plan(self, ctx: Any) -> list[WorkItem]:
        params = ctx.params
        root = Path(ctx.roots["foodpics"])
        sheet_path = find_sheet(root, params)
        sheet = read_sheet(sheet_path, params.id_column, params.worksheet)
        if sheet is None:
            raise ConfigError(f"{sheet_path}: no {params.id_column!r} header cell in the first "
                              f"{HEADER_SEARCH_ROWS} rows; expected {LAYOUT}")
        cols = map_columns(sheet, params)
        ctx.info(f"foodpics: {sheet_path.name} ({sheet.note}), {len(sheet.rows)} rows")
        ratings, items = self._plan_rows(sheet, cols, params)
        files: dict[int, list[dict]] = {}
        for entry in scan_images(root):
            if not entry.inside:
                items.append(WorkItem(f"foodpics:file:{entry.rel}",
                                      {"kind": "outside", "path": entry.rel}))
            elif entry.number is None:
                items.append(WorkItem(f"foodpics:file:{entry.rel}",
                                      {"kind": "unmatched", "path": entry.rel}))
            else:
                files.setdefault(entry.number, []).append(
                    {"path": entry.rel, "hash": ctx.hasher.hash(entry.path)})
        has_category = cols.category is not None
        for n in sorted(set(ratings) | set(files)):
            items.append(WorkItem(f"foodpics:{n}", {
                "kind": "image", "image_no": n, "rows": ratings.get(n, []),
                "files": files.get(n, []), "has_category": has_category,
                "sheet": sheet_path.name}))
        return items

    def _plan_rows(self, sheet: Sheet, cols: Columns, params: Any) -> tuple[dict, list[WorkItem]]:
        ratings: dict[int, list[dict]] = {}
        bad: list[WorkItem] = []
        for sheet_row, row in sheet.rows:
            if all(is_blank(c) for c in row):
                continue
            raw_id = cell(row, cols.id)
            number = parse_image_no(raw_id)
            if number is None:
                bad.append(WorkItem(f"foodpics:sheet-row-{sheet_row}", {
                    "kind": "bad-id", "sheet": sheet.path.name, "sheet_row": sheet_row,
                    "value": None if is_blank(raw_id) else str(raw_id)}))
                continue
            ratings.setdefault(number, []).append(rating_record(sheet_row, row, cols, params))
        return ratings, bad

    # ---- per item -----------------------------------------------------------------
    def process(self, item: WorkItem, ctx: Any) -> Outcome:
        p = item.payload
        kind = p["kind"]
        if kind == "bad-id":
            what = "empty" if p["value"] is None else f"{p['value']!r} is not a whole number"
            return self._reject(item, "bad-id", f"{p['sheet']} row {p['sheet_row']}: "
                                                f"{ctx.params.id_column} {what}")
        if kind == "unmatched":
            return self._reject(item, "unmatched-file",
                                f"{p['path']}: file name is not an image number (0001.jpg)")
        if kind == "outside":
            return self._reject(item, "path-outside-root",
                                f"{p['path']}: resolves outside the FoodPics root")
        return self._process_image(item, ctx)

    @staticmethod
    def _reject(item: WorkItem, reason: str, message: str) -> Outcome:
        return Outcome(rejects=[Reject(item.key, reason, message)])

    def _process_image(self, item: WorkItem, ctx: Any) -> Outcome:
        params, p = ctx.params, item.payload
        n, root = p["image_no"], Path(ctx.roots["foodpics"])
        rating, row_problem = check_rows(p["rows"])
        image, file_problem = check_files(p["files"])
        if row_problem:
            return self._reject(item, "duplicate-id", f"image {n}: {row_problem} in {p['sheet']}")
        if file_problem:
            return self._reject(item, "duplicate-id", f"image {n}: {file_problem}")
        if rating is None:
            return self._reject(item, "missing-rating",
                                f"{image['path']}: no row with {params.id_column} = {n} in {p['sheet']}")
        reason = non_food_reason(n, rating, p["has_category"], params)
        if reason:
            return self._reject(item, "non-food", f"image {n} ({p['sheet']} row "
                                                  f"{rating['sheet_row']}): {reason}")
        problem = out_of_range(rating, params)
        if problem:
            return self._reject(item, "va-out-of-range", f"image {n} ({p['sheet']} row "
                                                         f"{rating['sheet_row']}): {problem}")
        problem = va_problem(rating, params)
        if problem:
            return self._reject(item, "incomplete-va", f"image {n} ({p['sheet']} row "
                                                       f"{rating['sheet_row']}): {problem}")
        if image is None:
            return self._reject(item, "missing-image", f"{p['sheet']} row {rating['sheet_row']}: "
                                                       f"no image file numbered {n} in the FoodPics folder")
        counters = {"duplicate-row-identical": len(p["rows"]) - 1,
                    "duplicate-file-identical": len(p["files"]) - 1}
        try:
            data = resolve_in_root(root, image["path"]).read_bytes()
            probe = decode_image(data, params.max_pixels, name=image["path"])
        except ImageTooLarge as exc:
            return self._reject(item, "image-too-large", str(exc))
        except UndecodableImage as exc:
            return self._reject(item, "undecodable-image", str(exc))
        except (OSError, ValueError) as exc:
            return self._reject(item, "missing-image", f"{image['path']}: {error_text(exc)}")
        return Outcome(rows=[kept_row(n, rating, image, probe, params)],
                       counters={k: v for k, v in counters.items() if v})

    def finalize(self, ctx: Any, rows: Any, rejects: list[Reject]) -> tuple[Any, list[Reject]]:
        """Rows in image-number order, typed; a one-line summary of what the filters removed."""
        rows = with_kinds(rows, manifest_kinds(ctx.params))
        if len(rows):
            rows = rows.sort_values("image_no", kind="stable").reset_index(drop=True)
        by_reason: dict[str, int] = {}
        for r in rejects:
            by_reason[r.reason] = by_reason.get(r.reason, 0) + 1
        ctx.info(f"foodpics: kept {len(rows)}, rejected {len(rejects)} "
                 + ", ".join(f"{k}={v}" for k, v in sorted(by_reason.items())))
        return rows, sorted(rejects, key=lambda r: r.sample_id)
