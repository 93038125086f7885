"""The one declaration of `report/report.json`: pydantic models, section by section.

`stats` builds them, `plots` reads them, `report.schema.json` is `schema()` (JSON Schema
2020-12, generated) and `SCHEMA.md` its outline; `check_report` validates a report.json
strictly (no coercion: "13" is not an integer). Construction is lax, so numbers keep their
JSON type (an int stays an int: `Num` is int | float), and report.json's bytes depend only on
the values `stats` computed.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.json_schema import GenerateJsonSchema

FORMAT = "emoprep-report"
VERSION = 1
Num = Annotated[int | float | None, WithJsonSchema({"type": ["number", "null"]})]
Runs = list[list[int]]  # [[first, last], ...] runs of song ids


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Stats(Model):
    """distribution of one variable"""
    n: int = Field(description="finite values")
    min: Num = Field(description="minimum")
    max: Num = Field(description="maximum")
    mean: Num = Field(description="mean")
    std: Num = Field(description="population standard deviation")


class StageRow(Model):
    """one stage folder"""
    name: str = Field(description="stage name")
    dir: str = Field(description="folder relative to the output root")
    fingerprint: str = Field(description="full stage fingerprint (SHA-256)")
    version: str = Field(description="stage code version")
    inputs: list[str] = Field(description="upstream stage names")
    items: int = Field(description="work items (per-sample stages: inputs; chunks: songs; tokens: shards)")
    rows: int = Field(description="kept rows (manifest.parquet)")
    rejects: int = Field(description="rejected inputs (rejects.parquet)")
    reasons: dict[str, int] = Field(description="reject reason code -> count")
    counters: dict[str, int] = Field(description="named counts that are neither rows nor rejects (e.g. short tails)")
    params: dict[str, Any] = Field(description="fingerprinted parameters as the stage saw them")
    libraries: dict[str, str] = Field(description="library -> version (part of the fingerprint)")
    extra: dict[str, Any] = Field(description="other fingerprint inputs (model weight identity, device, dtype)")


class ModalitySummary(Model):
    """one modality"""
    modality: int = Field(description="modality code (0 image, 1 audio)")
    samples: int = Field(description="labelled samples")
    sources: int | None = Field(description="distinct source items (songs, images)")
    datasets: dict[str, int] = Field(description="dataset (sample id prefix) -> samples")
    valence: Stats = Field(description="normalised valence")
    arousal: Stats = Field(description="normalised arousal")
    valence_raw: Stats | None = Field(description="raw valence")
    arousal_raw: Stats | None = Field(description="raw arousal")


class Labels(Model):
    """normalised valence/arousal"""
    stage: str | None = Field(description="stage whose manifest holds the labels (split, else labels)")
    by_modality: dict[str, ModalitySummary] = Field(description="modality name (image, audio) -> summary")


class Bound(Model):
    """one group and dimension"""
    group: str = Field(description="modality name (minmax) or source stage (fixed)")
    key: str = Field(description="key in normalisation.json")
    dimension: str = Field(description="valence or arousal")
    min: Num = Field(description="raw value mapped to -1")
    max: Num = Field(description="raw value mapped to 1")


class Normalisation(Model):
    """one labels stage"""
    stage: str = Field(description="stage")
    method: str | None = Field(description="minmax or fixed")
    sources: Any = Field(description="the labels stage's sources parameter")
    bounds: list[Bound] = Field(description="raw bounds mapped to [-1, 1]")


class Emotions(Model):
    """emotion classes (thesis eq. 2.1)"""
    classes: list[str] = Field(description="the 12 thesis classes in order, then any other label found")
    counts: dict[str, dict[str, dict[str, int]]] = Field(
        description="modality name -> split ('all' without a split) -> emotion class -> samples (zeros included)")


class Splits(Model):
    """the split"""
    names: list[str] = Field(description="split names in order")
    rows: dict[str, int] = Field(description="split -> samples")
    sources: dict[str, int] = Field(description="split -> distinct source items")
    by_modality: dict[str, dict[str, int]] = Field(description="modality name -> split -> samples")
    ratios: Any = Field(description="split ratios (split_summary.json)")
    method: str | None = Field(description="split method (quota, hash)")
    seed: int | None = Field(description="split seed")
    strata: list[Any] = Field(description="split_summary.json strata (emotion x modality)")


class CategoryRow(Model):
    """one category"""
    category: str = Field(description="value")
    n: int = Field(description="images")
    valence_mean: Num = Field(description="mean normalised valence")
    arousal_mean: Num = Field(description="mean normalised arousal")
    valence_std: Num = Field(description="std of normalised valence")
    arousal_std: Num = Field(description="std of normalised arousal")
    top_emotion: str | None = Field(description="most frequent emotion class")


class Categories(Model):
    """images by category (thesis fig 2.3)"""
    column: str | None = Field(description="category column (foodpics.category_column)")
    stage: str | None = Field(description="manifest it was read from")
    by_category: list[CategoryRow] = Field(description="largest first")


class DurationHistogram(Model):
    """bins as plotted"""
    edges_s: list[Num] = Field(description="bin edges (s): 0.1 s when all lie within 5 s, else 1 s to 60 s, then 10 s")
    counts: list[int] = Field(description="songs per bin")


class Durations(Model):
    """the audio durations of one stage whose manifest has duration_s"""
    n: int = Field(description="songs")
    min_s: Num = Field(description="shortest (s)")
    median_s: Num = Field(description="median (s)")
    max_s: Num = Field(description="longest (s)")
    total_hours: Num = Field(description="sum (h)")
    histogram: DurationHistogram = Field(description="bins as plotted")


class ChunksPerSong(Model):
    """one stage with chunk_index rows"""
    songs: int = Field(description="songs of the upstream manifest and of this one")
    chunks: int = Field(description="chunk rows")
    songs_without_chunks: int = Field(description="songs that gave no chunk")
    histogram: dict[str, int] = Field(description="chunks per song -> songs")


class RejectExample(Model):
    """one reject"""
    sample_id: str = Field(description="id")
    stage: str = Field(description="stage")
    message: str = Field(description="message naming the file")


class ReasonRow(Model):
    """one reason code"""
    reason: str = Field(description="stable kebab-case code")
    count: int = Field(description="rejects")
    meaning: str = Field(description="meaning from manifests/reasons.py")
    documented: bool = Field(description="listed in REJECT_CODES")
    by_stage: dict[str, int] = Field(description="stage -> rejects")
    examples: list[RejectExample] = Field(description="first rejects by sample id")


class Rejects(Model):
    """every reject of the covered stages"""
    total: int = Field(description="rejects")
    by_reason: list[ReasonRow] = Field(description="most frequent first")


class AuditFix(Model):
    """one block the static fix swapped"""
    block: str = Field(description="id block, e.g. 1-1000")
    why: str = Field(description="the reason, with the block's vote")
    song_ids: Runs = Field(description="[first, last] runs")
    n: int = Field(description="songs swapped")


class Audit(Model):
    """one audit.json (DEAM annotation audit)"""
    stage: str = Field(description="stage")
    static_fix: str | None = Field(description="auto, swap-le-1000 or none")
    n_fixed: int | None = Field(description="songs whose static columns were swapped back")
    fixed_song_ids: Runs = Field(description="[first, last] runs of fixed song ids")
    fixes: list[AuditFix] = Field(description="each block the fix swapped")
    n_auto_fix: int | None = Field(description="songs static_fix = auto would swap")
    auto_fix_song_ids: Runs = Field(description="[first, last] runs of the songs auto would swap")
    blocks: list[dict[str, Any]] = Field(description=(
        "per id block: block, kind, id_min, id_max, n, r_sv_dv, r_sa_da, r_sv_da, r_sa_dv (static vs mean "
        "dynamic), straight, crossed, n_informative, songs_crossed, songs_straight, vote, verdict, fixed "
        "(as in audit.json)"))
    warnings: list[str] = Field(description="audit warnings")
    n_parse_problems: int | None = Field(description="annotation cells/rows that did not parse")
    parse_problems: list[str] = Field(description="the first 20")
    zip_checks: list[Any] = Field(description="zip member checks")


class ThesisCount(Model):
    """one count"""
    what: str = Field(description="quantity")
    thesis: str = Field(description="as printed")
    section: str = Field(description="thesis section")
    this_run: int | None = Field(description="this run's count")
    why: str = Field(description="why the two can differ")


class Weights(Model):
    """the weights one tokenizer of a tokenizing stage used"""
    stage: str = Field(description="stage")
    tokenizer: str | None = Field(description="tokenizer name")
    name: str | None = Field(description="weights name")
    sha256: str | None = Field(description="weights checksum, or 'random-init'")
    seed: int | None = Field(description="init seed")
    rows_by_weights: dict[str, int] = Field(description="weights value in the rows -> rows")
    random_init: bool = Field(description="true when tokens come from randomly initialised weights")
    device: str | None = Field(description="device in the fingerprint")
    compute_dtype: str | None = Field(description="compute dtype")


class FigureEntry(Model):
    """one figure"""
    file: str = Field(description="file name")
    title: str = Field(description="title")
    caption: str = Field(description="what it shows")


class ReportJson(Model):
    """The numbers behind report/index.html. A pure function of the stage folders it covers: no
    timings (see timings.json), no absolute paths, keys sorted."""
    model_config = ConfigDict(title="emoprep report.json")
    format: Literal["emoprep-report"] = Field(description="always 'emoprep-report'")
    version: Literal[1] = Field(description="schema version (this document: 1)")
    title: str = Field(description="page title (report.title parameter)")
    stages: list[StageRow] = Field(description="every stage folder covered, in DAG order")
    labels: Labels = Field(description="normalised valence/arousal")
    normalisation: list[Normalisation] = Field(description="each normalisation.json")
    emotions: Emotions = Field(description="emotion classes (thesis eq. 2.1)")
    splits: Splits = Field(description="the split")
    categories: Categories = Field(description="images by category (thesis fig 2.3)")
    durations: dict[str, Durations] = Field(description="stage with duration_s -> audio durations")
    chunks_per_song: dict[str, ChunksPerSong] = Field(description="stage with chunk_index -> chunks per song")
    rejects: Rejects = Field(description="every reject of the covered stages")
    audit: list[Audit] = Field(description="each audit.json (DEAM annotation audit)")
    deviations: list[str] = Field(description="how the recipe's data differs from the paper(s) it follows "
                                          "(report.deviations)")
    published: dict[str, Any] | None = Field(description=(
        "as published vs corrected (report.compare_with): corrected_recipe, parameters that differ, static_va "
        "(songs whose static VA differ), chunks (added/removed under the corrected rules), split (songs in two "
        "splits, held-out items sharing a song with a train item)"))
    thesis_counts: list[ThesisCount] = Field(description="each count the thesis reports beside this run's "
                                                     "(report.thesis_counts)")
    weights: list[Weights] = Field(description="tokenizer weights per stage")
    figures: list[FigureEntry] = Field(description="PNG files next to index.html (also inlined in it)")
    warnings: list[str] = Field(description="problems met while building the report (missing folders, "
                                         "unreadable files)")


class StageTiming(Model):
    name: str
    seconds: Num
    resumed_items: int | None
    executor: str | None
    workers: int | None


class Timings(Model):
    """`timings.json` (written by the `emoprep report` command only)."""
    stages: list[StageTiming]
    total_seconds: float
    note: str


class _NoFieldTitles(GenerateJsonSchema):
    def field_title_should_be_set(self, schema: Any) -> bool:
        return False


def schema() -> dict[str, Any]:
    """`report.schema.json`: the JSON Schema (2020-12) of `ReportJson`."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://emoprep/report.schema.json",
            **ReportJson.model_json_schema(schema_generator=_NoFieldTitles)}


def check_report(data: object) -> ReportJson:
    """A report.json's content as a `ReportJson`; pydantic.ValidationError (naming each field
    that breaks the schema) when it does not conform."""
    return ReportJson.model_validate(data, strict=True)


# ---------------------------------------------------------------- SCHEMA.md

def _outline(s: dict[str, Any], defs: dict[str, Any], path: str, depth: int) -> list[str]:
    """One line per key of `s` (a generated schema node), nested models and maps inlined."""
    opts = [o for o in s.get("anyOf", [s]) if o.get("type") != "null"] or [s]
    node = {**defs.get(opts[0].get("$ref", "").rsplit("/", 1)[-1], {}), **opts[0]}
    kind = node.get("type", "any")  # a model's type comes from its $defs entry
    nullable = len(opts) < len(s.get("anyOf", []))
    kinds = [*(kind if isinstance(kind, list) else [kind]), *(["null"] if nullable else [])]
    desc = s.get("description") or node.get("description")
    out = [f"{'  ' * depth}- `{path}` ({' | '.join(kinds)})" + (f": {desc}" if desc else "")]
    for k, v in (node.get("properties") or {}).items():
        out += _outline(v, defs, f"{path}.{k}" if path else k, depth + 1)
    if isinstance(values := node.get("additionalProperties"), dict):
        out += _outline(values, defs, f"{path}.<key>", depth + 1)
    if isinstance(items := node.get("items"), dict) and ({"$ref", "additionalProperties", "items"} & set(items)):
        out += _outline(items, defs, f"{path}[]", depth + 1)
    return out


def schema_markdown() -> str:
    s = schema()
    lines = ["# report.json schema", "",
             (f"`report.json` (format `{FORMAT}`, version {VERSION}) holds the numbers of `index.html`. "
              "Machine-readable: `report.schema.json` (JSON Schema 2020-12, the same content). Rules: keys are "
              "sorted, numbers rounded to 6 decimals, missing values are `null`, no absolute paths and no "
              "timings (those are in `timings.json`, written only by `emoprep report`)."), ""]
    for k, v in s["properties"].items():
        lines += _outline(v, s["$defs"], k, 0)
    return "\n".join(lines) + "\n"
