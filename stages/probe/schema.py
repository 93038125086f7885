"""The documented schema of `probe.json` (JSON Schema, draft 2020-12), in the report's schema
vocabulary so `schema_problems` checks a file against it.

`results` is a list of flat records: `pd.DataFrame(doc["results"])` is the whole table. Every
record has every key; what does not apply is null (emotion records have no R², regression
records no F1, baselines no layer).
"""
from __future__ import annotations

from typing import Any

from emoprep.stages.report.json_schema import (
    array,
    integer,
    mapping,
    number_or_null,
    obj,
    schema_problems,
    string,
    string_or_null,
)

FORMAT = "emoprep-probe"
VERSION = 1

RECORD = obj("one score: a store × pooling × layer × modality × target × model × level", {
    "tokenizer": string("the token store (its tokenizer name)"),
    "pooling": string("how tokens became one vector: mean (patch tokens), cls, hist (EnCodec code "
                      "histograms), stored (a pooled layered store)"),
    "layer": string_or_null("the probed layer ('last' for single-layer stores); null for the baselines"),
    "modality": string("audio, image, or all (both together)"),
    "target": string("valence, arousal or emotion"),
    "model": string("ridge or mlp; the baselines: mean (train mean / majority class) and random-features "
                    "(Gaussian features of the probed width, same protocol)"),
    "level": string("item (each chunk or image) or song (mean of a song's chunk predictions against the mean "
                    "of its labels; emotion: majority votes); song records exist when a test song has several items"),
    "dim": integer("feature width (0 for the mean baseline)"),
    "n_train": integer("labelled train items"),
    "n_test": integer("scored test units (items or songs, per level)"),
    "n_test_songs": integer("test songs (sources)"),
    "alpha": number_or_null("the regularisation the grouped folds chose (ridge α, MLP weight decay); null for mean"),
    "cv_score": number_or_null("mean grouped-fold score of that choice (R² on z-scored labels, or macro-F1)"),
    "r2": number_or_null("coefficient of determination on the test split (regression)"),
    "r2_ci95": {"type": ["array", "null"], "items": {"type": ["number", "null"]},
                "description": "[low, high]: 95 % bootstrap interval of R² over test songs (1000 draws)"},
    "ccc": number_or_null("Lin's concordance correlation coefficient (regression)"),
    "rmse": number_or_null("root-mean-square error on the label scale [-1, 1] (regression)"),
    "f1_macro": number_or_null("macro-averaged F1 over the emotion classes (emotion)"),
    "accuracy": number_or_null("accuracy (emotion)"),
})

MODALITY = obj("one modality's split and folds", {
    "n_train": integer("train items"), "n_test": integer("test items"),
    "train_songs": integer("train songs"), "test_songs": integer("test songs"),
    "fold_songs": array("songs held out in each grouped fold", integer("songs")),
})

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **obj("probe.json: frozen-token probes of an output's stores", {
        "format": {"const": FORMAT, "type": "string", "description": "always emoprep-probe"},
        "version": integer("schema version"),
        "key": string("16 hex digits: the settings and the stores' content; the folder's name"),
        "settings": mapping("targets, model, folds, seed, test_split, step_version, and per store the "
                            "layers and poolings probed", {"description": "a setting"}),
        "stores": array("the probed stores", obj("one store", {
            "tokenizer": string("tokenizer"), "content_key": string("the store's content key"),
            "n_items": integer("items"), "layers": array("layers probed", string("layer")),
            "poolings": array("poolings probed", string("pooling")),
            "modalities": mapping("modality -> its split", MODALITY)})),
        "results": array("the scores, one flat record each", RECORD),
    }),
}


def probe_problems(doc: object) -> list[str]:
    """Where a probe.json content breaks the schema (empty: it conforms)."""
    return schema_problems(doc, SCHEMA)
