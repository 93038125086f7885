"""Where the parts of a DEAM copy are (SPEC §3.1): the audio folder, the annotation and
metadata CSVs, each possibly one wrapper folder deeper, or inside the three official zips,
which are read in place. Everything is named by a source reference relative to the DEAM
root (`MEMD_audio/2.mp3`, `DEAM_audio.zip::MEMD_audio/2.mp3`), so manifests are portable.
"""
from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.values import error_text
from emoprep.stages.common.audio_io import make_ref, open_zip, split_ref
from emoprep.stages.common.dataset_files import visible_subdirs
from emoprep.stages.common.naming import is_utf8_name, printable_name

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
LAYOUT_HELP = ("expected the DEAM layout in SPEC §3.1 (MEMD_audio/<id>.mp3, annotations/annotations "
               "averaged per song/..., metadata/...), one wrapper folder deeper, or the official "
               "zips DEAM_audio.zip, DEAM_Annotations.zip, metadata.zip")


# ---- finding the files -------------------------------------------------------------------
@dataclass
class DeamLayout:
    """Where each part of a DEAM copy is, as source references relative to `root`."""

    root: Path
    audio: list[str] = field(default_factory=list)     # MEMD_audio/*.mp3 (files or members)
    ignored: list[str] = field(default_factory=list)   # other files in MEMD_audio/
    # files in MEMD_audio/ whose names are not UTF-8, \xNN-escaped: rejected by name, never read
    undecodable: list[str] = field(default_factory=list)
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


def _bases(root: Path) -> list[Path]:
    """`root` and each folder one level below it (a wrapper such as `DEAM/` or `annotations/`)."""
    return [root, *visible_subdirs(root)]


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


def _list_audio_dir(folder: Path, root: Path) -> tuple[list[str], list[str], list[str]]:
    """(.mp3 files, other files, names that are not UTF-8 in printable form)."""
    audio: list[str] = []
    ignored: list[str] = []
    undecodable: list[str] = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file() or not _audio_entry_ok(entry.name):
            continue
        rel = _rel(Path(entry.path), root)
        if not is_utf8_name(rel):
            undecodable.append(printable_name(rel))
            continue
        (audio if entry.name.lower().endswith(".mp3") else ignored).append(rel)
    return audio, ignored, undecodable


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
                    layout.problems.append(f"{rel}: not a readable zip ({error_text(exc)}); metadata skipped")
                    return None
                raise ConfigError(f"{rel}: not a readable zip ({error_text(exc)}); download it again") from None
        return indexes[name]

    used_zips: set[str] = set()
    adir = _audio_dir(root)
    if adir is not None:
        layout.audio, layout.ignored, layout.undecodable = _list_audio_dir(adir, root)
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
        if (found := locate(rel, "DEAM_Annotations.zip")) is not None:
            layout.dynamic[dim] = found
    layout.metadata = [r for r in (locate(p, "metadata.zip") for p in METADATA_FILES) if r]
    layout.zips = sorted(used_zips)
    return layout


def _audio_candidates(folder: Path) -> tuple[bool, bool]:
    """(MEMD_audio/ or DEAM_audio.zip directly in `folder`, ... one wrapper level deeper)."""
    direct = (folder / AUDIO_DIR).is_dir() or any(
        p.name.lower() == "deam_audio.zip" for p in folder.glob("*.zip"))
    deeper = any((d / AUDIO_DIR).is_dir() or any(p.name.lower() == "deam_audio.zip" for p in d.glob("*.zip"))
                 for d in visible_subdirs(folder))
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
        cands = [data_root, *visible_subdirs(data_root)]
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


def audio_song_id(ref: str) -> tuple[int | None, str]:
    """Song id and file name of an audio reference (`MEMD_audio/2.mp3` → 2); id None if the
    stem is not an integer."""
    rel, member = split_ref(ref)
    fname = PurePosixPath(member or rel).name
    stem = fname.rsplit(".", 1)[0]
    # ASCII digits only: str.isdigit() accepts '²', which int() refuses
    return (int(stem) if stem.isascii() and stem.isdigit() else None), fname


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
