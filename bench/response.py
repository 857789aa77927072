"""What the response-prediction benches share (``movielens.py``, ``obd.py``): past shares without
leakage, thermometer codes, CoLaNet trained with its learning rate and epochs chosen on a validation
split, the seeded model and scikit-learn's logistic regression on the same rows (its L2 strength chosen on the same
validation split), and AUC / log loss
with bootstrap 95 % intervals (the same resamples for every model)."""
from __future__ import annotations

import time

import numpy as np

from apps.inference.model import CoLaNetWeights
from apps.training.trainer import TrainConfig, auc, log_loss, predict_ctr, train

SMOOTHING = 10.0
LR_C_GRID = (1.0, 0.1, 0.01)  # scikit-learn's default C = 1 first


def past_share(keys: np.ndarray, t: np.ndarray, y: np.ndarray, prior: float,
               smoothing: float = SMOOTHING) -> tuple[np.ndarray, np.ndarray]:
    """Per row: (smoothed share of y among the key's rows strictly earlier in time, their count)."""
    order = np.lexsort((t, keys))
    k, tt, yy = keys[order], t[order], y[order]
    n = len(k)
    start = np.r_[True, k[1:] != k[:-1]]
    group_start = np.maximum.accumulate(np.where(start, np.arange(n), 0))
    csum = np.cumsum(yy) - yy  # positives before this row in the sorted order
    # exclude rows of the same key at the same time (ties): count only strictly earlier ones
    same = np.r_[False, (k[1:] == k[:-1]) & (tt[1:] == tt[:-1])]
    tie_start = np.maximum.accumulate(np.where(~same, np.arange(n), 0))
    before_pos = csum[tie_start] - csum[group_start]
    before_n = (tie_start - group_start).astype(np.float64)
    share = (before_pos + smoothing * prior) / (before_n + smoothing)
    out_share, out_n = np.empty(n), np.empty(n)
    out_share[order], out_n[order] = share, before_n
    return out_share, out_n


def thermometer(values: np.ndarray, cut: int, bins: int) -> np.ndarray:
    """``values >= q_k`` for the training split's quantiles ``k / (bins + 1)``, k = 1…bins."""
    edges = np.quantile(values[:cut], np.arange(1, bins + 1) / (bins + 1))
    return (values[:, None] >= edges[None, :]).astype(np.float32)


def bootstrap(y: np.ndarray, p: np.ndarray, samples: np.ndarray) -> dict:
    p = np.clip(p.astype(np.float64), 1e-6, 1 - 1e-6)
    aucs = np.array([auc(y[s], p[s]) for s in samples])
    losses = np.array([log_loss(y[s], p[s]) for s in samples])
    return {"auc": auc(y, p), "auc_ci": tuple(np.nanpercentile(aucs, [2.5, 97.5])),
            "log_loss": log_loss(y, p), "log_loss_ci": tuple(np.percentile(losses, [2.5, 97.5]))}


def train_colanet(X_tr: np.ndarray, y_tr: np.ndarray, *, learning_rates, max_epochs: int, seed: int,
                  epochs: int = 0, name: str = "bench") -> CoLaNetWeights:
    """CoLaNet's CTR head trained on ``(X_tr, y_tr)``; the learning rate and epochs (unless
    ``epochs``) chosen by log loss on the newest 10 % of the rows (they are time-ordered), then
    retrained on all of them. Never looks at a test split."""
    val = int(round(len(y_tr) * 0.9))
    best = (np.inf, 0, 0.0)
    for rate in learning_rates:
        weights = None
        for epoch in range(1, max_epochs + 1):
            step = TrainConfig(epochs=1, seed=seed + epoch, score_weight=0.0, learning_rate=rate)
            weights = train(X_tr[:val], y_tr[:val], np.zeros(val, np.float32), version=f"{name}-val", config=step,
                            init=weights).weights
            loss = log_loss(y_tr[val:], predict_ctr(weights, X_tr[val:]))
            print(f"  validation: learning rate {rate:g}, epoch {epoch:>2}  log loss {loss:.5f}", flush=True)
            best = min(best, (loss, epoch, rate))
    chosen, rate = epochs or best[1], best[2]
    print(f"  training on the whole training split: learning rate {rate:g}, {chosen} epochs", flush=True)
    config = TrainConfig(epochs=chosen, seed=seed, score_weight=0.0, learning_rate=rate)
    result = train(X_tr, y_tr, np.zeros_like(y_tr), version=name, config=config,
                   progress=lambda row: print(f"  epoch {row['epoch']:>3}/{row['epochs']}  ctr loss "
                                              f"{row['ctr_loss']:.5f}", flush=True))
    return result.weights


def compare(X: np.ndarray, y: np.ndarray, cut: int, *, learning_rates, max_epochs: int, seed: int,
            n_bootstrap: int, epochs: int = 0, name: str = "bench") -> dict[str, dict]:
    """Train on ``[:cut]``, test on ``[cut:]``: trained CoLaNet, seeded CoLaNet, logistic regression;
    prints the table and returns each model's figures."""
    from sklearn.linear_model import LogisticRegression

    X_tr, y_tr, X_te, y_te = X[:cut], y[:cut], X[cut:], y[cut:]
    predictions: dict[str, np.ndarray] = {}
    t0 = time.perf_counter()
    trained = train_colanet(X_tr, y_tr, learning_rates=learning_rates, max_epochs=max_epochs, seed=seed,
                            epochs=epochs, name=name)
    predictions["CoLaNet, trained"] = predict_ctr(trained, X_te)
    colanet_s = time.perf_counter() - t0
    predictions["CoLaNet, seeded"] = predict_ctr(CoLaNetWeights.seeded(seed=seed), X_te)
    t0 = time.perf_counter()
    # its L2 strength chosen the same way: log loss on the newest 10 % of the training split
    val = int(round(len(y_tr) * 0.9))
    Xd = X_tr.astype(np.float64)
    best_c = min(LR_C_GRID, key=lambda c: log_loss(y_tr[val:], LogisticRegression(C=c, max_iter=2000).fit(
        Xd[:val], y_tr[:val]).predict_proba(Xd[val:])[:, 1]))
    print(f"  logistic regression: C = {best_c:g} (of {', '.join(f'{c:g}' for c in LR_C_GRID)}, on the validation split)")
    lr = LogisticRegression(C=best_c, max_iter=2000).fit(Xd, y_tr)
    predictions["logistic regression"] = lr.predict_proba(X_te.astype(np.float64))[:, 1]
    lr_s = time.perf_counter() - t0

    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(y_te), (n_bootstrap, len(y_te)))
    print(f"\nTest split ({len(y_te)} rows, {int(y_te.sum())} positives), bootstrap {n_bootstrap} resamples, "
          f"95 % intervals:")
    print(f"{'model':<22} {'AUC':>8} {'95 % CI':>17}   {'log loss':>8} {'95 % CI':>17}")
    figures = {}
    for label, p in predictions.items():
        m = figures[label] = bootstrap(y_te, p, samples)
        print(f"{label:<22} {m['auc']:>8.4f} [{m['auc_ci'][0]:.4f}, {m['auc_ci'][1]:.4f}]   "
              f"{m['log_loss']:>8.4f} [{m['log_loss_ci'][0]:.4f}, {m['log_loss_ci'][1]:.4f}]")
    print(f"CoLaNet trained in {colanet_s:.0f} s (validation included), LR in {lr_s:.0f} s")
    return figures
