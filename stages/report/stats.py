"""The report's numbers (`report/report.json`), computed from a `RunView`.

Every function reads what exists and returns plain JSON values (sorted, rounded, NaN as
null), so the same stage folders always give the same bytes. A section whose inputs are not
there is empty ([] / {} / null), never an error. The sections are the models of `models.py`
(which also give the schema), the number rounding is in `json_values.py`.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, SupportsIndex, SupportsInt

from emoprep.manifests import report_json as models
from emoprep.manifests.columns import emotion_classes
from emoprep.pipeline.lazy import np, pd
from emoprep.stages.report.json_values import num, plain_json
from emoprep.stages.report.run_view import RunView, StageInfo

MODALITY_NAMES = {0: "image", 1: "audio"}
RANDOM_INIT = "random-init"  # SPEC §6: what a tokenizer records without pretrained weights
LABEL_COLUMNS = ("sample_id", "modality", "valence", "arousal")
NO_SPLIT = "all"


# ---------------------------------------------------------------- helpers

def as_int(value: object) -> int:
    """`int(value)` for a value typed more broadly than it is (a pandas group key, a JSON key);
    TypeError for what `int` does not take."""
    if isinstance(value, (str, bytes, SupportsInt, SupportsIndex)):
        return int(value)
    raise TypeError(f"int() argument must be a string, a bytes-like object or a real number, "
                    f"not '{type(value).__name__}'")


def modality_name(m: object) -> str:
    try:
        return MODALITY_NAMES.get(as_int(m), f"modality {as_int(m)}")
    except (TypeError, ValueError):
        return str(m)


def dataset_of(sample_id: str) -> str:
    """`deam:2:0` -> `deam` (the source dataset is the sample id's prefix)."""
    return str(sample_id).split(":", 1)[0]


def describe_values(x: pd.Series) -> models.Stats:
    v = pd.to_numeric(x, errors="coerce").to_numpy(dtype=float)
    v = v[np.isfinite(v)]
    if not len(v):
        return models.Stats(n=0, min=None, max=None, mean=None, std=None)
    return models.Stats(n=len(v), min=num(v.min()), max=num(v.max()), mean=num(v.mean()), std=num(v.std(ddof=0)))


# ---------------------------------------------------------------- stages and rejects

def stage_rows(view: RunView) -> list[models.StageRow]:
    """One row per stage in DAG order: folder, fingerprint, inputs, counts, parameters."""
    out: list[models.StageRow] = []
    for name, st in view.stages.items():
        c = st.counts
        comp = st.components
        out.append(models.StageRow(
            name=name, dir=st.dir, fingerprint=st.fingerprint, version=str(comp.get("version", "")),
            inputs=sorted(st.inputs), items=num(c.get("items", 0)), rows=num(c.get("rows", 0)),
            rejects=num(c.get("rejects", 0)),
            reasons={str(k): num(v) for k, v in sorted((c.get("reasons") or {}).items())},
            counters={str(k): num(v) for k, v in sorted((c.get("counters") or {}).items())},
            params=plain_json(st.params), libraries=plain_json(comp.get("libraries") or {}),
            extra=plain_json(comp.get("extra") or {})))
    return out


def reject_summary(view: RunView, examples: int = 3) -> models.Rejects:
    """Rejects grouped by reason code (most frequent first): meaning, count per stage and
    the first `examples` sample ids with their messages."""
    from emoprep.manifests.reasons import REJECT_CODES

    df = view.rejects()
    by_reason: list[models.ReasonRow] = []
    counts = Counter(df["reason"]) if len(df) else Counter()
    for reason, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        sub = df[df["reason"] == reason]
        by_reason.append(models.ReasonRow(
            reason=reason, count=int(n),
            meaning=REJECT_CODES.get(reason, "undocumented reason code (not in manifests/reasons.py)"),
            documented=reason in REJECT_CODES,
            by_stage={s: int(k) for s, k in sorted(Counter(sub["stage"]).items())},
            examples=[models.RejectExample(sample_id=str(r.sample_id), stage=str(r.stage), message=str(r.message))
                      for r in sub.head(examples).itertuples()]))
    return models.Rejects(total=len(df), by_reason=by_reason)


# ---------------------------------------------------------------- labels

def label_stage(view: RunView) -> str | None:
    """The manifest holding normalised VA: `split` if present, else `labels`, else the
    first stage (DAG order) with valence/arousal/modality columns."""
    ok = [n for n in view.stages if set(LABEL_COLUMNS) <= set(view.columns(n))]
    for pref in ("split", "labels"):
        if pref in ok:
            return pref
    with_split = [n for n in ok if "split" in view.columns(n)]
    first = with_split or ok
    return first[0] if first else None


def label_frame(view: RunView) -> tuple[str | None, pd.DataFrame | None]:
    """(stage, rows with sample_id, dataset, modality, valence, arousal[, emotion, split, ...])."""
    name = label_stage(view)
    df = view.manifest(name) if name else None
    if df is None:
        return None, None
    keep = [c for c in ("sample_id", "source_id", "modality", "valence", "arousal", "valence_raw",
                        "arousal_raw", "emotion", "split") if c in df.columns]
    df = df[keep].copy()
    df["dataset"] = df["sample_id"].map(dataset_of)
    df["modality"] = pd.to_numeric(df["modality"], errors="coerce").fillna(-1).astype(int)
    for c in ("valence", "arousal"):
        df[c] = pd.to_numeric(df[c], errors="coerce")
    return name, df


def label_summary(df: pd.DataFrame | None) -> dict[str, models.ModalitySummary]:
    """Per modality: samples, source items (songs/images), datasets, VA statistics."""
    if df is None or not len(df):
        return {}
    out: dict[str, models.ModalitySummary] = {}
    for m, g in df.groupby("modality", sort=True):
        out[modality_name(m)] = models.ModalitySummary(
            modality=as_int(m), samples=len(g),
            sources=int(g["source_id"].nunique()) if "source_id" in g else None,
            datasets={k: int(v) for k, v in sorted(Counter(g["dataset"]).items())},
            valence=describe_values(g["valence"]), arousal=describe_values(g["arousal"]),
            valence_raw=describe_values(g["valence_raw"]) if "valence_raw" in g else None,
            arousal_raw=describe_values(g["arousal_raw"]) if "arousal_raw" in g else None)
    return out


def split_names(df: pd.DataFrame | None, summary: dict[str, Any] | None) -> list[str]:
    """Split names in the split stage's order (train, test, ...), else sorted."""
    names = list((summary or {}).get("names") or [])
    present = sorted(set(df["split"].astype(str))) if df is not None and "split" in df else []
    if not (present or names):
        return [NO_SPLIT]
    return names + [s for s in present if s not in names]


def emotion_counts(df: pd.DataFrame | None, splits: list[str]) -> models.Emotions:
    """Counts of each emotion class per modality and split (zeros included)."""
    if df is None or "emotion" not in df:
        return models.Emotions(classes=emotion_classes(), counts={})
    classes = emotion_classes(sorted(set(df["emotion"].dropna().astype(str))))
    split_col = df["split"].astype(str) if "split" in df else pd.Series(NO_SPLIT, index=df.index)
    counts: dict[str, dict[str, dict[str, int]]] = {}
    for m, g in df.groupby("modality", sort=True):
        per = {}
        for s in splits:
            c = Counter(g.loc[split_col[g.index] == s, "emotion"].astype(str))
            per[s] = {k: int(c.get(k, 0)) for k in classes}
        counts[modality_name(m)] = per
    return models.Emotions(classes=classes, counts=counts)


def split_section(view: RunView, df: pd.DataFrame | None) -> models.Splits:
    """Rows and source items per split and modality, plus the split stage's own summary."""
    summary = view.json_file("split", "split_summary.json") if "split" in view.stages else None
    names = split_names(df, summary)
    out = models.Splits(names=names, rows={}, sources={}, by_modality={},
                        ratios=plain_json((summary or {}).get("ratios")), method=(summary or {}).get("method"),
                        seed=num((summary or {}).get("seed")), strata=plain_json((summary or {}).get("strata") or []))
    if df is None or "split" not in df:
        return out
    s = df["split"].astype(str)
    out.rows = {n: int((s == n).sum()) for n in names}
    if "source_id" in df:
        out.sources = {n: int(df.loc[s == n, "source_id"].nunique()) for n in names}
    for m, g in df.groupby("modality", sort=True):
        gs = g["split"].astype(str)
        out.by_modality[modality_name(m)] = {n: int((gs == n).sum()) for n in names}
    return out


def normalisation(view: RunView) -> list[models.Normalisation]:
    """Each `normalisation.json` found (the labels stage's bounds per modality or source)."""
    out: list[models.Normalisation] = []
    for name in view.with_file("normalisation.json"):
        info = view.json_file(name, "normalisation.json") or {}
        bounds: list[models.Bound] = []
        for key, dims in sorted((info.get("bounds") or {}).items()):
            label = modality_name(key) if str(key).isdigit() else str(key)
            for dim in ("valence", "arousal"):
                lo_hi = (dims or {}).get(dim)
                if isinstance(lo_hi, (list, tuple)) and len(lo_hi) == 2:
                    bounds.append(models.Bound(group=label, key=str(key), dimension=dim, min=num(lo_hi[0]),
                                               max=num(lo_hi[1])))
        out.append(models.Normalisation(stage=name, method=info.get("method"), bounds=bounds,
                                        sources=plain_json(view.stages[name].params.get("sources"))))
    return out


# ---------------------------------------------------------------- categories

def category_frame(view: RunView, labels: pd.DataFrame | None) -> tuple[str | None, str | None, pd.DataFrame | None]:
    """(column, stage, image label rows joined with their category) for VA by category.

    The column is the image ingest's `category_column` (default `type`), read from the
    first stage manifest that has it (`images`, else `foodpics`, else any)."""
    if labels is None:
        return None, None, None
    column = None
    for st in view.stages.values():
        if "category_column" in st.params:
            column = str(st.params["category_column"])
            break
    column = column or "type"
    order = [n for n in ("images", "foodpics") if n in view.stages] + \
            [n for n in view.stages if n not in ("images", "foodpics")]
    for name in order:
        manifest = view.manifest(name) if {"sample_id", column} <= set(view.columns(name)) else None
        if manifest is not None:
            cats = manifest[["sample_id", column]].drop_duplicates("sample_id")
            df = labels.merge(cats, on="sample_id", how="inner")
            df = df[df[column].notna()].rename(columns={column: "category"})
            df["category"] = df["category"].astype(str)
            if len(df):
                return column, name, df
    return None, None, None


def category_summary(df: pd.DataFrame | None) -> list[models.CategoryRow]:
    if df is None:
        return []
    out: list[models.CategoryRow] = []
    for cat, g in df.groupby("category", sort=True):
        em = Counter(g["emotion"].astype(str)) if "emotion" in g else Counter()
        out.append(models.CategoryRow(
            category=str(cat), n=len(g), valence_mean=num(g["valence"].mean()), arousal_mean=num(g["arousal"].mean()),
            valence_std=num(g["valence"].std(ddof=0)), arousal_std=num(g["arousal"].std(ddof=0)),
            top_emotion=(sorted(em.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] if em else None)))
    return sorted(out, key=lambda r: (-r.n, r.category))


# ---------------------------------------------------------------- audio structure

def durations(view: RunView) -> dict[str, models.Durations]:
    """Per stage whose manifest has `duration_s` (audio ingest): the distribution."""
    out: dict[str, models.Durations] = {}
    for name in view.stages:
        manifest = view.manifest(name) if "duration_s" in view.columns(name) else None
        if manifest is None:
            continue
        v = pd.to_numeric(manifest["duration_s"], errors="coerce").dropna().to_numpy(float)
        if not len(v):
            continue
        counts, edges = np.histogram(v, bins=duration_bins(v))
        out[name] = models.Durations(
            n=len(v), min_s=num(v.min(), 3), median_s=num(float(np.median(v)), 3), max_s=num(v.max(), 3),
            total_hours=num(v.sum() / 3600.0, 3),
            histogram=models.DurationHistogram(edges_s=[num(e, 3) for e in edges], counts=[int(c) for c in counts]))
    return out


def duration_bins(v: np.ndarray) -> np.ndarray:
    """0.1 s bins when all durations lie within 5 s (e.g. 45 s excerpts), else 1 s bins up
    to 60 s and 10 s bins beyond: excerpts and full songs both readable."""
    lo, hi = float(np.floor(v.min())), float(np.ceil(max(v.max(), 1.0)))
    if hi - lo <= 5:
        return np.round(np.arange(lo, hi + 0.1, 0.1), 1) if hi > lo else np.array([lo, lo + 1.0])
    if hi <= 60:
        return np.arange(lo, hi + 1.0, 1.0)
    fine = np.arange(lo, 60.0, 1.0) if lo < 60 else np.array([], dtype=float)
    coarse = np.arange(max(60.0, 10 * np.floor(lo / 10)), hi + 10.0, 10.0)
    return np.unique(np.concatenate([fine, coarse]))


def chunks_per_song(view: RunView) -> dict[str, models.ChunksPerSong]:
    """Per stage with `chunk_index` rows: how many chunks each source song gave (0 for
    songs of the upstream manifest that gave none)."""
    out: dict[str, models.ChunksPerSong] = {}
    for name, st in view.stages.items():
        cols = view.columns(name)
        manifest = view.manifest(name) if {"chunk_index", "source_id"} <= set(cols) else None
        if manifest is None:
            continue
        per = Counter(manifest["source_id"].astype(str))
        songs = set(per)
        for up in st.inputs:
            up_df = view.manifest(up) if up in view.stages else None
            if up_df is not None and "source_id" in up_df:
                songs |= set(up_df["source_id"].astype(str))
        hist = Counter(per.get(s, 0) for s in songs)
        out[name] = models.ChunksPerSong(songs=len(songs), chunks=int(sum(per.values())),
                                         songs_without_chunks=int(hist.get(0, 0)),
                                         histogram={str(k): int(v) for k, v in sorted(hist.items())})
    return out


# ---------------------------------------------------------------- audit and weights

def audits(view: RunView) -> list[models.Audit]:
    """Each `audit.json` (the DEAM annotation audit): blocks, verdicts, what was fixed."""
    out: list[models.Audit] = []
    for name in view.with_file("audit.json"):
        a = view.json_file(name, "audit.json") or {}
        out.append(models.Audit.model_validate({
            "stage": name, "static_fix": a.get("static_fix"), "n_fixed": num(a.get("n_fixed", 0)),
            "fixed_song_ids": plain_json(a.get("fixed_song_ids") or []), "fixes": plain_json(a.get("fixes") or []),
            "n_auto_fix": num(a.get("n_auto_fix", 0)),
            "auto_fix_song_ids": plain_json(a.get("auto_fix_song_ids") or []),
            "blocks": plain_json(a.get("blocks") or []), "warnings": [str(w) for w in a.get("warnings") or []],
            "n_parse_problems": num(a.get("n_parse_problems", 0)),
            "parse_problems": [str(p) for p in (a.get("parse_problems") or [])[:20]],
            "zip_checks": plain_json(a.get("zip_checks") or [])}))
    return out


def tokenizer_setups(st: StageInfo, manifest_tokenizers: list[str]) -> dict[str, dict[str, Any]]:
    """tokenizer -> {weights, device, compute_dtype} from the fingerprint's `extra`: either
    one setup at the top level or several under `tokenizers` (a multi-tokenizer stage)."""
    extra = st.components.get("extra") or {}
    if isinstance(extra.get("tokenizers"), dict):
        return {str(k): v for k, v in extra["tokenizers"].items() if isinstance(v, dict)}
    if isinstance(extra.get("weights"), dict):
        name = str(st.params.get("tokenizer") or "") or (manifest_tokenizers or [""])[0] \
            or str(extra["weights"].get("name", ""))
        return {name: extra}
    return {}


def weights(view: RunView) -> list[models.Weights]:
    """Model weights per tokenizer of each tokenizing stage: identity from the fingerprint,
    and the `weights` column of its rows. `random_init` is true when either says random-init."""
    out: list[models.Weights] = []
    for name, st in view.stages.items():
        df = view.manifest(name) if "weights" in view.columns(name) else None
        toks = sorted(set(df["tokenizer"].astype(str))) if df is not None and "tokenizer" in df else []
        setups = tokenizer_setups(st, toks)
        if not setups and df is None:
            continue
        for tok in sorted(set(setups) | set(toks)) or [str(st.params.get("tokenizer") or "")]:
            setup = setups.get(tok, {})
            weights_of = setup.get("weights")
            ident: dict[str, Any] = weights_of if isinstance(weights_of, dict) else {}
            rows = df if df is None or "tokenizer" not in df else df[df["tokenizer"].astype(str) == tok]
            counts = Counter(rows["weights"].astype(str)) if rows is not None else Counter()
            values = {str(k): int(v) for k, v in sorted(counts.items())}
            sha = str(ident.get("sha256", "")) or None
            out.append(models.Weights(stage=name, tokenizer=tok or None, name=ident.get("name"), sha256=sha,
                                      seed=num(ident.get("seed")), rows_by_weights=values,
                                      random_init=sha == RANDOM_INIT or RANDOM_INIT in values,
                                      device=setup.get("device"), compute_dtype=setup.get("compute_dtype")))
    return out
