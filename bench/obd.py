"""The Open Bandit Dataset sample as click prediction, in our feature layout: is this impression clicked?

Data: the sample of the Open Bandit Dataset (ZOZOTOWN fashion e-commerce, Saito et al. 2021) shipped
in the ``obp==0.4.1`` wheel, read in place from site-packages (``pip install --no-deps obp==0.4.1``;
requirements/bench.txt). Nothing is copied. Six files pooled — two logging policies (``random``,
``bts``) × three campaigns (``all``, ``men``, ``women``), 10,000 impressions each: 60,000
impressions, 287 clicks; each recommends one item in one of three positions.

Mapping into the 256-column row (``apps.inference.features``; one row per impression):

* user part — interests ``[0, 64)``: the four hashed user features one-hot (the vocabulary of all
  their values, 27) at 0–31, the user's affinity to the shown item (``user-item_affinity_<item>``,
  clipped to 1) at 32, log(1 + the user's affinities to all items) at 33, the position one-hot at
  34–36, weekday of the impression at 40–46, its 3-hour bucket at 48–55; segment one-hot
  ``[64, 128)``: the campaign (3) at 64–66, the logging policy (2) at 67–68, and the item's two
  other hashed item features at 72 + crc32(``item_feature_2``) % 24 and 96 + crc32(``item_feature_3``)
  % 16; recency ``[136]``: the impression's position in the data's time span; device desktop;
  position ``[139]``: ``(position − 1) / 3`` (the bidder's rank / batch size);
* item part — offer features ``[140, 204)``: the (campaign, item) pair hashed into the category
  slots (crc32 % 32), ``item_feature_1`` hashed into the tier-1 slots (crc32 % 16), ``item_feature_0``
  (a price-like number, min–max scaled) in the max-bid slot, the (campaign, item)'s smoothed past
  click share as the observed CTR (raw and scaled, as the bidder computes them; past = strictly
  earlier impressions, smoothed towards the training split's CTR with weight 100) and the same share
  as a thermometer code (training-split quantiles) in the spare slots 55–63; creative format banner.

Split: the 60,000 impressions in time order (the files overlap in time: 24–30 November 2019), the
oldest 80 % train, the newest 20 % test. Models as ``movielens.py`` (``bench/response.py``): CoLaNet
trained by ``apps.training.trainer.train`` with the learning rate and epochs chosen on the newest
10 % of the training split, the seeded initialisation, scikit-learn's ``LogisticRegression``; AUC
and log loss with bootstrap 95 % intervals (the same resamples for every model). With ~57 test
clicks the intervals are wide: the figures say what the data can say, no target is set on them.

    .venv/bin/python bench/obd.py [--seed 42] [--bootstrap 200] [--max-epochs 12] [--learning-rates 0.0003 0.0001 0.00003]
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import os
import sys
import sysconfig
import time
import zlib
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from apps.inference import features as fl  # noqa: E402
from bench.response import compare, past_share, thermometer  # noqa: E402

POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
SMOOTHING = 100.0  # CTRs of ~0.5 %: a share needs many impressions before it means anything


def dataset_dir() -> Path:
    path = Path(sysconfig.get_paths()["purelib"]) / "obp" / "dataset" / "obd"
    if not (path / "random" / "all" / "all.csv").is_file():
        sys.exit(f"Open Bandit Dataset sample not found at {path}: pip install --no-deps obp==0.4.1 "
                 f"(requirements/bench.txt)")
    return path


def _crc(text: str, buckets: int) -> int:
    return zlib.crc32(text.encode("utf-8")) % buckets


def _read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def build(path: Path) -> tuple[np.ndarray, np.ndarray, int]:
    rows: list[tuple[float, str, str, dict, dict]] = []  # (time, policy, campaign, impression, item)
    for policy in POLICIES:
        for campaign in CAMPAIGNS:
            items = {r["item_id"]: r for r in _read(path / policy / campaign / "item_context.csv")}
            for r in _read(path / policy / campaign / f"{campaign}.csv"):
                moment = dt.datetime.fromisoformat(r["timestamp"]).timestamp()
                rows.append((moment, policy, campaign, r, items[r["item_id"]]))
    rows.sort(key=lambda row: row[0])  # time-ordered: the split is by time
    n = len(rows)
    cut = int(round(n * 0.8))
    t = np.array([row[0] for row in rows])
    y = np.array([row[3]["click"] == "1" for row in rows], dtype=np.float32)
    prior = float(y[:cut].mean())
    item_key = np.array([CAMPAIGNS.index(row[2]) * 1000 + int(row[3]["item_id"]) for row in rows])
    item_share, _ = past_share(item_key, t, y, prior, smoothing=SMOOTHING)
    vocab = sorted({(k, row[3][f"user_feature_{k}"]) for row in rows for k in range(4)})
    slot = {v: i for i, v in enumerate(vocab)}
    if len(vocab) > 32:
        sys.exit(f"{len(vocab)} user feature values: more than the 32 interest slots this mapping reserves")
    price = np.array([float(row[4]["item_feature_0"]) for row in rows])
    price = (price - price[:cut].min()) / max(price[:cut].max() - price[:cut].min(), 1e-9)

    X = np.zeros((n, fl.N_FEATURES), dtype=np.float32)
    base = fl.OFFER_COLS.start
    for i, (moment, policy, campaign, r, item) in enumerate(rows):
        for k in range(4):
            X[i, slot[(k, r[f"user_feature_{k}"])]] = 1.0
        affinities = [float(v) for key, v in r.items() if key.startswith("user-item_affinity_")]
        X[i, 32] = min(float(r[f"user-item_affinity_{r['item_id']}"]), 1.0)
        X[i, 33] = np.log1p(sum(affinities))
        position = int(r["position"])
        X[i, 34 + position - 1] = 1.0
        when = dt.datetime.fromtimestamp(moment, dt.timezone.utc)
        X[i, 40 + when.weekday()] = 1.0
        X[i, 48 + when.hour // 3] = 1.0
        segment = fl.SEGMENT_COLS.start
        X[i, segment + CAMPAIGNS.index(campaign)] = 1.0
        X[i, segment + 3 + POLICIES.index(policy)] = 1.0
        X[i, segment + 8 + _crc(item["item_feature_2"], 24)] = 1.0
        X[i, segment + 32 + _crc(item["item_feature_3"], 16)] = 1.0
        X[i, fl.POSITION_COL] = (position - 1) / 3.0
        X[i, base + fl.OFFER_CATEGORY.start + _crc(f"{campaign}:{r['item_id']}", fl.N_CATEGORY_BUCKETS)] = 1.0
        X[i, base + fl.OFFER_PARENT_CATEGORY.start + _crc(item["item_feature_1"], fl.N_PARENT_BUCKETS)] = 1.0
    X[:, fl.RECENCY_COL] = (t - t.min()) / max(t.max() - t.min(), 1.0)
    X[:, fl.DEVICE_COL] = fl.DEVICE_CODES["desktop"]
    X[:, base + fl.OFFER_MAX_BID] = np.clip(price, 0.0, 1.0)
    X[:, base + fl.OFFER_CTR] = item_share
    X[:, base + fl.OFFER_CTR_SCALED] = np.minimum(item_share / fl.CTR_SCALE, 1.0)
    X[:, base + fl.OFFER_FORMAT.start] = 1.0  # banner
    X[:, base + fl.OFFER_FORMAT.stop:base + fl.N_OFFER] = thermometer(item_share, cut, fl.N_OFFER - fl.OFFER_FORMAT.stop)
    return X, y, cut


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=0, help="0 (default): chosen on the validation split")
    parser.add_argument("--max-epochs", type=int, default=12, help="epochs tried on the validation split")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[0.0003, 0.0001, 0.00003],
                        help="learning rates tried on the validation split")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()

    started = time.perf_counter()
    X, y, cut = build(dataset_dir())
    print(f"Open Bandit Dataset sample (6 files pooled): {len(y)} impressions, {int(y.sum())} clicks; "
          f"train {cut} ({int(y[:cut].sum())} clicks, CTR {y[:cut].mean():.4f}), test {len(y) - cut} "
          f"({int(y[cut:].sum())} clicks, CTR {y[cut:].mean():.4f}); built in {time.perf_counter() - started:.1f} s",
          flush=True)
    compare(X, y, cut, learning_rates=args.learning_rates, max_epochs=args.max_epochs, seed=args.seed,
            n_bootstrap=args.bootstrap, epochs=args.epochs, name="obd")


if __name__ == "__main__":
    main()
