"""`report`: the dataset at a glance (SPEC §8): `index.html` (PNGs inlined), the PNGs,
`report.json` (its models and schema: `emoprep.manifests.report_json`), `report.schema.json`,
`SCHEMA.md`, the dataset card `DATASET.md` and `recipe.toml`.

One builder, two callers. The `report` **stage** reads the upstream closure of `after`
(following each `_DONE.json` "inputs") into `report/<fp>/` and publishes a copy to `report/`;
its output is a pure function of its fingerprint, so it holds **no run timings** (they would
break byte-identical resume). The `emoprep report` **command** re-renders `report/` from every
stage in `manifests/_current.json` and adds each stage's recorded timings (`timings.json`, a
table in `index.html`). `report/`'s top-level files are replaced on every build; the
`report/<fp>/` folders are the stage's.
"""
from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from emoprep.pipeline.atomic import TMP_PREFIX, atomic_write_bytes
from emoprep.pipeline.catalog import StageCatalog
from emoprep.pipeline.context import StageContext
from emoprep.pipeline.errors import ConfigError
from emoprep.pipeline.lazy import pd
from emoprep.pipeline.stage import Outcome, Stage
from emoprep.stages.report import published
from emoprep.stages.report.json_values import num
from emoprep.stages.report.run_view import RunView, current_stages, load_view, read_done, upstream_closure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from emoprep.manifests.report_json import ReportJson, Timings

# (key, title, caption): every figure the report may draw, in page order.
FIGURES: tuple[tuple[str, str, str], ...] = (
    ("stage_counts", "Per-stage counts",
     "Kept manifest rows (blue) and rejected inputs (red) per stage, in DAG order, on a log scale."),
    ("va_scatter", "Valence–arousal per modality",
     ("Normalised valence (x) and arousal (y) of every labelled sample, one panel per modality, coloured by "
      "dataset; above the hexbin threshold a log-count hexbin replaces the points.")),
    ("va_by_emotion", "Emotion classes in valence–arousal space",
     ("Samples coloured by their emotion class; dashed lines are the class boundaries of eq. 2.1 "
      "(slopes ±0.33, ±0.66 through the origin).")),
    ("va_by_category", "Images by category",
     "One panel per image category (largest first): its images in colour, all images in grey, ✕ = mean."),
    ("emotion_counts", "Emotion classes per split", "Samples per emotion class and split, per modality."),
    ("durations", "Audio durations",
     ("Durations of the audio per stage that records them (0.1 s bins within a 5 s range, else 1 s to 60 s, "
      "then 10 s); dashed lines: lengths the recipe acts on.")),
    ("chunks_per_song", "Chunks per song", "How many chunks each song gave; red: songs that gave none."),
    ("rejects", "Rejects by reason", "Rejected inputs per reason code, coloured by the stage that rejected them."),
    ("audit", "Annotation audit",
     ("Each kept song's static valence as written in the CSV against the mean of its dynamic valence (blue) and "
      "dynamic arousal (orange), per id block; r values are the audit's over all annotated songs.")),
)


@dataclass(frozen=True)
class ReportParams:
    after: tuple[str, ...] = ("tokens",)   # the recipe's final stage(s); the report covers their closure
    title: str = "emoprep dataset report"
    hexbin_above: int = 2000               # VA scatter becomes a hexbin above this many points per modality
    examples_per_reason: int = 3           # sample ids + messages shown per reject reason
    # How the recipe's data differs from the paper(s) it follows: one sentence each, repeated
    # in the dataset card and the page (the recipe file opens with this list).
    deviations: tuple[str, ...] = ()
    # A `*-published` recipe names the corrected recipe it departs from; the report then has a
    # section "as published vs corrected" (what each difference changes, from the manifests).
    compare_with: str = ""
    thesis_counts: bool = False            # set each count the thesis reports beside this run's


class Report(Stage[ReportParams]):
    name = "report"
    version = "4"  # bump when the report's bytes change for the same stage folders
    libraries = ("huggingface_hub", "jinja2", "matplotlib", "numpy", "pandas", "pyarrow", "pydantic", "pyyaml")
    description = "HTML report, report.json, dataset card and recipe of everything upstream"
    parallel = False
    Params = ReportParams

    def inputs(self, params: ReportParams) -> list[str]:
        if not params.after:
            raise ConfigError("report.after is empty: name the recipe's final stage(s), e.g. after = [\"tokens\"]")
        return list(params.after)

    def on_current(self, out_root: Path, stage_dir: Path) -> None:
        """`<out>/report/` always shows the current report folder, also when a run switches
        back to an earlier, up-to-date one."""
        files = {p.name: p.read_bytes() for p in sorted(stage_dir.iterdir())
                 if p.is_file() and not p.name.startswith(("_", "."))
                 and p.name not in ("manifest.parquet", "rejects.parquet")}
        publish(stage_dir.parent, files)

    def run(self, ctx: StageContext[ReportParams]) -> Outcome:
        start = {name: ctx.rel(path) for name, path in sorted(ctx.input_dirs.items())}
        files = build_files(ctx.out_root, upstream_closure(ctx.out_root, start), ctx.params, timings=False,
                            catalog=ctx.catalog)
        for name, data in sorted(files.items()):
            atomic_write_bytes(ctx.out_dir / name, data)
        n_figs = sum(1 for n in files if n.endswith(".png"))
        ctx.info(f"report: {n_figs} figures, {ctx.rel(ctx.out_dir.parent / 'index.html')}")
        return Outcome(counters={"figures": n_figs})


# ---------------------------------------------------------------- building

@dataclass(frozen=True)
class PlotInputs:
    """What the figures need beyond report.json's numbers: the label rows, the image rows
    with their category, the audited songs and the lengths the recipe acts on."""

    labels: pd.DataFrame | None
    categories: pd.DataFrame | None
    category_column: str | None
    audit_songs: pd.DataFrame | None
    duration_markers: list[tuple[float, str]]


def build_numbers(view: RunView, params: ReportParams,
                  catalog: StageCatalog | None = None) -> tuple[ReportJson, PlotInputs]:
    """(report.json content without `figures` and `warnings`, plot inputs); `catalog` reads
    `compare_with`."""
    from emoprep.manifests import report_json as models
    from emoprep.stages.report import stats as rn

    label_stage, labels = rn.label_frame(view)
    splits = rn.split_section(view, labels)
    emotions = rn.emotion_counts(labels, splits.names)
    column, cat_stage, cats = rn.category_frame(view, labels)
    r = models.ReportJson.model_validate({
        "format": models.FORMAT, "version": models.VERSION, "title": params.title, "stages": rn.stage_rows(view),
        "labels": models.Labels(stage=label_stage, by_modality=rn.label_summary(labels)),
        "normalisation": rn.normalisation(view), "emotions": emotions, "splits": splits,
        "categories": models.Categories(column=column, stage=cat_stage, by_category=rn.category_summary(cats)),
        "durations": rn.durations(view), "chunks_per_song": rn.chunks_per_song(view),
        "rejects": rn.reject_summary(view, params.examples_per_reason),
        "audit": rn.audits(view), "weights": rn.weights(view), "deviations": list(params.deviations),
        "published": published.comparison(view, params.compare_with, catalog),
        "thesis_counts": published.thesis_counts(view) if params.thesis_counts else [],
        "figures": [], "warnings": []})
    audit_stage = r.audit[0].stage if r.audit else None
    plot_inputs = PlotInputs(labels=labels, categories=cats, category_column=column,
                             audit_songs=view.manifest(audit_stage) if audit_stage else None,
                             duration_markers=duration_markers(view))
    return r, plot_inputs


def duration_markers(view: RunView) -> list[tuple[float, str]]:
    """Lengths the recipe acts on: the clip target (longer songs rejected under 'pad') and
    the shortest song that gives a chunk (start_s + pad_tail_min_s)."""
    out: list[tuple[float, str]] = []
    clips = view.stages.get("clips")
    if clips and isinstance(clips.params.get("target_s"), (int, float)):
        out.append((float(clips.params["target_s"]), f"clips: {clips.params['target_s']} s target"))
    chunks = view.stages.get("chunks")
    if chunks and all(isinstance(chunks.params.get(k), (int, float)) for k in ("start_s", "pad_tail_min_s")):
        x = float(chunks.params["start_s"]) + float(chunks.params["pad_tail_min_s"])
        out.append((x, f"chunks: shortest song that gives a chunk ({x:g} s)"))
    return out


def draw_figures(r: ReportJson, inputs: PlotInputs, params: ReportParams) -> dict[str, bytes]:
    """key -> PNG bytes for every figure whose data exists."""
    from emoprep.stages.report import plots as rp
    from emoprep.stages.report.canvas import style, to_png

    builders: dict[str, Callable[[], Figure | None]] = {
        "stage_counts": lambda: rp.stage_counts_plot(r.stages),
        "va_scatter": lambda: rp.va_scatter(inputs.labels, params.hexbin_above),
        "va_by_emotion": lambda: rp.va_by_emotion(inputs.labels, r.emotions.classes),
        "va_by_category": lambda: rp.va_by_category(inputs.categories, inputs.category_column),
        "emotion_counts": lambda: rp.emotion_counts_plot(r.emotions),
        "durations": lambda: rp.duration_hist(r.durations, inputs.duration_markers),
        "chunks_per_song": lambda: rp.chunks_hist(r.chunks_per_song),
        "rejects": lambda: rp.rejects_plot(r.rejects, [s.name for s in r.stages]),
        "audit": lambda: rp.audit_plot(inputs.audit_songs, r.audit[0]) if r.audit else None,
    }
    out = {}
    with style():
        for key, _title, _caption in FIGURES:
            fig = builders[key]()
            if fig is not None:
                out[key] = to_png(fig)
    return out


def timings_of(view: RunView) -> Timings:
    """Per stage: what `_DONE.json` "run" recorded for the run that built it."""
    from emoprep.manifests import report_json as models

    rows: list[models.StageTiming] = []
    for name, st in view.stages.items():
        run = st.done.get("run") or {}
        rows.append(models.StageTiming.model_validate({
            "name": name, "seconds": num(run.get("seconds"), 3), "resumed_items": num(run.get("resumed_items")),
            "executor": run.get("executor"), "workers": num(run.get("workers"))}))
    total = sum(float(t.seconds or 0) for t in rows)
    return models.Timings(stages=rows, total_seconds=round(total, 3),
                          note="seconds each stage took in the run that built its folder (_DONE.json 'run')")


def dumps(obj: object) -> bytes:
    return (json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def build_files(out_root: Path, dirs: dict[str, str], params: ReportParams, timings: bool,
                catalog: StageCatalog | None = None) -> dict[str, bytes]:
    """Every file of the report (name -> bytes). Without `timings` the result depends only
    on the contents of the stage folders in `dirs`."""
    from emoprep.manifests import report_json as models
    from emoprep.stages.report import card, page

    view = load_view(out_root, dirs)
    numbers, inputs = build_numbers(view, params, catalog)
    pngs = draw_figures(numbers, inputs, params)
    figures = [models.FigureEntry(file=f"{k}.png", title=t, caption=c) for k, t, c in FIGURES if k in pngs]
    r = numbers.model_copy(update={"figures": figures, "warnings": sorted(set(view.warnings))})
    tim = timings_of(view).model_dump(mode="json") if timings else None
    data = r.model_dump(mode="json")
    files = {f"{k}.png": png for k, png in pngs.items()}
    files.update({
        "report.json": dumps(data),
        "report.schema.json": dumps(models.schema()),
        "SCHEMA.md": models.schema_markdown().encode("utf-8"),
        "DATASET.md": card.dataset_card(data).encode("utf-8"),
        "recipe.toml": card.recipe_toml(data).encode("utf-8"),
        "index.html": page.render(data, pngs, tim).encode("utf-8"),
    })
    if tim is not None:
        files["timings.json"] = dumps(tim)
    return files


def publish(dest: Path, files: dict[str, bytes]) -> None:
    """Make `dest`'s top-level files exactly `files` (each written atomically); subfolders
    (the stage's fingerprint folders) are left alone."""
    dest.mkdir(parents=True, exist_ok=True)
    for p in dest.iterdir():
        if p.is_file() and p.name.startswith(TMP_PREFIX):
            p.unlink(missing_ok=True)
    for name, data in sorted(files.items()):
        if not (dest / name).is_file() or (dest / name).read_bytes() != data:
            atomic_write_bytes(dest / name, data)
    for p in sorted(dest.iterdir()):
        if p.is_file() and p.name not in files and not p.name.startswith("."):
            p.unlink(missing_ok=True)


# ---------------------------------------------------------------- the command

def report_params(out_root: Path, current: dict[str, str]) -> ReportParams:
    """The report stage's parameters from its last build (title, thresholds), else defaults."""
    from emoprep.pipeline.recipe import build_params

    done = read_done(out_root / current["report"]) if "report" in current else None
    saved = ((done or {}).get("components") or {}).get("params") or {}
    known = {f.name for f in dataclasses.fields(ReportParams)}
    try:
        params: ReportParams = build_params(ReportParams, {k: v for k, v in saved.items() if k in known}, "report")
    except ConfigError:
        return ReportParams()
    return params


def build_report(out_root: Path, catalog: StageCatalog | None = None) -> Path:
    """`emoprep report`: re-render `<out>/report/` from every current stage, with run
    timings. Raises ConfigError (exit 2) when there is nothing to report."""
    out_root = Path(out_root)
    current = current_stages(out_root)
    dirs = {k: v for k, v in current.items() if k != "report"}
    if not dirs:
        raise ConfigError(f"nothing to report in {out_root}: no finished stage in manifests/_current.json; "
                          f"run `emoprep run --out {out_root}` first")
    if all(read_done(out_root / rel) is None for rel in dirs.values()):
        raise ConfigError(f"nothing to report in {out_root}: manifests/_current.json names stage folders "
                          "that hold no _DONE.json (removed?); re-run `emoprep run`")
    files = build_files(out_root, dirs, report_params(out_root, current), timings=True, catalog=catalog)
    dest = out_root / "report"
    publish(dest, files)
    return dest / "index.html"
