"""The dataset card (`README.md`) of a Hugging Face export: YAML `configs` (which files make
which split of which config) and `dataset_info` (the Features and split sizes), written by
`emoprep.manifests.cards` (the report's card uses the same writer), then a short text on what
the configs hold and how to load them. `datasets.load_dataset(DEST, name=…)`
reads the YAML; the Hub renders the rest.
"""
from __future__ import annotations

from typing import Any

from emoprep.manifests.cards import card_text
from emoprep.manifests.export.hf_dataset import features
from emoprep.manifests.export.source import StoreSource


def card_files(sources: list[StoreSource], parts: dict[tuple[str, str], list[str]],
               sizes: dict[str, int]) -> dict[str, bytes]:
    header: dict[str, Any] = {"configs": [], "dataset_info": [],
                              "tags": ["emotion", "valence-arousal", "affective-computing", "tokens", "emoprep"]}
    for src in sources:
        header["configs"].append({
            "config_name": src.config,
            "data_files": [{"split": split, "path": f"{src.config}/{split}-*.parquet"} for split in src.splits]})
        split_info: list[dict[str, Any]] = []
        for split in src.splits:
            names = parts[(src.config, split)]
            split_info.append({"name": split, "num_bytes": sum(sizes[p] for p in names),
                               "num_examples": int((src.rows["split"] == split).sum())})
        header["dataset_info"].append({
            "config_name": src.config, "features": features(src)._to_yaml_list(), "splits": split_info,
            "download_size": sum(s["num_bytes"] for s in split_info),
            "dataset_size": sum(s["num_bytes"] for s in split_info)})
    text = ["", "# emoprep token export", "",
            ("Emotion-annotated samples (valence/arousal in [-1, 1], an emotion class) with their tokens, "
            "one config per token store. Written by `emoprep export --format hf`."), "",
            "| config | modality | arrays | weights | samples per split |", "|---|---|---|---|---|"]
    for src in sources:
        arrays = ", ".join(f"`{a.name}` {list(a.shape)} {a.dtype}" for a in src.arrays)
        modality = "/".join(["image", "audio"][m] for m in src.modalities)
        weights = ", ".join(sorted({str(w) for w in src.rows.get("weights", []) if isinstance(w, str)})) or "?"
        counts = ", ".join(f"{s} {int((src.rows['split'] == s).sum())}" for s in src.splits)
        if src.config != src.tokenizer:  # an hf: encoder: which one, and its layers and pooling
            layers = list(src.rows["layers"].iloc[0]) if "layers" in src.rows and len(src.rows) else []
            pooling = str(src.rows["pooling"].iloc[0]) if "pooling" in src.rows and len(src.rows) else "?"
            arrays += f" ({src.tokenizer}; hidden states {layers}, pooling {pooling})"
        text.append(f"| {src.config} | {modality} | {arrays} | {weights} | {counts} |")
    first = sources[0]
    text += ["", ("Weights `random-init` mean the tokens come from a seeded random model, not a published "
             "checkpoint."), "",
             "```python", "import datasets",
             f'ds = datasets.load_dataset("PATH/TO/THIS/FOLDER", name="{first.config}", split="{first.splits[0]}")',
             'ds = ds.with_format("numpy")',
             f'ds[0]["{first.arrays[-1].name}"].shape   # {tuple(first.arrays[-1].shape)}',
             "```", "",
             ("float16 arrays come back as float32 from the NumPy and torch formats (exactly); "
             '`with_format("arrow")` keeps float16. `emotion` and `modality` are class labels '
             "(`ds.features[\"emotion\"].names`)."), ""]
    return {"README.md": card_text(header, "\n".join(text)).encode()}
