"""`deam` ingest: index a DEAM download (SPEC §3.1) into one manifest row per song, and audit
its annotations.

The real files have quirks that break naive readers, and each is handled in one small
function: headers with a space after every comma, a 13-column static file whose header has
the typo `valence_ max_mean`, CRLF and space-padded copies, wide dynamic CSVs with NaN tails,
metadata files with a different id header per year and ragged rows, and the three official
zips, read in place. Audio is probed from its header, never decoded here.

The annotation audit correlates each song's static valence/arousal with the mean of its
dynamic valence/arousal, per id block. In the public DEAM files the static columns of the
744 songs ≤ 1000 are crossed (static "valence" follows dynamic arousal); `static_fix`
decides what to do about it, and `audit.json` records what was found and done.
"""
from __future__ import annotations

import csv
import hashlib
import io
import math
import os
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Iterable, Literal

import numpy as np
import pandas as pd

from emoprep.atomic import atomic_write_json
from emoprep.errors import ConfigError, DataError
from emoprep.stage import Outcome, Reject, Stage, WorkItem, register, runtime
from emoprep.stages.audio_io import (AudioError, make_ref, open_zip, probe, read_ref_bytes,
                                     split_ref)

# ---- the DEAM layout (SPEC §3.1) -------------------------------------------------------
AUDIO_DIR = "MEMD_audio"
SONG_LEVEL = "annotations/annotations averaged per song/song_level"
DYNAMIC_DIR = "annotations/annotations averaged per song/dynamic (per second annotations)"
STATIC_FILES = (f"{SONG_LEVEL}/static_annotations_averaged_songs_1_2000.csv",
                f"{SONG_LEVEL}/static_annotations_averaged_songs_2000_2058.csv")
DYNAMIC_FILES = {"valence": f"{DYNAMIC_DIR}/valence.csv", "arousal": f"{DYNAMIC_DIR}/arousal.csv"}
METADATA_FILES = ("metadata/metadata_2013.csv", "metadata/metadata_2014.csv",
                  "metadata/metadata_2015.csv")
# The official downloads as a public audit recorded them: name -> (bytes, SHA-256).
OFFICIAL_ZIPS = {
    "DEAM_audio.zip": (1_343_203_527,
                       "E2814325F573ADE8CAEBC697F0EFCFDF7207142B737D72558A416117CA591353"),
    "DEAM_Annotations.zip": (4_735_283,
                             "809B0FEB4BA6196C1EDA9B2B7B33B892B11FA71457CFCEB0D47E832ED1A5F15F"),
    "metadata.zip": (344_760, "3D1D5AB42E852803A770F2CFBD685C6B464E1EBE76F26B0E10954597902B90F8"),
}
STATIC_RANGE = (1.0, 9.0)
DYNAMIC_RANGE = (-1.0, 1.0)
# DEAM's subsets: 2013 (ids ≤ 1000, 45 s), 2014 (1001–2000, 45 s), 2015 (2001–2058, full songs)
STANDARD_BLOCKS = ((1, 1000), (1001, 2000), (2001, 2058))
LAYOUT_HELP = ("expected the DEAM layout in SPEC §3.1 (MEMD_audio/<id>.mp3, annotations/annotations "
               "averaged per song/..., metadata/...), one wrapper folder deeper, or the official "
               "zips DEAM_audio.zip, DEAM_Annotations.zip, metadata.zip")


class AnnotationFormatError(ValueError):
    """An annotation file whose header is not a DEAM header."""


# ---- finding the files -------------------------------------------------------------------
@dataclass
class DeamLayout:
    """Where each part of a DEAM copy is, as source references relative to `root`."""

    root: Path
    audio: list[str] = field(default_factory=list)     # MEMD_audio/*.mp3 (files or members)
    ignored: list[str] = field(default_factory=list)   # other files in MEMD_audio/
    static: list[str] = field(default_factory=list)
    dynamic: dict[str, str] = field(default_factory=dict)
    metadata: list[str] = field(default_factory=list)
    zips: list[str] = field(default_factory=list)      # zips read in place (root-relative)
    problems: list[str] = field(default_factory=list)  # what could not be read (best effort parts)

    @property
    def has_annotations(self) -> bool:
        return bool(self.static or self.dynamic)

    def plain_files(self) -> list[str]:
        """Root-relative paths of the plain files this layout reads (not zip members)."""
        refs = [*self.audio, *self.ignored, *self.static, *self.dynamic.values(), *self.metadata]
        return sorted({r for r in refs if split_ref(r)[1] is None})


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX")))
    except OSError:
        return []


def _bases(root: Path) -> list[Path]:
    """`root` and each folder one level below it (a wrapper such as `DEAM/` or `annotations/`)."""
    return [root, *_subdirs(root)]


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def _find_zips(root: Path) -> dict[str, Path]:
    """Official DEAM zips (by name, case-insensitive) in `root` or one folder below."""
    wanted = {name.lower(): name for name in OFFICIAL_ZIPS}
    found: dict[str, Path] = {}
    for base in _bases(root):
        try:
            entries = sorted(base.iterdir())
        except OSError:
            continue
        for p in entries:
            name = wanted.get(p.name.lower())
            if name and name not in found and p.is_file():
                found[name] = p
    return found


def _member_index(zpath: Path) -> dict[str, str]:
    """Member names of a zip keyed by their path below an optional single wrapper folder."""
    index: dict[str, str] = {}
    for name in open_zip(zpath).namelist():
        if name.endswith("/") or name.startswith("__MACOSX/"):
            continue
        parts = PurePosixPath(name.lstrip("./")).parts
        if ".." in parts or not parts:
            continue
        index.setdefault("/".join(parts), name)
        if len(parts) > 1:
            index.setdefault("/".join(parts[1:]), name)
    return index


def _audio_entry_ok(name: str) -> bool:
    return not name.startswith((".", "~"))


def _list_audio_dir(folder: Path, root: Path) -> tuple[list[str], list[str]]:
    audio, ignored = [], []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file() or not _audio_entry_ok(entry.name):
            continue
        rel = _rel(Path(entry.path), root)
        (audio if entry.name.lower().endswith(".mp3") else ignored).append(rel)
    return audio, ignored


def _audio_dir(root: Path) -> Path | None:
    for base in _bases(root):
        if (base / AUDIO_DIR).is_dir():
            return base / AUDIO_DIR
    return None


def find_layout(root: Path) -> DeamLayout | None:
    """The DEAM files under `root` (plain folders first, then the official zips), or None
    when there is no audio. Each part may sit one wrapper folder deeper."""
    root = Path(root)
    layout = DeamLayout(root=root)
    zips = _find_zips(root)
    indexes: dict[str, tuple[str, dict[str, str]]] = {}

    def index(name: str) -> tuple[str, dict[str, str]] | None:
        if name not in zips:
            return None
        if name not in indexes:
            rel = _rel(zips[name], root)
            try:
                indexes[name] = (rel, _member_index(zips[name]))
            except (OSError, zipfile.BadZipFile, ValueError, RuntimeError) as exc:
                if name == "metadata.zip":  # metadata is best effort
                    layout.problems.append(f"{rel}: not a readable zip ({exc}); metadata skipped")
                    return None
                raise ConfigError(f"{rel}: not a readable zip ({exc}); download it again") from None
        return indexes[name]

    used_zips: set[str] = set()
    adir = _audio_dir(root)
    if adir is not None:
        layout.audio, layout.ignored = _list_audio_dir(adir, root)
    elif (ix := index("DEAM_audio.zip")) is not None:
        zrel, members = ix
        for key in sorted(members):
            parts = key.split("/")
            if len(parts) == 2 and parts[0] == AUDIO_DIR and _audio_entry_ok(parts[1]):
                ref = make_ref(zrel, members[key])
                (layout.audio if parts[1].lower().endswith(".mp3") else layout.ignored).append(ref)
        used_zips.add(zrel)
    else:
        return None

    def locate(rel: str, zip_name: str) -> str | None:
        for base in _bases(root):
            if (base / rel).is_file():
                return _rel(base / rel, root)
        ix = index(zip_name)
        if ix is not None and rel in ix[1]:
            used_zips.add(ix[0])
            return make_ref(ix[0], ix[1][rel])
        return None

    layout.static = [r for r in (locate(p, "DEAM_Annotations.zip") for p in STATIC_FILES) if r]
    for dim, rel in DYNAMIC_FILES.items():
        if (ref := locate(rel, "DEAM_Annotations.zip")) is not None:
            layout.dynamic[dim] = ref
    layout.metadata = [r for r in (locate(p, "metadata.zip") for p in METADATA_FILES) if r]
    layout.zips = sorted(used_zips)
    return layout


def _audio_candidates(folder: Path) -> tuple[bool, bool]:
    """(MEMD_audio/ or DEAM_audio.zip directly in `folder`, ... one wrapper level deeper)."""
    direct = (folder / AUDIO_DIR).is_dir() or any(
        p.name.lower() == "deam_audio.zip" for p in folder.glob("*.zip"))
    deeper = any((d / AUDIO_DIR).is_dir() or any(p.name.lower() == "deam_audio.zip" for p in d.glob("*.zip"))
                 for d in _subdirs(folder))
    return direct, deeper


def locate_deam_root(root_param: str, data_root: Path | None) -> Path:
    """The folder to read DEAM from: `root_param` if set, else `data_root` or a folder one
    level below it. Prefers the folder holding MEMD_audio/ itself; falls back to a folder
    whose parts sit in separate wrapper folders (e.g. DEAM_audio/ + DEAM_Annotations/)."""
    if root_param:
        given = Path(root_param).expanduser()
        if not given.is_dir():
            raise ConfigError(f"deam.root={given}: not a folder; {LAYOUT_HELP}")
        cands = [given]
    elif data_root is None:
        raise ConfigError("DEAM needs --data-root DIR or --set deam.root=DIR; " + LAYOUT_HELP)
    else:
        data_root = Path(data_root).expanduser()
        if not data_root.is_dir():
            raise ConfigError(f"--data-root {data_root}: not a folder")
        cands = [data_root, *_subdirs(data_root)]
    flags = [(c, *_audio_candidates(c)) for c in cands]
    ordered = [c for c, d, _ in flags if d] + [c for c, d, w in flags if w and not d]
    audio_only = []
    for cand in ordered:
        layout = find_layout(cand)
        if layout is None:
            continue
        if layout.has_annotations:
            return cand
        audio_only.append(cand)
    where = given if root_param else data_root
    if audio_only:
        raise ConfigError(f"found DEAM audio under {audio_only[0]} but no annotations: expected "
                          f"{STATIC_FILES[0]} or {DYNAMIC_FILES['valence']} there (or in "
                          "DEAM_Annotations.zip); " + LAYOUT_HELP)
    raise ConfigError(f"no MEMD_audio/ under {where}: {LAYOUT_HELP}")


# ---- parsing the CSVs ----------------------------------------------------------------
def _text(src: str | os.PathLike[str] | bytes) -> str:
    data = src if isinstance(src, bytes) else Path(src).read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _csv_rows(text: str) -> list[tuple[int, list[str]]]:
    """(line number, stripped cells) for each non-blank row; the delimiter is sniffed from the
    header among , ; and tab (CRLF, quotes and padding are handled by the csv module)."""
    first = next((ln for ln in text.splitlines() if ln.strip()), "")
    delim = max((",", ";", "\t"), key=first.count) if first else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delim)
    out = []
    for row in reader:
        cells = [c.strip() for c in row]
        if any(cells):
            out.append((reader.line_num, cells))
    return out


def normalise_column(name: str) -> str:
    """`' valence_ max_mean'` → `valence_max_mean`: lower case, no whitespace anywhere."""
    return re.sub(r"\s+", "", name.replace("\ufeff", "")).lower()


_ID_NAMES = ("song_id", "songid", "id")


def _parse_id(cell: str) -> int | None:
    try:
        value = float(cell)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value == int(value) else None


def _to_float(cell: str) -> float:
    try:
        return float(cell) if cell else math.nan
    except ValueError:
        return math.nan


def parse_static_csv(src: str | os.PathLike[str] | bytes, name: str = "static CSV") -> pd.DataFrame:
    """A DEAM static annotation CSV → one row per data line: `song_id`, the value columns
    under normalised names (`valence_mean`, `valence_std`, `arousal_mean`, `arousal_std`, and
    the 2015 file's min/max columns), `source_line`. Cells that are not numbers become NaN;
    lines without an integer id are skipped. Both are listed in `df.attrs["problems"]`.
    Raises AnnotationFormatError when the header lacks song_id / valence_mean / arousal_mean."""
    rows = _csv_rows(_text(src))
    if not rows:
        raise AnnotationFormatError(f"{name}: empty file")
    header = [normalise_column(c) for c in rows[0][1]]
    header = ["song_id" if h in _ID_NAMES else h for h in header]
    missing = [c for c in ("song_id", "valence_mean", "arousal_mean") if c not in header]
    if missing:
        raise AnnotationFormatError(f"{name}: no {', '.join(missing)} column in header {rows[0][1]}")
    id_col = header.index("song_id")
    value_cols = [(i, h) for i, h in enumerate(header) if i != id_col and h]
    records, problems = [], []
    for line, cells in rows[1:]:
        sid = _parse_id(cells[id_col]) if id_col < len(cells) else None
        if sid is None:
            problems.append(f"{name}:{line}: no integer song id, line skipped")
            continue
        if len(cells) != len(header):
            problems.append(f"{name}:{line}: {len(cells)} cells for {len(header)} columns")
        rec: dict[str, Any] = {"song_id": sid}
        for i, col in value_cols:
            cell = cells[i] if i < len(cells) else ""
            rec[col] = _to_float(cell)
            if cell and math.isnan(rec[col]) and cell.lower() != "nan":
                problems.append(f"{name}:{line}: {col}={cell!r} is not a number")
        rec["source_line"] = line
        records.append(rec)
    df = pd.DataFrame.from_records(records, columns=["song_id", *[h for _, h in value_cols], "source_line"])
    df["song_id"] = df["song_id"].astype("int64")
    df.attrs["problems"] = problems
    return df


_FRAME_COL = re.compile(r"sample_(\d+)ms")


def parse_dynamic_csv(src: str | os.PathLike[str] | bytes, name: str = "dynamic CSV") -> pd.DataFrame:
    """A DEAM dynamic CSV (wide: `song_id,sample_15000ms,sample_15500ms,...`) → a DataFrame
    indexed by song_id whose columns are the frame times in ms. Missing trailing cells (songs
    shorter than the longest) are NaN. Raises AnnotationFormatError on an unknown header."""
    rows = _csv_rows(_text(src))
    if not rows:
        raise AnnotationFormatError(f"{name}: empty file")
    header = [normalise_column(c) for c in rows[0][1]]
    while header and not header[-1]:
        header.pop()  # a trailing delimiter on the header line
    if not header or header[0] not in _ID_NAMES:
        raise AnnotationFormatError(f"{name}: first column must be song_id, header starts {rows[0][1][:3]}")
    times = []
    for col in header[1:]:
        m = _FRAME_COL.fullmatch(col)
        if not m:
            raise AnnotationFormatError(f"{name}: column {col!r} is not sample_<ms>ms")
        times.append(int(m.group(1)))
    n = len(times)
    ids, values, problems = [], [], []
    for line, cells in rows[1:]:
        sid = _parse_id(cells[0])
        if sid is None:
            problems.append(f"{name}:{line}: no integer song id, line skipped")
            continue
        cells = cells[1:]
        if len(cells) > n:
            if any(cells[n:]):
                problems.append(f"{name}:{line}: {len(cells) - n} cells beyond the last frame column ignored")
            cells = cells[:n]
        row = np.full(n, np.nan)
        try:
            row[: len(cells)] = np.array([c or "nan" for c in cells], dtype=np.float64)
        except ValueError:
            row[: len(cells)] = [_to_float(c) for c in cells]
            problems.append(f"{name}:{line}: cells that are not numbers read as NaN")
        ids.append(sid)
        values.append(row)
    df = pd.DataFrame(np.vstack(values) if values else np.zeros((0, n)),
                      index=pd.Index(ids, dtype="int64", name="song_id"), columns=times)
    df.attrs["problems"] = problems
    return df


def frame_grid(times_ms: Iterable[int]) -> tuple[int, int]:
    """(first frame ms, step ms) of a regular frame grid; raises AnnotationFormatError otherwise."""
    t = np.asarray(list(times_ms), dtype=np.int64)
    if len(t) == 0:
        raise AnnotationFormatError("no frame columns")
    if len(t) == 1:
        return int(t[0]), 500
    steps = np.diff(t)
    if steps[0] <= 0 or not np.all(steps == steps[0]):
        raise AnnotationFormatError("frame columns are not evenly spaced")
    return int(t[0]), int(steps[0])


_META_TITLE = ("songtitle", "title", "track", "trackname")


def parse_metadata_csv(src: str | os.PathLike[str] | bytes, name: str = "metadata CSV") -> pd.DataFrame:
    """Best effort: `song_id`, `metadata_year`, `artist`, `title`, `genre` from a DEAM metadata
    CSV (headers `song_id` / `Id` / `id`, ragged rows, embedded tabs). Never raises: what does
    not parse is listed in `df.attrs["problems"]`."""
    cols = ["song_id", "metadata_year", "artist", "title", "genre"]
    problems: list[str] = []
    m = re.search(r"(20\d\d)", name)
    year = m.group(1) if m else None
    records = []
    try:
        rows = _csv_rows(_text(src))
        header = [normalise_column(c) for c in rows[0][1]] if rows else []
        id_col = next((i for i, h in enumerate(header) if h in _ID_NAMES), None)
        if id_col is None:
            problems.append(f"{name}: no song_id/Id/id column, file skipped")
            rows = []

        def col(*names: str) -> int | None:
            return next((header.index(n) for n in names if n in header), None)

        picks = {"artist": col("artist"), "title": col(*_META_TITLE), "genre": col("genre")}
        for line, cells in rows[1:]:
            sid = _parse_id(cells[id_col]) if id_col < len(cells) else None
            if sid is None:
                problems.append(f"{name}:{line}: no integer id, line skipped")
                continue
            rec = {"song_id": sid, "metadata_year": year}
            for key, i in picks.items():
                value = " ".join(cells[i].split()) if i is not None and i < len(cells) else ""
                rec[key] = value or None
            records.append(rec)
    except Exception as exc:  # metadata must never stop the run
        problems.append(f"{name}: unreadable ({type(exc).__name__}: {exc})")
        records = []
    df = pd.DataFrame.from_records(records, columns=cols)
    df.attrs["problems"] = problems
    return df


# ---- combining annotations --------------------------------------------------------------
@dataclass
class Annotations:
    """Every annotation of a DEAM copy, one entry per song id."""

    static: pd.DataFrame                 # index song_id; valence_mean, ..., static_source
    dynamic: dict[str, pd.DataFrame]     # "valence"/"arousal": index song_id, columns ms
    t0_ms: int = 15000
    step_ms: int = 500
    metadata: pd.DataFrame = field(default_factory=pd.DataFrame)
    conflicts: dict[int, str] = field(default_factory=dict)   # song id -> what disagrees
    identical_duplicates: dict[int, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    mentions: dict[int, list[str]] = field(default_factory=dict)  # song id -> files naming it

    def ids(self) -> set[int]:
        out = set(self.static.index)
        for df in self.dynamic.values():
            out |= set(df.index)
        return {int(i) for i in out}


def _ref_name(ref: str) -> str:
    rel, member = split_ref(ref)
    return PurePosixPath(member or rel).name


def combine_static(frames: list[pd.DataFrame]) -> tuple[pd.DataFrame, dict[int, str], dict[int, int]]:
    """One static row per song id. Repeated rows with the same values are merged (counted);
    rows that disagree are reported as conflicts (the song is rejected, never guessed)."""
    if not frames:
        empty = pd.DataFrame(columns=["valence_mean", "valence_std", "arousal_mean", "arousal_std",
                                      "static_source"], index=pd.Index([], dtype="int64", name="song_id"))
        return empty, {}, {}
    df = pd.concat(frames, ignore_index=True)
    value_cols = [c for c in ("valence_mean", "valence_std", "arousal_mean", "arousal_std") if c in df]
    conflicts: dict[int, str] = {}
    identical: dict[int, int] = {}
    dup = df[df.duplicated("song_id", keep=False)]
    for sid, grp in dup.groupby("song_id", sort=True):
        vals = grp[value_cols].to_numpy(dtype=float)
        same = np.all(np.isclose(vals, vals[0], equal_nan=True, rtol=0, atol=1e-9))
        where = ", ".join(grp["static_source"])
        if same:
            identical[int(sid)] = len(grp) - 1
        else:
            conflicts[int(sid)] = f"static rows disagree ({where})"
    out = df.drop_duplicates("song_id", keep="first").set_index("song_id").sort_index()
    return out, conflicts, identical


def combine_dynamic(frame: pd.DataFrame, label: str) -> tuple[pd.DataFrame, dict[int, str], dict[int, int]]:
    """One dynamic row per song id (as `combine_static` for repeated rows)."""
    conflicts: dict[int, str] = {}
    identical: dict[int, int] = {}
    dup_mask = frame.index.duplicated(keep=False)
    if dup_mask.any():
        for sid in sorted(set(frame.index[dup_mask])):
            vals = frame.loc[[sid]].to_numpy(dtype=float)
            if np.all(np.isclose(vals, vals[0], equal_nan=True, rtol=0, atol=1e-9)):
                identical[int(sid)] = len(vals) - 1
            else:
                conflicts[int(sid)] = f"{label} has {len(vals)} rows that disagree"
    out = frame[~frame.index.duplicated(keep="first")].sort_index()
    return out, conflicts, identical


def load_annotations(layout: DeamLayout) -> Annotations:
    """Parse the static, dynamic and metadata files of `layout`.

    Raises DataError when a static or dynamic file is not in the DEAM format (its header is
    wrong: the whole file is unusable, and silently dropping it would reject every song for
    the wrong reason); bad lines inside a file and anything about metadata are problems."""
    problems: list[str] = []
    statics = []
    for ref in layout.static:
        name = _ref_name(ref)
        try:
            df = parse_static_csv(read_ref_bytes(layout.root, ref), name)
        except (AnnotationFormatError, AudioError) as exc:
            raise DataError(f"{ref}: {exc}") from None
        problems += df.attrs.get("problems", [])
        df["static_source"] = [f"{name}:{ln}" for ln in df["source_line"]]
        statics.append(df.drop(columns=["source_line"]))
    static, conflicts, identical = combine_static(statics)

    dynamic: dict[str, pd.DataFrame] = {}
    grids = {}
    for dim, ref in sorted(layout.dynamic.items()):
        name = _ref_name(ref)
        try:
            df = parse_dynamic_csv(read_ref_bytes(layout.root, ref), name)
            grids[dim] = frame_grid(df.columns)
        except (AnnotationFormatError, AudioError) as exc:
            raise DataError(f"{ref}: {exc}") from None
        problems += df.attrs.get("problems", [])
        df, c, i = combine_dynamic(df, name)
        for sid, msg in c.items():
            conflicts[sid] = f"{conflicts[sid]}; {msg}" if sid in conflicts else msg
        for sid, n in i.items():
            identical[sid] = identical.get(sid, 0) + n
        dynamic[dim] = df
    t0, step = 15000, 500
    if grids:
        if len(set(grids.values())) > 1:
            raise DataError(f"dynamic valence/arousal CSVs use different frame grids: {grids}")
        t0, step = next(iter(grids.values()))
    mentions: dict[int, list[str]] = {}
    for src in static.get("static_source", pd.Series(dtype=str)).items():
        mentions.setdefault(int(src[0]), []).append(src[1].split(":")[0])
    for dim, df in dynamic.items():
        for sid in df.index:
            mentions.setdefault(int(sid), []).append(_ref_name(layout.dynamic[dim]))
    dynamic = align_dynamic(dynamic)

    metas = []
    for ref in layout.metadata:
        name = _ref_name(ref)
        try:
            data = read_ref_bytes(layout.root, ref)
        except AudioError as exc:
            problems.append(str(exc))
            continue
        df = parse_metadata_csv(data, name)
        problems += df.attrs.get("problems", [])
        metas.append(df)
    metadata = (pd.concat(metas, ignore_index=True).drop_duplicates("song_id").set_index("song_id")
                if metas else pd.DataFrame())
    return Annotations(static=static, dynamic=dynamic, t0_ms=t0, step_ms=step, metadata=metadata,
                       conflicts=conflicts, identical_duplicates=identical, problems=problems,
                       mentions=mentions)


def align_dynamic(dynamic: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """Both dimensions on the same song index and frame columns (missing cells NaN), so a
    song's frames are one row lookup and per-song statistics are vectorised."""
    if not dynamic:
        return {}
    ids = sorted(set().union(*[set(df.index) for df in dynamic.values()]))
    cols = sorted(set().union(*[set(df.columns) for df in dynamic.values()]))
    index = pd.Index(ids, dtype="int64", name="song_id")
    return {dim: dynamic[dim].reindex(index=index, columns=cols) if dim in dynamic
            else pd.DataFrame(np.nan, index=index, columns=cols)
            for dim in ("valence", "arousal")}


def song_frames(ann: Annotations, sid: int) -> tuple[np.ndarray, np.ndarray]:
    """(valence, arousal) frames of one song on the common grid, trailing NaNs removed."""
    if not ann.dynamic or sid not in ann.dynamic["valence"].index:
        return np.zeros(0), np.zeros(0)
    pos = ann.dynamic["valence"].index.get_loc(sid)
    v = ann.dynamic["valence"].to_numpy(dtype=float)[pos]
    a = ann.dynamic["arousal"].to_numpy(dtype=float)[pos]
    finite = np.isfinite(v) | np.isfinite(a)
    last = int(np.nonzero(finite)[0][-1]) + 1 if finite.any() else 0
    return v[:last], a[:last]


def clean_dynamic(frames: np.ndarray) -> tuple[np.ndarray, int]:
    """Frames outside [-1, 1] become NaN (they cannot be DEAM ratings); returns how many."""
    frames = np.asarray(frames, dtype=float).copy()
    bad = np.isfinite(frames) & ((frames < DYNAMIC_RANGE[0]) | (frames > DYNAMIC_RANGE[1]))
    frames[bad] = np.nan
    return frames, int(bad.sum())


def static_ok(valence: float, arousal: float) -> bool:
    lo, hi = STATIC_RANGE
    return all(math.isfinite(x) and lo <= x <= hi for x in (valence, arousal))


# ---- the annotation audit ---------------------------------------------------------------
def dynamic_means(ann: Annotations) -> pd.DataFrame:
    """Per song: mean of its valid dynamic valence and arousal frames (index song_id)."""
    if not ann.dynamic:
        return pd.DataFrame(columns=["valence", "arousal"], index=pd.Index([], dtype="int64", name="song_id"))
    out = {}
    for dim in ("valence", "arousal"):
        x, _ = clean_dynamic(ann.dynamic[dim].to_numpy(dtype=float))
        n = np.isfinite(x).sum(axis=1)
        out[dim] = np.where(n > 0, np.nansum(x, axis=1) / np.maximum(n, 1), np.nan)
    df = pd.DataFrame(out, index=ann.dynamic["valence"].index)
    return df.dropna()


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.std(x) == 0 or np.std(y) == 0:
        return math.nan
    return float(np.corrcoef(x, y)[0, 1])


def crossed_votes(joined: pd.DataFrame) -> np.ndarray:
    """Per song (rows of `joined`: static valence_mean/arousal_mean, dynamic valence/arousal):
    +1 if the song fits better with its static columns crossed, -1 if straight, 0 if a tie.

    With each variable z-scored, |straight|² − |crossed|² = 2 (zsv − zsa)(zda − zdv), so the
    vote is the sign of that product: scale-free and cheap."""
    def z(col: pd.Series) -> np.ndarray:
        x = col.to_numpy(dtype=float)
        sd = x.std()
        return (x - x.mean()) / sd if sd > 0 else np.zeros_like(x)

    d = (z(joined["valence_mean"]) - z(joined["arousal_mean"])) * (z(joined["arousal"]) - z(joined["valence"]))
    return np.sign(d).astype(int)


def segment_votes(votes: np.ndarray, error: float = 0.3, switch: float = 1e-3) -> np.ndarray:
    """Two-state Viterbi (0 straight, 1 crossed) over votes in id order: a switch costs
    log(switch), a vote against the state log(error). Isolated odd votes stay in their
    surrounding state; only long consistent stretches become a crossed segment."""
    n = len(votes)
    if n == 0:
        return np.zeros(0, dtype=int)
    lo, hi, st = math.log(error), math.log(1 - error), math.log(switch)
    stay = math.log(1 - switch)
    emit = np.zeros((n, 2))
    emit[votes > 0] = (lo, hi)
    emit[votes < 0] = (hi, lo)
    score = np.array([math.log(0.5), math.log(0.5)]) + emit[0]
    back = np.zeros((n, 2), dtype=np.int8)
    for i in range(1, n):
        new = np.empty(2)
        for s in (0, 1):
            cand = (score[s] + stay, score[1 - s] + st)
            back[i, s] = s if cand[0] >= cand[1] else 1 - s
            new[s] = max(cand) + emit[i, s]
        score = new
    states = np.zeros(n, dtype=int)
    states[-1] = int(np.argmax(score))
    for i in range(n - 1, 0, -1):
        states[i - 1] = back[i, states[i]]
    return states


def standard_blocks(ids: Iterable[int]) -> list[tuple[int, int]]:
    """DEAM's id blocks that hold songs, plus one block for ids beyond 2058 if any."""
    ids = sorted(set(ids))
    blocks = [(lo, hi) for lo, hi in STANDARD_BLOCKS if any(lo <= i <= hi for i in ids)]
    extra = [i for i in ids if i > STANDARD_BLOCKS[-1][1]]
    if extra:
        blocks.append((STANDARD_BLOCKS[-1][1] + 1, max(extra)))
    return blocks


def detect_crossed_runs(joined: pd.DataFrame, min_run: int = 20) -> list[tuple[int, int]]:
    """Contiguous id runs (≥ `min_run` songs) whose songs vote crossed, found by `segment_votes`."""
    if len(joined) == 0:
        return []
    states = segment_votes(crossed_votes(joined))
    ids = joined.index.to_numpy()
    runs, start = [], None
    for i, s in enumerate([*states, 0]):
        if s == 1 and start is None:
            start = i
        elif s != 1 and start is not None:
            if i - start >= min_run:
                runs.append((int(ids[start]), int(ids[i - 1])))
            start = None
    return runs


def block_stats(joined: pd.DataFrame, lo: int, hi: int, *, margin: float, min_songs: int) -> dict[str, Any]:
    """Correlations of one id block: straight (static v ~ dynamic v, static a ~ dynamic a)
    against crossed (static v ~ dynamic a, static a ~ dynamic v), and the verdict."""
    b = joined[(joined.index >= lo) & (joined.index <= hi)]
    sv, sa = b["valence_mean"].to_numpy(float), b["arousal_mean"].to_numpy(float)
    dv, da = b["valence"].to_numpy(float), b["arousal"].to_numpy(float)
    r = {"r_sv_dv": _pearson(sv, dv), "r_sa_da": _pearson(sa, da),
         "r_sv_da": _pearson(sv, da), "r_sa_dv": _pearson(sa, dv)}
    straight = (r["r_sv_dv"] + r["r_sa_da"]) / 2
    crossed = (r["r_sv_da"] + r["r_sa_dv"]) / 2
    if len(b) < min_songs or not (math.isfinite(straight) and math.isfinite(crossed)):
        verdict = "insufficient"
    elif crossed - straight >= margin:
        verdict = "crossed"
    elif straight - crossed >= margin:
        verdict = "straight"
    else:
        verdict = "unclear"
    return {"id_min": lo, "id_max": hi, "n": int(len(b)), **r,
            "straight": straight, "crossed": crossed, "verdict": verdict}


def audit_blocks(static_df: pd.DataFrame, dyn_means: pd.DataFrame, *, margin: float = 0.2,
                 min_songs: int = 6, min_run: int = 20,
                 blocks: list[tuple[int, int]] | None = None) -> pd.DataFrame:
    """The annotation audit table: one row per id block (DEAM's standard blocks, or `blocks`,
    plus runs found by `detect_crossed_runs`), with its four correlations and a verdict
    (`straight`, `crossed`, `unclear`, `insufficient`).

    static_df: index song_id, columns valence_mean, arousal_mean (1–9, as in the file).
    dyn_means: index song_id, columns valence, arousal (mean dynamic rating per song)."""
    st = static_df[["valence_mean", "arousal_mean"]].astype(float)
    st = st[np.isfinite(st).all(axis=1)]
    joined = st.join(dyn_means[["valence", "arousal"]].astype(float), how="inner").dropna().sort_index()
    rows = []
    for lo, hi in (standard_blocks(joined.index) if blocks is None else blocks):
        rows.append({"block": f"{lo}-{hi}", "kind": "standard" if blocks is None else "given",
                     **block_stats(joined, lo, hi, margin=margin, min_songs=min_songs)})
    for lo, hi in detect_crossed_runs(joined, min_run):
        rows.append({"block": f"{lo}-{hi}", "kind": "detected",
                     **block_stats(joined, lo, hi, margin=margin, min_songs=min_songs)})
    cols = ["block", "kind", "id_min", "id_max", "n", "r_sv_dv", "r_sa_da", "r_sv_da", "r_sa_dv",
            "straight", "crossed", "verdict"]
    return pd.DataFrame(rows, columns=cols)


StaticFix = Literal["auto", "swap-le-1000", "none"]


def ids_to_fix(audit: pd.DataFrame, mode: str, ids: Iterable[int]) -> set[int]:
    """The song ids whose static valence/arousal columns are swapped under `mode`."""
    ids = set(int(i) for i in ids)
    if mode == "none":
        return set()
    if mode == "swap-le-1000":
        return {i for i in ids if i <= 1000}
    if mode == "auto":
        out: set[int] = set()
        for row in audit[audit["verdict"] == "crossed"].itertuples():
            out |= {i for i in ids if row.id_min <= i <= row.id_max}
        return out
    raise ConfigError(f"deam.static_fix must be 'auto', 'swap-le-1000' or 'none', not {mode!r}")


def apply_static_fix(rows: pd.DataFrame, fix: set[int]) -> pd.DataFrame:
    """Set `static_*_raw` / `static_*_std` from the file's values, crossed back for `fix` ids.

    Computed from the `*_file` columns every time, so running it twice changes nothing."""
    rows = rows.copy()
    if len(rows) == 0:
        for c in ("static_valence_raw", "static_arousal_raw", "static_valence_std",
                  "static_arousal_std", "static_fixed"):
            rows[c] = pd.Series(dtype=bool if c == "static_fixed" else float)
        return rows
    has = np.isfinite(rows["static_valence_file"].astype(float)) & np.isfinite(rows["static_arousal_file"].astype(float))
    swap = rows["song_id"].astype(int).isin(fix) & has
    for dim, other in (("valence", "arousal"), ("arousal", "valence")):
        for kind in ("raw", "std"):
            src = "file" if kind == "raw" else "std_file"
            rows[f"static_{dim}_{kind}"] = np.where(swap, rows[f"static_{other}_{src}"], rows[f"static_{dim}_{src}"]).astype(float)
    rows["static_fixed"] = swap.to_numpy(dtype=bool)
    return rows


def check_zip(path: Path, digest: str) -> dict[str, Any]:
    """Size and SHA-256 of an official zip against the recorded values (a warning if off)."""
    size = path.stat().st_size
    exp_size, exp_sha = OFFICIAL_ZIPS[path.name]
    ok = size == exp_size and digest.upper() == exp_sha
    entry = {"file": path.name, "size": size, "sha256": digest.upper(), "expected_size": exp_size,
             "expected_sha256": exp_sha, "ok": ok}
    if not ok:
        entry["warning"] = (f"{path.name}: {size:,} B, SHA-256 {digest.upper()[:16]}… differs from the "
                            f"official download ({exp_size:,} B, {exp_sha[:16]}…): a different or "
                            "damaged copy; outputs may not match the thesis")
    return entry


def _ranges(ids: Iterable[int]) -> list[list[int]]:
    """[[lo, hi], ...] runs of consecutive ids in sorted order (compact JSON for id sets)."""
    out: list[list[int]] = []
    for i in sorted(ids):
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def _json_number(x: Any) -> Any:
    if isinstance(x, (float, np.floating)):
        return None if not math.isfinite(float(x)) else round(float(x), 6)
    if isinstance(x, np.integer):
        return int(x)
    return x


# ---- the stage ----------------------------------------------------------------------------
def _nan_to_none(x: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in np.asarray(x, dtype=float)]


def audio_song_id(ref: str) -> tuple[int | None, str]:
    """Song id and file name of an audio reference (`MEMD_audio/2.mp3` → 2); id None if the
    stem is not an integer."""
    rel, member = split_ref(ref)
    fname = PurePosixPath(member or rel).name
    stem = fname.rsplit(".", 1)[0]
    return (int(stem) if stem.isdigit() else None), fname


@register
class Deam(Stage):
    name = "deam"
    version = "1"
    libraries = ("soundfile", "pandas", "numpy")
    datasets = ("deam",)
    description = "DEAM ingest: index audio + annotations, probe audio, audit static vs dynamic"

    @dataclass(frozen=True)
    class Params:
        root: str = runtime("")
        static_fix: StaticFix = "auto"
        audit_margin: float = 0.2      # crossed − straight correlation needed to flag a block
        audit_min_songs: int = 6       # smaller blocks get the verdict "insufficient"
        audit_min_run: int = 20        # shortest crossed run detected outside DEAM's blocks

    # -- where the data is
    def locate_root(self, params: Any, data_root: Path | None) -> Path:
        return locate_deam_root(params.root, data_root)

    def _root(self, ctx: Any) -> Path:
        root = ctx.roots.get("deam")
        return Path(root) if root is not None else self.locate_root(ctx.params, None)

    def _layout(self, ctx: Any) -> DeamLayout:
        root = self._root(ctx)
        layout = find_layout(root)
        if layout is None:
            raise ConfigError(f"no MEMD_audio/ under {root}: {LAYOUT_HELP}")
        if not layout.has_annotations:
            raise ConfigError(f"no DEAM annotations under {root}: expected {STATIC_FILES[0]} "
                              f"or {DYNAMIC_FILES['valence']}; {LAYOUT_HELP}")
        return layout

    def source_signature(self, ctx: Any) -> Any:
        layout = self._layout(ctx)
        files = {rel: ctx.hasher.hash(layout.root / rel) for rel in layout.plain_files()}
        files.update({rel: ctx.hasher.hash(layout.root / rel) for rel in layout.zips})
        return {"dataset": "deam", "files": dict(sorted(files.items()))}

    # -- per song
    def plan(self, ctx: Any) -> list[WorkItem]:
        if ctx.params.static_fix not in ("auto", "swap-le-1000", "none"):
            raise ConfigError(f"deam.static_fix must be 'auto', 'swap-le-1000' or 'none', "
                              f"not {ctx.params.static_fix!r}")
        layout = self._layout(ctx)
        ann = load_annotations(layout)
        audio: dict[int, list[str]] = {}
        items: list[WorkItem] = []
        for ref in layout.audio:
            sid, fname = audio_song_id(ref)
            if sid is None:
                items.append(WorkItem(key=f"deam:{fname}", payload={"bad_name": ref}))
            else:
                audio.setdefault(sid, []).append(ref)
        for sid in sorted(set(audio) | ann.ids()):
            refs = audio.get(sid, [])
            payload = self._song_payload(ctx, layout, ann, sid, refs, ann.mentions.get(sid, []))
            items.append(WorkItem(key=f"deam:{sid}", payload=payload))
        return items

    def _song_payload(self, ctx: Any, layout: DeamLayout, ann: Annotations, sid: int,
                      refs: list[str], mentions: list[str]) -> dict[str, Any]:
        p: dict[str, Any] = {"song_id": sid, "audio_refs": refs, "mentions": sorted(set(mentions)),
                             "conflict": ann.conflicts.get(sid), "issues": [],
                             "duplicates_merged": int(ann.identical_duplicates.get(sid, 0))}
        if len(refs) == 1 and split_ref(refs[0])[1] is None:
            p["content_hash"] = ctx.hasher.hash(layout.root / refs[0])
        if sid in ann.static.index:
            row = ann.static.loc[sid]
            vals = {k: float(row[k]) if k in row and pd.notna(row[k]) else None
                    for k in ("valence_mean", "valence_std", "arousal_mean", "arousal_std")}
            p["static"] = vals
            p["static_source"] = str(row["static_source"])
        if ann.dynamic and sid in ann.dynamic["valence"].index:
            v, a = song_frames(ann, sid)
            v, nv = clean_dynamic(v)
            a, na = clean_dynamic(a)
            if nv + na:
                p["issues"].append(f"{nv + na} dynamic frames outside [-1, 1] set to NaN")
            p["dyn_valence"], p["dyn_arousal"] = _nan_to_none(v), _nan_to_none(a)
            p["dyn_t0_s"], p["dyn_hz"] = ann.t0_ms / 1000.0, 1000.0 / ann.step_ms
        if not ann.metadata.empty and sid in ann.metadata.index:
            m = ann.metadata.loc[sid]
            p["metadata"] = {k: (None if pd.isna(m[k]) else str(m[k]))
                             for k in ("metadata_year", "artist", "title", "genre")}
        return p

    def process(self, item: WorkItem, ctx: Any) -> Outcome:
        p = item.payload
        sid = item.key
        if "bad_name" in p:
            return _reject(sid, "bad-song-id", f"{p['bad_name']}: file name is not <song_id>.mp3")
        refs = p["audio_refs"]
        if len(refs) > 1:
            return _reject(sid, "duplicate-audio", f"{len(refs)} audio files for one song: {', '.join(refs)}")
        if p.get("conflict"):
            return _reject(sid, "duplicate-annotation", f"song {p['song_id']}: {p['conflict']}")
        if not refs:
            return _reject(sid, "missing-audio", f"song {p['song_id']} is annotated in "
                           f"{', '.join(p['mentions'])} but {AUDIO_DIR}/{p['song_id']}.mp3 is missing")
        ref = refs[0]
        static = p.get("static")
        issues = list(p["issues"])
        static_valid = static is not None and static_ok(
            _num(static["valence_mean"]), _num(static["arousal_mean"]))
        if static is not None and not static_valid:
            issues.append(f"static valence/arousal {static['valence_mean']}/{static['arousal_mean']} "
                          f"({p['static_source']}) missing or outside [1, 9]: not used")
        dv = np.array([np.nan if x is None else x for x in p.get("dyn_valence", [])], dtype=float)
        da = np.array([np.nan if x is None else x for x in p.get("dyn_arousal", [])], dtype=float)
        dyn_valid = bool(np.isfinite(dv).any() and np.isfinite(da).any())
        if not static_valid and not dyn_valid:
            if static is None and "dyn_valence" not in p:
                return _reject(sid, "missing-annotation",
                               f"{ref} has no row in the static or dynamic annotation CSVs")
            return _reject(sid, "bad-annotation", f"song {p['song_id']}: no usable annotation ("
                           + "; ".join(issues or ["dynamic frames are all missing"]) + ")")
        try:
            info = probe(Path(ctx.roots["deam"]), ref)
            digest = p.get("content_hash") or hashlib.sha256(read_ref_bytes(Path(ctx.roots["deam"]), ref)).hexdigest()
        except AudioError as exc:
            return _reject(sid, exc.reason, exc.message)
        last_frame_s = _last_frame_s(dv, da, p.get("dyn_t0_s", 15.0), p.get("dyn_hz", 2.0))
        if last_frame_s is not None and last_frame_s > info.duration_s + 0.5:
            # e.g. a VBR MP3 without a Xing header, whose length libsndfile underestimates
            issues.append(f"dynamic annotations run to {last_frame_s:.1f} s but the audio "
                          f"({ref}) is {info.duration_s:.2f} s long")
        sv = static if static_valid else {}
        meta = p.get("metadata") or {}
        row = {
            "sample_id": sid, "source_id": sid, "modality": 1, "path": None,
            "song_id": int(p["song_id"]), "audio_path": ref, "content_hash": digest,
            "duration_s": info.duration_s, "n_frames_audio": info.frames,
            "sample_rate": info.sample_rate, "channels": info.channels, "audio_format": info.format,
            "static_valence_file": _num(sv.get("valence_mean")), "static_arousal_file": _num(sv.get("arousal_mean")),
            "static_valence_std_file": _num(sv.get("valence_std")), "static_arousal_std_file": _num(sv.get("arousal_std")),
            "static_source": p.get("static_source") if static_valid else None,
            "dyn_valence": [float(x) for x in dv], "dyn_arousal": [float(x) for x in da],
            "dyn_t0_s": float(p.get("dyn_t0_s", 15.0)), "dyn_hz": float(p.get("dyn_hz", 2.0)),
            "dyn_n_frames": int(min(np.isfinite(dv).sum(), np.isfinite(da).sum())) if len(dv) else 0,
            "annotation_issues": "; ".join(issues) or None,
            "metadata_year": meta.get("metadata_year"), "artist": meta.get("artist"),
            "title": meta.get("title"), "genre": meta.get("genre"),
        }
        # finalize() decides the static fix; until then the file's values stand
        row.update({"static_valence_raw": row["static_valence_file"], "static_arousal_raw": row["static_arousal_file"],
                    "static_valence_std": row["static_valence_std_file"],
                    "static_arousal_std": row["static_arousal_std_file"], "static_fixed": False})
        counters = {"duplicate-rows-merged": p["duplicates_merged"]} if p["duplicates_merged"] else {}
        return Outcome(rows=[row], counters=counters)

    # -- dataset level
    def finalize(self, ctx: Any, rows: pd.DataFrame, rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        params = ctx.params
        layout = self._layout(ctx)
        ann = load_annotations(layout)
        valid = ann.static[[static_ok(v, a) for v, a in zip(ann.static["valence_mean"], ann.static["arousal_mean"])]] \
            if len(ann.static) else ann.static
        audit = audit_blocks(valid, dynamic_means(ann), margin=params.audit_margin,
                             min_songs=params.audit_min_songs, min_run=params.audit_min_run)
        ids = rows["song_id"].astype(int).tolist() if len(rows) else []
        fix = ids_to_fix(audit, params.static_fix, ann.ids() | set(ids))
        kept_fix = set(ids) & fix
        rows = apply_static_fix(rows, fix)
        if len(rows):
            rows = rows.sort_values("sample_id", kind="stable").reset_index(drop=True)
        audit = audit.assign(fixed=[bool(params.static_fix == "auto" and v == "crossed") for v in audit["verdict"]])
        zip_checks = [check_zip(layout.root / z, ctx.hasher.hash(layout.root / z))
                      for z in layout.zips if PurePosixPath(z).name in OFFICIAL_ZIPS]
        warnings = [z["warning"] for z in zip_checks if "warning" in z] + layout.problems
        if layout.ignored:
            warnings.append(f"{len(layout.ignored)} files in {AUDIO_DIR}/ are not .mp3 and were ignored: "
                            + ", ".join(layout.ignored[:10]))
        report = {
            "static_fix": params.static_fix,
            "blocks": [{k: _json_number(v) for k, v in r.items()} for r in audit.to_dict("records")],
            "fixed_song_ids": _ranges(kept_fix),
            "n_fixed": len(kept_fix),
            "zip_checks": zip_checks,
            "warnings": warnings,
            "parse_problems": ann.problems[:200],
            "n_parse_problems": len(ann.problems),
            "files": {"static": layout.static, "dynamic": layout.dynamic, "metadata": layout.metadata,
                      "zips": layout.zips, "n_audio": len(layout.audio)},
        }
        atomic_write_json(Path(ctx.out_dir) / "audit.json", report)
        crossed = [b["block"] for b in report["blocks"] if b["verdict"] == "crossed"]
        ctx.info(f"deam audit: crossed blocks {crossed or 'none'}; static_fix={params.static_fix} "
                 f"swapped static valence/arousal of {len(kept_fix)} songs", audit=report["blocks"])
        for w in warnings:
            ctx.info(f"deam warning: {w}")
        return rows, rejects


def _last_frame_s(dv: np.ndarray, da: np.ndarray, t0_s: float, hz: float) -> float | None:
    """Time of the last annotated dynamic frame, or None without annotations."""
    finite = np.isfinite(dv) | np.isfinite(da) if len(dv) == len(da) else np.isfinite(dv)
    idx = np.nonzero(finite)[0]
    return float(t0_s + idx[-1] / hz) if len(idx) else None


def _num(x: Any) -> float:
    return float(x) if x is not None else math.nan


def _reject(sample_id: str, reason: str, message: str) -> Outcome:
    return Outcome(rejects=[Reject(sample_id, reason, message)])


def read_audit(out_dir: Path) -> dict[str, Any]:
    """The audit written by the `deam` stage's finalize (for the report)."""
    import json

    return json.loads((Path(out_dir) / "audit.json").read_text())
