"""`pmemo` ingest: index a PMEmo 2019 download (SPEC §3.3) into one manifest row per song.

Layout: a folder holding `chorus/<musicId>.mp3` (the 794 chorus clips), `annotations/`
(`static_annotations.csv`, optional `static_annotations_std.csv`, `dynamic_annotations.csv`)
and `metadata.csv`; the root given (`--set pmemo.root=…`) or found under `--data-root`, up
to two wrapper folders deep (`PMEmo/PMEmo2019/chorus/`). Annotation files lying next to
`chorus/` instead of in `annotations/` are accepted too (some copies flatten the tree).

The manifest parallels `deam`'s: `song_id` (PMEmo's musicId), `audio_path` (relative to the
PMEmo root), `content_hash`, the probed `duration_s`, `sample_rate`, `channels`, the static
values on PMEmo's own 0–1 scale (`static_valence_raw`, `static_arousal_raw`; the `labels`
stage maps scales), the dynamic frames as lists (2 Hz from 15.0 s, NaN where missing), and the
metadata columns. A song is kept when it has one audio file and at least one usable
annotation kind (767 of 794 have static labels; a song with only dynamic frames is kept and
`clips`-like stages that need static VA reject it). A fault in one kind (values outside
[0, 1], repeated rows that disagree) blanks that kind only; `annotation_issues` says what
was not used.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import pandas as pd

from emoprep.pipeline.atomic import atomic_write_json
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.stage import Outcome, Reject, Stage, WorkItem, runtime
from emoprep.stages.common.audio_io import AudioError, leaves_root, probe
from emoprep.pipeline.columns import with_kinds
from emoprep.pipeline.values import finite_float
from emoprep.stages.common.naming import is_utf8_name, printable_name
from emoprep.stages.pmemo.parsers import (HZ, T0_S, DynamicTable, MetadataTable, PmemoFormatError,
                                      StaticTable, decode_text, parse_dynamic, parse_metadata,
                                      parse_static)

AUDIO_DIR = "chorus"
STATIC_FILE = "static_annotations.csv"
STATIC_STD_FILE = "static_annotations_std.csv"
DYNAMIC_FILE = "dynamic_annotations.csv"
METADATA_FILE = "metadata.csv"
SCALE = (0.0, 1.0)  # PMEmo's static and dynamic annotation scale
LAYOUT_HELP = ("expected the PMEmo 2019 layout in SPEC §3.3: chorus/<musicId>.mp3, "
               "annotations/static_annotations.csv and/or annotations/dynamic_annotations.csv, "
               "metadata.csv")

MANIFEST_KINDS = {
    "sample_id": "str", "source_id": "str", "modality": "int", "song_id": "int",
    "audio_path": "str", "content_hash": "str", "duration_s": "float", "n_frames_audio": "int",
    "sample_rate": "int", "channels": "int", "audio_format": "str",
    "static_valence_raw": "float", "static_arousal_raw": "float",
    "static_valence_std": "float", "static_arousal_std": "float",
    "dyn_valence": "floats", "dyn_arousal": "floats", "dyn_t0_s": "float", "dyn_hz": "float",
    "dyn_n_frames": "int", "annotation_issues": "str",
    "file_name": "str", "title": "str", "artist": "str", "album": "str",
    "song_duration_s": "float", "chorus_start_s": "float", "chorus_end_s": "float",
    "metadata_issue": "str", "metadata_text": "str",
}


# ---- where the files are ------------------------------------------------------------------
@dataclass
class PmemoLayout:
    """The parts of a PMEmo copy, as paths relative to `root` (None when absent)."""

    root: Path
    audio: list[str]
    ignored: list[str]
    static: str | None
    static_std: str | None
    dynamic: str | None
    metadata: str | None
    # files in chorus/ whose names are not UTF-8, \xNN-escaped: rejected by name, never read
    undecodable: list[str] = field(default_factory=list)

    @property
    def has_annotations(self) -> bool:
        return self.static is not None or self.dynamic is not None

    def files(self) -> list[str]:
        return sorted({*self.audio, *(f for f in (self.static, self.static_std, self.dynamic,
                                                    self.metadata) if f)})


def _find(root: Path, name: str) -> str | None:
    for rel in (f"annotations/{name}", name):
        if (root / rel).is_file():
            return rel
    return None


def find_layout(root: Path) -> PmemoLayout | None:
    """The PMEmo files directly under `root`, or None without a `chorus/` folder."""
    adir = Path(root) / AUDIO_DIR
    if not adir.is_dir():
        return None
    audio, ignored, undecodable = [], [], []
    for p in sorted(adir.iterdir(), key=lambda p: p.name):
        if not p.is_file() or p.name.startswith((".", "~")):
            continue
        if not is_utf8_name(p.name):
            undecodable.append(f"{AUDIO_DIR}/{printable_name(p.name)}")
            continue
        (audio if p.suffix.lower() == ".mp3" else ignored).append(f"{AUDIO_DIR}/{p.name}")
    return PmemoLayout(Path(root), audio, ignored, _find(root, STATIC_FILE), _find(root, STATIC_STD_FILE),
                       _find(root, DYNAMIC_FILE), METADATA_FILE if (Path(root) / METADATA_FILE).is_file() else None,
                       undecodable)


def _subdirs(folder: Path) -> list[Path]:
    try:
        return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__MACOSX")))
    except OSError:
        return []


def locate_pmemo_root(root_param: str, data_root: Path | None) -> Path:
    """`root_param` if set, else the one folder holding `chorus/` at most two levels below
    `data_root`. Raises ConfigError naming the folder and the expected layout."""
    if root_param:
        root = Path(root_param).expanduser()
        layout = find_layout(root) if root.is_dir() else None
        if layout is None:
            raise ConfigError(f"pmemo.root={root}: no {AUDIO_DIR}/ folder there; {LAYOUT_HELP}")
        if not layout.has_annotations:
            raise ConfigError(f"pmemo.root={root}: no annotations/{STATIC_FILE} or annotations/"
                              f"{DYNAMIC_FILE}; {LAYOUT_HELP}")
        return root
    if data_root is None:
        raise ConfigError(f"PMEmo needs --data-root DIR or --set pmemo.root=DIR; {LAYOUT_HELP}")
    data_root = Path(data_root).expanduser()
    if not data_root.is_dir():
        raise ConfigError(f"--data-root {data_root}: not a folder")
    levels = [[data_root], _subdirs(data_root)]
    levels.append([d for p in levels[1] for d in _subdirs(p)])
    for level in levels:
        found = [d for d in level if find_layout(d) is not None]
        if len(found) > 1:
            raise ConfigError(f"several PMEmo folders under {data_root}: {[str(d) for d in found]}; "
                              "choose one with --set pmemo.root=DIR")
        if found:
            return locate_pmemo_root(str(found[0]), None)
    raise ConfigError(f"no {AUDIO_DIR}/ folder under {data_root}: {LAYOUT_HELP}")


def audio_music_id(ref: str) -> int | None:
    """`chorus/12.mp3` → 12; None when the stem is not a number."""
    stem = PurePosixPath(ref).name.rsplit(".", 1)[0]
    # ASCII digits only: str.isdigit() accepts '²', which int() refuses
    return int(stem) if stem.isascii() and stem.isdigit() else None


# ---- the annotations ------------------------------------------------------------------------
@dataclass
class PmemoAnnotations:
    static: StaticTable
    static_std: StaticTable
    dynamic: DynamicTable
    metadata: MetadataTable
    problems: list[str]

    def ids(self) -> set[int]:
        return set(self.static.values) | set(self.static.conflicts) | set(self.dynamic.valence) \
            | set(self.dynamic.conflicts)


def load_annotations(layout: PmemoLayout) -> PmemoAnnotations:
    """Parse every annotation file the layout has; a missing optional file is an empty table,
    a file with a foreign header is a ConfigError naming it."""
    def read(rel: str | None) -> str | None:
        return None if rel is None else decode_text((layout.root / rel).read_bytes())

    try:
        static = parse_static(read(layout.static), layout.static) if layout.static else StaticTable()
        std = (parse_static(read(layout.static_std), layout.static_std, kind="std")
               if layout.static_std else StaticTable())
        dynamic = parse_dynamic(read(layout.dynamic), layout.dynamic) if layout.dynamic else DynamicTable()
    except PmemoFormatError as exc:
        raise ConfigError(f"{exc}; {LAYOUT_HELP}") from None
    metadata = parse_metadata(read(layout.metadata), layout.metadata) if layout.metadata else MetadataTable()
    problems = [*static.problems, *std.problems, *dynamic.problems, *metadata.problems]
    return PmemoAnnotations(static, std, dynamic, metadata, problems)


def in_scale(x: float) -> bool:
    return math.isfinite(x) and SCALE[0] <= x <= SCALE[1]


def static_payload(ann: PmemoAnnotations, sid: int, issues: list[str]) -> dict[str, float] | None:
    """The song's static values if present, unambiguous and in [0, 1] (else None, with why)."""
    if sid in ann.static.conflicts:
        issues.append(f"{ann.static.conflicts[sid]}: static annotation not used")
        return None
    rec = ann.static.values.get(sid)
    if rec is None:
        return None
    if not (in_scale(rec["valence"]) and in_scale(rec["arousal"])):
        issues.append(f"static valence/arousal {rec['valence']}/{rec['arousal']} missing or outside "
                      f"[0, 1]: not used")
        return None
    std = ann.static_std.values.get(sid, {}) if sid not in ann.static_std.conflicts else {}
    return {"valence": rec["valence"], "arousal": rec["arousal"],
            "valence_std": finite_float(std.get("valence")), "arousal_std": finite_float(std.get("arousal"))}


def dynamic_payload(ann: PmemoAnnotations, sid: int, issues: list[str]) -> tuple[list, list] | None:
    """The song's frames (None for NaN) with out-of-scale values blanked, or None."""
    if sid in ann.dynamic.conflicts:
        issues.append(f"{ann.dynamic.conflicts[sid]}: dynamic annotation not used")
        return None
    if sid not in ann.dynamic.valence:
        return None
    v, a = ann.dynamic.valence[sid].copy(), ann.dynamic.arousal[sid].copy()
    bad = 0
    for x in (v, a):
        out = np.isfinite(x) & ((x < SCALE[0]) | (x > SCALE[1]))
        bad += int(out.sum())
        x[out] = np.nan
    if bad:
        issues.append(f"{bad} dynamic values outside [0, 1] set to NaN")
    if not (np.isfinite(v) & np.isfinite(a)).any():
        issues.append("no dynamic frame has both valence and arousal: dynamic annotation not used")
        return None
    return _none_for_nan(v), _none_for_nan(a)


def _none_for_nan(x: np.ndarray) -> list[float | None]:
    return [float(v) if math.isfinite(v) else None for v in x]


# ---- the stage ------------------------------------------------------------------------------
class Pmemo(Stage):
    name = "pmemo"
    version = "2"  # 2: hostile-input hardening (frameTime cap, ids, names, symlinks)
    libraries = ("soundfile", "numpy")
    datasets = ("pmemo",)
    description = "PMEmo 2019 ingest: chorus clips + static/dynamic VA (0–1) + metadata, audio probed"

    @dataclass(frozen=True)
    class Params:
        root: str = runtime("")

    def locate_root(self, params: Any, data_root: Path | None) -> Path:
        return locate_pmemo_root(params.root, data_root)

    def _layout(self, ctx: Any) -> PmemoLayout:
        root = Path(ctx.roots["pmemo"]) if ctx.roots.get("pmemo") else self.locate_root(ctx.params, None)
        layout = find_layout(root)
        if layout is None or not layout.has_annotations:
            raise ConfigError(f"no PMEmo data under {root}: {LAYOUT_HELP}")
        return layout

    def source_signature(self, ctx: Any) -> Any:
        layout = self._layout(ctx)
        return {"dataset": "pmemo", "files": {
            **{rel: "outside-root" if leaves_root(layout.root, rel) else ctx.hasher.hash(layout.root / rel)
               for rel in layout.files()},
            **{rel: "undecodable-name" for rel in layout.undecodable}}}

    def plan(self, ctx: Any) -> list[WorkItem]:
        layout = self._layout(ctx)
        ann = load_annotations(layout)
        audio: dict[int, list[str]] = {}
        items: list[WorkItem] = []
        for ref in [*layout.audio, *layout.undecodable]:  # a name that is not UTF-8 is no id
            sid = audio_music_id(ref)
            if sid is None:
                items.append(WorkItem(f"pmemo:{PurePosixPath(ref).name}", {"bad_name": ref}))
            else:
                audio.setdefault(sid, []).append(ref)
        for sid in sorted(set(audio) | ann.ids()):
            items.append(WorkItem(f"pmemo:{sid}", self._payload(ctx, layout, ann, sid, audio.get(sid, []))))
        return items

    @staticmethod
    def _payload(ctx: Any, layout: PmemoLayout, ann: PmemoAnnotations, sid: int,
                 refs: list[str]) -> dict[str, Any]:
        issues: list[str] = []
        p: dict[str, Any] = {"song_id": sid, "audio_refs": refs, "issues": issues,
                             "static": static_payload(ann, sid, issues),
                             "annotated_in": [f for f, ok in ((layout.static, sid in ann.static.values),
                                                              (layout.dynamic, sid in ann.dynamic.valence)) if ok],
                             "conflict": sid in ann.static.conflicts or sid in ann.dynamic.conflicts,
                             "metadata": ann.metadata.rows.get(sid)}
        dyn = dynamic_payload(ann, sid, issues)
        if dyn is not None:
            p["dyn_valence"], p["dyn_arousal"] = dyn
        if len(refs) == 1 and not leaves_root(layout.root, refs[0]):
            p["content_hash"] = ctx.hasher.hash(layout.root / refs[0])
        return p

    def process(self, item: WorkItem, ctx: Any) -> Outcome:
        p = item.payload
        if "bad_name" in p:
            return _reject(item.key, "bad-song-id", f"{p['bad_name']}: file name is not <musicId>.mp3")
        refs, sid = p["audio_refs"], p["song_id"]
        if len(refs) > 1:
            return _reject(item.key, "duplicate-audio", f"{len(refs)} audio files for musicId {sid}: {', '.join(refs)}")
        usable = p["static"] is not None or "dyn_valence" in p
        if not refs:
            return _reject(item.key, "missing-audio", f"musicId {sid} is annotated in "
                           f"{', '.join(p['annotated_in']) or 'the annotation CSVs'} but "
                           f"{AUDIO_DIR}/{sid}.mp3 is missing")
        if not usable:
            if p["conflict"]:
                return _reject(item.key, "duplicate-annotation", f"{refs[0]}: {'; '.join(p['issues'])}")
            if not p["annotated_in"]:
                return _reject(item.key, "missing-annotation",
                               f"{refs[0]} has no row in the static or dynamic annotation CSVs")
            return _reject(item.key, "bad-annotation", f"{refs[0]}: no usable annotation ({'; '.join(p['issues'])})")
        try:
            info = probe(Path(ctx.roots["pmemo"]), refs[0])
        except AudioError as exc:
            return _reject(item.key, exc.reason, exc.message)
        return Outcome(rows=[song_row(p, refs[0], info)])

    def finalize(self, ctx: Any, rows: pd.DataFrame, rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        layout = self._layout(ctx)
        ann = load_annotations(layout)
        rows = with_kinds(rows, MANIFEST_KINDS)
        if len(rows):
            rows = rows.sort_values("song_id", kind="stable").reset_index(drop=True)
        report = {"files": {"audio": len(layout.audio), "static": layout.static, "static_std": layout.static_std,
                            "dynamic": layout.dynamic, "metadata": layout.metadata},
                  "ignored_in_chorus": layout.ignored, "problems": ann.problems,
                  "scale": list(SCALE), "dyn_t0_s": T0_S, "dyn_hz": HZ,
                  "with_static": int(rows["static_valence_raw"].notna().sum()) if len(rows) else 0,
                  "kept": int(len(rows)), "rejected": len(rejects)}
        atomic_write_json(Path(ctx.out_dir) / "ingest.json", report)
        ctx.info(f"pmemo: kept {len(rows)} songs ({report['with_static']} with static VA), "
                 f"rejected {len(rejects)}; {len(ann.problems)} annotation lines not used")
        return rows, rejects


def song_row(p: dict[str, Any], ref: str, info: Any) -> dict[str, Any]:
    """The manifest row of a kept song."""
    sid = f"pmemo:{p['song_id']}"
    st = p["static"] or {}
    dv, da = p.get("dyn_valence", []), p.get("dyn_arousal", [])
    both = sum(1 for v, a in zip(dv, da) if v is not None and a is not None)
    meta = p["metadata"] or {}
    return {
        "sample_id": sid, "source_id": sid, "modality": 1, "song_id": int(p["song_id"]),
        "audio_path": ref, "content_hash": p.get("content_hash"),
        "duration_s": info.duration_s, "n_frames_audio": info.frames, "sample_rate": info.sample_rate,
        "channels": info.channels, "audio_format": info.format,
        "static_valence_raw": st.get("valence"), "static_arousal_raw": st.get("arousal"),
        "static_valence_std": st.get("valence_std"), "static_arousal_std": st.get("arousal_std"),
        "dyn_valence": [math.nan if v is None else v for v in dv],
        "dyn_arousal": [math.nan if a is None else a for a in da],
        "dyn_t0_s": T0_S, "dyn_hz": HZ, "dyn_n_frames": both,
        "annotation_issues": "; ".join(p["issues"]) or None,
        **{k: meta.get(k) for k in ("file_name", "title", "artist", "album", "song_duration_s",
                                    "chorus_start_s", "chorus_end_s", "metadata_issue", "metadata_text")},
    }


def _reject(sample_id: str, reason: str, message: str) -> Outcome:
    return Outcome(rejects=[Reject(sample_id, reason, message)])
