"""Training CoLaNet in numpy (docs/DESIGN.md "Training the bid model").

The model (``apps.inference.model``): ``pre = X W1 + b1``, ``h = [pre > theta]``,
``z = h W2 + b2``, ``score = tanh(z0)``, ``predicted_ctr = (tanh(z1) + 1) / 2 = sigmoid(2 z1)``.

Losses, on won impressions only:

* CTR head: binary cross-entropy of ``sigmoid(2 z1)`` against the click label
  (``dL/dz1 = 2 (p − y)``);
* score head: squared error of ``tanh(z0)`` against ``clip(reward / 2, −1, 1)``, weighted by
  ``score_weight``.

The spiking threshold has no useful derivative (zero almost everywhere), so the backward pass uses a
**surrogate gradient**: the step's derivative is replaced by the fast-sigmoid derivative
``1 / (1 + β |pre − theta|)²`` (SuperSpike, Zenke & Ganguli 2018), ``β = surrogate_beta``. The
forward pass stays the exact step the bidders run. ``theta`` is learned with the same surrogate
(``d/dtheta = −d/dpre``).

Training starts from the documented seeded initialisation (``CoLaNetWeights.seeded``), so the CTR
head begins at the offers' observed CTR; mini-batch Adam; everything float32; the shuffles come from
``numpy.random.default_rng(seed)``, so one seed gives the same weights every run (with one BLAS
thread, as every process here runs).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from apps.inference.model import CoLaNetWeights, forward

F32 = np.float32


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 30
    batch_size: int = 256
    learning_rate: float = 0.005
    surrogate_beta: float = 4.0
    score_weight: float = 0.5
    seed: int = 42
    hidden: int = 128


@dataclass
class TrainResult:
    weights: CoLaNetWeights
    history: list[dict] = field(default_factory=list)  # per epoch: loss, ctr_loss, score_loss


def score_target(reward: np.ndarray) -> np.ndarray:
    """What the score head learns: ``clip(reward / 2, −1, 1)`` (docs/RULES.md §2.6 rewards)."""
    return np.clip(np.asarray(reward, dtype=F32) / F32(2.0), F32(-1.0), F32(1.0))


def train(X: np.ndarray, y_click: np.ndarray, reward: np.ndarray, *, version: str,
          config: TrainConfig | None = None, init: CoLaNetWeights | None = None,
          progress: Callable[[dict], None] | None = None) -> TrainResult:
    """Fit CoLaNet to won impressions ``X`` (float32[n, 256]) with click labels and rewards."""
    config = config or TrainConfig()
    X = np.ascontiguousarray(X, dtype=F32)
    y = np.asarray(y_click, dtype=F32)
    t = score_target(reward)
    n = X.shape[0]
    if n == 0:
        raise ValueError("no rows to train on")
    start = init or CoLaNetWeights.seeded(seed=config.seed, hidden=config.hidden)
    params = {name: np.array(getattr(start, name), dtype=F32) for name in ("W1", "b1", "theta", "W2", "b2")}
    moments = {name: (np.zeros_like(v), np.zeros_like(v)) for name, v in params.items()}
    rng = np.random.default_rng(config.seed)
    beta, lr, sw = F32(config.surrogate_beta), F32(config.learning_rate), F32(config.score_weight)
    b1m, b2m, eps = F32(0.9), F32(0.999), F32(1e-8)
    step = 0
    history = []
    for epoch in range(config.epochs):
        order = rng.permutation(n)
        total = ctr_total = score_total = 0.0
        for lo in range(0, n, config.batch_size):
            idx = order[lo: lo + config.batch_size]
            xb, yb, tb = X[idx], y[idx], t[idx]
            m = F32(len(idx))
            W1, b1, theta, W2, b2 = (params[k] for k in ("W1", "b1", "theta", "W2", "b2"))
            pre = xb @ W1 + b1
            centred = pre - theta
            h = (centred > 0).astype(F32)
            out = np.tanh(h @ W2 + b2)
            p = np.clip((out[:, 1] + F32(1.0)) * F32(0.5), F32(1e-6), F32(1 - 1e-6))
            ctr_loss = -np.mean(yb * np.log(p) + (F32(1.0) - yb) * np.log(F32(1.0) - p))
            score_loss = np.mean((out[:, 0] - tb) ** 2)
            dz = np.empty_like(out)
            dz[:, 1] = F32(2.0) * (p - yb) / m
            dz[:, 0] = sw * F32(2.0) * (out[:, 0] - tb) * (F32(1.0) - out[:, 0] ** 2) / m
            grads = {"W2": h.T @ dz, "b2": dz.sum(axis=0)}
            surrogate = F32(1.0) / (F32(1.0) + beta * np.abs(centred)) ** 2
            dpre = (dz @ W2.T) * surrogate
            grads["W1"] = xb.T @ dpre
            grads["b1"] = dpre.sum(axis=0)
            grads["theta"] = -grads["b1"]
            step += 1
            c1, c2 = F32(1.0 - 0.9 ** step), F32(1.0 - 0.999 ** step)
            for name, g in grads.items():
                mom, vel = moments[name]
                mom *= b1m
                mom += (F32(1.0) - b1m) * g
                vel *= b2m
                vel += (F32(1.0) - b2m) * g * g
                params[name] -= lr * (mom / c1) / (np.sqrt(vel / c2) + eps)
            total += float(ctr_loss + sw * score_loss) * len(idx)
            ctr_total += float(ctr_loss) * len(idx)
            score_total += float(score_loss) * len(idx)
        row = {"epoch": epoch + 1, "epochs": config.epochs, "loss": total / n, "ctr_loss": ctr_total / n,
               "score_loss": score_total / n}
        history.append(row)
        if progress is not None:
            progress(row)
    weights = CoLaNetWeights(version=version, **params)
    return TrainResult(weights=weights, history=history)


def predict_ctr(weights: CoLaNetWeights, X: np.ndarray) -> np.ndarray:
    """The CTR head on full rows (the bidders' exact forward pass)."""
    return forward(weights, X)[1]


def auc(y: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN with one class only."""
    y = np.asarray(y).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    pos, neg = int(y.sum()), int((~y).sum())
    if pos == 0 or neg == 0:
        return float("nan")
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # 1-based ranks, ties averaged
    return float((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    y = np.asarray(y, dtype=np.float64)
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
