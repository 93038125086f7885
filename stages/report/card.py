"""`report/DATASET.md` (a Hugging Face-style dataset card) and `report/recipe.toml`.

The card is rendered from the report's numbers (`templates/DATASET.md.j2`), so it states what
this run made: sources with their licences and citations (`templates/sources.yaml`), every
parameter, fingerprints, counts, splits, the faults the audit found, the weights, and how to
load the result. Licence statements say how sure
we are: they were checked against public copies of the papers and dataset pages where we
could, and are otherwise marked as unverified.
"""
from __future__ import annotations

import json
import math
import re
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from emoprep.manifests.cards import card_text
from emoprep.stages.report.page import environment

if TYPE_CHECKING:
    import jinja2


def size_category(n: int) -> str:
    for lim, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < lim:
            return name
    return "n>1M"


def md_cell(x: object) -> str:
    """A Markdown table cell: numbers as on the page, `|` escaped, one line."""
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return str(x).replace("|", "\\|").replace("\n", " ")


@cache
def sources() -> dict[str, Any]:
    """templates/sources.yaml: what the card says about each source dataset."""
    import yaml

    text = (files("emoprep.stages.report") / "templates" / "sources.yaml").read_text(encoding="utf-8")
    loaded: dict[str, Any] = yaml.safe_load(text)
    return loaded


@cache
def markdown() -> jinja2.Environment:
    env = environment(False)  # the Markdown templates' own environment: no autoescape
    env.filters.update(cell=md_cell, pick=lambda m, keys: [m.get(k, 0) for k in keys])
    return env


def front_matter(r: dict[str, Any]) -> dict[str, Any]:
    """The card's YAML metadata (Hugging Face dataset card fields)."""
    mods = r["labels"]["by_modality"]
    tags = ["emotion-recognition", "valence-arousal", "emoprep", *(["music", "spectrogram"] if "audio" in mods else []),
            *(["food-images"] if "image" in mods else []), *(["vit-tokens"] if r["weights"] else [])]
    return {"pretty_name": r["title"], "license": "other", "license_name": "mixed-source-licences",
            "license_details": ("Derived from datasets with their own terms; see Sources. Not for redistribution "
                                "unless every source allows it."),
            "tags": tags, "size_categories": [size_category(sum(m["samples"] for m in mods.values()))],
            "source_datasets": [s["name"] for s in r["stages"] if not s["inputs"]]}


def dataset_card(r: dict[str, Any]) -> str:
    """DATASET.md from report.json's content `r`."""
    meta = front_matter(r)
    body = markdown().get_template("DATASET.md.j2").render(r=r, sources=sources(), ingest=meta["source_datasets"])
    return card_text(meta, "\n" + body)


# ---------------------------------------------------------------- recipe.toml

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{toml_key(str(k))} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"no TOML form for {type(v).__name__}")


def recipe_toml(r: dict[str, Any]) -> str:
    """A recipe that rebuilds these stages with these parameters (targets: the sinks)."""
    used = {i for s in r["stages"] for i in s["inputs"]}
    targets = [s["name"] for s in r["stages"] if s["name"] not in used]
    last_fp = r["stages"][-1]["fingerprint"][:12] if r["stages"] else "empty"
    lines = ["# The resolved recipe of this dataset, read from the stage fingerprints.",
             "# Rebuild: emoprep run --recipe recipe.toml [--data-root DIR]",
             "[recipe]", f"name = {toml_value('report-' + last_fp)}",
             f"description = {toml_value('Resolved from ' + r['title'])}", f"targets = {toml_value(targets)}"]
    for s in r["stages"]:
        lines += ["", f"[{toml_key(s['name'])}]"]
        for k, v in s["params"].items():
            lines.append(f"# {toml_key(k)}: not set (null)" if v is None else f"{toml_key(k)} = {toml_value(v)}")
    return "\n".join(lines) + "\n"
