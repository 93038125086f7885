"""The documented schema of `probe.json`: pydantic models, from which `schema()` gives the
JSON Schema and `probe_problems` checks a file.

`results` is a list of flat records: `pd.DataFrame(doc["results"])` is the whole table. Every
record has every key; what does not apply is null (emotion records have no R², regression
records no F1, baselines no layer).
"""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FORMAT = "emoprep-probe"
VERSION = 1


def _f(description: str) -> Any:
    return Field(description=description)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class ProbeRecord(Strict):
    """One score: a store × pooling × layer × modality × target × model × level."""

    tokenizer: str = _f("the token store (its tokenizer name)")
    pooling: str = _f("how tokens became one vector: mean (patch tokens), cls, hist (EnCodec code histograms), "
                      "stored (a pooled layered store)")
    layer: str | None = _f("the probed layer ('last' for single-layer stores); null for the baselines")
    modality: str = _f("audio, image, or all (both together)")
    target: str = _f("valence, arousal or emotion")
    model: str = _f("ridge or mlp; the baselines: mean (train mean / majority class) and random-features "
                    "(Gaussian features of the probed width, same protocol)")
    level: str = _f("item (each chunk or image) or song (mean of a song's chunk predictions against the mean of "
                    "its labels; emotion: majority votes); song records exist when a test song has several items")
    dim: int = _f("feature width (0 for the mean baseline)")
    n_train: int = _f("labelled train items")
    n_test: int = _f("scored test units (items or songs, per level)")
    n_test_songs: int = _f("test songs (sources)")
    alpha: float | None = _f("the regularisation the grouped folds chose (ridge α, MLP weight decay); null for mean")
    cv_score: float | None = _f("mean grouped-fold score of that choice (R² on z-scored labels, or macro-F1)")
    r2: float | None = _f("coefficient of determination on the test split (regression)")
    r2_ci95: list[float | None] | None = _f("[low, high]: 95 % bootstrap interval of R² over test songs "
                                            "(1000 draws)")
    ccc: float | None = _f("Lin's concordance correlation coefficient (regression)")
    rmse: float | None = _f("root-mean-square error on the label scale [-1, 1] (regression)")
    f1_macro: float | None = _f("macro-averaged F1 over the emotion classes (emotion)")
    accuracy: float | None = _f("accuracy (emotion)")


class ModalitySplit(Strict):
    """One modality's split and folds."""

    n_train: int = _f("train items")
    n_test: int = _f("test items")
    train_songs: int = _f("train songs")
    test_songs: int = _f("test songs")
    fold_songs: list[int] = _f("songs held out in each grouped fold")


class StoreEntry(Strict):
    """One probed store."""

    tokenizer: str = _f("tokenizer")
    content_key: str = _f("the store's content key")
    n_items: int = _f("items")
    layers: list[str] = _f("layers probed")
    poolings: list[str] = _f("poolings probed")
    modalities: dict[str, ModalitySplit] = _f("modality -> its split")


class ProbeJson(Strict):
    """probe.json: frozen-token probes of an output's stores."""

    format: Literal["emoprep-probe"] = _f("always emoprep-probe")
    version: int = _f("schema version")
    key: str = _f("16 hex digits: the settings and the stores' content; the folder's name")
    settings: dict[str, Any] = _f("targets, model, folds, seed, test_split, step_version, and per store the "
                                  "layers and poolings probed")
    stores: list[StoreEntry] = _f("the probed stores")
    results: list[ProbeRecord] = _f("the scores, one flat record each")


def schema() -> dict[str, Any]:
    """probe.json's JSON Schema (draft 2020-12)."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **ProbeJson.model_json_schema()}


def probe_problems(doc: object) -> list[str]:
    """Where a probe.json content breaks the schema (empty: it conforms)."""
    try:
        ProbeJson.model_validate(doc)
    except ValidationError as exc:
        return [f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors()]
    return []
