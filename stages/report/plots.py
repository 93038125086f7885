"""The report's figures, each a function of report.json's numbers (and the label rows) to a
matplotlib figure, drawn on `canvas.py`'s Agg figures in its fixed style.

Deterministic: inputs in a fixed order, fixed sizes and colours. Every builder returns None
when its data is absent, so a recipe without audio or images simply has fewer figures. Axes
say what they show and on which scale.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from emoprep.manifests.report_json import Audit, ChunksPerSong, Durations, Emotions, Rejects, StageRow
from emoprep.pipeline.lazy import np, npt, pd
from emoprep.stages.report.canvas import colours, integer_axis, new_figure, point_style, solid_legend
from emoprep.stages.report.stats import modality_name

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

VA_LABELS = ("valence (normalised, −1 … 1)", "arousal (normalised, −1 … 1)")
VA_LIM = (-1.08, 1.08)
SLOPE_BANDS = (0.66, 0.33, -0.33, -0.66)  # thesis eq. 2.1 class boundaries (slope = a / v)


def va_axes(ax: Axes, xlabel: bool = True, ylabel: bool = True) -> None:
    """Square [-1, 1] VA axes with the zero lines, labelled with the scale."""
    ax.set_xlim(*VA_LIM)
    ax.set_ylim(*VA_LIM)
    ax.set_aspect("equal")
    ax.set_xticks([-1, -0.5, 0, 0.5, 1])
    ax.set_yticks([-1, -0.5, 0, 0.5, 1])
    ax.axhline(0, color="0.5", lw=0.8, zorder=0)
    ax.axvline(0, color="0.5", lw=0.8, zorder=0)
    if xlabel:
        ax.set_xlabel(VA_LABELS[0])
    if ylabel:
        ax.set_ylabel(VA_LABELS[1])


# ---------------------------------------------------------------- VA figures

def va_scatter(df: pd.DataFrame | None, hexbin_above: int) -> Figure | None:
    """Thesis figs 2.1/2.2: one panel per modality; a log-count hexbin above `hexbin_above`
    points (DEAM chunks: ~10k), else a scatter coloured by dataset."""
    if df is None or not len(df):
        return None
    mods = sorted(df["modality"].unique())
    fig = new_figure(4.6 * len(mods) + 0.6, 4.8)
    axes = fig.subplots(1, len(mods), squeeze=False)[0]
    ax: Axes
    for ax, m in zip(axes, mods, strict=True):
        g = df[df["modality"] == m].dropna(subset=["valence", "arousal"])
        datasets = sorted(g["dataset"].unique())
        if len(g) > hexbin_above:
            hb = ax.hexbin(g["valence"], g["arousal"], gridsize=40, extent=(-1, 1, -1, 1), mincnt=1,
                           bins="log", cmap="viridis", linewidths=0)
            fig.colorbar(hb, ax=ax, shrink=0.8, label="samples per hexagon (log scale)")
        else:
            for c, d in zip(colours("tab10", len(datasets)), datasets, strict=True):
                gd = g[g["dataset"] == d]
                ax.scatter(gd["valence"], gd["arousal"], color=c, edgecolors="none",
                           label=f"{d} (n={len(gd):,})", **point_style(len(g)))
            solid_legend(ax.legend(loc="lower right", framealpha=0.9))
        va_axes(ax)
        ax.set_title(f"{modality_name(m)}: {', '.join(datasets)} — {len(g):,} samples")
    fig.suptitle("Valence–arousal distribution per modality (cf. thesis figs 2.1, 2.2)")
    return fig


def slope_lines(ax: Axes) -> None:
    """The eq. 2.1 class boundaries: lines through the origin with slopes ±0.33, ±0.66."""
    v = np.array([-1.1, 1.1])
    for s in SLOPE_BANDS:
        ax.plot(v, s * v, color="0.6", lw=0.7, ls="--", zorder=0)


def va_by_emotion(df: pd.DataFrame | None, classes: Sequence[str]) -> Figure | None:
    """Each modality's samples coloured by emotion class, with the slope bands of eq. 2.1."""
    if df is None or "emotion" not in df or not len(df):
        return None
    mods = sorted(df["modality"].unique())
    palette = dict(zip(classes, colours("tab20", len(classes)), strict=True))
    fig = new_figure(4.6 * len(mods) + 1.8, 4.8)
    axes = fig.subplots(1, len(mods), squeeze=False)[0]
    ax: Axes
    for i, (ax, m) in enumerate(zip(axes, mods, strict=True)):
        g = df[df["modality"] == m].dropna(subset=["valence", "arousal"])
        slope_lines(ax)
        for cls in classes:
            gc = g[g["emotion"].astype(str) == cls]
            if len(gc):
                ax.scatter(gc["valence"], gc["arousal"], color=palette[cls], edgecolors="none",
                           label=f"{cls} ({len(gc):,})", **point_style(len(g)))
        va_axes(ax, ylabel=(i == 0))
        ax.set_title(f"{modality_name(m)} — {len(g):,} samples")
        solid_legend(ax.legend(loc="center left", bbox_to_anchor=(1.01, 0.5), title="class (n)", frameon=False))
    fig.suptitle("Emotion classes (thesis eq. 2.1: slope = arousal / valence; dashed: class boundaries)")
    return fig


def va_by_category(df: pd.DataFrame | None, column: str | None, max_panels: int = 12) -> Figure | None:
    """Thesis fig 2.3: one small panel per image category (largest first), its images in
    colour over all images in grey, the category mean as a black cross."""
    if df is None or not len(df):
        return None
    counts = df["category"].value_counts()
    order = sorted(counts.index, key=lambda c: (-counts[c], c))
    if len(order) > max_panels:
        rest = set(order[max_panels - 1:])
        df = df.assign(category=[("other" if c in rest else c) for c in df["category"]])
        order = [*order[: max_panels - 1], "other"]
    ncols = min(4, len(order))
    nrows = math.ceil(len(order) / ncols)
    fig = new_figure(2.9 * ncols + 0.4, 3.2 * nrows + 0.9)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharex=True, sharey=True)
    pal = colours("tab10" if len(order) <= 10 else "tab20", len(order))
    ax: Axes
    for k, ax in enumerate(axes.flat):
        if k >= len(order):
            ax.set_visible(False)
            continue
        cat = order[k]
        g = df[df["category"] == cat]
        ax.scatter(df["valence"], df["arousal"], s=6, color="0.75", edgecolors="none", zorder=1)
        ax.scatter(g["valence"], g["arousal"], color=pal[k], edgecolors="none", zorder=2, **point_style(len(g)))
        ax.scatter([g["valence"].mean()], [g["arousal"].mean()], marker="X", s=60, color="black", zorder=3)
        va_axes(ax, xlabel=(k // ncols == nrows - 1), ylabel=(k % ncols == 0))
        ax.set_title(f"{cat} (n={len(g):,})")
    fig.suptitle(f"Images: valence–arousal by {column or 'category'} (cf. thesis fig 2.3; "
                 "grey: all images, ✕: category mean)")
    return fig


# ---------------------------------------------------------------- counts

def emotion_counts_plot(ec: Emotions) -> Figure | None:
    """Bars of each class per split, one row of panels per modality."""
    counts = ec.counts
    if not counts:
        return None
    classes = ec.classes
    mods = list(counts)
    fig = new_figure(9.0, 3.0 * len(mods) + 0.6)
    axes = fig.subplots(len(mods), 1, squeeze=False)[:, 0]
    ax: Axes
    for ax, mod in zip(axes, mods, strict=True):
        splits = list(counts[mod])
        width = 0.8 / max(len(splits), 1)
        x = np.arange(len(classes))
        for j, (s, c) in enumerate(zip(splits, colours("tab10", len(splits)), strict=True)):
            h = [counts[mod][s].get(cls, 0) for cls in classes]
            bars = ax.bar(x - 0.4 + width * (j + 0.5), h, width, color=c,
                          label=f"{s} (n={sum(h):,})")
            if len(classes) * len(splits) <= 48:
                ax.bar_label(bars, labels=[str(v) if v else "" for v in h], fontsize=7, padding=1)
        ax.set_xticks(x)
        ax.set_xticklabels(classes, rotation=30, ha="right")
        ax.set_ylabel("samples")
        integer_axis(ax.yaxis)
        ax.set_title(f"{mod}: emotion class counts per split")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
        ax.margins(y=0.15)
    fig.suptitle("Emotion classes per split")
    return fig


def duration_hist(durations: dict[str, Durations], markers: Sequence[tuple[float, str]]) -> Figure | None:
    """Histogram of audio durations per ingest stage (1 s bins to 60 s, then 10 s)."""
    if not durations:
        return None
    names = list(durations)
    fig = new_figure(8.0, 3.0 * len(names) + 0.4)
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    ax: Axes
    for ax, name in zip(axes, names, strict=True):
        d = durations[name]
        counts = np.asarray(d.histogram.counts, dtype=float)
        edges = np.asarray(d.histogram.edges_s, dtype=float)
        ax.stairs(counts, edges, fill=True, color="tab:blue", alpha=0.8, label=f"{d.n:,} songs")
        nz = counts[counts > 0]
        if len(nz) and nz.max() / nz.min() > 50:
            ax.set_yscale("log")
            ax.set_ylabel("songs (log scale)")
        else:
            ax.set_ylabel("songs")
            integer_axis(ax.yaxis)
        for (x, label), c in zip(markers, colours("Set1", len(markers)), strict=True):
            ax.axvline(x, color=c, ls="--", lw=1, label=label)
        ax.set_xlabel("duration (s)")
        ax.legend(loc="best")
        ax.set_title(f"{name}: audio durations (min {d.min_s:.1f} s, median {d.median_s:.1f} s, "
                     f"max {d.max_s:.1f} s)")
    return fig


def chunks_hist(cps: dict[str, ChunksPerSong]) -> Figure | None:
    """Songs by the number of chunks they gave (0 = none kept)."""
    if not cps:
        return None
    names = list(cps)
    fig = new_figure(7.0, 2.8 * len(names) + 0.4)
    axes = fig.subplots(len(names), 1, squeeze=False)[:, 0]
    ax: Axes
    for ax, name in zip(axes, names, strict=True):
        c = cps[name]
        ks = [int(k) for k in c.histogram]
        vs = [c.histogram[str(k)] for k in ks]
        bars = ax.bar(ks, vs, color=["tab:red" if k == 0 else "tab:blue" for k in ks], width=0.7)
        ax.bar_label(bars, padding=1, fontsize=7)
        ax.set_xticks(range(max(ks) + 1) if max(ks) <= 30 else ax.get_xticks())
        ax.set_xlabel("chunks per song (red: songs that gave none)")
        ax.set_ylabel("songs")
        integer_axis(ax.yaxis)
        ax.set_title(f"{name}: {c.chunks:,} chunks from {c.songs:,} songs")
        ax.margins(y=0.15)
    return fig


def stage_counts_plot(stages: list[StageRow]) -> Figure | None:
    """Kept rows and rejects per stage (DAG order, top to bottom), log scale, numbers shown."""
    if not stages:
        return None
    names = [s.name for s in stages]
    y = np.arange(len(names))
    fig = new_figure(8.0, 0.5 * len(names) + 1.4)
    ax = fig.subplots()
    bars_of: tuple[tuple[float, Literal["rows", "rejects"], str, str], ...] = (
        (-0.2, "rows", "tab:blue", "kept (manifest rows)"), (0.2, "rejects", "tab:red", "rejected"))
    for off, key, c, label in bars_of:
        vals = [getattr(s, key) or 0 for s in stages]
        bars = ax.barh(y + off, [v if v > 0 else np.nan for v in vals], 0.38, color=c, label=label)
        ax.bar_label(bars, labels=[f"{v:,}" if v else "0" for v in vals], padding=2, fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels(names)
    ax.invert_yaxis()
    ax.set_xscale("log")
    top = max([s.rows or 0 for s in stages] + [s.rejects or 0 for s in stages] + [1])
    ax.set_xlim(0.8, top * 4)
    ax.set_xlabel("samples (log scale)")
    ax.set_title("Per-stage counts (inputs = kept + rejected)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), frameon=False)
    return fig


def rejects_plot(rejects: Rejects, stage_order: Sequence[str]) -> Figure | None:
    """Rejects per reason code, stacked by the stage that rejected."""
    rows = rejects.by_reason
    if not rows:
        return None
    stages = [s for s in stage_order if any(s in r.by_stage for r in rows)]
    stages += sorted({s for r in rows for s in r.by_stage} - set(stages))
    pal = dict(zip(stages, colours("tab10", len(stages)), strict=True))
    y = np.arange(len(rows))
    fig = new_figure(8.0, 0.42 * len(rows) + 1.4)
    ax = fig.subplots()
    left = np.zeros(len(rows))
    for s in stages:
        vals = np.array([r.by_stage.get(s, 0) for r in rows], dtype=float)
        ax.barh(y, vals, 0.6, left=left, color=pal[s], label=s)
        left += vals
    for yi, total in zip(y, left, strict=True):
        ax.text(total, float(yi), f" {int(total):,}", va="center", fontsize=8)
    ax.set_yticks(y)
    ax.set_yticklabels([r.reason for r in rows])
    ax.invert_yaxis()
    ax.set_xlim(0, left.max() * 1.15 + 0.5)
    ax.set_xlabel("rejected inputs")
    integer_axis(ax.xaxis)
    ax.set_title(f"Rejects by reason ({rejects.total:,} in all; colour: stage)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), title="stage", frameon=False)
    return fig


# ---------------------------------------------------------------- annotation audit

def song_means(values: npt.ArrayLike | None) -> float:
    a = np.asarray(values if values is not None else [], dtype=float)
    a = a[np.isfinite(a)]
    return float(a.mean()) if len(a) else math.nan


def audit_plot(songs: pd.DataFrame | None, audit: Audit) -> Figure | None:
    """Per id block: each song's static valence *as in the CSV* against the mean of its
    dynamic valence (blue) and dynamic arousal (orange). A straight block follows blue, a
    crossed one orange; r values are the audit's (all annotated songs)."""
    need = {"song_id", "static_valence_file", "dyn_valence", "dyn_arousal"}
    blocks = [b for b in audit.blocks if b.get("kind") in ("standard", "given")]
    if songs is None or not need <= set(songs.columns) or not blocks:
        return None
    s = pd.DataFrame({"song_id": pd.to_numeric(songs["song_id"], errors="coerce"),
                      "sv": pd.to_numeric(songs["static_valence_file"], errors="coerce"),
                      "dv": [song_means(v) for v in songs["dyn_valence"]],
                      "da": [song_means(v) for v in songs["dyn_arousal"]]})
    fig = new_figure(3.6 * len(blocks) + 0.4, 3.9)
    axes = fig.subplots(1, len(blocks), squeeze=False, sharey=True)[0]
    ax: Axes
    for i, (ax, b) in enumerate(zip(axes, blocks, strict=True)):
        g = s[(s["song_id"] >= b["id_min"]) & (s["song_id"] <= b["id_max"])].dropna(subset=["sv"])
        st = point_style(len(g))
        ax.scatter(g["sv"], g["dv"], color="tab:blue", marker="o", edgecolors="none", **st,
                   label=f"dynamic valence (r = {fmt_r(b.get('r_sv_dv'))})")
        ax.scatter(g["sv"], g["da"], color="tab:orange", marker="^", edgecolors="none", **st,
                   label=f"dynamic arousal (r = {fmt_r(b.get('r_sv_da'))})")
        verdict = str(b.get("verdict"))
        fixed = " → swapped back" if b.get("fixed") else ""
        ax.set_title(f"ids {b['id_min']}–{b['id_max']} ({b.get('n')} songs): {verdict}{fixed}",
                     color="tab:red" if verdict == "crossed" else "black")
        ax.set_xlabel("static 'valence' as in the CSV (1–9 scale)")
        if i == 0:
            ax.set_ylabel("song mean of dynamic rating (−1 … 1 scale)")
        ax.set_ylim(-1.05, 1.05)
        solid_legend(ax.legend(loc="upper left", fontsize=7, framealpha=0.9), size=20)
    fig.suptitle("DEAM annotation audit: static valence column vs mean dynamic ratings, per id block")
    return fig


def fmt_r(r: float | None) -> str:
    return "n/a" if r is None or (isinstance(r, float) and not math.isfinite(r)) else f"{float(r):+.2f}"
