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

`layout` finds the files, `parsers` reads the CSVs, `annotations` decides what each song
takes from them; this module is the stage: one work item per music id, audio probed from
its header (never decoded here), a summary in `ingest.json`.
"""
from __future__ import annotations

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
from emoprep.pipeline.lazy import pd
from emoprep.pipeline.stage import Outcome, Reject, Stage, WorkItem, runtime
from emoprep.stages.common.audio_io import AudioError, AudioInfo, leaves_root, probe
from emoprep.stages.pmemo.annotations import SCALE, PmemoAnnotations, dynamic_payload, load_annotations, static_payload
from emoprep.stages.pmemo.layout import (
    AUDIO_DIR,
    LAYOUT_HELP,
    PmemoLayout,
    audio_music_id,
    find_layout,
    locate_pmemo_root,
)
from emoprep.stages.pmemo.parsers import HZ, T0_S

MANIFEST_KINDS: dict[str, ColumnKind] = {
    **ITEM_COLUMNS, "song_id": "int", **AUDIO_FILE_COLUMNS,
    "static_valence_raw": "float", "static_arousal_raw": "float",
    "static_valence_std": "float", "static_arousal_std": "float",
    **DYNAMIC_VA_COLUMNS, "annotation_issues": "str",
    "file_name": "str", "title": "str", "artist": "str", "album": "str",
    "song_duration_s": "float", "chorus_start_s": "float", "chorus_end_s": "float",
    "metadata_issue": "str", "metadata_text": "str",
}



@dataclass(frozen=True)
class PmemoParams:
    root: str = runtime("")


class Pmemo(Stage[PmemoParams]):
    name = "pmemo"
    version = "2"  # 2: hostile-input hardening (frameTime cap, ids, names, symlinks)
    libraries = ("soundfile", "numpy")
    datasets = ("pmemo",)
    description = "PMEmo 2019 ingest: chorus clips + static/dynamic VA (0–1) + metadata, audio probed"
    Params = PmemoParams
    manifest_columns = MANIFEST_KINDS

    def locate_root(self, params: PmemoParams, data_root: Path | None, hasher: FileHasher | None = None) -> Path:
        return locate_pmemo_root(params.root, data_root)

    def _layout(self, ctx: StageContext[PmemoParams]) -> PmemoLayout:
        root = Path(ctx.roots["pmemo"]) if ctx.roots.get("pmemo") else self.locate_root(ctx.params, None)
        layout = find_layout(root)
        if layout is None or not layout.has_annotations:
            raise ConfigError(f"no PMEmo data under {root}: {LAYOUT_HELP}")
        return layout

    def source_signature(self, ctx: StageContext[PmemoParams]) -> dict[str, Any]:
        layout = self._layout(ctx)
        return {"dataset": "pmemo", "files": {
            **{rel: "outside-root" if leaves_root(layout.root, rel) else ctx.hasher.hash(layout.root / rel)
               for rel in layout.files()},
            **dict.fromkeys(layout.undecodable, "undecodable-name")}}

    def plan(self, ctx: StageContext[PmemoParams]) -> list[WorkItem]:
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
        items.extend(WorkItem(f"pmemo:{sid}", self._payload(ctx, layout, ann, sid, audio.get(sid, [])))
                     for sid in sorted(set(audio) | ann.ids()))
        return items

    @staticmethod
    def _payload(ctx: StageContext[PmemoParams], layout: PmemoLayout, ann: PmemoAnnotations, sid: int,
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

    def process(self, item: WorkItem, ctx: ItemContext[PmemoParams]) -> Outcome:
        p = item.payload
        if "bad_name" in p:
            return Outcome.rejected(item.key, BAD_SONG_ID, f"{p['bad_name']}: file name is not <musicId>.mp3")
        refs, sid = p["audio_refs"], p["song_id"]
        if len(refs) > 1:
            return Outcome.rejected(item.key, DUPLICATE_AUDIO,
                                    f"{len(refs)} audio files for musicId {sid}: {', '.join(refs)}")
        usable = p["static"] is not None or "dyn_valence" in p
        if not refs:
            return Outcome.rejected(item.key, MISSING_AUDIO, f"musicId {sid} is annotated in "
                                    f"{', '.join(p['annotated_in']) or 'the annotation CSVs'} but "
                                    f"{AUDIO_DIR}/{sid}.mp3 is missing")
        if not usable:
            if p["conflict"]:
                return Outcome.rejected(item.key, DUPLICATE_ANNOTATION, f"{refs[0]}: {'; '.join(p['issues'])}")
            if not p["annotated_in"]:
                return Outcome.rejected(item.key, MISSING_ANNOTATION,
                                        f"{refs[0]} has no row in the static or dynamic annotation CSVs")
            return Outcome.rejected(item.key, BAD_ANNOTATION,
                                    f"{refs[0]}: no usable annotation ({'; '.join(p['issues'])})")
        try:
            info = probe(Path(ctx.roots["pmemo"]), refs[0])
        except AudioError as exc:
            return Outcome.rejected(item.key, exc.reason, exc.message)
        return Outcome(rows=[song_row(p, refs[0], info)])

    def finalize(self, ctx: StageContext[PmemoParams], rows: pd.DataFrame,
                 rejects: list[Reject]) -> tuple[pd.DataFrame, list[Reject]]:
        layout = self._layout(ctx)
        ann = load_annotations(layout)
        # the runner casts the rows to MANIFEST_KINDS (columns()) after this
        if len(rows):
            rows = rows.sort_values("song_id", kind="stable").reset_index(drop=True)
        report = {"files": {"audio": len(layout.audio), "static": layout.static, "static_std": layout.static_std,
                            "dynamic": layout.dynamic, "metadata": layout.metadata},
                  "ignored_in_chorus": layout.ignored, "problems": ann.problems,
                  "scale": list(SCALE), "dyn_t0_s": T0_S, "dyn_hz": HZ,
                  "with_static": int(rows["static_valence_raw"].notna().sum()) if len(rows) else 0,
                  "kept": len(rows), "rejected": len(rejects)}
        atomic_write_json(Path(ctx.out_dir) / "ingest.json", report)
        ctx.info(f"pmemo: kept {len(rows)} songs ({report['with_static']} with static VA), "
                 f"rejected {len(rejects)}; {len(ann.problems)} annotation lines not used")
        return rows, rejects


def song_row(p: dict[str, Any], ref: str, info: AudioInfo) -> dict[str, Any]:
    """The manifest row of a kept song."""
    sid = f"pmemo:{p['song_id']}"
    st = p["static"] or {}
    dv, da = p.get("dyn_valence", []), p.get("dyn_arousal", [])
    both = sum(1 for v, a in zip(dv, da, strict=True) if v is not None and a is not None)
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
