"""`generic` ingest: any `id, path, valence, arousal[, label]` table of images or audio files
(SPEC §3.4), so datasets without a dedicated ingest (seed 002's music/art categories, seed
004's `id,image_path,embedding_path` pairs table, your own) enter the same DAG.

The recipe declares what the table is: which file (`table`, a CSV/TSV relative to the root;
"" finds the one table in the root whose header has the id and path columns), the column
names, the `modality` of its files (one per table: `images` reads image tables, `salient` /
`features` read audio tables), the raw VA `scale` (required when the table has VA columns;
values outside it are rejected), and the `dataset_name` that prefixes sample ids
(`<dataset_name>:<id>`; `labels` can key a fixed scale on it).

Per row, in order, the first problem names the reject:
- `bad-id`: empty id, or one with `/`, `\\`, `:` or control characters (ids become file
  names and the `<dataset>:<id>[:<k>]` sample-id syntax);
- `duplicate-id`: an id on several rows that differ (identical rows are merged, counted);
- `path-outside-root`: an absolute path, a `..` part, or a symlink leading out of the root;
- `missing-image` / `missing-audio`: no such file;
- `bad-annotation`: a VA cell that is not a number; `va-out-of-range`: outside the scale;
- `undecodable-image`, `image-too-large`, `unreadable-audio`, `empty-audio`: the file.
A row with empty VA cells is kept with null VA (`labels` rejects it `missing-va`; a
label-only table can still be paired). Paths are NFC-normalised (macOS unpacks names in NFD;
the file is found either way) and `\\` separators are read as `/`.
"""
from __future__ import annotations

import csv
import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from emoprep.manifests.columns import AUDIO_FILE_COLUMNS, IMAGE_FILE_COLUMNS, ITEM_COLUMNS
from emoprep.manifests.reasons import (
    BAD_ANNOTATION,
    BAD_ID,
    DUPLICATE_ID,
    IMAGE_TOO_LARGE,
    MISSING_AUDIO,
    MISSING_IMAGE,
    PATH_OUTSIDE_ROOT,
    UNDECODABLE_IMAGE,
    VA_OUT_OF_RANGE,
)
from emoprep.pipeline.columns import ColumnKind
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import ConfigError, DataError
from emoprep.pipeline.filehash import FileHasher
from emoprep.pipeline.lazy import pd
from emoprep.pipeline.stage import Outcome, Reject, Stage, WorkItem, runtime
from emoprep.pipeline.values import error_text
from emoprep.stages.common.audio_io import AudioError, probe
from emoprep.stages.common.dataset_files import resolve_in_root
from emoprep.stages.common.image_io import DEFAULT_MAX_PIXELS, ImageTooLarge, UndecodableImage, decode_image
from emoprep.stages.common.naming import nfc
from emoprep.stages.common.text_table import decode, read_rows

TABLE_EXTS = (".csv", ".tsv")
BAD_ID_CHARS = re.compile(r"[/\\:\x00-\x1f\x7f]")
COMMON_KINDS: dict[str, ColumnKind] = {**ITEM_COLUMNS, "item_id": "str"}
LABEL_KINDS: dict[str, ColumnKind] = {"valence_raw": "float", "arousal_raw": "float", "label": "str",
                                      "scale_min": "float", "scale_max": "float", "table_row": "int"}


# ---- the table ---------------------------------------------------------------------------------
def decode_table(data: bytes) -> str:
    return decode(data)[0]


def read_table(text: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line, cells)]) of a CSV/TSV; the delimiter is the most frequent of `,`
    `;` tab in the header line. Cells are NFC, stripped."""
    rows = [(line, [nfc(c) for c in cells]) for line, cells in read_rows(text)]
    if not rows:
        return [], []
    return rows[0][1], rows[1:]


def column_index(header: list[str], name: str) -> int | None:
    """Position of `name` in the header (case-insensitive), None when absent or unnamed."""
    if not name:
        return None
    keys = [h.casefold() for h in header]
    return keys.index(name.casefold()) if name.casefold() in keys else None


def clean_path(cell: str) -> str:
    """A path cell as a POSIX path: NFC, `\\` read as `/`."""
    return nfc(cell).replace("\\", "/")


def path_problem(rel: str) -> str | None:
    """Why `rel` may not be used as a path inside the root (absolute, `..`, empty), or None."""
    pure = PurePosixPath(rel)
    if not rel or pure.is_absolute() or re.match(r"^[A-Za-z]:", rel):
        return f"{rel!r} is empty or absolute"
    if ".." in pure.parts:
        return f"{rel!r} has a '..' part"
    return None


def parse_value(cell: str) -> float | None:
    """A VA cell → float; empty → None. Raises ValueError for text or non-finite numbers."""
    if cell == "":
        return None
    x = float(cell)
    if not math.isfinite(x):
        raise ValueError(cell)
    return x


def id_problem(item_id: str) -> str | None:
    if not item_id:
        return "empty id"
    if BAD_ID_CHARS.search(item_id):
        return f"id {item_id!r} contains '/', '\\\\', ':' or a control character"
    return None


# ---- the stage ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenericParams:
    root: str = runtime("")
    table: str = ""                         # table file relative to the root; "" = find it
    dataset_name: str = "generic"           # sample ids are <dataset_name>:<id>
    modality: Literal["image", "audio"] = "image"
    id_column: str = "id"
    path_column: str = "path"
    valence_column: str = "valence"
    arousal_column: str = "arousal"
    label_column: str = "label"
    source_column: str = ""                 # groups rows (e.g. a song); "" = each id alone
    scale: tuple[float, ...] = ()           # raw VA scale [lo, hi]; required with VA columns
    max_pixels: int = DEFAULT_MAX_PIXELS


class Generic(Stage[GenericParams]):
    name = "generic"
    version = "2"  # 2: malformed tables, paths out of the root
    libraries = ("pillow", "soundfile")
    datasets = ("generic",)
    description = "generic id,path,valence,arousal[,label] table of images or audio with a declared VA scale"
    Params = GenericParams

    def columns(self, ctx: StageContext[GenericParams]) -> Mapping[str, ColumnKind]:
        files = IMAGE_FILE_COLUMNS if ctx.params.modality == "image" else AUDIO_FILE_COLUMNS
        return {**COMMON_KINDS, **files, **LABEL_KINDS}

    # -- the data root and the table
    def locate_root(self, params: GenericParams, data_root: Path | None, hasher: FileHasher | None = None) -> Path:
        if params.root:
            root = Path(params.root).expanduser()
            if not root.is_dir() or find_table(root, params) is None:
                raise ConfigError(f"generic.root = {root}: {self._expected(params)}")
            return root
        if data_root is None or not Path(data_root).is_dir():
            raise ConfigError(f"generic: no --data-root folder and no generic.root; {self._expected(params)}")
        cands = [Path(data_root), *sorted(p for p in Path(data_root).iterdir() if p.is_dir())]
        found = [c for c in cands if find_table(c, params) is not None]
        if len(found) > 1:
            raise ConfigError(f"several generic tables under {data_root}: {[str(f) for f in found]}; "
                              "choose one with --set generic.root=DIR")
        if not found:
            raise ConfigError(f"no generic table under {data_root}: {self._expected(params)}")
        return found[0]

    @staticmethod
    def _expected(params: GenericParams) -> str:
        what = f"the table {params.table!r}" if params.table else "one .csv/.tsv table"
        return (f"expected a folder holding {what} with columns {params.id_column!r} and "
                f"{params.path_column!r} (SPEC §3.4); set generic.table / generic.root")

    def _table(self, ctx: StageContext[GenericParams]) -> Path:
        root = Path(ctx.roots["generic"])
        table = find_table(root, ctx.params)
        if table is None:
            raise ConfigError(f"{root}: {self._expected(ctx.params)}")
        return table

    def source_signature(self, ctx: StageContext[GenericParams]) -> dict[str, Any]:
        root, table = Path(ctx.roots["generic"]), self._table(ctx)
        files = {}
        for item in self._rows(ctx)[1]:
            path = _existing(root, item.get("path"))
            if path is not None:
                files[item["path"]] = ctx.hasher.hash(path)
        return {"table": [table.relative_to(root).as_posix(), ctx.hasher.hash(table)],
                "files": dict(sorted(files.items()))}

    def _rows(self, ctx: StageContext[GenericParams]) -> tuple[dict[str, int | None], list[dict[str, Any]]]:
        """Column positions and one record per table row (cells by role)."""
        p = ctx.params
        table = self._table(ctx)
        try:
            header, rows = read_table(decode_table(table.read_bytes()))
        except csv.Error as exc:  # a field over the csv module's limit: a stray quote
            raise DataError(f"generic table {table.name}: not readable as CSV ({exc})") from None
        cols = {role: column_index(header, getattr(p, f"{role}_column"))
                for role in ("id", "path", "valence", "arousal", "label", "source")}
        if cols["id"] is None or cols["path"] is None:
            raise ConfigError(f"generic table {self._table(ctx).name}: header {header} lacks "
                              f"{p.id_column!r} or {p.path_column!r}; set generic.id_column / path_column")
        if (cols["valence"] is None) != (cols["arousal"] is None):
            raise ConfigError(f"generic table: has only one of the columns {p.valence_column!r} / "
                              f"{p.arousal_column!r}; give both or neither")
        if cols["valence"] is not None and not _scale_ok(p.scale):
            raise ConfigError(f"generic table has VA columns: declare their scale, e.g. "
                              f"--set 'generic.scale=[1.0, 9.0]' (got {list(p.scale)})")
        records = []
        for line, cells in rows:
            # absent column → None; a short row's missing cell → ""
            rec: dict[str, Any] = {role: None if i is None else (cells[i] if i < len(cells) else "")
                                   for role, i in cols.items()}
            rec["line"] = line
            rec["path"] = clean_path(rec["path"])
            records.append(rec)
        return cols, records

    # -- per row
    def plan(self, ctx: StageContext[GenericParams]) -> list[WorkItem]:
        p = ctx.params
        if not p.dataset_name or BAD_ID_CHARS.search(p.dataset_name):
            raise ConfigError(f"generic.dataset_name {p.dataset_name!r}: a non-empty name without '/', ':'")
        _, records = self._rows(ctx)
        root = Path(ctx.roots["generic"])
        table = self._table(ctx).relative_to(root).as_posix()
        by_id: dict[str, list[dict[str, Any]]] = {}
        items = []
        for rec in records:
            problem = id_problem(rec["id"])
            if problem:
                items.append(WorkItem(f"{p.dataset_name}:line-{rec['line']}",
                                      {"bad_id": problem, "line": rec["line"], "table": table}))
            else:
                by_id.setdefault(rec["id"], []).append(rec)
        for item_id, recs in by_id.items():
            distinct = {tuple(sorted((k, v) for k, v in r.items() if k != "line")) for r in recs}
            payload = {"item_id": item_id, "rows": recs, "conflict": len(distinct) > 1, "table": table}
            path = _existing(root, recs[0]["path"])
            if path is not None and not payload["conflict"]:
                payload["content_hash"] = ctx.hasher.hash(path)
            items.append(WorkItem(f"{p.dataset_name}:{item_id}", payload))
        return items

    def process(self, item: WorkItem, ctx: ItemContext[GenericParams]) -> Outcome:
        p, q = item.payload, ctx.params
        table = p["table"]
        if "bad_id" in p:
            return Outcome.rejected(item.key, BAD_ID, f"{table} line {p['line']}: {p['bad_id']}")
        recs = p["rows"]
        lines = ", ".join(str(r["line"]) for r in recs)
        if p["conflict"]:
            return Outcome.rejected(item.key, DUPLICATE_ID,
                                    f"{table} lines {lines}: id {p['item_id']!r} on rows that differ")
        rec = recs[0]
        where = f"{table} line {rec['line']}"
        problem = path_problem(rec["path"])
        if problem:
            return Outcome.rejected(item.key, PATH_OUTSIDE_ROOT, f"{where}: {problem}")
        try:
            va = self._va(rec, q)
        except ValueError as exc:
            return Outcome.rejected(item.key, BAD_ANNOTATION, f"{where}: VA cell {exc} is not a number")
        if va and any(x is not None and not (q.scale[0] <= x <= q.scale[1]) for x in va):
            return Outcome.rejected(item.key, VA_OUT_OF_RANGE,
                                    f"{where}: VA {va} outside the declared scale {list(q.scale)}")
        root = Path(ctx.roots["generic"])
        try:
            path = resolve_in_root(root, rec["path"])
        except ValueError as exc:
            return Outcome.rejected(item.key, PATH_OUTSIDE_ROOT, f"{where}: {error_text(exc)}")
        except OSError:
            missing = MISSING_IMAGE if q.modality == "image" else MISSING_AUDIO
            return Outcome.rejected(item.key, missing, f"{where}: {rec['path']} is not in the dataset root")
        probe_cols = self._probe(path, root, rec["path"], q, p.get("content_hash"))
        if isinstance(probe_cols, Outcome):
            return Outcome(rejects=[Reject(item.key, r.reason, f"{where}: {r.message}") for r in probe_cols.rejects])
        row = {"sample_id": item.key,
               "source_id": f"{q.dataset_name}:{rec['source']}" if rec["source"] else item.key,
               "modality": 0 if q.modality == "image" else 1, "item_id": p["item_id"], **probe_cols,
               "valence_raw": va[0] if va else None, "arousal_raw": va[1] if va else None,
               "label": rec["label"] or None, "scale_min": q.scale[0] if va else None,
               "scale_max": q.scale[1] if va else None, "table_row": rec["line"]}
        return Outcome(rows=[row], counters={"identical-rows-merged": len(recs) - 1} if len(recs) > 1 else {})

    @staticmethod
    def _va(rec: dict[str, Any], q: GenericParams) -> tuple[float | None, float | None] | None:
        if rec.get("valence") is None and rec.get("arousal") is None:
            return None
        return parse_value(rec["valence"]), parse_value(rec["arousal"])

    @staticmethod
    def _probe(path: Path, root: Path, rel: str, q: GenericParams, digest: str | None) -> dict[str, Any] | Outcome:
        """Columns describing the file (image size/mode or audio length/rate), or a reject."""
        if q.modality == "image":
            try:
                data = path.read_bytes()
                im = decode_image(data, q.max_pixels, name=rel)
            except ImageTooLarge as exc:
                return Outcome.rejected("", IMAGE_TOO_LARGE, str(exc))
            except UndecodableImage as exc:
                return Outcome.rejected("", UNDECODABLE_IMAGE, str(exc))
            return {"image_path": rel, "content_hash": digest or hashlib.sha256(data).hexdigest(),
                    "width": im.size[0], "height": im.size[1], "mode": im.mode}
        try:
            info = probe(root, path.relative_to(root).as_posix())
        except AudioError as exc:
            return Outcome.rejected("", exc.reason, exc.message)
        return {"audio_path": rel, "content_hash": digest or hashlib.sha256(path.read_bytes()).hexdigest(),
                "duration_s": info.duration_s, "n_frames_audio": info.frames, "sample_rate": info.sample_rate,
                "channels": info.channels, "audio_format": info.format}

    def finalize(self, ctx: StageContext[GenericParams], rows: pd.DataFrame,
                 rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        return rows, sorted(rejects, key=lambda r: r.sample_id)


def find_table(folder: Path, params: GenericParams) -> Path | None:
    """The table in `folder`: `params.table` if set (and present), else the one .csv/.tsv
    directly in it whose header has the id and path columns."""
    folder = Path(folder)
    if params.table:
        if path_problem(clean_path(params.table)):
            return None
        path = folder / params.table
        return path if path.is_file() else None
    try:
        cands = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in TABLE_EXTS)
    except OSError:
        return None
    hits = [c for c in cands if _has_columns(c, params)]
    return hits[0] if len(hits) == 1 else None


def _has_columns(path: Path, params: GenericParams) -> bool:
    try:
        head = decode_table(path.read_bytes()[:65536])
    except OSError:
        return False
    header, _ = read_table(head.split("\n", 1)[0] + "\n")
    return column_index(header, params.id_column) is not None and column_index(header, params.path_column) is not None


def _existing(root: Path, rel: str | None) -> Path | None:
    """The file `rel` inside `root`, or None (absent, outside, not a plain path)."""
    if not rel or path_problem(rel):
        return None
    try:
        return resolve_in_root(root, rel)
    except (OSError, ValueError):
        return None


def _scale_ok(scale: tuple[float, ...]) -> bool:
    return len(scale) == 2 and all(math.isfinite(x) for x in scale) and scale[0] < scale[1]
