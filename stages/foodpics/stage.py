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
- The numeric rating scale of the Extended sheet is NOT settled by the sources this project
  follows: the thesis (seed 000, §2.1.2) names the eight rating columns and min-max normalises
  their group means to [-1, 1] without stating the scale; seeds 001-004 do not use FoodPics;
  SPEC §3.2 names the columns, not the scale; the 2014 paper's abstract names the rated
  dimensions, not the scale. So the raw values are kept as they are (`valence_raw`,
  `arousal_raw`) and `labels` normalises them (min-max needs no scale). `rating_range`
  (default 0-100, `params`) is only a plausibility guard, an assumption: every rating lies in
  [0, 100], which a 0-100 visual analogue scale and any 1-7 or 1-9 rating scale satisfy; a
  cell outside is rejected `va-out-of-range`. Set it to the release's scale where its
  documentation states one.
- Open question: 1,211 − 1,066 = 145 images removed in the thesis, yet the 2014 set alone had
  315 non-food images; either the Extended sheet marks fewer rows non-food than that, or the
  thesis' category filter differed. The rejects table shows what the recipe's filter did.

Because releases differ, the column mapping is a recipe parameter with the thesis names as
default (`columns`). Layout (SPEC §3.2, `layout`): one folder holding the ratings sheet
(`.xlsx`/`.xlsm` via pandas + openpyxl, or `.csv`/`.tsv`; read by `sheet`) and the numbered
images (`0001.jpg`, also `.jpeg`/`.png`, any case, zero padding optional), either next to
the sheet or in its immediate subfolders. CSV: `utf-8-sig` (else cp1252), `;` / `,` / tab
separators, decimal commas.

One work item per image number seen in the sheet or on disk; the first failing check names
the reject, in the thesis' order (category, completeness, quality; `rules`):
`duplicate-id`, `missing-rating`, `non-food`, `incomplete-va`, `missing-image`,
`image-too-large`, `undecodable-image`. Sheet rows without a usable number are `bad-id`,
image files without a number are `unmatched-file`, links leaving the root `path-outside-root`.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from emoprep.manifests.reasons import (
    BAD_ID,
    DUPLICATE_ID,
    IMAGE_TOO_LARGE,
    INCOMPLETE_VA,
    MISSING_IMAGE,
    MISSING_RATING,
    NON_FOOD,
    PATH_OUTSIDE_ROOT,
    UNDECODABLE_IMAGE,
    UNMATCHED_FILE,
    VA_OUT_OF_RANGE,
)
from emoprep.pipeline.columns import ColumnKind
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.filehash import FileHasher
from emoprep.pipeline.lazy import pd
from emoprep.pipeline.stage import Outcome, Reject, Stage, WorkItem
from emoprep.pipeline.values import error_text
from emoprep.stages.common.dataset_files import resolve_in_root
from emoprep.stages.common.image_io import ImageTooLarge, UndecodableImage, decode_image
from emoprep.stages.common.naming import nfc
from emoprep.stages.common.text_table import HEADER_SEARCH_ROWS, is_blank, parse_id
from emoprep.stages.foodpics.columns import Columns, RatingRecord, cell_at, map_columns, rating_record
from emoprep.stages.foodpics.layout import LAYOUT, find_sheet, locate_foodpics_root, scan_images
from emoprep.stages.foodpics.manifest_row import kept_row, manifest_kinds
from emoprep.stages.foodpics.params import FoodPicsParams
from emoprep.stages.foodpics.rules import (
    ImageFile,
    check_files,
    check_rows,
    non_food_reason,
    out_of_range,
    va_problem,
)
from emoprep.stages.foodpics.sheet import Sheet, read_sheet


class FoodPics(Stage[FoodPicsParams]):
    name = "foodpics"
    version = "4"  # 4: ratings outside rating_range rejected (va-out-of-range)
    libraries = ("pillow", "pandas", "openpyxl")
    datasets = ("foodpics",)
    description = "FoodPics Extended: ratings sheet + numbered images → food-only manifest"
    Params = FoodPicsParams

    def columns(self, ctx: StageContext[FoodPicsParams]) -> Mapping[str, ColumnKind]:
        return manifest_kinds(ctx.params)

    # ---- locating and fingerprinting the raw data ---------------------------------
    def locate_root(self, params: FoodPicsParams, data_root: Path | None, hasher: FileHasher | None = None) -> Path:
        return locate_foodpics_root(params, data_root, hasher)

    def source_signature(self, ctx: StageContext[FoodPicsParams]) -> dict[str, list[Any]]:
        root = Path(ctx.roots["foodpics"])
        sheet = find_sheet(root, ctx.params, ctx.hasher)
        images = [[e.rel, ctx.hasher.hash(e.path)] for e in scan_images(root) if e.inside]
        return {"sheet": [nfc(sheet.relative_to(root).as_posix()), ctx.hasher.hash(sheet)],
                "images": images}

    # ---- planning -----------------------------------------------------------------
    def plan(self, ctx: StageContext[FoodPicsParams]) -> list[WorkItem]:
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
        files: dict[int, list[ImageFile]] = {}
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

    def _plan_rows(self, sheet: Sheet, cols: Columns,
                   params: FoodPicsParams) -> tuple[dict[int, list[RatingRecord]], list[WorkItem]]:
        ratings: dict[int, list[RatingRecord]] = {}
        bad: list[WorkItem] = []
        for sheet_row, row in sheet.rows:
            if all(is_blank(c) for c in row):
                continue
            raw_id = cell_at(row, cols.id)
            number = parse_id(raw_id)
            if number is None:
                bad.append(WorkItem(f"foodpics:sheet-row-{sheet_row}", {
                    "kind": "bad-id", "sheet": sheet.path.name, "sheet_row": sheet_row,
                    "value": None if is_blank(raw_id) else str(raw_id)}))
                continue
            ratings.setdefault(number, []).append(rating_record(sheet_row, row, cols, params))
        return ratings, bad

    # ---- per item -----------------------------------------------------------------
    def process(self, item: WorkItem, ctx: ItemContext[FoodPicsParams]) -> Outcome:
        p = item.payload
        kind = p["kind"]
        if kind == "bad-id":
            what = "empty" if p["value"] is None else f"{p['value']!r} is not a whole number"
            return Outcome.rejected(item.key, BAD_ID, f"{p['sheet']} row {p['sheet_row']}: "
                                                      f"{ctx.params.id_column} {what}")
        if kind == "unmatched":
            return Outcome.rejected(item.key, UNMATCHED_FILE,
                                    f"{p['path']}: file name is not an image number (0001.jpg)")
        if kind == "outside":
            return Outcome.rejected(item.key, PATH_OUTSIDE_ROOT,
                                    f"{p['path']}: resolves outside the FoodPics root")
        return self._process_image(item, ctx)

    def _process_image(self, item: WorkItem, ctx: ItemContext[FoodPicsParams]) -> Outcome:
        params, p, key = ctx.params, item.payload, item.key
        n, root = p["image_no"], Path(ctx.roots["foodpics"])
        rating, row_problem = check_rows(p["rows"])
        image, file_problem = check_files(p["files"])
        if row_problem:
            return Outcome.rejected(key, DUPLICATE_ID, f"image {n}: {row_problem} in {p['sheet']}")
        if file_problem:
            return Outcome.rejected(key, DUPLICATE_ID, f"image {n}: {file_problem}")
        if rating is None:
            # an item without a sheet row has a file (plan makes items from rows and files)
            name = image["path"] if image is not None else f"image {n}"
            return Outcome.rejected(key, MISSING_RATING,
                                    f"{name}: no row with {params.id_column} = {n} in {p['sheet']}")
        reason = non_food_reason(n, rating, p["has_category"], params)
        if reason:
            return Outcome.rejected(key, NON_FOOD, f"image {n} ({p['sheet']} row "
                                                   f"{rating['sheet_row']}): {reason}")
        problem = out_of_range(rating, params)
        if problem:
            return Outcome.rejected(key, VA_OUT_OF_RANGE, f"image {n} ({p['sheet']} row "
                                                          f"{rating['sheet_row']}): {problem}")
        problem = va_problem(rating, params)
        if problem:
            return Outcome.rejected(key, INCOMPLETE_VA, f"image {n} ({p['sheet']} row "
                                                        f"{rating['sheet_row']}): {problem}")
        if image is None:
            return Outcome.rejected(key, MISSING_IMAGE, f"{p['sheet']} row {rating['sheet_row']}: "
                                                        f"no image file numbered {n} in the FoodPics folder")
        counters = {"duplicate-row-identical": len(p["rows"]) - 1,
                    "duplicate-file-identical": len(p["files"]) - 1}
        try:
            data = resolve_in_root(root, image["path"]).read_bytes()
            probe = decode_image(data, params.max_pixels, name=image["path"])
        except ImageTooLarge as exc:
            return Outcome.rejected(key, IMAGE_TOO_LARGE, str(exc))
        except UndecodableImage as exc:
            return Outcome.rejected(key, UNDECODABLE_IMAGE, str(exc))
        except (OSError, ValueError) as exc:
            return Outcome.rejected(key, MISSING_IMAGE, f"{image['path']}: {error_text(exc)}")
        return Outcome(rows=[kept_row(n, rating, image, probe, params)],
                       counters={k: v for k, v in counters.items() if v})

    def finalize(self, ctx: StageContext[FoodPicsParams], rows: pd.DataFrame,
                 rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        """Rows in image-number order; a one-line summary of what the filters removed. (The
        runner casts the rows to `columns()` afterwards; every kept row has an integer
        `image_no`, so the order does not depend on that cast.)"""
        if len(rows):
            rows = rows.sort_values("image_no", kind="stable").reset_index(drop=True)
        by_reason: dict[str, int] = {}
        for r in rejects:
            by_reason[r.reason] = by_reason.get(r.reason, 0) + 1
        ctx.info(f"foodpics: kept {len(rows)}, rejected {len(rejects)} "
                 + ", ".join(f"{k}={v}" for k, v in sorted(by_reason.items())))
        return rows, sorted(rejects, key=lambda r: r.sample_id)
