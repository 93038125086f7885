"""`emoprep validate` (SPEC §5.4): check a finished output folder before anyone trains on it.

Checks, each reported with pass / fail / warn / skip and the offending ids or shards:

- `token-index`      the token index is there and readable
- `unique-ids`       no sample id twice (per tokenizer; and in the split manifest)
- `index-shapes`     every row's recorded shape/dtype is the tokenizer's (197 × 768 float16,
                     65 × 2048 for the patch-28 ViT, 32 × 3450 int16 for EnCodec) and names
                     a file and checksum for each of the tokenizer's arrays
- `shard-files`      every shard file exists and is a complete NPY (a truncated file fails here)
- `shard-checksums`  shard bytes match the SHA-256 recorded in the index
- `token-shapes`     array shapes and dtypes match the tokenizer's layout and the index
- `ids-have-tokens`  every index row points at an existing row of its shard
- `finite-values`    no NaN / inf in any token
- `code-range`       codes (integer arrays) lie in [0, codebook size)
- `va-range`         normalised valence and arousal are finite and in [-1, 1]
- `modality-flags`   flags match the source (deam:/pmemo: → 1 audio, foodpics: → 0 image;
                     other prefixes must be consistent) and the split manifest
- `manifest-coverage` every split-manifest id has tokens (unless the `tokens` stage, or
                     another stage downstream of `split`, rejected it) and every tokenized
                     id is in the split manifest. A reject by an upstream stage does not
                     count: an id rejected before `split` should not be in the split
                     manifest at all (its labels and split counts would include it)
- `split-disjoint`   no source (song) in two splits
- `weights`          random-init tokens: a warning, or a failure with `require_pretrained`
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emoprep.manifests.token_store import layout as ts

PASS, FAIL, WARN, SKIP = "pass", "fail", "warn", "skip"
SOURCE_MODALITY = {"deam": 1, "pmemo": 1, "foodpics": 0}
RANDOM_INIT = "random-init"
# Every token index has these; the array columns (`cls_path`, `codes_sha256`, …) depend on
# the tokenizer and are checked per tokenizer.
INDEX_COLUMNS = ("sample_id", "tokenizer", "shard", "row", "shape", "dtype", "weights", "source_id",
                 "modality", "valence", "arousal", "split")


@dataclass
class Check:
    name: str
    status: str
    detail: str
    offenders: list[str] = field(default_factory=list)
    tokenizer: str | None = None


@dataclass
class ValidationReport:
    out_root: str
    checks: list[Check] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if c.status == FAIL]

    def add(self, name: str, offenders: list[str], detail_ok: str, detail_fail: str,
            tokenizer: str | None = None, status_fail: str = FAIL) -> None:
        """Record a check that fails (or warns) exactly when it has offenders."""
        if offenders:
            self.checks.append(Check(name, status_fail, detail_fail.format(n=len(offenders)),
                                     sorted(set(offenders)), tokenizer))
        else:
            self.checks.append(Check(name, PASS, detail_ok, [], tokenizer))

    def to_dict(self) -> dict[str, Any]:
        return {"out_root": self.out_root, "ok": self.ok, "checks": [asdict(c) for c in self.checks]}


def validate(out_root: str | Path, require_pretrained: bool = False) -> ValidationReport:
    """Run every check on `out_root`; never raises for bad data (it is reported instead).

    The stage manifests are checked for every recipe; the token checks run when the
    output holds a token store, and a recipe that ends before tokens (the seed recipes)
    is validated on its manifests and files alone."""
    out_root = Path(out_root)
    report = ValidationReport(str(out_root))
    current = _current(out_root)
    if current:
        _check_stage_manifests(report, out_root, current)
    if current and "tokens" not in current:
        report.checks.append(Check("token-index", SKIP, "no token store in this output (the recipe ends before "
                                                       "tokens); stage manifests checked above"))
        split = _read_manifest(out_root, "split")
        if split is not None and {"valence", "arousal", "split", "source_id"} <= set(split.columns):
            _check_labels(report, split, None, index_name="split")
        return report
    try:
        store = ts.load_index(out_root)
    except (OSError, ValueError) as exc:
        report.checks.append(Check("token-index", FAIL, str(exc)))
        return report
    index = store.df
    missing = [c for c in INDEX_COLUMNS if c not in index.columns]
    if missing:
        report.checks.append(Check("token-index", FAIL, f"the token index lacks columns {missing}"))
        return report
    report.checks.append(Check("token-index", PASS, f"{len(index)} rows, tokenizers: "
                               + ", ".join(sorted(map(str, index["tokenizer"].unique())))))
    split = _read_manifest(out_root, "split")
    rejects = _read_manifest(out_root, "rejects")
    for tokenizer, rows in index.groupby("tokenizer", sort=True):
        _check_tokenizer(report, store, str(tokenizer), rows.reset_index(drop=True))
    _check_labels(report, index, split)
    _check_coverage(report, index, split, rejects, stages_after_split(out_root))
    _check_weights(report, index, require_pretrained)
    return report


def _current(out_root: Path) -> dict[str, dict[str, str]]:
    import json

    try:
        return json.loads((out_root / "manifests" / "_current.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _check_stage_manifests(report: ValidationReport, out_root: Path, current: dict[str, dict[str, str]]) -> None:
    """Every current stage: its manifest is readable, ids are unique, `_DONE.json` counts
    match the manifest and its rejects, and every output file a row names exists."""
    import json

    if not current:
        report.checks.append(Check("stage-manifests", FAIL, f"no finished stage in {out_root}/manifests/_current.json"))
        return
    rejects = _read_manifest(out_root, "rejects")
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
            for sid, rel in zip(df.get("sample_id", df.index), df[col]):
                if isinstance(rel, str) and rel and not (out_root / rel).is_file():
                    missing_files.append(f"{sid} ({stage}.{col}: {rel})")
    report.add("stage-manifests", unreadable, f"{len(current)} stage manifests readable",
               "{n} stage outputs unreadable")
    report.add("stage-counts", bad_counts, "_DONE.json counts match manifests and rejects",
               "{n} stages whose counts disagree with their manifest or rejects")
    report.add("stage-unique-ids", dup_ids, "sample ids unique within each stage", "{n} duplicate ids")
    report.add("output-files", missing_files, "every output file a manifest names exists",
               "{n} manifest rows name a missing file")


def _read_manifest(out_root: Path, name: str) -> pd.DataFrame | None:
    path = out_root / "manifests" / f"{name}.parquet"
    return pd.read_parquet(path) if path.is_file() else None


# ---- per tokenizer: ids, shapes, shards ---------------------------------------------------

def _store_meta(store: ts.StoreIndex, rows: pd.DataFrame) -> dict[str, Any] | None:
    """The `store.json` next to the rows' first shard file (None when there is none)."""
    for name in store.arrays(rows):
        try:
            folder = store.resolve(str(rows[ts.path_column(name)].dropna().iloc[0])).parent
        except ts.StoreError:  # reported by shard-files
            continue
        if (folder / ts.STORE_FILE).is_file():
            try:
                return ts.read_store_json(folder)
            except (OSError, ValueError):
                return None
    return None


def _expected(tokenizer: str, store: ts.StoreIndex, rows: pd.DataFrame
              ) -> tuple[dict[str, tuple[int, ...]] | None, tuple[str, ...], int | None]:
    """(per-sample array shapes, allowed stored dtypes, codebook size or None): known
    tokenizers from the tables in token_store, others from their store.json."""
    if tokenizer in ts.KNOWN_LAYOUTS:
        return (ts.KNOWN_LAYOUTS[tokenizer], ts.KNOWN_DTYPES.get(tokenizer, ts.STORE_DTYPES),
                ts.KNOWN_CODEBOOKS.get(tokenizer))
    meta = _store_meta(store, rows) or {}
    layout = {k: tuple(v) for k, v in meta["arrays"].items()} if "arrays" in meta else None
    dtypes = (str(meta["dtype"]),) if "dtype" in meta else ts.STORE_DTYPES
    return layout, dtypes, meta.get("codebook_size")


def _check_tokenizer(report: ValidationReport, store: ts.StoreIndex, tokenizer: str, rows: pd.DataFrame) -> None:
    dup = rows.loc[rows["sample_id"].duplicated(keep=False), "sample_id"].astype(str).tolist()
    report.add("unique-ids", dup, "every sample id once", "{n} ids appear more than once", tokenizer)

    layout, dtypes, codebook = _expected(tokenizer, store, rows)
    arrays = list(layout) if layout else store.arrays(rows)
    want_shape = ts.sequence_shape(layout) if layout else None
    bad_index = []
    for r in rows.itertuples(index=False):
        shape = [int(x) for x in r.shape]
        if (want_shape is not None and shape != want_shape) or r.dtype not in dtypes:
            bad_index.append(f"{r.sample_id} (shape {shape}, dtype {r.dtype})")
    for name in arrays:
        for col in (ts.path_column(name), ts.sha_column(name)):
            lacking = rows["sample_id"] if col not in rows else rows.loc[rows[col].isna(), "sample_id"]
            bad_index += [f"{sid} (no {col})" for sid in lacking.astype(str)]
    report.add("index-shapes", bad_index,
               f"all rows {want_shape or 'consistent'} {'/'.join(sorted(set(rows['dtype'])))}",
               "{n} rows with a shape, dtype or array column other than " +
               f"{want_shape} {'/'.join(dtypes)} with {', '.join(arrays)}", tokenizer)

    problems: dict[str, list[str]] = defaultdict(list)
    for _shard, grp in rows.groupby("shard", sort=True):
        for name in arrays:
            cols = [ts.path_column(name), ts.sha_column(name)]
            if all(c in grp and grp[c].notna().all() for c in cols):  # else reported by index-shapes
                _check_shard_array(problems, store, name, grp, layout, codebook)
    report.add("shard-files", problems["files"], "every shard file complete",
               "{n} shard files missing or unreadable", tokenizer)
    report.add("shard-checksums", problems["sha"], "every shard matches its SHA-256",
               "{n} shard files differ from their recorded SHA-256", tokenizer)
    report.add("token-shapes", problems["shape"], "shard shapes and dtypes match the layout",
               "{n} shard arrays with a wrong shape or dtype", tokenizer)
    report.add("ids-have-tokens", problems["ids"], "every index row has its tokens",
               "{n} index rows without tokens", tokenizer)
    if any(np.issubdtype(np.dtype(d), np.floating) for d in dtypes) or problems["finite"]:
        report.add("finite-values", problems["finite"], "no NaN or inf",
                   "{n} samples with NaN or inf tokens", tokenizer)
    if codebook is not None or problems["codes"]:
        report.add("code-range", problems["codes"], f"every code in [0, {codebook})",
                   "{n} samples with codes outside " + f"[0, {codebook})", tokenizer)


def _check_shard_array(problems: dict[str, list[str]], store: ts.StoreIndex, name: str, grp: pd.DataFrame,
                       layout: dict[str, tuple[int, ...]] | None, codebook: int | None = None) -> None:
    """One array file of one shard: readable, checksum, shape/dtype, rows present, finite
    (float tokens) or within the codebook (integer codes)."""
    rel = str(grp[ts.path_column(name)].iloc[0])
    ids = grp["sample_id"].astype(str).tolist()
    if grp[ts.path_column(name)].nunique() > 1:
        problems["files"].append(f"{rel}: rows of one shard point at different {name} files")
    try:
        arr, sha = ts.read_array_checked(store.resolve(rel))
    except FileNotFoundError:
        problems["files"].append(f"{rel}: missing")
        problems["ids"] += [f"{sid} ({rel} missing)" for sid in ids]
        return
    except (OSError, ValueError, EOFError) as exc:
        problems["files"].append(f"{rel}: unreadable ({exc})")
        problems["ids"] += [f"{sid} ({rel} unreadable)" for sid in ids]
        return
    recorded = set(grp[ts.sha_column(name)])
    if recorded != {sha}:
        problems["sha"].append(f"{rel}: sha256 {sha[:12]}… recorded {', '.join(s[:12] + '…' for s in sorted(recorded))}")
    dtypes = set(grp["dtype"])
    want = layout.get(name) if layout else None
    if (want is not None and tuple(arr.shape[1:]) != tuple(want)) or dtypes != {arr.dtype.name}:
        problems["shape"].append(f"{rel}: {arr.dtype.name} {list(arr.shape)}, expected "
                                 f"{'/'.join(sorted(dtypes))} [n, {', '.join(map(str, want or ['…']))}]")
    rows = grp["row"].to_numpy(np.int64)
    in_range = (rows >= 0) & (rows < len(arr))
    problems["ids"] += [f"{sid} (row {r} of {rel}, which has {len(arr)} rows)"
                        for sid, r, ok in zip(ids, rows, in_range) if not ok]
    dup_rows = grp.loc[grp["row"].duplicated(keep=False), "sample_id"].astype(str)
    problems["ids"] += [f"{sid} (shares row with another id in {rel})" for sid in dup_rows]
    if not in_range.any():
        return
    sel = arr[rows[in_range]].reshape(int(in_range.sum()), -1)
    kept = [sid for sid, ok in zip(ids, in_range) if ok]
    if np.issubdtype(arr.dtype, np.floating):
        finite = np.isfinite(sel).all(axis=1)
        problems["finite"] += [f"{sid} ({name} in {rel})" for sid, ok in zip(kept, finite) if not ok]
    elif np.issubdtype(arr.dtype, np.integer):
        low, high = sel.min(axis=1), sel.max(axis=1)
        top = codebook if codebook is not None else np.iinfo(arr.dtype).max + 1
        problems["codes"] += [f"{sid} ({name} in {rel}: {lo}..{hi})" for sid, lo, hi in zip(kept, low, high)
                              if lo < 0 or hi >= top]


# ---- labels, modality, splits ------------------------------------------------------------

def _label_frames(index: pd.DataFrame, split: pd.DataFrame | None,
                  index_name: str = "tokens") -> list[tuple[str, pd.DataFrame]]:
    frames = [(index_name, index)]
    if split is not None:
        frames.append(("split", split))
    return frames


def _check_labels(report: ValidationReport, index: pd.DataFrame, split: pd.DataFrame | None,
                  index_name: str = "tokens") -> None:
    bad_va, bad_mod, bad_split = [], [], []
    for where, df in _label_frames(index, split, index_name):
        for col in ("valence", "arousal"):
            v = pd.to_numeric(df[col], errors="coerce").to_numpy(np.float64)
            bad = ~(np.isfinite(v) & (v >= -1.0) & (v <= 1.0))
            bad_va += [f"{sid} ({col} {x:g} in {where})" for sid, x in zip(df.loc[bad, "sample_id"], v[bad])]
        bad_mod += _modality_offenders(df, where)
        by_src = df.groupby("source_id")["split"].agg(lambda s: sorted(set(map(str, s))))
        bad_split += [f"{src} ({' + '.join(sp)} in {where})" for src, sp in by_src.items() if len(sp) > 1]
    if split is not None:
        merged = index[["sample_id", "modality"]].merge(split[["sample_id", "modality"]], on="sample_id",
                                                        suffixes=("", "_split"))
        diff = merged[merged["modality"] != merged["modality_split"]]
        bad_mod += [f"{sid} (tokens say {a}, split manifest says {b})"
                    for sid, a, b in zip(diff["sample_id"], diff["modality"], diff["modality_split"])]
    report.add("va-range", bad_va, "valence and arousal in [-1, 1]", "{n} values outside [-1, 1] or not finite")
    report.add("modality-flags", bad_mod, "modality flags match their sources", "{n} inconsistent modality flags")
    report.add("split-disjoint", bad_split, "no source in two splits", "{n} sources in more than one split")


def _modality_offenders(df: pd.DataFrame, where: str) -> list[str]:
    """Known prefixes must carry their modality; any other prefix must be consistent."""
    prefix = df["sample_id"].astype(str).str.split(":", n=1).str[0]
    mod = pd.to_numeric(df["modality"], errors="coerce")
    out = []
    for sid, pre, m in zip(df["sample_id"], prefix, mod):
        want = SOURCE_MODALITY.get(pre)
        if m not in (0, 1) or (want is not None and m != want):
            out.append(f"{sid} (modality {m} in {where}, expected {want if want is not None else '0 or 1'})")
    unknown = pd.DataFrame({"pre": prefix, "m": mod})[~prefix.isin(list(SOURCE_MODALITY))]
    for pre, grp in unknown.groupby("pre"):
        if grp["m"].nunique() > 1:
            out.append(f"{pre}: (mixed modality flags {sorted(grp['m'].unique().tolist())} in {where})")
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


def _check_coverage(report: ValidationReport, index: pd.DataFrame, split: pd.DataFrame | None,
                    rejects: pd.DataFrame | None, excusing: set[str] = frozenset({"tokens"})) -> None:
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
        by = rejects["stage"].astype(str).isin(sorted(excusing)) if "stage" in rejects else pd.Series(False, rejects.index)
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


def _check_weights(report: ValidationReport, index: pd.DataFrame, require_pretrained: bool) -> None:
    rnd = index.loc[index["weights"].astype(str) == RANDOM_INIT]
    by_tok = [f"{tok}: {n} rows random-init" for tok, n in rnd.groupby("tokenizer").size().items()]
    report.add("weights", by_tok, "pretrained weights (checksums recorded)",
               "{n} tokenizers with random-init weights" +
               (" (--require-pretrained)" if require_pretrained else " (tokens are not pretrained features)"),
               status_fail=FAIL if require_pretrained else WARN)


# ---- presentation --------------------------------------------------------------------

STATUS_STYLE = {PASS: "green", FAIL: "bold red", WARN: "yellow", SKIP: "dim"}


def render_table(report: ValidationReport, console: Any = None, max_offenders: int = 5) -> None:
    """Print the report as a rich table (offenders cut to `max_offenders`, with a count)."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    table = Table(title=f"emoprep validate: {report.out_root}")
    for col in ("check", "tokenizer", "status", "detail", "offenders"):
        table.add_column(col, overflow="fold")
    for c in report.checks:
        shown = c.offenders[:max_offenders]
        more = f"\n… +{len(c.offenders) - len(shown)} more" if len(c.offenders) > len(shown) else ""
        table.add_row(c.name, c.tokenizer or "", f"[{STATUS_STYLE[c.status]}]{c.status}[/]", c.detail,
                      "\n".join(shown) + more)
    console.print(table)
    verdict = "[green]OK[/]" if report.ok else f"[bold red]FAILED[/] ({len(report.failures)} checks)"
    console.print(f"validation {verdict}")
