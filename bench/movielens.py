"""MovieLens-100k as response prediction, in our feature layout: does this user rate this item 4 or more?

Data: the ``ml-100k`` atomic files shipped in the ``recbole==1.2.1`` wheel, read in place from
site-packages (``pip install --no-deps recbole==1.2.1``; requirements/bench.txt). Nothing is copied.

Mapping into the 256-column row (``apps.inference.features``; one row per rating, 100,000 rows):

* user part — interests ``[0, 64)``: age bucket one-hot (7: <18, 18–24, 25–34, 35–44, 45–49, 50–55,
  56+) at 0–6, gender at 7–8, weekday of the rating at 16–22, 3-hour bucket of its hour at 24–31,
  the user's smoothed past "rate ≥ 4" share at 32 and log(1 + past ratings) / 7 at 33 (past = strictly
  earlier ratings); segment one-hot ``[64, 128)``: the occupation (21) at ``64 + occupation``;
  recency ``[136]``: the rating's position in the data's time span (0–1); device desktop, position 0;
* item part — offer features ``[140, 204)``: genres multi-hot in the category slots, the release
  decade (1920s–1990s) one-hot in the tier-1 slots, the normalised year in the max-bid slot, and the
  item's smoothed past "rate ≥ 4" share as the observed CTR (raw and scaled, as the bidder computes
  them); creative format banner.

"Past" shares use only ratings strictly before the row's (ties by time excluded), smoothed towards
the training split's base rate with weight 10, so no row sees its own label or the future.

The user and item shares are also given as thermometer codes (training-split deciles) in spare
columns (interests 34–49, offer 55–63): both models see them; they let a spiking unit read a share.

Split: time-ordered, the oldest 80 % train, the newest 20 % test. Models on the same rows: CoLaNet
trained by ``apps.training.trainer.train`` (CTR head only: ``score_weight=0``, no rewards here;
the learning rate (0.001 or 0.0003) and number of epochs (1–12) chosen by log loss on the newest
10 % of the training split, then retrained on all of it), the
seeded initialisation (``CoLaNetWeights.seeded``: its CTR head follows the observed-CTR column), and
scikit-learn's ``LogisticRegression``. AUC and log loss on the test split with bootstrap 95 %
intervals (the same 200 resamples for every model, seeded).

    .venv/bin/python bench/movielens.py [--seed 42] [--bootstrap 200] [--max-epochs 12] [--learning-rates 0.001 0.0003]
"""
from __future__ import annotations

import argparse
import os
import sys
import sysconfig
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from apps.inference import features as fl  # noqa: E402
from bench.response import compare, past_share, thermometer  # noqa: E402

AGE_EDGES = (18, 25, 35, 45, 50, 56)


def dataset_dir() -> Path:
    path = Path(sysconfig.get_paths()["purelib"]) / "recbole" / "dataset_example" / "ml-100k"
    if not (path / "ml-100k.inter").is_file():
        sys.exit(f"MovieLens-100k not found at {path}: pip install --no-deps recbole==1.2.1 "
                 f"(requirements/bench.txt)")
    return path


def _rows(path: Path) -> list[list[str]]:
    with open(path, encoding="utf-8", errors="replace") as fh:
        next(fh)  # the typed header
        return [line.rstrip("\n").split("\t") for line in fh if line.strip()]


def build(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    inter = _rows(path / "ml-100k.inter")
    users = {r[0]: r for r in _rows(path / "ml-100k.user")}
    items = {r[0]: r for r in _rows(path / "ml-100k.item")}
    occupations = sorted({r[3] for r in users.values()})
    genres = sorted({g for r in items.values() for g in (r[3].split() if len(r) > 3 else [])})
    uid = np.array([int(r[0]) for r in inter])
    iid = np.array([int(r[1]) for r in inter])
    y = np.array([float(r[2]) >= 4 for r in inter], dtype=np.float32)
    t = np.array([float(r[3]) for r in inter])
    order = np.argsort(t, kind="stable")  # time-ordered: the split is by time
    uid, iid, y, t = uid[order], iid[order], y[order], t[order]
    n = len(y)
    cut = int(round(n * 0.8))
    prior = float(y[:cut].mean())
    user_share, user_n = past_share(uid, t, y, prior)
    item_share, _ = past_share(iid, t, y, prior)

    X = np.zeros((n, fl.N_FEATURES), dtype=np.float32)
    rows = np.arange(n)
    ages = np.array([int(users[str(u)][1]) for u in uid])
    X[rows, np.searchsorted(AGE_EDGES, ages, side="right")] = 1.0
    X[rows, 7 + np.array([users[str(u)][2] == "F" for u in uid], dtype=int)] = 1.0
    moments = t.astype("datetime64[s]")
    weekday = ((moments.astype("datetime64[D]").astype(np.int64) + 3) % 7)  # 1970-01-01 was a Thursday
    hour = (t // 3600 % 24).astype(int)
    X[rows, 16 + weekday] = 1.0
    X[rows, 24 + hour // 3] = 1.0
    X[:, 32] = user_share
    X[:, 33] = np.log1p(user_n) / 7.0
    occ = np.array([occupations.index(users[str(u)][3]) for u in uid])
    X[rows, fl.SEGMENT_COLS.start + occ % fl.N_SEGMENT_SLOTS] = 1.0
    X[:, fl.RECENCY_COL] = (t - t.min()) / max(t.max() - t.min(), 1.0)
    X[:, fl.DEVICE_COL] = fl.DEVICE_CODES["desktop"]
    base = fl.OFFER_COLS.start
    for i, item in enumerate(iid):
        meta = items.get(str(item))
        if meta is None:
            continue
        for g in meta[3].split() if len(meta) > 3 else []:
            X[i, base + fl.OFFER_CATEGORY.start + genres.index(g) % fl.N_CATEGORY_BUCKETS] = 1.0
        year = int(meta[2]) if len(meta) > 2 and meta[2].isdigit() else 0
        if year:
            decade = min(max((year - 1920) // 10, 0), 7)
            X[i, base + fl.OFFER_PARENT_CATEGORY.start + decade] = 1.0
            X[i, base + fl.OFFER_MAX_BID] = min(max((year - 1920) / 80.0, 0.0), 1.0)
    X[:, base + fl.OFFER_CTR] = item_share
    X[:, base + fl.OFFER_CTR_SCALED] = np.minimum(item_share / fl.CTR_SCALE, 1.0)
    X[:, base + fl.OFFER_FORMAT.start] = 1.0  # banner
    # the shares again as thermometer codes (deciles of the training split), for both models: a
    # spiking unit fires on a threshold, so a ladder of thresholds lets it read a continuous share
    X[:, 34:44] = thermometer(user_share, cut, 10)
    X[:, 44:50] = thermometer(np.log1p(user_n), cut, 6)
    X[:, base + fl.OFFER_FORMAT.stop:base + fl.N_OFFER] = thermometer(item_share, cut, fl.N_OFFER - fl.OFFER_FORMAT.stop)
    return X, y, cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=0, help="0 (default): chosen on the validation split")
    parser.add_argument("--max-epochs", type=int, default=12, help="epochs tried on the validation split")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[0.001, 0.0003],
                        help="learning rates tried on the validation split")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    started = time.perf_counter()
    X, y, cut = build(dataset_dir())
    print(f"MovieLens-100k: {len(y)} ratings, train {cut} (rate>=4 {y[:cut].mean():.3f}), "
          f"test {len(y) - cut} (rate>=4 {y[cut:].mean():.3f}); built in {time.perf_counter() - started:.1f} s", flush=True)
    figures = compare(X, y, cut, learning_rates=args.learning_rates, max_epochs=args.max_epochs, seed=args.seed,
                      n_bootstrap=args.bootstrap, epochs=args.epochs, name="movielens")
    gap = figures["CoLaNet, trained"]["auc"] - figures["logistic regression"]["auc"]
    verdict = "met" if gap >= -0.005 else "NOT met"
    print(f"\ntarget trained CoLaNet AUC >= LR AUC - 0.005: {verdict} (difference {gap:+.4f})")


if __name__ == "__main__":
    main()
