"""`emoprep probe`: probe the token stores of an output, keyed like a stage.

The key hashes the settings (targets, model, folds, seed, layers, poolings, test split, the
step's version) and each probed store's content key (`hf_view.view_key`: tokens fingerprint
and index content). `DEST/<key>/probe.json` is written atomically, last; a probe whose file
exists is not recomputed, and a changed store or setting gives a new key, so a new folder.
While it reads a local output, the probe holds the output's lock (a run cannot rewrite the
stores under it). Before reading, each local store goes through `emoprep validate`'s store
checks; a failing store is a DataError naming the check.

Exit codes (the CLI): 2 (ConfigError) for an unknown tokenizer, layer, pooling, target or
model, too few songs for --folds, no token store at --out; 1 (DataError, StoreError) for a
store that fails validation, lacks the target's labels, has no test (or no train) items, or
a song on both sides of the split.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emoprep.manifests.hf_view import view_key
from emoprep.manifests.token_store.layout import StoreError
from emoprep.manifests.token_store.reader import is_remote, local_path
from emoprep.pipeline.atomic import atomic_write_text, canonical_json
from emoprep.pipeline.errors import ConfigError, DataError
from emoprep.pipeline.lazy import np, pd
from emoprep.pipeline.lock import OutputLock
from emoprep.stages.probe import protocol
from emoprep.stages.probe.features import FeatureSource, StoreFeatures, open_stores
from emoprep.stages.probe.schema import FORMAT, VERSION

PROBE_FILE = "probe.json"
STEP_VERSION = "1"
Progress = Callable[[str], None]


@dataclass
class ProbeResult:
    path: Path                      # DEST/<key>/probe.json
    key: str
    up_to_date: bool
    doc: dict[str, Any]             # probe.json's content
    # (tokenizer, modality) -> the split and folds used; empty when up to date
    plans: dict[tuple[str, str], protocol.Plan] = field(default_factory=dict)

    @property
    def records(self) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = self.doc["results"]
        return results

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.records)


def probe(out: str | os.PathLike[str] = "emoprep-out", tokenizers: Sequence[str] | None = None,
          layers: Sequence[str] | None = None, poolings: Sequence[str] | None = None, target: str = "va",
          model: str = "ridge", folds: int = 5, seed: int = 0, dest: str | os.PathLike[str] | None = None,
          storage_options: dict[str, Any] | None = None, wait: bool = True, on_wait: Progress | None = None,
          on_progress: Progress | None = None) -> ProbeResult:
    """Probe the stores of `out` (a folder or an fsspec URL) and write DEST/<key>/probe.json
    (DEST default: `<out>/probe`, or `./emoprep-probe` for a remote output)."""
    if target not in protocol.TARGETS:
        raise ConfigError(f"--target {target!r}: choose va, emotion or both")
    settings = protocol.Settings(protocol.TARGETS[target], model, folds, seed)
    settings.check()
    local_out = None if is_remote(str(out)) else local_path(out).resolve()
    if dest is None:
        dest = local_out / "probe" if local_out is not None else Path("emoprep-probe")
    with contextlib.ExitStack() as held:
        if local_out is not None and (local_out / "manifests").is_dir():
            try:
                held.enter_context(OutputLock(local_out, wait=wait, on_wait=on_wait))
            except OSError as exc:  # a read-only output cannot be rewritten by a run either
                if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                    raise
        try:
            stores = open_stores(out, tokenizers, storage_options)
        except FileNotFoundError as exc:
            raise ConfigError(f"{exc}") from None
        chosen = {s.tokenizer: (_layers(s, layers), _poolings(s, poolings)) for s in stores}
        _check_poolings_used(poolings, chosen)
        for store in stores:
            _validate(store, settings)
        options = {"step_version": STEP_VERSION, "targets": list(settings.targets), "model": model, "folds": folds,
                   "seed": seed, "test_split": settings.test_split,
                   "stores": {t: {"layers": ls, "poolings": ps} for t, (ls, ps) in chosen.items()}}
        h = hashlib.sha256(("emoprep-probe\n" + canonical_json(options) + "\n").encode())
        for store in stores:
            h.update(f"{store.tokenizer}:{view_key(store.rows, store.tokenizer)}\n".encode())
        key = h.hexdigest()[:16]
        path = Path(dest) / key / PROBE_FILE
        old = _read(path)
        if old is not None and old.get("key") == key:
            return ProbeResult(path, key, True, old)
        plans: dict[tuple[str, str], protocol.Plan] = {}
        results: list[dict[str, Any]] = []
        summaries = []
        for store in stores:
            layer_names, pooling_names = chosen[store.tokenizer]
            store_plans = probe_source(store, layer_names, pooling_names, settings, results, on_progress)
            plans.update({(store.tokenizer, m): p for m, p in store_plans.items()})
            summaries.append(store_summary(store, store_plans, layer_names, pooling_names))
        doc = {"format": FORMAT, "version": VERSION, "key": key, "settings": options, "stores": summaries,
               "results": [_clean(r) for r in results]}
        from emoprep.stages.probe.plot import write_plot

        path.parent.mkdir(parents=True, exist_ok=True)
        write_plot(doc, path.parent)  # probe.json last: its presence means the folder is complete
        atomic_write_text(path, json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n")
        return ProbeResult(path, key, False, doc, plans)


def probe_source(source: FeatureSource, layers: Sequence[str], poolings: Sequence[str], s: protocol.Settings,
                 results: list[dict[str, Any]], on_progress: Progress | None = None) -> dict[str, protocol.Plan]:
    """Probe one store: every modality × pooling × layer × target, plus the two baselines per
    modality × pooling × target. Appends flat records to `results`; returns the plans used."""
    from emoprep.stages.probe.models import mlp_grid

    grid: protocol.GridModel = protocol.ridge_grid if s.model == "ridge" else mlp_grid
    items = source.items
    present = [m for m in ("audio", "image") if (items["modality"] == m).any()]
    modalities = [*present, "all"] if len(present) > 1 else present
    plans = {m: protocol.plan_split(items, m, s, source.tokenizer) for m in modalities}
    tok = source.tokenizer
    for pooling in poolings:
        for modality, plan in plans.items():
            base = {"tokenizer": tok, "pooling": pooling, "modality": modality}
            dim = 0
            for layer in layers:
                x = source.matrix(layer, pooling)
                dim = int(x.shape[1])
                if on_progress:
                    on_progress(f"{tok} {pooling} layer {layer} {modality}: {len(plan.train)} train, "
                                f"{len(plan.test)} test, dim {dim}")
                for target, fitted in _fit_all(x, items, plan, s, grid):
                    results += [{**base, "layer": layer, "target": target, "model": s.model, "dim": dim, **r}
                                for r in protocol.score_records(items, target, fitted, s.seed)]
            noise = protocol.random_features(len(items), dim, s.seed, f"{tok}/{pooling}/{modality}")
            random = dict(_fit_all(noise, items, plan, s, grid))
            for target in s.targets:
                mean = protocol.baseline_mean(items, plan, target)
                if mean is not None:
                    results += [{**base, "layer": None, "target": target, "model": "mean", "dim": 0, **r}
                                for r in protocol.score_records(items, target, mean, s.seed)]
                if target in random:
                    results += [{**base, "layer": None, "target": target, "model": "random-features",
                                 "dim": dim, **r} for r in protocol.score_records(items, target, random[target],
                                                                                  s.seed)]
    return plans


def _fit_all(x: np.ndarray, items: pd.DataFrame, plan: protocol.Plan, s: protocol.Settings,
             grid: protocol.GridModel) -> list[tuple[str, protocol.Fitted]]:
    """(target, fitted) in the order of `s.targets`: valence and arousal share their fits."""
    regression = tuple(t for t in s.targets if t != "emotion")
    fitted = protocol.fit_targets(x, items, plan, regression, grid, s.seed) if regression else {}
    if "emotion" in s.targets:
        fitted.update(protocol.fit_targets(x, items, plan, ("emotion",), grid, s.seed))
    return [(t, fitted[t]) for t in s.targets if t in fitted]


def store_summary(store: StoreFeatures, plans: dict[str, protocol.Plan], layers: Sequence[str],
                  poolings: Sequence[str]) -> dict[str, Any]:
    songs = store.items["source_id"].to_numpy()
    return {"tokenizer": store.tokenizer, "content_key": view_key(store.rows, store.tokenizer),
            "n_items": len(store.items), "layers": list(layers), "poolings": list(poolings),
            "modalities": {m: {"n_train": len(p.train), "n_test": len(p.test),
                               "train_songs": len(set(songs[p.train])), "test_songs": len(set(songs[p.test])),
                               "fold_songs": [len(set(songs[v])) for _, v in p.folds]}
                           for m, p in plans.items()}}


def _layers(store: StoreFeatures, wanted: Sequence[str] | None) -> list[str]:
    have = store.layers()
    if not wanted:
        return have
    unknown = [w for w in wanted if str(w) not in have]
    if unknown:
        raise ConfigError(f"{store.tokenizer}: no layer {unknown} (it has {', '.join(have)})")
    return [str(w) for w in dict.fromkeys(wanted)]


def _poolings(store: StoreFeatures, wanted: Sequence[str] | None) -> list[str]:
    have = store.poolings()
    if not wanted:
        return have[:1]
    mine = [p for p in dict.fromkeys(wanted) if p in have]
    if not mine:
        raise ConfigError(f"{store.tokenizer}: pooling {list(wanted)} does not apply (it has {', '.join(have)})")
    return mine


def _check_poolings_used(wanted: Sequence[str] | None, chosen: dict[str, tuple[list[str], list[str]]]) -> None:
    used = {p for _, ps in chosen.values() for p in ps}
    unused = [p for p in wanted or [] if p not in used]
    if unused:
        raise ConfigError(f"pooling {unused} applies to none of the stores {sorted(chosen)} "
                          "(mean, cls: ViT; hist: EnCodec codes; stored: pooled layered stores)")


def _validate(store: StoreFeatures, s: protocol.Settings) -> None:
    """The store checks of `emoprep validate` (local stores), and the labels the targets need."""
    if store.store.remote is None:
        from emoprep.manifests.validate_report import ValidationReport
        from emoprep.manifests.validate_store import check_tokenizer

        report = ValidationReport(str(store.where))
        try:
            check_tokenizer(report, store.store, store.tokenizer, store.rows)
        except KeyError as exc:
            raise StoreError(f"{store.where}: the {store.tokenizer} index lacks column {exc}") from None
        if report.failures:
            first = report.failures[0]
            raise DataError(f"{store.tokenizer} fails validation ({', '.join(c.name for c in report.failures)}): "
                            f"{first.detail}, e.g. {first.offenders[:1]}; see `emoprep validate`")
    items = store.items
    for target in s.targets:
        labelled = items["emotion"].notna() if target == "emotion" else items[target].notna()
        if not labelled.any():
            raise DataError(f"{store.tokenizer}: no item has a {target} label; "
                            f"probe another target (--target {'va' if target == 'emotion' else 'emotion'})")


def _clean(value: Any) -> Any:
    """Floats rounded to 6 decimals (the file's bytes do not hang on the last ulp), NaN → null."""
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, float | np.floating):
        f = float(value)
        return round(f, 6) if np.isfinite(f) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def _read(path: Path) -> dict[str, Any] | None:
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("results"), list) else None
