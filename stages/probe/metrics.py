"""The probe's scores: R², CCC, RMSE (valence, arousal), macro-F1 and accuracy (emotion), the
song-level aggregation of chunk predictions, and a bootstrap CI of R² over test songs.

scikit-learn computes what it has (R², RMSE, F1, accuracy); CCC (Lin's concordance
correlation coefficient) it lacks, so it is the textbook formula here.
"""
from __future__ import annotations

from typing import Any

from emoprep.pipeline.lazy import np, pd

N_BOOTSTRAP = 1000


def regression_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """R² is NaN (null in probe.json) for fewer than two items, where it is undefined."""
    from sklearn.metrics import r2_score, root_mean_squared_error

    r2 = float(r2_score(y, pred)) if len(y) >= 2 else float("nan")
    return {"r2": r2, "ccc": ccc(y, pred), "rmse": float(root_mean_squared_error(y, pred))}


def ccc(y: np.ndarray, pred: np.ndarray) -> float:
    """Lin's CCC: 2·cov / (var_y + var_p + (mean_y − mean_p)²), population moments; 0 when
    both are constant and differ, 1 when they are identical constants."""
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    my, mp = y.mean(), pred.mean()
    cov = ((y - my) * (pred - mp)).mean()
    den = y.var() + pred.var() + (my - mp) ** 2
    return float(2 * cov / den) if den > 0 else 1.0


def classification_scores(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    return {"f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
            "accuracy": float(accuracy_score(y, pred))}


def r2_ci95(y: np.ndarray, pred: np.ndarray, songs: np.ndarray, seed: int,
            n_boot: int = N_BOOTSTRAP) -> list[float]:
    """95 % percentile interval of R² when the test songs are resampled with replacement
    (each drawn song brings all its items). Exact per draw, from per-song sums."""
    codes, uniq = pd.factorize(pd.Series(songs), sort=True)
    s = len(uniq)
    y, pred = np.asarray(y, np.float64), np.asarray(pred, np.float64)
    n_s = np.bincount(codes, minlength=s).astype(np.float64)
    sy = np.bincount(codes, y, minlength=s)
    syy = np.bincount(codes, y * y, minlength=s)
    res = np.bincount(codes, (y - pred) ** 2, minlength=s)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, s, size=(n_boot, s))
    counts = np.stack([np.bincount(d, minlength=s) for d in draws]).astype(np.float64)
    n, ty, tyy, tres = counts @ n_s, counts @ sy, counts @ syy, counts @ res
    tot = tyy - ty * ty / n
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(tot > 0, 1.0 - tres / tot, np.nan)
    r2 = r2[np.isfinite(r2)]
    if not len(r2):
        return [float("nan"), float("nan")]
    lo, hi = np.percentile(r2, [2.5, 97.5])
    return [float(lo), float(hi)]


def song_means(values: np.ndarray, songs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(song ids in sorted order, mean of `values` [n] or [n, k] per song)."""
    codes, uniq = pd.factorize(pd.Series(songs), sort=True)
    values = np.asarray(values, np.float64)
    flat = values.reshape(len(values), -1)
    sums = np.stack([np.bincount(codes, flat[:, j], minlength=len(uniq)) for j in range(flat.shape[1])], axis=1)
    means = sums / np.bincount(codes, minlength=len(uniq))[:, None]
    return np.asarray(uniq), means.reshape(len(uniq), *values.shape[1:])


def song_labels(labels: np.ndarray, songs: np.ndarray) -> np.ndarray:
    """Each song's most frequent label (ties: the first in sorted order), in sorted song order."""
    from collections import Counter, defaultdict

    counts: dict[Any, Counter[Any]] = defaultdict(Counter)
    for song, label in zip(songs, labels, strict=True):
        counts[song][label] += 1
    top = [min(counts[s].items(), key=lambda kv: (-kv[1], str(kv[0])))[0] for s in sorted(counts)]
    return np.array(top, dtype=object)


def finite(x: Any) -> Any:
    """NaN and ±inf as None (JSON has no NaN)."""
    return x if isinstance(x, float) and np.isfinite(x) else (None if isinstance(x, float) else x)
