"""The probe's figure and summary for the report: score against layer per store, and a small
JSON the report can embed (`summary.json`: per store × pooling × modality × target, the
item-level score of each layer and of the two baselines).

Written next to probe.json (`probe.png`, `summary.json`); matplotlib with the Agg backend,
no timestamps in the PNG, so the same probe gives the same bytes.
"""
from __future__ import annotations

import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from emoprep.pipeline.atomic import atomic_write_bytes, atomic_write_text

BASELINES = ("mean", "random-features")


def summary(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Plain rows: {tokenizer, pooling, modality, target, metric, model, layers: [...],
    scores: [...], mean, random_features} at item level (R² for VA, macro-F1 for emotion)."""
    groups: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for r in doc["results"]:
        if r["level"] != "item":
            continue
        metric = "f1_macro" if r["target"] == "emotion" else "r2"
        g = groups.setdefault((r["tokenizer"], r["pooling"], r["modality"], r["target"]), {
            "tokenizer": r["tokenizer"], "pooling": r["pooling"], "modality": r["modality"], "target": r["target"],
            "metric": metric, "model": None, "layers": [], "scores": [], "mean": None, "random_features": None})
        if r["model"] in BASELINES:
            g["mean" if r["model"] == "mean" else "random_features"] = r[metric]
        else:
            g["model"] = r["model"]
            g["layers"].append(r["layer"])
            g["scores"].append(r[metric])
    return list(groups.values())


def _panels(rows: Iterable[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    panels: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in rows:
        panels.setdefault((row["tokenizer"], row["pooling"]), []).append(row)
    return panels


def plot_png(rows: list[dict[str, Any]]) -> bytes:
    """One panel per store × pooling: each modality × target's score over the layers (points
    joined by lines; a single-layer store is one point per line), baselines dotted."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = _panels(rows)
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(4.5 * max(len(panels), 1), 3.6), squeeze=False)
    for ax, ((tok, pooling), lines) in zip(axes[0], panels.items(), strict=False):
        for k, row in enumerate(lines):
            colour = f"C{k % 10}"
            xs = list(range(len(row["layers"])))
            ys = [float("nan") if s is None else s for s in row["scores"]]
            ax.plot(xs, ys, "o-", color=colour, label=f"{row['modality']} {row['target']} ({row['metric']})")
            if row["random_features"] is not None:
                ax.axhline(row["random_features"], color=colour, linestyle=":", linewidth=0.8)
        first = lines[0]["layers"] if lines else []
        ax.set_xticks(range(len(first)), [str(x) for x in first])
        ax.set_xlabel("layer")
        ax.set_ylabel("test score (item level)")
        ax.set_title(f"{tok} ({pooling})", fontsize=9)
        ax.axhline(0.0, color="grey", linewidth=0.5)
        ax.legend(fontsize=6)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def write_plot(doc: dict[str, Any], folder: Path) -> tuple[Path, Path]:
    """`probe.png` and `summary.json` in `folder`."""
    rows = summary(doc)
    png, js = folder / "probe.png", folder / "summary.json"
    atomic_write_bytes(png, plot_png(rows))
    atomic_write_text(js, json.dumps(rows, indent=1, sort_keys=True) + "\n")
    return png, js


def best_rows(doc: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """The short table `emoprep probe` prints: per store × pooling × modality × target, the
    best layer's item-level test score, its 95 % CI (R²), and the two baselines."""
    cols = ["store", "pooling", "modality", "target", "metric", "best layer", "score", "95% CI", "layers",
            "mean", "random"]
    ci = {(r["tokenizer"], r["pooling"], r["modality"], r["target"], r["layer"]): r["r2_ci95"]
          for r in doc["results"] if r["level"] == "item" and r["model"] not in BASELINES}
    rows = []
    for row in summary(doc):
        scored = [(s, layer) for s, layer in zip(row["scores"], row["layers"], strict=True) if s is not None]
        best, layer = max(scored, key=lambda t: t[0]) if scored else (None, None)
        interval = ci.get((row["tokenizer"], row["pooling"], row["modality"], row["target"], layer))
        rows.append([row["tokenizer"], row["pooling"], row["modality"], row["target"], row["metric"],
                     str(layer) if layer is not None else "-", _fmt(best),
                     f"[{_fmt(interval[0])}, {_fmt(interval[1])}]" if interval else "-", str(len(row["layers"])),
                     _fmt(row["mean"]), _fmt(row["random_features"])])
    return cols, rows


def _fmt(x: Any) -> str:
    return "-" if x is None else f"{x:.3f}"
