"""The shape of `report.json` as typed dicts, section by section, for the code that builds
and renders it.

`json_schema.py` documents the same structure for readers of the file; these types let the
type checker hold `stats` (which fills the sections) and `page`, `card` and `plots` (which
read them) to it. They are plain dicts at run time, so `report.json` is written exactly as
before. Free JSON values (stage parameters, ratios, zip checks) are `object`: the renderers
only print them.
"""
from __future__ import annotations

from typing import Any, TypedDict


class Stats(TypedDict):
    """The distribution of one variable (`describe_values`)."""

    n: int
    min: float | None
    max: float | None
    mean: float | None
    std: float | None


class StageRow(TypedDict):
    """One stage folder covered by the report, in DAG order."""

    name: str
    dir: str
    fingerprint: str
    version: str
    inputs: list[str]
    items: int
    rows: int
    rejects: int
    reasons: dict[str, int]
    counters: dict[str, int]
    params: dict[str, object]
    libraries: dict[str, object]
    extra: dict[str, object]


class ModalitySummary(TypedDict):
    modality: int
    samples: int
    sources: int | None
    datasets: dict[str, int]
    valence: Stats
    arousal: Stats
    valence_raw: Stats | None
    arousal_raw: Stats | None


class Labels(TypedDict):
    stage: str | None
    by_modality: dict[str, ModalitySummary]


class Bound(TypedDict):
    """One group and dimension of a `normalisation.json`."""

    group: str
    key: str
    dimension: str
    min: float | None
    max: float | None


class Normalisation(TypedDict):
    stage: str
    method: str | None
    bounds: list[Bound]
    sources: object


class Emotions(TypedDict):
    classes: list[str]
    counts: dict[str, dict[str, dict[str, int]]]  # modality -> split -> class -> samples


class Splits(TypedDict):
    names: list[str]
    rows: dict[str, int]
    sources: dict[str, int]
    by_modality: dict[str, dict[str, int]]
    ratios: object
    method: str | None
    seed: int | None
    strata: list[object]


class CategoryRow(TypedDict):
    category: str
    n: int
    valence_mean: float | None
    arousal_mean: float | None
    valence_std: float | None
    arousal_std: float | None
    top_emotion: str | None


class Categories(TypedDict):
    column: str | None
    stage: str | None
    by_category: list[CategoryRow]


class DurationHistogram(TypedDict):
    edges_s: list[float | None]
    counts: list[int]


class Durations(TypedDict):
    """The audio durations of one stage whose manifest has `duration_s`."""

    n: int
    min_s: float | None
    median_s: float | None
    max_s: float | None
    total_hours: float | None
    histogram: DurationHistogram


class ChunksPerSong(TypedDict):
    songs: int
    chunks: int
    songs_without_chunks: int
    histogram: dict[str, int]  # chunks per song -> songs


class RejectExample(TypedDict):
    sample_id: str
    stage: str
    message: str


class ReasonRow(TypedDict):
    reason: str
    count: int
    meaning: str
    documented: bool
    by_stage: dict[str, int]
    examples: list[RejectExample]


class Rejects(TypedDict):
    total: int
    by_reason: list[ReasonRow]


class AuditBlock(TypedDict, total=False):
    """One id block of the DEAM annotation audit, as `audit.json` holds it."""

    block: str
    kind: str
    id_min: int
    id_max: int
    n: int
    r_sv_dv: float | None
    r_sa_da: float | None
    r_sv_da: float | None
    r_sa_dv: float | None
    straight: float | None
    crossed: float | None
    n_informative: int
    songs_crossed: int
    songs_straight: int
    vote: float | None
    verdict: str
    fixed: bool


class AuditFix(TypedDict):
    """One block the static fix swapped, and why."""

    block: str
    why: str
    song_ids: list[list[int]]
    n: int


class Audit(TypedDict):
    stage: str
    static_fix: str | None
    n_fixed: int | None
    fixed_song_ids: list[list[int]]  # [first, last] runs
    fixes: list[AuditFix]
    n_auto_fix: int | None
    auto_fix_song_ids: list[list[int]]  # what static_fix = "auto" would swap
    blocks: list[AuditBlock]
    warnings: list[str]
    n_parse_problems: int | None
    parse_problems: list[str]
    zip_checks: list[object]


class Weights(TypedDict):
    """The weights one tokenizer of a tokenizing stage used."""

    stage: str
    tokenizer: str | None
    name: str | None
    sha256: str | None
    seed: int | None
    rows_by_weights: dict[str, int]
    random_init: bool
    device: str | None
    compute_dtype: str | None


class FigureEntry(TypedDict):
    file: str
    title: str
    caption: str


class PageFigure(FigureEntry):
    """A figure as the page inlines it: its entry plus the PNG bytes."""

    png: bytes


class ReportNumbers(TypedDict):
    """`report.json` before the figures are drawn."""

    format: str
    version: int
    title: str
    stages: list[StageRow]
    labels: Labels
    normalisation: list[Normalisation]
    emotions: Emotions
    splits: Splits
    categories: Categories
    durations: dict[str, Durations]
    chunks_per_song: dict[str, ChunksPerSong]
    rejects: Rejects
    audit: list[Audit]
    weights: list[Weights]
    deviations: list[str]
    published: dict[str, Any] | None   # published.comparison: as published vs corrected
    thesis_counts: list[dict[str, Any]]


class ReportJson(ReportNumbers):
    """The whole of `report.json`."""

    figures: list[FigureEntry]
    warnings: list[str]


class StageTiming(TypedDict):
    name: str
    seconds: float | None
    resumed_items: int | None
    executor: str | None
    workers: int | None


class Timings(TypedDict):
    """`timings.json` (written by the `emoprep report` command only)."""

    stages: list[StageTiming]
    total_seconds: float
    note: str
