"""`emoprep validate` on the manifests: every current stage's manifest (readable, counts,
unique ids, output files), labels and modality flags, split disjointness, coverage of the
split manifest by the token index, and the weights' provenance. Check names and meanings:
`emoprep.manifests.validate`.
"""
from __future__ import annotations

from collections.abc import Set as AbstractSet
from pathlib import Path

import numpy as np
import pandas as pd

from emoprep.manifests.token_store.layout import RANDOM_INIT_BY_DESIGN
from emoprep.manifests.validate_report import FAIL, PASS, SKIP, WARN, Check, ValidationReport

SOURCE_MODALITY = {"deam": 1, "pmemo": 1, "foodpics": 0}
RANDOM_INIT = "random-init"


def check_stage_manifests(report: ValidationReport, out_root: Path, current: dict[str, dict[str, str]]) -> None:
    """Every current stage: its manifest is readable, ids are unique, `_DONE.json` counts
    match the manifest and its rejects, and every output file a row names exists."""
    import json

    if not current:
        report.checks.append(Check("stage-manifests", FAIL, f"no finished stage in {out_root}/manifests/_current.json"))
        return
    rejects = read_manifest(out_root, "rejects")
    bad_counts, dup_ids, missing_files, unreadable = [], [], [], []
    for stage, entry in sorted(current.items()):
        folder = out_root / entry["dir"]
        try:
            df = pd.read_parquet(folder / "manifest.parquet")
            done = json.loads((folder / "_DONE.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            unreadable.append(f"{stage}: {type(exc).__name__}: {exc}")
            continue
        counts = done.get("counts", {})
        n_rej = int((rejects["stage"] == stage).sum()) if rejects is not None and "stage" in rejects else 0
        if counts.get("rows") != len(df) or counts.get("rejects") != n_rej:
            bad_counts.append(f"{stage}: _DONE.json says {counts.get('rows')} rows / {counts.get('rejects')} "
                              f"rejects, found {len(df)} / {n_rej}")
        if "sample_id" in df:
            dup_ids += [f"{sid} ({stage})" for sid in df.loc[df["sample_id"].duplicated(), "sample_id"]]
        for col in [c for c in df.columns if c == "path" or c.endswith("_path")]:
            if col in ("audio_path", "image_path"):  # raw data, relative to the dataset root
                continue
            for sid, rel in zip(df.get("sample_id", df.index), df[col], strict=True):
                if isinstance(rel, str) and rel and not (out_root / rel).is_file():
                    missing_files.append(f"{sid} ({stage}.{col}: {rel})")
    report.add("stage-manifests", unreadable, f"{len(current)} stage manifests readable",
               "{n} stage outputs unreadable")
    report.add("stage-counts", bad_counts, "_DONE.json counts match manifests and rejects",
               "{n} stages whose counts disagree with their manifest or rejects")
    report.add("stage-unique-ids", dup_ids, "sample ids unique within each stage", "{n} duplicate ids")
    report.add("output-files", missing_files, "every output file a manifest names exists",
               "{n} manifest rows name a missing file")


def check_report_json(report: ValidationReport, out_root: Path) -> None:
    """`report/report.json`, when the recipe wrote one, follows its schema (the report's
    pydantic models, which also write report.schema.json)."""
    import json

    from emoprep.manifests.report_json import check_report

    path = out_root / "report" / "report.json"
    if not path.is_file():
        return
    try:
        check_report(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError) as exc:  # pydantic's ValidationError is a ValueError
        report.checks.append(Check("report-json", FAIL, f"report/report.json does not follow its schema: {exc}"))
        return
    report.checks.append(Check("report-json", PASS, "report/report.json follows report/report.schema.json"))


def read_manifest(out_root: Path, name: str) -> pd.DataFrame | None:
    path = out_root / "manifests" / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


# ---- labels, modality, splits ------------------------------------------------------------

def _label_frames(index: pd.DataFrame, split: pd.DataFrame | None,
                  index_name: str = "tokens") -> list[tuple[str, pd.DataFrame]]:
    frames = [(index_name, index)]
    if split is not None:
        frames.append(("split", split))
    return frames


def split_group_by(out_root: Path) -> str:
    """The split stage's `group_by` ("source" unless its _DONE.json says "sample")."""
    import json

    try:
        current = json.loads((Path(out_root) / "manifests" / "_current.json").read_text(encoding="utf-8"))
        done = json.loads((Path(out_root) / current["split"]["dir"] / "_DONE.json").read_text(encoding="utf-8"))
        return str(done["components"]["params"].get("group_by", "source"))
    except (OSError, ValueError, KeyError, TypeError):
        return "source"


def check_labels(report: ValidationReport, index: pd.DataFrame, split: pd.DataFrame | None,
                 index_name: str = "tokens", group_by: str = "source") -> None:
    """VA ranges, modality flags and split disjointness. A split made with group_by =
    "sample" (the thesis's, on purpose) turns sources in two splits into a warning."""
    bad_va, bad_mod, bad_split = [], [], []
    for where, df in _label_frames(index, split, index_name):
        for col in ("valence", "arousal"):
            v = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
            bad = ~(np.isfinite(v) & (v >= -1.0) & (v <= 1.0))
            bad_va += [f"{sid} ({col} {x:g} in {where})"
                       for sid, x in zip(df.loc[bad, "sample_id"], v[bad], strict=True)]
        bad_mod += _modality_offenders(df, where)
        by_src = df.groupby("source_id")["split"].agg(lambda s: sorted(set(map(str, s))))
        bad_split += [f"{src} ({' + '.join(sp)} in {where})" for src, sp in by_src.items() if len(sp) > 1]
    if split is not None:
        merged = index[["sample_id", "modality"]].merge(split[["sample_id", "modality"]], on="sample_id",
                                                        suffixes=("", "_split"))
        diff = merged[merged["modality"] != merged["modality_split"]]
        bad_mod += [f"{sid} (tokens say {a}, split manifest says {b})"
                    for sid, a, b in zip(diff["sample_id"], diff["modality"], diff["modality_split"], strict=True)]
    report.add("va-range", bad_va, "valence and arousal in [-1, 1]", "{n} values outside [-1, 1] or not finite")
    report.add("modality-flags", bad_mod, "modality flags match their sources", "{n} inconsistent modality flags")
    if group_by == "sample":
        report.add("split-disjoint", bad_split, "no source in two splits",
                   "{n} sources in more than one split (split.group_by = sample: a sample-level split, "
                   "as the thesis's; train and test share songs)", status_fail=WARN)
    else:
        report.add("split-disjoint", bad_split, "no source in two splits", "{n} sources in more than one split")


def _modality_offenders(df: pd.DataFrame, where: str) -> list[str]:
    """Known prefixes must carry their modality; any other prefix must be consistent."""
    prefix = df["sample_id"].astype(str).str.split(":", n=1).str[0]
    mod = pd.to_numeric(df["modality"], errors="coerce")
    out = []
    for sid, pre, m in zip(df["sample_id"], prefix, mod, strict=True):
        want = SOURCE_MODALITY.get(pre)
        if m not in (0, 1) or (want is not None and m != want):
            out.append(f"{sid} (modality {m} in {where}, expected {want if want is not None else '0 or 1'})")
    unknown = pd.DataFrame({"pre": prefix, "m": mod})[~prefix.isin(list(SOURCE_MODALITY))]
    for group, grp in unknown.groupby("pre"):
        if grp["m"].nunique() > 1:
            out.append(f"{group}: (mixed modality flags {sorted(grp['m'].unique().tolist())} in {where})")
    return out


def stages_after_split(out_root: Path) -> set[str]:
    """`tokens` plus every current stage that reads `split` directly or through other
    stages (from `manifests/_current.json` and each stage's `_DONE.json` inputs)."""
    import json

    after = {"tokens"}
    try:
        current = json.loads((Path(out_root) / "manifests" / "_current.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return after
    inputs: dict[str, set[str]] = {}
    for stage, entry in current.items():
        try:
            done = json.loads((Path(out_root) / entry["dir"] / "_DONE.json").read_text(encoding="utf-8"))
            inputs[stage] = set(done.get("inputs", {}))
        except (OSError, ValueError, KeyError, TypeError):
            inputs[stage] = set()
    reached = {"split"}
    while True:
        more = {s for s, ins in inputs.items() if ins & reached} - reached
        if not more:
            break
        reached |= more
    return after | (reached - {"split"})


def check_coverage(report: ValidationReport, index: pd.DataFrame, split: pd.DataFrame | None,
                   rejects: pd.DataFrame | None, excusing: AbstractSet[str] = frozenset({"tokens"})) -> None:
    if split is None:
        report.checks.append(Check("manifest-coverage", SKIP, "no manifests/split.parquet to compare with"))
        return
    dup = split.loc[split["sample_id"].duplicated(keep=False), "sample_id"].astype(str).tolist()
    report.add("unique-ids", [f"{d} (split manifest)" for d in dup], "split manifest ids unique",
               "{n} ids twice in the split manifest")
    tokenized = set(index["sample_id"].astype(str))
    labelled = set(split["sample_id"].astype(str))
    rejected: set[str] = set()
    if rejects is not None and len(rejects):
        by = (rejects["stage"].astype(str).isin(sorted(excusing)) if "stage" in rejects
              else pd.Series(False, rejects.index))
        rejected = set(rejects.loc[by, "sample_id"].astype(str))
    missing = sorted(labelled - tokenized - rejected)
    explained = len((labelled - tokenized) & rejected)
    extra = sorted(tokenized - labelled)
    offenders = [f"{sid} (in split manifest, no tokens)" for sid in missing] + \
                [f"{sid} (tokens, not in split manifest)" for sid in extra]
    who = "/".join(sorted(excusing))
    note = f" ({explained} labelled ids without tokens were rejected by {who})" if explained else ""
    report.add("manifest-coverage", offenders, f"every labelled id has tokens and vice versa{note}",
               "{n} ids in one of split manifest / token index only" + note)


def check_weights(report: ValidationReport, index: pd.DataFrame, require_pretrained: bool) -> None:
    """Random-init tokens: a warning, or a failure with `require_pretrained`, except for the
    architectures that have no published checkpoint (RANDOM_INIT_BY_DESIGN): a warning always."""
    rnd = index.loc[index["weights"].astype(str) == RANDOM_INIT]
    counts = rnd.groupby("tokenizer").size()
    by_tok = [f"{tok}: {n} rows random-init" for tok, n in counts.items() if tok not in RANDOM_INIT_BY_DESIGN]
    by_design = [f"{tok}: {n} rows random-init by design ({RANDOM_INIT_BY_DESIGN[str(tok)]})"
                 for tok, n in counts.items() if tok in RANDOM_INIT_BY_DESIGN]
    if by_design and not by_tok:
        report.checks.append(Check("weights", WARN, f"{len(by_design)} tokenizers with random-init weights by "
                                   "design (no published checkpoint of the architecture)", by_design))
        return
    report.add("weights", by_tok + by_design, "pretrained weights (checksums recorded)",
               f"{len(by_tok)} tokenizers with random-init weights" +
               (" (--require-pretrained)" if require_pretrained else " (tokens are not pretrained features)"),
               status_fail=FAIL if require_pretrained else WARN)
