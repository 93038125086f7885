"""The `emoprep` command line (typer). Exit codes: 0 ok, 1 data/validation, 2 usage/config."""
from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from emoprep.pipeline.errors import ConfigError, EmoprepError

if TYPE_CHECKING:
    from emoprep.pipeline.runner import PlannedStage, StageSummary

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="emoprep",
    no_args_is_help=True,
    add_completion=True,
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
)
err = Console(stderr=True, soft_wrap=True)  # messages stay on one line (grep-able)
# Tables keep their columns when piped to a file or CI log (rich would assume 80 columns).
out = Console(width=None if sys.stdout.isatty() else 140)

OUT_HELP = "Output root: one folder per stage and fingerprint, manifests/, logs/."
RECIPE_HELP = "A shipped recipe (thesis-v3, thesis-v12, ...) or a TOML file."
SET_HELP = "Override one recipe parameter, e.g. [cyan]--set spectrogram.keep_fullres=true[/] (repeatable)."
DATA_HELP = ("Folder searched for each dataset the recipe needs: one holding MEMD_audio/ is DEAM, "
             "one holding the FoodPics ratings sheet and images is FoodPics.")


def command(name: str | None = None) -> Callable[[F], F]:
    """`app.command`, with the docstring's paragraphs reflowed: rich keeps a docstring's line
    breaks, which made ragged lines in `--help` at any terminal width."""
    def decorate(fn: F) -> F:
        paragraphs = inspect.cleandoc(fn.__doc__ or "").split("\n\n")
        app.command(name, help="\n\n".join(" ".join(p.split()) for p in paragraphs))(fn)
        return fn
    return decorate


def without_flag_types(cmd: Any) -> Any:
    """Show no `<bool>` type after on/off flags (typer prints every option's type)."""
    for param in cmd.params:
        if getattr(param, "is_flag", False):
            param.metavar = ""
    make_help_option = cmd.get_help_option

    def help_option(ctx: Any) -> Any:
        option = make_help_option(ctx)
        if option is not None:
            option.metavar = ""
        return option

    cmd.get_help_option = help_option
    for sub in getattr(cmd, "commands", {}).values():
        without_flag_types(sub)
    return cmd


Executor = Literal["local", "inline", "dask"]
Device = Literal["auto", "cpu", "cuda"]
ExportFormat = Literal["hf", "webdataset"]
ProbeTarget = Literal["va", "emotion", "both"]
ProbeModel = Literal["ridge", "mlp"]


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            out.print(f"emoprep {version('emoprep')}", highlight=False)
        except PackageNotFoundError:  # a source tree that was never installed
            out.print("emoprep (not installed)", highlight=False)
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    """Turn emotion-annotated music (DEAM, PMEmo) and image (FoodPics) datasets into
    train-ready token stores. With no data configured, runs on the embedded demo dataset."""


def _fail(exc: EmoprepError) -> NoReturn:
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(exc.exit_code)


@command()
def run(
    stage: str | None = typer.Option(None, "--stage", help="Run the DAG up to and including this stage."),
    recipe: str | None = typer.Option(None, "--recipe", help=RECIPE_HELP),
    data_root: Path | None = typer.Option(None, "--data-root", help=DATA_HELP),
    out_root: Path = typer.Option(Path("emoprep-out"), "--out", help=OUT_HELP),
    force: bool = typer.Option(False, "--force", help="Rebuild the selected stages even if up to date."),
    executor: Executor = typer.Option("local", "--executor", help="local (process pool), inline, or dask."),
    scheduler: str | None = typer.Option(None, "--scheduler", help="dask scheduler address (tcp://HOST:PORT)."),
    workers: int = typer.Option(0, "--workers", help="Worker processes (0 = one per CPU core)."),
    device: Device = typer.Option("auto", "--device", help="auto (CUDA when present), cpu or cuda."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show what would run and why, do nothing."),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help="Exit 2 instead of waiting when another run holds --out."),
    max_reject_ratio: float | None = typer.Option(
        None, "--max-reject-ratio", help="Fail (exit 1) when a stage rejects more than this fraction of its inputs."),
    weights: Path | None = typer.Option(
        None, "--weights", help="Model weights folder (safetensors) for the tokenizer; default: the local HF "
                                "cache, else a seeded random init (warned and recorded)."),
    allow_random_init: bool = typer.Option(
        False, "--allow-random-init", help="On real data, tokenize with a seeded random init when the pretrained "
                                           "weights are missing (default: exit 2 saying how to get them)."),
    item_timeout: float = typer.Option(
        1800.0, "--item-timeout", help="Seconds one item may run in a worker before it becomes a `timeout` reject "
                                       "and the worker is replaced (0 = no limit; local executor)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings, errors and the summary."),
) -> None:
    """Run the recipe's DAG (or up to [cyan]--stage[/]); up-to-date stages are skipped and say why."""
    from emoprep import commands
    from emoprep.pipeline.runlog import RunLog

    out_root = out_root.resolve()
    try:
        all_sets = commands.with_weights(sets, weights)
        if dry_run:
            rec, plan = commands.plan_run(recipe, all_sets, out_root, data_root, stage, device, allow_random_init,
                                          RunLog(None, console=err, quiet=quiet))
            _print_plan(plan, title=f"plan (dry run) — recipe {rec.name}")
            return
        summaries = commands.run_dag(recipe, all_sets, out_root, data_root, stage, executor, workers, scheduler,
                                     device, force, max_reject_ratio, allow_random_init, wait=not no_wait,
                                     quiet=quiet, console=err, item_timeout=item_timeout)
        _print_summary(summaries, out_root)
    except EmoprepError as exc:
        _fail(exc)
    except OSError as exc:
        from emoprep.pipeline.runner import ENVIRONMENT_ERRNOS
        if exc.errno not in ENVIRONMENT_ERRNOS:
            raise
        _fail(EmoprepError(f"{exc.strerror} while writing {exc.filename or out_root}: free space and run "
                           "the same command again (finished items are kept, earlier outputs are intact)"))
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: finished items are committed; run the same command to resume")
        raise typer.Exit(130) from None


@command()
def status(
    recipe: str | None = typer.Option(None, "--recipe", help=RECIPE_HELP),
    stage: str | None = typer.Option(None, "--stage", help="Only the DAG up to this stage."),
    data_root: Path | None = typer.Option(None, "--data-root", help=DATA_HELP),
    out_root: Path = typer.Option(Path("emoprep-out"), "--out", help=OUT_HELP),
    sets: list[str] = typer.Option([], "--set", help=SET_HELP),
    weights: Path | None = typer.Option(None, "--weights", help="As for run: weights decide token fingerprints."),
    json_out: bool = typer.Option(False, "--json", help="Print the stages as JSON instead of a table."),
) -> None:
    """Every stage of the recipe: done / stale (and what changed) / in progress / missing.
    Exits 1 when any stage is not done (as `dvc status` scripts expect), 0 when all are.
    Without flags, judges what the runs into [cyan]--out[/] built, with their recipe, data
    root and --set values (recorded in run.json); a flag overrides its part."""
    from emoprep import commands

    out_root = out_root.resolve()
    try:
        rec, plan = commands.plan_status(out_root, recipe, commands.with_weights(sets, weights), data_root, stage)
    except EmoprepError as exc:
        _fail(exc)
    if json_out:
        import json  # plain stdout: rich would wrap long lines inside strings

        sys.stdout.write(json.dumps(commands.plan_as_json(rec, out_root, plan), indent=2) + "\n")
    else:
        _print_plan(plan, title=f"status — recipe {rec.name}, output {out_root}")
    if any(ps.status != "done" for ps in plan):
        raise typer.Exit(1)


@command()
def validate(
    out_root: Path = typer.Option(Path("emoprep-out"), "--out", help=OUT_HELP),
    require_pretrained: bool = typer.Option(
        False, "--require-pretrained", help="Fail when any token set was made with random-init weights."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the report as JSON here."),
) -> None:
    """Check the token stores against the manifests (shapes, dtypes, finite values, VA in
    [-1, 1], modality flags, ids both ways, unique ids, split disjoint by song, shard
    checksums); exit 1 naming the offenders."""
    import json

    from emoprep.manifests.validate import render_table
    from emoprep.manifests.validate import validate as run_validate

    out_root = out_root.resolve()
    if not (out_root / "manifests").is_dir():
        _fail(ConfigError(f"{out_root} holds no manifests/: run `emoprep run --out {out_root}` first"))
    report = run_validate(out_root, require_pretrained=require_pretrained)
    render_table(report, console=out)
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2, sort_keys=True) + "\n")
    if not report.ok:
        err.print(f"[bold red]validation failed[/]: {len(report.failures)} check(s) failed")
        raise typer.Exit(1)


@command()
def report(
    out_root: Path = typer.Option(Path("emoprep-out"), "--out", help=OUT_HELP),
    no_wait: bool = typer.Option(False, "--no-wait", help="Exit 2 instead of waiting when a run holds --out."),
) -> None:
    """(Re)build [cyan]report/[/] (index.html with plots, report.json, DATASET.md) from every
    finished stage, with run timings; prints where it is."""
    from emoprep.composition import stage_catalog
    from emoprep.pipeline.lock import OutputLock
    from emoprep.stages.report.stage import build_report

    out_root = out_root.resolve()
    try:
        if not (out_root / "manifests").is_dir():
            raise ConfigError(f"nothing to report: {out_root} holds no manifests/; "
                              f"run `emoprep run --out {out_root}` first")
        with OutputLock(out_root, wait=not no_wait, on_wait=lambda m: err.print(f"[yellow]{m}[/]")):
            index = build_report(out_root, stage_catalog())
    except EmoprepError as exc:
        _fail(exc)
    out.print(f"report: {index}", highlight=False, soft_wrap=True)
    out.print(f"open it offline: file://{index}  (numbers: {index.parent / 'report.json'}, "
              f"dataset card: {index.parent / 'DATASET.md'})", highlight=False, soft_wrap=True)


@command("export")
def export_cmd(
    dest: Path = typer.Argument(..., help="Folder to write (new, empty, or an earlier export)."),
    fmt: ExportFormat = typer.Option(..., "--format", help="hf (a Hugging Face dataset folder) or webdataset "
                                                           "(tar shards per split)."),
    out_root: str = typer.Option("emoprep-out", "--out", help="Output root of a run (a folder or an fsspec URL)."),
    tokenizers: list[str] = typer.Option([], "--tokenizer", help="Export this token store only (repeatable; "
                                                                 "default: every store of the output)."),
    splits: list[str] = typer.Option([], "--split", help="Export this split only (repeatable; default: all)."),
    shard_size: int = typer.Option(1000, "--shard-size", min=1, help="Samples per Parquet file or tar shard."),
    with_images: bool = typer.Option(False, "--with-images", help="webdataset: add each sample's source image "
                                                                  "as <key>.png."),
    push_to_hub: str | None = typer.Option(None, "--push-to-hub", metavar="REPO",
                                           help="Then upload DEST to this Hugging Face dataset repo (network)."),
    public: bool = typer.Option(False, "--public", help="With --push-to-hub: create the repo public "
                                                        "(default: private)."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Exit 2 instead of waiting when a run holds --out or DEST."),
) -> None:
    """Export the token stores to a Hugging Face dataset folder or WebDataset shards. Keyed
    like a stage: an up-to-date DEST is left alone, a killed export resumes."""
    from emoprep.manifests.export.step import export

    def part_done(rel: str, n: int, total: int) -> None:
        err.print(f"  {n}/{total} {rel}", highlight=False)

    try:
        if with_images and fmt != "webdataset":
            raise ConfigError("--with-images applies to --format webdataset only")
        result = export(out_root, dest, fmt, list(tokenizers) or None, list(splits) or None, shard_size,
                        with_images, wait=not no_wait, on_wait=lambda m: err.print(f"[yellow]{m}[/]"),
                        on_part=part_done)
        table = Table(title=f"export {fmt} → {result.dest}")
        for col in ("config", "split", "samples"):
            table.add_column(col)
        for config, counts in result.samples.items():
            for split, n in counts.items():
                table.add_row(config, split, str(n))
        out.print(table)
        if result.up_to_date:
            out.print(f"up to date (key {result.key}): nothing written", highlight=False)
        else:
            out.print(f"key {result.key}: {len(result.written)} part file(s) written, {len(result.reused)} kept "
                      f"from an interrupted export, {len(result.removed)} stale file(s) removed", highlight=False)
        if push_to_hub:
            from emoprep.manifests.export.hub import push_to_hub as push

            out.print(f"pushed: {push(result.dest, push_to_hub, private=not public)}", highlight=False)
    except EmoprepError as exc:
        _fail(exc)


@command("probe")
def probe_cmd(
    out_root: str = typer.Option("emoprep-out", "--out", help="Output root of a run (a folder or an fsspec URL)."),
    tokenizers: list[str] = typer.Option([], "--tokenizer", help="Probe this store only (repeatable; default: all)."),
    layers: list[str] = typer.Option([], "--layers", help="Probe these layers (repeatable or comma-separated; "
                                                          "default: every layer; single-layer stores: 'last')."),
    poolings: list[str] = typer.Option([], "--pooling", help="mean or cls (ViT), hist (EnCodec codes), stored "
                                                             "(pooled stores); default: each store's first."),
    target: ProbeTarget = typer.Option("va", "--target", help="va (valence and arousal), emotion, or both."),
    model: ProbeModel = typer.Option("ridge", "--model", help="ridge (scikit-learn) or mlp (torch)."),
    folds: int = typer.Option(5, "--folds", help="Grouped CV folds on train that choose the regularisation."),
    seed: int = typer.Option(0, "--seed", help="Seed of the folds, the random-features baseline, the MLP, the CI."),
    dest: Path | None = typer.Option(None, "--dest", help="Folder of the probes (default: OUT/probe)."),
    no_wait: bool = typer.Option(False, "--no-wait", help="Exit 2 instead of waiting when a run holds --out."),
) -> None:
    """Probe the token stores: ridge (or MLP) on frozen pooled tokens, per store, layer and
    modality, scored on the test split's songs; writes probe.json. Keyed like a stage."""
    from emoprep.stages.probe.plot import best_rows
    from emoprep.stages.probe.step import probe

    try:
        result = probe(out_root, list(tokenizers) or None, [x for v in layers for x in v.split(",") if x] or None,
                       list(poolings) or None, target, model, folds, seed, dest, wait=not no_wait,
                       on_wait=lambda m: err.print(f"[yellow]{m}[/]"),
                       on_progress=lambda m: err.print(f"  {m}", highlight=False))
    except EmoprepError as exc:
        _fail(exc)
    cols, rows = best_rows(result.doc)
    table = Table(title=f"probe ({model}, {folds} grouped folds, seed {seed}): test scores, item level")
    for col in cols:
        table.add_column(col)
    for row in rows:
        table.add_row(*row)
    out.print(table)
    state = "up to date, not recomputed" if result.up_to_date else "written"
    out.print(f"probe.json ({state}): {result.path}  (all records: pandas.DataFrame(json.load(f)['results']))",
              highlight=False, soft_wrap=True)


@command("demo-data")
def demo_data(directory: Path = typer.Argument(..., help="Folder to write the demo dataset into.")) -> None:
    """Write the small deterministic demo dataset (DEAM + FoodPics layouts, with their quirks)."""
    from emoprep.stages.demo.dataset import write_demo_data

    info = write_demo_data(directory)
    out.print(f"demo dataset written to {directory}: {info}")


@command()
def stages() -> None:
    """List the stages, their inputs and parameters (defaults)."""
    import dataclasses

    from emoprep.composition import stage_catalog

    table = Table(title="stages")
    for col in ("stage", "inputs", "parameters (default)"):
        table.add_column(col)
    for name, st in sorted(stage_catalog().items()):
        params = st.Params()
        desc = ", ".join(
            f"{f.name}={getattr(params, f.name)!r}{'*' if f.metadata.get('runtime') else ''}"
            for f in dataclasses.fields(params))
        table.add_row(name, ", ".join(st.inputs(params)) or "(raw data)", desc)
    out.print(table)
    out.print("* runtime knob: does not change outputs, not part of the fingerprint")


@command()
def recipes(show: str | None = typer.Option(None, "--show", help="Print one recipe's resolved parameters.")) -> None:
    """List the shipped recipes, or show one with every parameter resolved."""
    from emoprep.composition import stage_catalog
    from emoprep.pipeline.recipe import load_recipe, params_as_dict

    catalog = stage_catalog()
    try:
        if show:
            rec = load_recipe(show, catalog=catalog)
            out.print(f"[bold]{rec.name}[/]: {rec.description}\ntargets: {', '.join(rec.targets)}")
            from emoprep.pipeline.runner import Runner
            for name, _stage, params, inputs in Runner(rec, Path()).stage_order():
                out.print(f"\n[cyan][{name}][/]  # inputs: {', '.join(inputs) or 'raw data'}")
                for k, v in params_as_dict(params).items():
                    out.print(f"{k} = {v!r}", highlight=False)
            return
        for name in sorted(catalog.shipped_recipes()):
            rec = load_recipe(name, catalog=catalog)
            out.print(f"[bold]{name}[/]: {rec.description}  (targets: {', '.join(rec.targets)})")
    except EmoprepError as exc:
        _fail(exc)


def _print_plan(plan: list[PlannedStage], title: str) -> None:
    table = Table(title=title)
    for col in ("stage", "status", "fingerprint", "why"):
        table.add_column(col)
    colours = {"done": "green", "stale": "yellow", "in-progress": "cyan", "missing": "red"}
    for ps in plan:
        why = "; ".join(ps.reasons) if ps.reasons else ("up to date" if ps.status == "done" else "not built yet")
        table.add_row(ps.name, f"[{colours[ps.status]}]{ps.status}[/]", ps.sdir.fp, why)
    out.print(table)


def _print_summary(summaries: list[StageSummary], out_root: Path) -> None:
    table = Table(title=f"emoprep run — {out_root}")
    for col in ("stage", "status"):
        table.add_column(col, justify="left")
    for col in ("items", "kept", "rejected", "resumed", "seconds"):
        table.add_column(col, justify="right")
    table.add_column("top reject reasons", justify="left")
    for s in summaries:
        top = ", ".join(f"{k} {v}" for k, v in sorted(s.reasons.items(), key=lambda kv: -kv[1])[:3])
        table.add_row(s.name, s.status, str(s.items), str(s.rows), str(s.rejects), str(s.resumed),
                      f"{s.seconds:.1f}", top)
    out.print(table)
    out.print(f"manifests: {out_root / 'manifests'}  (rejects with reasons: manifests/rejects.parquet)")


def main() -> None:
    try:
        without_flag_types(typer.main.get_command(app))(prog_name="emoprep")
    except ConfigError as exc:  # raised before typer could map it
        _fail(exc)


if __name__ == "__main__":
    main()
