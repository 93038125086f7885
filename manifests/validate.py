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
- `report-json`      `report/report.json`, when there is one, follows its schema
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from emoprep.manifests.token_store.reader import load_index
from emoprep.manifests.validate_manifests import (
    check_coverage,
    check_labels,
    check_report_json,
    check_stage_manifests,
    check_weights,
    read_manifest,
    split_group_by,
    stages_after_split,
)
from emoprep.manifests.validate_report import FAIL, PASS, SKIP, WARN, Check, ValidationReport
from emoprep.manifests.validate_store import check_tokenizer

# Every token index has these; the array columns (`cls_path`, `codes_sha256`, …) depend on
# the tokenizer and are checked per tokenizer.
INDEX_COLUMNS = ("sample_id", "tokenizer", "shard", "row", "shape", "dtype", "weights", "source_id",
                 "modality", "valence", "arousal", "split")


def validate(out_root: str | Path, require_pretrained: bool = False) -> ValidationReport:
    """Run every check on `out_root`; never raises for bad data (it is reported instead).

    The stage manifests are checked for every recipe; the token checks run when the
    output holds a token store, and a recipe that ends before tokens (the seed recipes)
    is validated on its manifests and files alone."""
    out_root = Path(out_root)
    report = ValidationReport(str(out_root))
    current = _current(out_root)
    if current:
        check_stage_manifests(report, out_root, current)
        check_report_json(report, out_root)
    if current and "tokens" not in current:
        report.checks.append(Check("token-index", SKIP, "no token store in this output (the recipe ends before "
                                                       "tokens); stage manifests checked above"))
        split = read_manifest(out_root, "split")
        if split is not None and {"valence", "arousal", "split", "source_id"} <= set(split.columns):
            check_labels(report, split, None, index_name="split", group_by=split_group_by(out_root))
        return report
    try:
        store = load_index(out_root)
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
    split = read_manifest(out_root, "split")
    rejects = read_manifest(out_root, "rejects")
    for tokenizer, rows in index.groupby("tokenizer", sort=True):
        check_tokenizer(report, store, str(tokenizer), rows.reset_index(drop=True))
    check_labels(report, index, split, group_by=split_group_by(out_root))
    check_coverage(report, index, split, rejects, stages_after_split(out_root))
    check_weights(report, index, require_pretrained)
    return report


def _current(out_root: Path) -> dict[str, dict[str, str]]:
    import json

    try:
        current: dict[str, dict[str, str]] = json.loads(
            (out_root / "manifests" / "_current.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return current


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
