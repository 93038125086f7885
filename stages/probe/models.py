"""The MLP probe (torch): one hidden layer of 256 ReLU units, AdamW, mean-squared error on the
z-scored targets (regression) or cross-entropy (emotion), a fixed number of minibatch steps
(small sets are not left undertrained, large ones cost the same per fit); the weight
decay is the regularisation that the grouped folds choose, as α is for ridge. Seeded, CPU,
so the same seed gives the same predictions."""
from __future__ import annotations

from typing import Any

from emoprep.pipeline.lazy import np

WEIGHT_DECAYS = (1e-4, 1e-2, 1.0)
HIDDEN = 256
STEPS = 500
BATCH = 256
LEARNING_RATE = 1e-3


def mlp_grid(x_fit: np.ndarray, y_fit: np.ndarray, x_pred: np.ndarray, kind: str, seed: int
             ) -> tuple[np.ndarray, list[float]]:
    """Predictions for every weight decay: [n_pred, len(WEIGHT_DECAYS), n_targets] (z-scores,
    or class scores for emotion, whose y_fit is ±1 one-hot)."""
    import torch
    from sklearn.preprocessing import StandardScaler

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: threads cost more than they give (restored below)
    try:
        return _train(scaled(StandardScaler, x_fit, x_pred), y_fit, kind, seed)
    finally:
        torch.set_num_threads(threads)


def scaled(scaler_cls: Any, x_fit: np.ndarray, x_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both matrices standardised with x_fit's statistics, as float32."""
    scaler = scaler_cls().fit(x_fit)
    return scaler.transform(x_fit).astype(np.float32), scaler.transform(x_pred).astype(np.float32)


def _train(xs: tuple[np.ndarray, np.ndarray], y_fit: np.ndarray, kind: str, seed: int
           ) -> tuple[np.ndarray, list[float]]:
    import torch

    xf, xp = torch.from_numpy(xs[0]), torch.from_numpy(xs[1])
    yf = torch.from_numpy(y_fit.astype(np.float32))
    target = yf.argmax(1) if kind == "classification" else yf
    loss_fn: torch.nn.Module = torch.nn.CrossEntropyLoss() if kind == "classification" else torch.nn.MSELoss()
    out = []
    for wd in WEIGHT_DECAYS:
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(xf.shape[1], HIDDEN), torch.nn.ReLU(),
                                  torch.nn.Linear(HIDDEN, yf.shape[1]))
        opt = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=wd)
        gen = torch.Generator().manual_seed(seed)
        batches: list[torch.Tensor] = []
        for _ in range(STEPS):
            if not batches:  # a fresh permutation each epoch
                batches = list(torch.split(torch.randperm(len(xf), generator=gen), BATCH))
            batch = batches.pop(0)
            opt.zero_grad()
            loss_fn(net(xf[batch]), target[batch]).backward()
            opt.step()
        with torch.no_grad():
            out.append(net(xp).numpy().astype(np.float64))
    return np.stack(out, axis=1), list(WEIGHT_DECAYS)
