"""Where a FoodPics download is and what is in it (SPEC §3.2): the numbered images next to
the ratings sheet or in its immediate subfolders, the one sheet with an `Image_No` header,
and the search for such a folder under `--data-root`. Every failure names the folder and
the expected layout, so a user can fix the download rather than read a traceback.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.filehash import FileHasher
from emoprep.stages.common.naming import nfc, printable_name
from emoprep.stages.foodpics.params import FoodPicsParams
from emoprep.stages.foodpics.sheet import read_sheet

IMAGE_EXTS = (".jpg", ".jpeg", ".png")
SHEET_EXTS = (".xlsx", ".xlsm", ".csv", ".tsv")
SKIP_DIRS = ("__MACOSX",)
LAYOUT = ("a folder holding the ratings sheet (.xlsx or .csv with an `Image_No` header cell, "
          "comment rows above it allowed) and the numbered images (0001.jpg …) next to it or "
          "in a subfolder (SPEC §3.2)")


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
    folders = [root, *sorted(d for d in root.iterdir() if d.is_dir() and _visible(d))]
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


def find_sheet(root: Path, params: FoodPicsParams, hasher: FileHasher | None = None) -> Path:
    """The ratings sheet of a FoodPics folder (ConfigError naming the folder otherwise).
    With `hasher`, whether a file has the header is remembered by its stat (an up-to-date
    run then neither parses the sheet nor imports openpyxl)."""
    if params.sheet:
        path = root / params.sheet
        if not path.is_file():
            raise ConfigError(f"foodpics.sheet = {params.sheet!r}: no such file in {root}")
        return path
    found = [p for p in sheet_candidates(root) if _has_header(p, params, hasher)]
    if len(found) == 1:
        return found[0]
    if not found:
        legacy = [p.name for p in root.iterdir() if p.suffix.lower() == ".xls"]
        hint = f"; found legacy Excel {legacy}: save it as .xlsx or .csv" if legacy else ""
        raise ConfigError(f"no ratings sheet with an {params.id_column!r} header cell in {root}"
                          f"{hint}; expected {LAYOUT}")
    raise ConfigError(f"several ratings sheets in {root}: {[p.name for p in found]}; choose one "
                      f"with --set foodpics.sheet=NAME")


def _has_header(path: Path, params: FoodPicsParams, hasher: FileHasher | None) -> bool:
    def parse() -> str:
        return "yes" if read_sheet(path, params.id_column, params.worksheet, header_only=True) is not None else "no"

    if hasher is None:
        return parse() == "yes"
    return hasher.probe(path, f"foodpics-sheet-header:{params.id_column}:{params.worksheet}", parse) == "yes"


def layout_problem(folder: Path, params: FoodPicsParams, hasher: FileHasher | None = None) -> str | None:
    """Why `folder` is not a FoodPics root (None when it is)."""
    if not folder.is_dir():
        return f"{folder} is not a folder"
    if not any(e.number is not None for e in scan_images(folder)):
        return f"no numbered images (0001.jpg …) in {folder} or its subfolders"
    try:
        find_sheet(folder, params, hasher)
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


def locate_foodpics_root(params: FoodPicsParams, data_root: Path | None, hasher: FileHasher | None = None) -> Path:
    """The FoodPics folder: under `foodpics.root` (itself or one wrapper level down, as zips
    nest it) when set, else under `data_root` (itself, a subfolder or one wrapper level down)."""
    if params.root:
        root = Path(params.root).expanduser()
        if not root.is_dir():
            raise ConfigError(f"foodpics.root = {root}: not a folder; expected {LAYOUT}")
        found = _search(root, params, hasher, levels=2, setting=f"foodpics.root = {root}")
        if found is None:
            raise ConfigError(f"foodpics.root = {root}: {_why_not(root, params, hasher)}; expected {LAYOUT}")
        return found
    if data_root is None:
        raise ConfigError(f"FoodPics: no --data-root and no foodpics.root; expected {LAYOUT}")
    data_root = Path(data_root)
    if not data_root.is_dir():
        raise ConfigError(f"--data-root {data_root} is not a folder")
    found = _search(data_root, params, hasher, levels=3, setting=f"--data-root {data_root}")
    if found is None:
        raise ConfigError(f"no FoodPics folder under {data_root}: expected {LAYOUT}; "
                          f"or name it with --set foodpics.root=DIR")
    return found


def _search(start: Path, params: FoodPicsParams, hasher: FileHasher | None, levels: int, setting: str) -> Path | None:
    """The one folder with the layout at the shallowest depth under `start` (None: none)."""
    for level in candidate_folders(start)[:levels]:
        found = [d for d in level if layout_problem(d, params, hasher) is None]
        if len(found) == 1:
            return found[0]
        if found:
            raise ConfigError(f"several FoodPics folders under {setting}: "
                              f"{[str(d) for d in found]}; choose one with --set foodpics.root=DIR")
    return None


def _why_not(root: Path, params: FoodPicsParams, hasher: FileHasher | None) -> str:
    """Why neither `root` nor its subfolders are a FoodPics root, pointing at deeper images."""
    problem = layout_problem(root, params, hasher) or "no FoodPics layout"
    if "no numbered images" in problem:
        deeper = sorted({p.parent for p in root.rglob("*") if p.is_file() and image_number(p.name) is not None})
        if deeper:
            return (f"no numbered images (0001.jpg …) in {root} or one folder down; found some deeper, "
                    f"in {deeper[0]}: set foodpics.root to the folder holding the ratings sheet")
    return problem
