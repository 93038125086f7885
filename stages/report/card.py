"""`report/DATASET.md` (a Hugging Face-style dataset card) and `report/recipe.toml`.

The card is generated from the report's numbers, so it states what this run made: sources
with their licences and citations, every parameter, fingerprints, counts, splits, the faults
the audit found, the weights, and how to load the result. Licence statements say how sure
we are: they were checked against public copies of the papers and dataset pages where we
could, and are otherwise marked as unverified.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence

from emoprep.stages.report.shapes import ReportJson

# What we know about each source dataset, keyed by its ingest stage name.
SOURCES: dict[str, dict[str, str]] = {
    "deam": {
        "name": "DEAM — MediaEval Database for Emotional Analysis in Music",
        "url": "https://cvml.unige.ch/databases/DEAM/",
        "licence": (
            "The DEAM paper describes the collection as '1,802 songs and song excerpts licensed under Creative "
            "Commons'; the 2013 part (ids ≤ 1000) was selected from the Free Music Archive. The Creative Commons "
            "variant differs per track (some may be NonCommercial or NoDerivatives), and we did not find a separate "
            "licence statement for the annotation files. Check the per-track licences (metadata/) and the DEAM page "
            "before redistributing audio or anything derived from it (spectrograms, tokens)."),
        "citation": ("Aljanaki A, Yang Y-H, Soleymani M (2017). Developing a benchmark for emotional analysis of "
                     "music. PLoS ONE 12(3): e0173392. https://doi.org/10.1371/journal.pone.0173392"),
        "bibtex": ("@article{aljanaki2017deam,\n"
                   "  author = {Aljanaki, Anna and Yang, Yi-Hsuan and Soleymani, Mohammad},\n"
                   "  title = {Developing a benchmark for emotional analysis of music},\n  journal = {PLoS ONE},\n"
                   "  volume = {12}, number = {3}, pages = {e0173392}, year = {2017},\n"
                   "  doi = {10.1371/journal.pone.0173392}\n}"),
    },
    "foodpics": {
        "name": "Food-Pics Extended (food-pics image database, University of Salzburg)",
        "url": "https://food-pics.sbg.ac.at (as we understand it; access is by registration)",
        "licence": (
            "The original food-pics paper (2014) states that the database is 'freely available under the creative "
            "commons license' but its abstract does not name the variant. We could not check the terms of the "
            "Extended release offline; as far as we know it is distributed on request for non-commercial research. "
            "UNVERIFIED: read the terms that came with your copy before sharing images or tokens derived from them."),
        "citation": ("Blechert J, Meule A, Busch NA, Ohla K (2014). Food-pics: an image database for experimental "
                     "research on eating and appetite. Frontiers in Psychology 5:617. "
                     "https://doi.org/10.3389/fpsyg.2014.00617 — and for the Extended set: Blechert J, Lender A, "
                     "Polk S, Busch NA, Ohla K (2019). Food-Pics_Extended—An Image Database for Experimental "
                     "Research on Eating and Appetite: Additional Images, Normative Ratings and an Updated Review. "
                     "Frontiers in Psychology 10:307. https://doi.org/10.3389/fpsyg.2019.00307 (the 2019 reference "
                     "is from memory, not checked against a copy of the paper)"),
        "bibtex": ("@article{blechert2014foodpics,\n"
                   "  author = {Blechert, Jens and Meule, Adrian and Busch, Niko A. and Ohla, Kathrin},\n"
                   "  title = {Food-pics: an image database for experimental research on eating and appetite},\n"
                   "  journal = {Frontiers in Psychology}, volume = {5}, pages = {617}, year = {2014},\n"
                   "  doi = {10.3389/fpsyg.2014.00617}\n}\n"
                   "@article{blechert2019foodpicsextended,\n"
                   "  author = {Blechert, J. and Lender, A. and Polk, S. and Busch, N. A. and Ohla, K.},\n"
                   "  title = {Food-Pics\\_Extended---An Image Database for Experimental Research on Eating and "
                   "Appetite: Additional Images, Normative Ratings and an Updated Review},\n"
                   "  journal = {Frontiers in Psychology}, volume = {10}, pages = {307}, year = {2019},\n"
                   "  doi = {10.3389/fpsyg.2019.00307}\n}"),
    },
    "pmemo": {
        "name": "PMEmo — Popular Music with Emotional Annotations",
        "url": "https://github.com/HuiZhangDB/PMEmo",
        "licence": (
            "The dataset page says it is 'publically available to the research community'; the chorus clips are "
            "excerpts of commercial pop songs whose copyright stays with the rights holders (full songs are not "
            "distributed for that reason). No open licence is stated: research use only, no redistribution of audio "
            "or derived data without checking."),
        "citation": ("Zhang K, Zhang H, Li S, Yang C, Sun L (2018). The PMEmo Dataset for Music Emotion Recognition. "
                     "Proceedings of the 2018 ACM International Conference on Multimedia Retrieval (ICMR '18), "
                     "135–142. https://doi.org/10.1145/3206025.3206037 (DOI from memory)"),
        "bibtex": ("@inproceedings{zhang2018pmemo,\n"
                   "  author = {Zhang, Kejun and Zhang, Hui and Li, Simeng and Yang, Changyuan and Sun, Lingyun},\n"
                   "  title = {The PMEmo Dataset for Music Emotion Recognition},\n"
                   "  booktitle = {Proceedings of the 2018 ACM International Conference on Multimedia Retrieval},\n"
                   "  pages = {135--142}, year = {2018}, doi = {10.1145/3206025.3206037}\n}"),
    },
}

VIT_NOTE = ("ViT-base/16 (`google/vit-base-patch16-224`): Dosovitskiy A et al. (2021). An Image is Worth 16x16 "
            "Words: Transformers for Image Recognition at Scale. ICLR 2021. The checkpoint's model card states "
            "Apache-2.0 (from memory; check the card of the copy you use).")


def size_category(n: int) -> str:
    for lim, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < lim:
            return name
    return "n>1M"


def md_cell(x: object) -> str:
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:.4g}"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return str(x).replace("|", "\\|").replace("\n", " ")


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(md_cell(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def ingest_stages(r: ReportJson) -> list[str]:
    return [s["name"] for s in r["stages"] if not s["inputs"]]


# ---------------------------------------------------------------- card sections

def front_matter(r: ReportJson) -> str:
    total = sum(m["samples"] for m in r["labels"]["by_modality"].values())
    tags = ["emotion-recognition", "valence-arousal", "emoprep"]
    if "audio" in r["labels"]["by_modality"]:
        tags += ["music", "spectrogram"]
    if "image" in r["labels"]["by_modality"]:
        tags += ["food-images"]
    if r["weights"]:
        tags.append("vit-tokens")
    lines = ["---", f"pretty_name: {json.dumps(r['title'])}", "license: other",
             "license_name: mixed-source-licences",
             ("license_details: \"Derived from datasets with their own terms; see Sources. Not for redistribution "
              "unless every source allows it.\""),
             "tags:", *[f"- {t}" for t in tags], "size_categories:", f"- {size_category(total)}",
             "source_datasets:", *[f"- {s}" for s in ingest_stages(r)], "---", ""]
    return "\n".join(lines)


def summary(r: ReportJson) -> str:
    mods = r["labels"]["by_modality"]
    parts = [f"{m['samples']:,} {name} samples ({', '.join(f'{d}: {n:,}' for d, n in m['datasets'].items())})"
             for name, m in mods.items()]
    splits = ", ".join(f"{k} {v:,}" for k, v in r["splits"]["rows"].items())
    tok = "; ".join(f"{w['tokenizer']} tokens ({'RANDOM-INIT weights' if w['random_init'] else 'pretrained weights'})"
                    for w in r["weights"]) or "no token store in this run"
    return (f"## Dataset summary\n\n{'; '.join(parts) or 'No labelled samples.'}. Valence and arousal are "
            f"normalised to [-1, 1] per modality (raw values kept), each sample has an emotion class (thesis eq. 2.1)"
            f"{', and a split (' + splits + ')' if splits else ''}. Outputs: {tok}. Built by emoprep; "
            "`index.html` next to this card shows the distributions.\n")


def deviations_md(r: ReportJson) -> str:
    """The recipe's own list of how this data differs from the paper(s) it follows."""
    if not r["deviations"]:
        return ""
    return ("## How this data differs from the paper\n\nThe recipe that made this data states these differences "
            "from the paper(s) it follows (the recipe file opens with the same list):\n\n"
            + "".join(f"- {d}\n" for d in r["deviations"]))


def published_md(r: ReportJson) -> str:
    """As published vs corrected, and the thesis counts, when the recipe asks for them."""
    out = []
    c = r["published"]
    if c is not None:
        out.append(f"## As published vs corrected\n\nThis data reproduces the thesis's own choices; the corrected "
                   f"recipe is `{c['corrected_recipe']}`. Parameters that differ:\n\n"
                   + md_table(["parameter", "this data", "corrected"],
                              [[f"`{p['stage']}.{p['key']}`", f"`{json.dumps(p['this_run'])}`",
                                f"`{json.dumps(p['corrected'])}`"] for p in c["parameters"]]) + "\n")
        if (sv := c.get("static_va")) is not None:
            out.append(f"- {sv['songs']} songs have different static valence/arousal "
                       f"({sv['clips_affected']} clips labelled with them).")
        if (ch := c.get("chunks")) is not None:
            out.append(f"- The corrected chunk rules add {ch['added']} and remove {ch['removed']} chunks "
                       f"({ch['chunks_this_run']} here, {ch['chunks_corrected']} corrected).")
        if (sp := c.get("split")) is not None:
            out.append(f"- Split grouped by {sp['group_by']}: {sp['sources_in_two_splits']} songs have items in two "
                       f"splits; {sp['held_out_items_sharing_a_song_with_train']} of {sp['held_out_items']} "
                       "held-out items share a song with a train item.")
        out.append("")
    if r["thesis_counts"]:
        out.append("## Thesis counts beside this data\n\n" + md_table(
            ["quantity", "thesis", "section", "this data", "why they can differ"],
            [[t["what"], t["thesis"], t["section"], t["this_run"], t["why"]] for t in r["thesis_counts"]])
            + "\nThesis figures as printed (seed 000, ch. 2); this data's from its manifests and rejects. The "
            "README's table says how to compute them on the full downloads.\n")
    return "\n".join(out)


def weights_warning(r: ReportJson) -> str:
    bad = [w for w in r["weights"] if w["random_init"]]
    if not bad:
        return ""
    names = ", ".join(f"`{w['stage']}` ({w['tokenizer']})" for w in bad)
    return (f"> **⚠ WARNING — RANDOM-INIT WEIGHTS.** {names} ran without pretrained weights (seeded random init). "
            "These tokens are not pretrained features: do not report results trained on them. Re-run with "
            "`--weights DIR` (a safetensors checkpoint) or with the checkpoint in the local Hugging Face cache; "
            "`emoprep validate --require-pretrained` fails until then.\n")


def sources(r: ReportJson) -> str:
    out = ["## Sources, licences and citations\n"]
    for name in ingest_stages(r):
        info = SOURCES.get(name)
        if info is None:
            out.append(f"### `{name}`\n\nA source this card does not know: licence and citation UNKNOWN — "
                       "check the dataset's own terms.\n")
            continue
        out.append(f"### {info['name']} (`{name}`)\n\n- Where: {info['url']}\n- Licence: {info['licence']}\n"
                   f"- Cite: {info['citation']}\n")
    if any("vit-base" in str(w["tokenizer"]) for w in r["weights"]):
        out.append(f"### Tokenizer\n\n{VIT_NOTE}\n")
    params = {s["name"]: s["params"] for s in r["stages"]}
    if params.get("spectrogram", {}).get("kind") == "riffusion":
        out.append("### Spectrogram transform\n\nRiffusion's audio-to-image converter (Forsgren S, Martiros H, 2022, "
                   "Riffusion: Stable diffusion for real-time music generation; code under the MIT licence as far "
                   "as we know), re-implemented and checked pixel by pixel in emoprep.\n")
    out.append("Licences were checked against public copies of the papers and dataset pages where available; "
               "statements marked UNVERIFIED or 'from memory' could not be checked offline. This card is not legal "
               "advice: the terms that came with your copy of each dataset decide.\n")
    return "\n".join(out)


def how_made(r: ReportJson) -> str:
    rows = [[f"`{s['name']}`", ", ".join(s["inputs"]) or "raw data", f"`{s['fingerprint'][:16]}`", s["version"],
             s["items"], s["rows"], s["rejects"]] for s in r["stages"]]
    params = []
    for s in r["stages"]:
        for k, v in s["params"].items():
            params.append([f"`{s['name']}`", f"`{k}`", f"`{json.dumps(v, ensure_ascii=False)}`"])
    return ("## How it was made\n\nStages in DAG order with their fingerprints (a fingerprint hashes the stage code "
            "version, parameters, upstream fingerprints, raw file contents, model weight identity and library "
            "versions) and counts (items = units of work; rows kept; inputs rejected):\n\n"
            + md_table(["stage", "inputs", "fingerprint", "version", "items", "rows", "rejects"], rows)
            + "\n\nEvery fingerprinted parameter (`recipe.toml` next to this card rebuilds the dataset: "
            "`emoprep run --recipe recipe.toml --data-root DIR`):\n\n"
            + md_table(["stage", "parameter", "value"], params) + "\n")


def rejects_md(r: ReportJson) -> str:
    rows = [[f"`{x['reason']}`", s, n, x["meaning"]]
            for x in r["rejects"]["by_reason"] for s, n in x["by_stage"].items()]
    body = md_table(["reason", "stage", "count", "meaning"], rows) if rows else "No input was rejected."
    return (f"## Filtering (rejects)\n\n{r['rejects']['total']:,} inputs were rejected; every one is listed with a "
            f"message in `manifests/rejects.parquet`.\n\n{body}\n")


def splits_md(r: ReportJson) -> str:
    sp = r["splits"]
    if not sp["rows"]:
        return "## Splits\n\nThis run has no split.\n"
    rows = [["all", *[sp["rows"].get(n, 0) for n in sp["names"]]]]
    rows += [[m, *[v.get(n, 0) for n in sp["names"]]] for m, v in sp["by_modality"].items()]
    if sp["sources"]:
        rows.append(["source items", *[sp["sources"].get(n, 0) for n in sp["names"]]])
    how = (f"Method `{sp['method']}`, seed {sp['seed']}, ratios {sp['ratios']}; " if sp["method"] else "") + \
        "grouped by source song (chunks of one song never straddle splits), stratified by emotion class per modality."
    return f"## Splits\n\n{md_table(['', *sp['names']], rows)}\n\n{how}\n"


def labels_md(r: ReportJson) -> str:
    rows = [[n["stage"], n["method"], b["group"], b["dimension"], b["min"], b["max"]]
            for n in r["normalisation"] for b in n["bounds"]]
    if not rows:
        return ""
    return ("## Labels\n\nValence/arousal min-max bounds (raw scale) mapped to [-1, 1]; raw values are kept in "
            "`valence_raw`/`arousal_raw`. Emotion class: thesis eq. 2.1 (slope = arousal / valence).\n\n"
            + md_table(["stage", "method", "group", "dimension", "raw min", "raw max"], rows) + "\n")


def faults_md(r: ReportJson) -> str:
    out = ["## Known faults found in the sources\n"]
    if not r["audit"]:
        return "\n".join([*out, "No annotation audit in this run.\n"])
    for a in r["audit"]:
        crossed = [b for b in a["blocks"] if b.get("verdict") == "crossed"]
        ids = ", ".join(f"{lo}–{hi}" if lo != hi else str(lo) for lo, hi in a["fixed_song_ids"]) or "none"
        if crossed:
            out.append(f"- `{a['stage']}` annotation audit: the static valence and arousal columns are **crossed** "
                       f"for id block(s) {', '.join(str(b['block']) for b in crossed)} (static valence follows the "
                       f"mean dynamic arousal: r = {', '.join(md_cell(b.get('r_sv_da')) for b in crossed)}). With "
                       f"`static_fix = \"{a['static_fix']}\"`, {a['n_fixed']:,} songs were swapped back (ids {ids}).")
        else:
            out.append(f"- `{a['stage']}` annotation audit: no crossed block found "
                       f"(`static_fix = \"{a['static_fix']}\"`, {a['n_fixed']:,} songs swapped).")
        out += [f"- {w}" for w in a["warnings"]]
        if a["n_parse_problems"]:
            out.append(f"- {a['n_parse_problems']} annotation values or rows did not parse (see `audit.json`).")
    return "\n".join(out) + "\n"


def weights_md(r: ReportJson) -> str:
    if not r["weights"]:
        return ""
    rows = [[w["stage"], w["tokenizer"], "**RANDOM-INIT**" if w["random_init"] else w["sha256"], w["device"],
             w["compute_dtype"]] for w in r["weights"]]
    headers = ["stage", "tokenizer", "weights (SHA-256)", "device", "compute dtype"]
    return "## Weights used\n\n" + md_table(headers, rows) + "\n"


def loading_md(r: ReportJson) -> str:
    tok = next((w["tokenizer"] for w in r["weights"] if w["tokenizer"]), "vit-base-patch16-224")
    split = (r["splits"]["names"] or ["train"])[0]
    return f"""## How to load

`OUT` is the output folder that holds `manifests/` and `tokens/` (this card is in `OUT/report/`).

PyTorch (map-style, memory-mapped; `enhanced=True` appends [valence, arousal, modality] to every token):

```python
from torch.utils.data import DataLoader
from emoprep.manifests import BalancedBatchSampler, TokenDataset
ds = TokenDataset(OUT, tokenizer="{tok}", split="{split}", enhanced=True)
dl = DataLoader(ds, batch_sampler=BalancedBatchSampler(ds, batch_size=32, seed=0), num_workers=2)
```

Hugging Face `datasets` (a Parquet view written once next to the store):

```python
import datasets
from emoprep.manifests import hf_parquet_view
dsd = datasets.load_dataset("parquet", data_files=hf_parquet_view(OUT, tokenizer="{tok}"))
```

NumPy only: `OUT/manifests/tokens.parquet` gives each sample's shard files (`cls_path`, `patches_path`,
relative to `OUT`) and `row`; `np.load(OUT + "/" + path, mmap_mode="r", allow_pickle=False)[row]`.
Labels without tokens: `OUT/manifests/split.parquet` (pandas / pyarrow).
"""


def citation_md(r: ReportJson) -> str:
    bib = [SOURCES[n]["bibtex"] for n in ingest_stages(r) if n in SOURCES]
    if not bib:
        return ""
    return "## Citation\n\nIf you use this data, cite the sources:\n\n```bibtex\n" + "\n".join(bib) + "\n```\n"


def dataset_card(r: ReportJson) -> str:
    parts = [front_matter(r), f"# {r['title']}\n", weights_warning(r), summary(r), deviations_md(r), published_md(r),
             sources(r),
             how_made(r),
             rejects_md(r), splits_md(r), labels_md(r), faults_md(r), weights_md(r), loading_md(r), citation_md(r)]
    return "\n".join(p for p in parts if p).rstrip() + "\n"


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


def recipe_toml(r: ReportJson) -> str:
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
