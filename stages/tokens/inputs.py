"""The inputs of the `tokens` stage: the source stages' files joined with their label/split
rows. Every split-manifest id ends as one token row or one `tokens` reject: inputs without a
label, with a disagreeing modality, produced twice or named by a path that leaves the output
root are rejected here, and labelled ids that no source stage produced (`without_image`).
A `clips` view (no file; the row names its song) becomes a sample with a `view`, read from the
dataset root by the tokenizer's loader (`encodec.load_view_clip`).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from emoprep.manifests.reasons import (
    BAD_PATH,
    DUPLICATE_ID,
    MODALITY_MISMATCH,
    NO_IMAGE,
    UNLABELLED,
)
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import pd
from emoprep.pipeline.paths import output_file
from emoprep.pipeline.reasons import ReasonCode
from emoprep.pipeline.stage import Reject
from emoprep.pipeline.values import cell, natural_key
from emoprep.stages.common.audio_source import VIEW_COLUMNS, is_view, view_dataset
from emoprep.stages.tokens.params import TokensParams

LABEL_COLUMNS = ("source_id", "modality", "start_s", "end_s", "valence", "arousal",
                 "valence_raw", "arousal_raw", "emotion", "split")


def source_rows(ctx: StageContext[TokensParams], sources: Sequence[str]) -> pd.DataFrame:
    frames = []
    for src in sources:
        df = ctx.input_manifest(src)
        missing = {"sample_id", "path"} - set(df.columns)
        if missing:
            raise ConfigError(f"tokens: input stage {src!r} has no {sorted(missing)} column; "
                              "it must produce files to tokenize (a path to a PNG or an audio clip)")
        extra = ("modality", "sample_rate", *VIEW_COLUMNS, "content_hash")
        cols = ["sample_id", "path"] + [c for c in sorted(set(extra)) if c in df.columns]
        frames.append(df[cols].assign(stage=src))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["sample_id", "path", "stage"])


def match_labels(inputs: pd.DataFrame, labels: pd.DataFrame) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Join input rows with their label/split rows; sorted by sample_id.

    Rejects: `duplicate-id` (an id produced by two sources or twice), `unlabelled` (no split
    row), `modality-mismatch` (the source says image, the label says audio), `bad-path`
    (a path that leaves the output root)."""
    samples, rejects = [], []
    inputs = inputs.iloc[sorted(range(len(inputs)), key=lambda i: natural_key(str(inputs["sample_id"].iat[i])))]
    cols = [c for c in LABEL_COLUMNS if c in labels.columns]
    records = labels[cols].to_dict("index")
    seen: dict[str, str] = {}
    for row in inputs.to_dict("records"):
        view = view_of(row)
        sid, stage = str(row["sample_id"]), str(row["stage"])
        path = view_name(view) if view is not None else str(row["path"])
        if sid in seen:
            rejects.append(Reject(sid, DUPLICATE_ID,
                                  f"{path} (stage {stage}): id already produced by stage {seen[sid]}"))
            continue
        seen[sid] = stage
        lab = records.get(sid)
        src_mod = cell(row.get("modality"))
        if not _safe_rel(path if view is None else str(view["audio_path"])):
            rejects.append(Reject(sid, BAD_PATH, f"{path} (stage {stage}): not a path inside the output root"))
        elif lab is None:
            rejects.append(Reject(sid, UNLABELLED,
                                  f"{path} (stage {stage}): no row in the split manifest, so no label"))
        elif src_mod is not None and int(src_mod) != int(lab["modality"]):
            rejects.append(Reject(sid, MODALITY_MISMATCH, f"{path} (stage {stage}): modality {int(src_mod)} "
                                  f"but the label row says {int(lab['modality'])}"))
        else:
            rate = cell(row.get("sample_rate"))
            samples.append({"sample_id": sid, "input_path": path, "stage": stage,
                            **({"sample_rate": int(rate)} if rate is not None else {}),
                            **({"view": view} if view is not None else {}),
                            **{c: cell(lab.get(c)) for c in LABEL_COLUMNS}})
    return samples, rejects


def payload_sample(sample: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in sample.items() if k != "stage"}


def without_image(labelled: Iterable[Any], inputs: pd.DataFrame, sources: Sequence[str],
                  reason: ReasonCode = NO_IMAGE) -> list[Reject]:
    """`no-image` (`no-input`) rejects for split-manifest ids that no source stage produced,
    so every labelled id ends as a token row or a tokens reject."""
    have = set(inputs["sample_id"].astype(str))
    where = ", ".join(sources)
    what = "image" if reason == NO_IMAGE else "input"
    return [Reject(sid, reason, f"{sid}: in the split manifest but no {what} in stage(s) {where} "
                                "(rejected or dropped there; see that stage's rejects)")
            for sid in sorted({str(s) for s in labelled} - have, key=natural_key)]


def inside_output_root(samples: list[dict[str, Any]], out_root: Path) -> tuple[list[dict[str, Any]], list[Reject]]:
    """Drop samples whose file leads out of the output root through a symlink (`..` and
    absolute paths are already `bad-path` in match_labels): rejected, never read."""
    kept, rejects = [], []
    for s in samples:
        if "view" in s:  # read from the dataset root, by decode_mono's own root check
            kept.append(s)
            continue
        try:
            output_file(out_root, s["input_path"])
        except ValueError as exc:
            rejects.append(Reject(s["sample_id"], BAD_PATH, f"{exc} (stage {s['stage']})"))
        else:
            kept.append(s)
    return kept, rejects


def view_of(row: Mapping[Any, Any]) -> dict[str, Any] | None:
    """The view columns of an input row that names no file (a `clips` or `chunks` view), as
    plain values; None for a file row."""
    if not is_view(row):
        return None
    return {c: cell(row.get(c)) for c in (*sorted(VIEW_COLUMNS), "content_hash")}


def view_name(view: dict[str, Any]) -> str:
    """How messages and the token index name a view's input: `<dataset>:<path under its root>`."""
    return f"{view_dataset(view)}:{view['audio_path']}"


def _safe_rel(path: str) -> bool:
    pp = PurePosixPath(path)
    return bool(path) and not pp.is_absolute() and ".." not in pp.parts
