"""`deam` ingest: index a DEAM download (SPEC §3.1) into one manifest row per song, and audit
its annotations.

The work is split by job: `layout` finds the files (plain folders, wrapper folders or
the official zips, read in place), `parsers` reads the quirky CSVs, `annotations` combines
them per song, `audit` checks static against dynamic annotations and decides the static
fix. This module is the stage: one work item per song id, audio probed from its
header (never decoded here), the audit in `finalize`.

A song is kept when it has one audio file and at least one usable annotation kind; a fault
in one kind (repeated rows that disagree, values out of range) only blanks that kind, so the
song still serves the stage that needs the other (`clips` rejects it `missing-static`,
`chunks` `missing-dynamic`). What was not used is noted in `annotation_issues`.
"""
from __future__ import annotations

import hashlib
import itertools
import math
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from emoprep.manifests.columns import AUDIO_FILE_COLUMNS, DYNAMIC_VA_COLUMNS, ITEM_COLUMNS
from emoprep.manifests.reasons import (
    BAD_ANNOTATION,
    BAD_SONG_ID,
    DUPLICATE_ANNOTATION,
    DUPLICATE_AUDIO,
    MISSING_ANNOTATION,
    MISSING_AUDIO,
)
from emoprep.pipeline.atomic import atomic_write_json
from emoprep.pipeline.columns import ColumnKind
from emoprep.pipeline.context import ItemContext, StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.filehash import FileHasher
from emoprep.pipeline.lazy import np, npt, pd
from emoprep.pipeline.stage import Outcome, PlannedItems, Reject, Stage, WorkItem, runtime
from emoprep.pipeline.values import finite_float
from emoprep.stages.common.audio_io import AudioError, AudioInfo, leaves_root, probe, read_ref_bytes, split_ref
from emoprep.stages.deam.annotations import Annotations, clean_dynamic, load_annotations, song_frames, static_ok
from emoprep.stages.deam.audit import (
    STATIC_FIXES,
    StaticFix,
    apply_static_fix,
    audit_blocks,
    audit_inputs,
    audit_report,
    audit_warnings,
    fix_plan,
)
from emoprep.stages.deam.layout import (
    AUDIO_DIR,
    DYNAMIC_FILES,
    LAYOUT_HELP,
    OFFICIAL_ZIPS,
    STATIC_FILES,
    DeamLayout,
    audio_song_id,
    check_zip,
    find_layout,
    locate_deam_root,
)

# The manifest's columns and their kinds (one Parquet type each, whatever the data).
MANIFEST_KINDS: dict[str, ColumnKind] = {
    **ITEM_COLUMNS, "song_id": "int", **AUDIO_FILE_COLUMNS,
    "static_valence_file": "float", "static_arousal_file": "float",
    "static_valence_std_file": "float", "static_arousal_std_file": "float", "static_source": "str",
    **DYNAMIC_VA_COLUMNS, "annotation_issues": "str",
    "metadata_year": "str", "artist": "str", "title": "str", "genre": "str",
    "static_valence_raw": "float", "static_arousal_raw": "float",
    "static_valence_std": "float", "static_arousal_std": "float", "static_fixed": "bool",
}


@dataclass(frozen=True)
class DeamParams:
    root: str = runtime("")
    static_fix: StaticFix = "auto"
    audit_margin: float = 0.5      # |weighted vote| a block needs for a crossed/straight verdict
    audit_min_songs: int = 2       # fewer songs with |sV − sA| ≥ 0.5: verdict "insufficient"
    audit_min_run: int = 20        # shortest crossed run reported as a diagnostic


class Deam(Stage[DeamParams]):
    name = "deam"
    version = "4"  # 4: the static fix acts on whole release blocks only, by a weighted vote
    # 3: hostile-input hardening (non-UTF-8 names, inf values, symlinks, rates)
    libraries = ("soundfile", "pandas", "numpy")
    datasets = ("deam",)
    description = "DEAM ingest: index audio + annotations, probe audio, audit static vs dynamic"
    Params = DeamParams
    manifest_columns = MANIFEST_KINDS

    # -- where the data is
    def locate_root(self, params: DeamParams, data_root: Path | None, hasher: FileHasher | None = None) -> Path:
        return locate_deam_root(params.root, data_root)

    def _root(self, ctx: StageContext[DeamParams]) -> Path:
        root = ctx.roots.get("deam")
        return Path(root) if root is not None else self.locate_root(ctx.params, None)

    def _layout(self, ctx: StageContext[DeamParams]) -> DeamLayout:
        root = self._root(ctx)
        layout = find_layout(root)
        if layout is None:
            raise ConfigError(f"no MEMD_audio/ under {root}: {LAYOUT_HELP}")
        if not layout.has_annotations:
            raise ConfigError(f"no DEAM annotations under {root}: expected {STATIC_FILES[0]} "
                              f"or {DYNAMIC_FILES['valence']}; {LAYOUT_HELP}")
        return layout

    def source_signature(self, ctx: StageContext[DeamParams]) -> dict[str, Any]:
        layout = self._layout(ctx)
        files = {rel: "outside-root" if leaves_root(layout.root, rel) else ctx.hasher.hash(layout.root / rel)
                 for rel in layout.plain_files()}
        files.update({rel: ctx.hasher.hash(layout.root / rel) for rel in layout.zips})
        files.update(dict.fromkeys(layout.undecodable, "undecodable-name"))
        return {"dataset": "deam", "files": dict(sorted(files.items()))}

    # -- per song
    def plan(self, ctx: StageContext[DeamParams]) -> PlannedItems:
        if ctx.params.static_fix not in STATIC_FIXES:
            raise ConfigError(f"deam.static_fix must be 'auto', 'swap-le-1000' or 'none', "
                              f"not {ctx.params.static_fix!r}")
        layout = self._layout(ctx)
        ann = load_annotations(layout)
        audio: dict[int, list[str]] = {}
        bad_names: list[WorkItem] = []
        for ref in [*layout.audio, *layout.undecodable]:  # a name that is not UTF-8 is no id
            sid, fname = audio_song_id(ref)
            if sid is None:
                bad_names.append(WorkItem(key=f"deam:{fname}", payload={"bad_name": ref}))
            else:
                audio.setdefault(sid, []).append(ref)
        songs = sorted(set(audio) | ann.ids())
        # payloads (with their frame lists) are built as the runner takes them
        return PlannedItems(len(bad_names) + len(songs), itertools.chain(bad_names, (
            WorkItem(key=f"deam:{sid}", payload=self._song_payload(
                ctx, layout, ann, sid, audio.get(sid, []), ann.mentions.get(sid, [])))
            for sid in songs)))

    def _song_payload(self, ctx: StageContext[DeamParams], layout: DeamLayout, ann: Annotations, sid: int,
                      refs: list[str], mentions: list[str]) -> dict[str, Any]:
        p: dict[str, Any] = {"song_id": sid, "audio_refs": refs, "mentions": sorted(set(mentions)),
                             "static_conflict": ann.static_conflicts.get(sid),
                             "dynamic_conflict": ann.dynamic_conflicts.get(sid), "issues": [],
                             "duplicates_merged": int(ann.identical_duplicates.get(sid, 0))}
        if len(refs) == 1 and split_ref(refs[0])[1] is None and not leaves_root(layout.root, refs[0]):
            p["content_hash"] = ctx.hasher.hash(layout.root / refs[0])
        if sid in ann.static.index and sid not in ann.static_conflicts:
            row = ann.static.loc[sid]
            p["static"] = {k: finite_float(row[k]) if k in row else None
                           for k in ("valence_mean", "valence_std", "arousal_mean", "arousal_std")}
            p["static_source"] = str(row["static_source"])
        if ann.has_dynamic(sid) and sid not in ann.dynamic_conflicts:
            v, a = song_frames(ann, sid)
            v, nv = clean_dynamic(v)
            a, na = clean_dynamic(a)
            if nv + na:
                p["issues"].append(f"{nv + na} dynamic frames outside [-1, 1] set to NaN")
            p["dyn_valence"], p["dyn_arousal"] = [finite_float(x) for x in v], [finite_float(x) for x in a]
            p["dyn_t0_s"], p["dyn_hz"] = ann.t0_ms / 1000.0, 1000.0 / ann.step_ms
        if not ann.metadata.empty and sid in ann.metadata.index:
            m = ann.metadata.loc[sid]
            p["metadata"] = {k: (None if pd.isna(m[k]) else str(m[k]))
                             for k in ("metadata_year", "artist", "title", "genre")}
        return p

    def process(self, item: WorkItem, ctx: ItemContext[DeamParams]) -> Outcome:
        p = item.payload
        sid = item.key
        if "bad_name" in p:
            return Outcome.rejected(sid, BAD_SONG_ID, f"{p['bad_name']}: file name is not <song_id>.mp3")
        refs = p["audio_refs"]
        if len(refs) > 1:
            return Outcome.rejected(sid, DUPLICATE_AUDIO, f"{len(refs)} audio files for one song: {', '.join(refs)}")
        song = SongAnnotation.of(p)
        conflicts = [c for c in (p.get("static_conflict"), p.get("dynamic_conflict")) if c]
        if not song.usable and conflicts:
            return Outcome.rejected(sid, DUPLICATE_ANNOTATION, f"song {p['song_id']}: {'; '.join(conflicts)}; "
                                    "no other usable annotation")
        if not refs:
            return Outcome.rejected(sid, MISSING_AUDIO, f"song {p['song_id']} is annotated in "
                                    f"{', '.join(p['mentions'])} but {AUDIO_DIR}/{p['song_id']}.mp3 is missing")
        ref = refs[0]
        if not song.usable:
            if "static" not in p and "dyn_valence" not in p:
                return Outcome.rejected(sid, MISSING_ANNOTATION,
                                        f"{ref} has no row in the static or dynamic annotation CSVs")
            return Outcome.rejected(sid, BAD_ANNOTATION, f"song {p['song_id']}: no usable annotation ("
                                    + "; ".join(song.issues or ["dynamic frames are all missing"]) + ")")
        root = Path(ctx.roots["deam"])
        try:
            info = probe(root, ref)
            digest = p.get("content_hash") or hashlib.sha256(read_ref_bytes(root, ref)).hexdigest()
        except AudioError as exc:
            return Outcome.rejected(sid, exc.reason, exc.message)
        issues = list(song.issues)
        t0_s, hz = float(p.get("dyn_t0_s", 15.0)), float(p.get("dyn_hz", 2.0))
        last_frame_s = _last_frame_s(song.valence, song.arousal, t0_s, hz)
        if last_frame_s is not None and last_frame_s > info.duration_s + 0.5:
            # e.g. a VBR MP3 without a Xing header, whose length libsndfile underestimates
            issues.append(f"dynamic annotations run to {last_frame_s:.1f} s but the audio "
                          f"({ref}) is {info.duration_s:.2f} s long")
        row = _song_row(p, song, ref, digest, info, t0_s, hz, issues)
        counters = {"duplicate-rows-merged": p["duplicates_merged"]} if p["duplicates_merged"] else {}
        return Outcome(rows=[row], counters=counters)

    # -- dataset level
    def finalize(self, ctx: StageContext[DeamParams], rows: pd.DataFrame,
                 rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        params = ctx.params
        layout = self._layout(ctx)
        ann = load_annotations(layout)
        audit = audit_blocks(*audit_inputs(ann), margin=params.audit_margin,
                             min_songs=params.audit_min_songs, min_run=params.audit_min_run)
        ids = rows["song_id"].astype(int).tolist() if len(rows) else []
        plan = fix_plan(audit, params.static_fix, ann.ids() | set(ids))
        fix = {i for entry in plan for i in entry["ids"]}
        kept_fix = set(ids) & fix
        rows = apply_static_fix(rows, fix)  # the runner then casts to MANIFEST_KINDS (columns())
        if len(rows):
            rows = rows.sort_values("sample_id", kind="stable").reset_index(drop=True)
        zip_checks = [check_zip(layout.root / z, ctx.hasher.hash(layout.root / z))
                      for z in layout.zips if PurePosixPath(z).name in OFFICIAL_ZIPS]
        warnings = ([z["warning"] for z in zip_checks if "warning" in z] + layout.problems
                    + audit_warnings(audit, fix, ann.ids() | set(ids)))
        if layout.ignored:
            warnings.append(f"{len(layout.ignored)} files in {AUDIO_DIR}/ are not .mp3 and were ignored: "
                            + ", ".join(layout.ignored[:10]))
        files = {"static": layout.static, "dynamic": layout.dynamic, "metadata": layout.metadata,
                 "zips": layout.zips, "n_audio": len(layout.audio)}
        report = audit_report(audit, params.static_fix, plan, ids, zip_checks=zip_checks,
                              warnings=warnings, problems=ann.problems, files=files)
        atomic_write_json(Path(ctx.out_dir) / "audit.json", report)
        crossed = [b["block"] for b in report["blocks"] if b["verdict"] == "crossed"]
        ctx.info(f"deam audit: crossed blocks {crossed or 'none'}; static_fix={params.static_fix} "
                 f"swapped static valence/arousal of {len(kept_fix)} songs", audit=report["blocks"])
        for w in warnings:
            ctx.info(f"deam warning: {w}")
        return rows, rejects


@dataclass(frozen=True)
class SongAnnotation:
    """What a song's annotations offer: static values (None unless unambiguous and in
    [1, 9]), dynamic frames (empty when ambiguous; NaN where missing), and notes on what was
    not used."""

    static: dict[str, float | None] | None
    valence: npt.NDArray[np.float64]
    arousal: npt.NDArray[np.float64]
    issues: tuple[str, ...]

    @classmethod
    def of(cls, p: dict[str, Any]) -> SongAnnotation:
        issues = list(p["issues"])
        static = p.get("static")
        if static is not None and not static_ok(_num(static["valence_mean"]), _num(static["arousal_mean"])):
            issues.append(f"static valence/arousal {static['valence_mean']}/{static['arousal_mean']} "
                          f"({p['static_source']}) missing or outside [1, 9]: not used")
            static = None
        issues.extend(f"{p[f'{kind}_conflict']}: {kind} annotation not used"
                      for kind in ("static", "dynamic") if p.get(f"{kind}_conflict"))
        return cls(static, _floats(p.get("dyn_valence", [])), _floats(p.get("dyn_arousal", [])),
                   tuple(issues))

    @property
    def both_frames(self) -> np.ndarray:
        """Mask of the frames where valence AND arousal are annotated."""
        return np.isfinite(self.valence) & np.isfinite(self.arousal)

    @property
    def usable(self) -> bool:
        return self.static is not None or bool(self.both_frames.any())


def _song_row(p: dict[str, Any], song: SongAnnotation, ref: str, digest: str, info: AudioInfo,
              t0_s: float, hz: float, issues: list[str]) -> dict[str, Any]:
    """The manifest row of a kept song (static values as in the file; finalize fixes them)."""
    sid = f"deam:{p['song_id']}"
    sv = song.static or {}
    meta = p.get("metadata") or {}
    row = {
        "sample_id": sid, "source_id": sid, "modality": 1,
        "song_id": int(p["song_id"]), "audio_path": ref, "content_hash": digest,
        "duration_s": info.duration_s, "n_frames_audio": info.frames,
        "sample_rate": info.sample_rate, "channels": info.channels, "audio_format": info.format,
        "static_valence_file": _num(sv.get("valence_mean")), "static_arousal_file": _num(sv.get("arousal_mean")),
        "static_valence_std_file": _num(sv.get("valence_std")), "static_arousal_std_file": _num(sv.get("arousal_std")),
        "static_source": p.get("static_source") if song.static is not None else None,
        "dyn_valence": [float(x) for x in song.valence], "dyn_arousal": [float(x) for x in song.arousal],
        "dyn_t0_s": t0_s, "dyn_hz": hz, "dyn_n_frames": int(song.both_frames.sum()),
        "annotation_issues": "; ".join(issues) or None,
        "metadata_year": meta.get("metadata_year"), "artist": meta.get("artist"),
        "title": meta.get("title"), "genre": meta.get("genre"),
    }
    # finalize() decides the static fix; until then the file's values stand
    row.update({"static_valence_raw": row["static_valence_file"], "static_arousal_raw": row["static_arousal_file"],
                "static_valence_std": row["static_valence_std_file"],
                "static_arousal_std": row["static_arousal_std_file"], "static_fixed": False})
    return row


def _floats(values: list[float | None]) -> npt.NDArray[np.float64]:
    return np.array([np.nan if x is None else x for x in values], dtype=float)


def _last_frame_s(dv: np.ndarray, da: np.ndarray, t0_s: float, hz: float) -> float | None:
    """Time of the last annotated dynamic frame, or None without annotations."""
    finite = np.isfinite(dv) | np.isfinite(da) if len(dv) == len(da) else np.isfinite(dv)
    idx = np.nonzero(finite)[0]
    return float(t0_s + idx[-1] / hz) if len(idx) else None


def _num(x: float | None) -> float:
    return float(x) if x is not None else math.nan
