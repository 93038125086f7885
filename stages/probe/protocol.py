"""The probing protocol: which items train and test, the grouped folds, and one probe of one
feature matrix (per target: the regularisation chosen by grouped K-fold CV on train, a refit
on all of train, scores on test).

- Test = the recipe's `test` split; train = every other split (val included): the store
  records both, grouped by song (a song on both sides is refused).
- Folds: scikit-learn's GroupKFold over train, grouped by `source_id` (a song's chunks stay
  in one fold), shuffled with the seed.
- In each fold and in the final fit, features are standardised and valence/arousal z-scored
  with the statistics of the training part only; predictions go back to the label scale for
  RMSE (R² and CCC do not change under that affine map).
- Ridge: one scikit-learn `Ridge` fit per fold scores every α of the grid at once (the
  targets repeated once per α, each copy with its own α), so the Gram matrix is formed once.
  Emotion with ridge is a ridge classifier, as scikit-learn's RidgeClassifier is (one-vs-rest
  ±1 targets, argmax). The MLP (`models.py`, torch) is chosen among weight decays the same way.
"""
from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from emoprep.pipeline.errors import ConfigError, DataError
from emoprep.pipeline.lazy import np, pd
from emoprep.stages.probe import metrics

ALPHAS = (0.1, 1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
VA = ("valence", "arousal")
TARGETS = {"va": VA, "emotion": ("emotion",), "both": (*VA, "emotion")}
MODELS = ("ridge", "mlp")
BASELINES = ("mean", "random-features")


@dataclass(frozen=True)
class Settings:
    targets: tuple[str, ...] = VA
    model: str = "ridge"
    folds: int = 5
    seed: int = 0
    test_split: str = "test"

    def check(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"--model {self.model!r}: choose one of {', '.join(MODELS)}")
        if self.folds < 2:
            raise ConfigError(f"--folds {self.folds}: cross-validation needs at least 2 folds")
        bad = [t for t in self.targets if t not in (*VA, "emotion")]
        if bad or not self.targets:
            raise ConfigError(f"targets {bad or '(none)'}: choose --target va, emotion or both")


@dataclass
class Plan:
    """One modality's items: positions (into the item table) of train and test, and the CV
    folds as (fit, validate) position arrays — exactly those the fits use."""

    modality: str
    train: np.ndarray
    test: np.ndarray
    folds: list[tuple[np.ndarray, np.ndarray]] = field(default_factory=list)


def plan_split(items: pd.DataFrame, modality: str, s: Settings, where: str) -> Plan:
    """Train/test of one modality ("audio", "image" or "all") and its grouped folds.
    DataError for no test or train items or a song on both sides; ConfigError when train
    has fewer songs than folds."""
    from sklearn.model_selection import GroupKFold

    sel = np.arange(len(items)) if modality == "all" else np.flatnonzero(items["modality"].to_numpy() == modality)
    split = items["split"].to_numpy()[sel]
    test, train = sel[split == s.test_split], sel[split != s.test_split]
    if not len(test):
        raise DataError(f"{where}: no {modality} items in the '{s.test_split}' split "
                        f"(splits: {sorted(set(split))}); the probe scores on held-out songs")
    if not len(train):
        raise DataError(f"{where}: every {modality} item is in the '{s.test_split}' split; nothing to train on")
    songs = items["source_id"].to_numpy()
    both = sorted(set(songs[train]) & set(songs[test]))
    if both:
        raise DataError(f"{where}: {len(both)} songs have items in train and in test (e.g. {both[0]}): the "
                        "split is not grouped by song (split.group_by = 'source' groups it)")
    n_songs = len(set(songs[train]))
    if n_songs < s.folds:
        raise ConfigError(f"{where}: --folds {s.folds} needs at least {s.folds} {modality} songs in train, "
                          f"there are {n_songs}")
    gkf = GroupKFold(n_splits=s.folds, shuffle=True, random_state=s.seed)
    folds = [(train[a], train[b]) for a, b in gkf.split(train, groups=songs[train])]
    return Plan(modality, train, test, folds)


def ridge_grid(x_fit: np.ndarray, y_fit: np.ndarray, x_pred: np.ndarray, kind: str, seed: int
               ) -> tuple[np.ndarray, list[float]]:
    """Ridge predictions for every α: [n_pred, len(ALPHAS), n_targets] (regression: y_fit
    z-scored; classification: ±1 one-hot). Features standardised on x_fit."""
    from sklearn.linear_model import Ridge
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(x_fit)
    t = y_fit.shape[1]
    model = Ridge(alpha=np.repeat(np.asarray(ALPHAS), t)).fit(scaler.transform(x_fit), np.tile(y_fit, len(ALPHAS)))
    pred: np.ndarray = model.predict(scaler.transform(x_pred)).reshape(len(x_pred), len(ALPHAS), t)
    return pred, list(ALPHAS)


def _targets_matrix(items: pd.DataFrame, rows: np.ndarray, targets: tuple[str, ...],
                    classes: np.ndarray | None) -> np.ndarray:
    """[n, len(targets)] labels (regression: `classes` None) or [n, n_classes] ±1 one-hot."""
    if classes is None:
        values: np.ndarray = items[list(targets)].to_numpy(np.float64)[rows]
        return values
    labels = items["emotion"].to_numpy()[rows]
    return np.where(labels[:, None] == classes[None, :], 1.0, -1.0)


def _score_cv(y: np.ndarray, pred: np.ndarray, classes: np.ndarray | None) -> np.ndarray:
    """The fold's score of every grid value and target, [n_grid, n_targets] (R², or macro-F1
    with `classes`): pred is [n, n_grid, n_outputs]."""
    n, g, t = pred.shape
    if classes is None:
        from sklearn.metrics import r2_score

        if n < 2:
            return np.full((g, t), np.nan)
        truth = np.repeat(y[:, None, :], g, axis=1).reshape(n, g * t)
        return np.asarray(r2_score(truth, pred.reshape(n, g * t), multioutput="raw_values")).reshape(g, t)
    labels = classes[y.argmax(1)]
    return np.array([[metrics.classification_scores(labels, classes[pred[:, j].argmax(1)])["f1_macro"]]
                     for j in range(g)])


GridModel = Callable[[np.ndarray, np.ndarray, np.ndarray, str, int], tuple[np.ndarray, list[float]]]
Fitted = tuple[np.ndarray, np.ndarray, dict[str, Any]]   # test positions, test predictions, info


def fit_targets(x: np.ndarray, items: pd.DataFrame, plan: Plan, targets: tuple[str, ...], grid: GridModel,
                seed: int) -> dict[str, Fitted]:
    """Choose the regularisation by the grouped folds (per target), refit on train, predict
    test. `targets`: ("emotion",), or regression targets fitted together (one fit per fold
    serves valence and arousal) on the items labelled for all of them. Returns {target:
    (test positions, predictions on the label scale or as labels, info)}; empty when train or
    test has no labelled items."""
    kind = "classification" if targets == ("emotion",) else "regression"
    if kind == "regression" and "emotion" in targets:
        raise ValueError(f"fit emotion apart from {targets}")
    column = items["emotion"].notna() if kind == "classification" else items[list(targets)].notna().all(axis=1)
    labelled = column.to_numpy()
    train, test = plan.train[labelled[plan.train]], plan.test[labelled[plan.test]]
    if not len(train) or not len(test):
        return {}
    classes = np.array(sorted(set(items["emotion"].to_numpy()[train]))) if kind == "classification" else None
    if classes is not None and len(classes) < 2:
        return {}
    scores = []
    for fit_rows, val_rows in plan.folds:
        fit_rows, val_rows = fit_rows[labelled[fit_rows]], val_rows[labelled[val_rows]]
        y_fit = _targets_matrix(items, fit_rows, targets, classes)
        mu, sd = _zstats(y_fit, kind)
        pred, _ = grid(x[fit_rows], (y_fit - mu) / sd, x[val_rows], kind, seed)
        scores.append(_score_cv((_targets_matrix(items, val_rows, targets, classes) - mu) / sd, pred, classes))
    mean_scores = np.nanmean(np.stack(scores), axis=0)          # [n_grid, n_targets]
    best = [int(np.nanargmax(mean_scores[:, j])) for j in range(mean_scores.shape[1])]
    y_train = _targets_matrix(items, train, targets, classes)
    mu, sd = _zstats(y_train, kind)
    pred, grid_values = grid(x[train], (y_train - mu) / sd, x[test], kind, seed)
    out: dict[str, Fitted] = {}
    if classes is not None:
        chosen = classes[pred[:, best[0]].argmax(1)]
        out["emotion"] = (test, chosen, {"alpha": float(grid_values[best[0]]),
                                         "cv_score": float(mean_scores[best[0], 0]), "n_train": len(train)})
        return out
    for j, target in enumerate(targets):
        out[target] = (test, pred[:, best[j], j] * sd[j] + mu[j],
                       {"alpha": float(grid_values[best[j]]), "cv_score": float(mean_scores[best[j], j]),
                        "n_train": len(train)})
    return out


def _zstats(y: np.ndarray, kind: str) -> tuple[np.ndarray, np.ndarray]:
    if kind != "regression":
        return np.zeros(y.shape[1]), np.ones(y.shape[1])
    sd = y.std(axis=0)
    return y.mean(axis=0), np.where(sd > 0, sd, 1.0)


def baseline_mean(items: pd.DataFrame, plan: Plan, target: str) -> tuple[np.ndarray, np.ndarray, dict[str, Any]] | None:
    """The train-mean predictor (emotion: the train majority class)."""
    if target == "emotion":
        labelled = items["emotion"].notna().to_numpy()
        train, test = plan.train[labelled[plan.train]], plan.test[labelled[plan.test]]
        if not len(train) or not len(test):
            return None
        top = metrics.song_labels(items["emotion"].to_numpy()[train], np.zeros(len(train)))[0]
        return test, np.full(len(test), top, dtype=object), {"n_train": len(train)}
    labelled = items[target].notna().to_numpy()
    train, test = plan.train[labelled[plan.train]], plan.test[labelled[plan.test]]
    if not len(train) or not len(test):
        return None
    mean = float(items[target].to_numpy(np.float64)[train].mean())
    return test, np.full(len(test), mean), {"n_train": len(train)}


def random_features(n: int, dim: int, seed: int, tag: str) -> np.ndarray:
    """Gaussian features of the probed width, seeded by (seed, tag)."""
    rng = np.random.default_rng([seed, zlib.crc32(tag.encode())])
    return rng.standard_normal((n, dim), dtype=np.float32)


def score_records(items: pd.DataFrame, target: str, fitted: tuple[np.ndarray, np.ndarray, dict[str, Any]],
                  seed: int) -> list[dict[str, Any]]:
    """Item-level scores, and song-level ones when a test song has several items."""
    test, pred, info = fitted
    songs = items["source_id"].to_numpy()[test]
    n_songs = len(set(songs))
    levels = [("item", songs, items[target].to_numpy()[test], pred)]
    if n_songs < len(test):
        if target == "emotion":
            uniq = np.unique(songs)
            levels.append(("song", uniq, metrics.song_labels(items["emotion"].to_numpy()[test], songs),
                           metrics.song_labels(pred, songs)))
        else:
            uniq, y_song = metrics.song_means(items[target].to_numpy(np.float64)[test], songs)
            _, p_song = metrics.song_means(pred, songs)
            levels.append(("song", uniq, y_song, p_song))
    records = []
    for level, level_songs, y, p in levels:
        rec: dict[str, Any] = {"level": level, "n_train": info["n_train"], "n_test": len(y),
                               "n_test_songs": n_songs, "alpha": info.get("alpha"), "cv_score": info.get("cv_score"),
                               "r2": None, "r2_ci95": None, "ccc": None, "rmse": None,
                               "f1_macro": None, "accuracy": None}
        if target == "emotion":
            rec.update(metrics.classification_scores(np.asarray(y, dtype=str), np.asarray(p, dtype=str)))
        else:
            y64, p64 = np.asarray(y, np.float64), np.asarray(p, np.float64)
            rec.update(metrics.regression_scores(y64, p64))
            rec["r2_ci95"] = metrics.r2_ci95(y64, p64, level_songs, seed)
        records.append(rec)
    return records
