"""The numpy CoLaNet trainer (apps.training.trainer): learns a planted click model, deterministically."""
from __future__ import annotations

import numpy as np
import pytest

from apps.inference.features import feature_row
from apps.inference.model import CoLaNetWeights
from apps.training.trainer import TrainConfig, auc, log_loss, predict_ctr, score_target, train

CATEGORIES = ("IAB1-1", "IAB8-5", "IAB19", "IAB22-1")


def planted(n: int, seed: int):
    """Rows whose click probability is 0.9 for three planted (user × offer) patterns, else 0.01:
    segment 5 × a tier-1 IAB1 category, a strong interest 0 × video, segments 1-2 × IAB19."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n, 256), np.float32)
    y = np.zeros(n, np.float32)
    for i in range(n):
        segment = int(rng.integers(0, 8))
        category = CATEGORIES[int(rng.integers(0, 4))]
        fmt = "video" if rng.random() < 0.5 else "banner"
        interests = rng.uniform(0, 1, 64).astype(np.float32)
        hot = ((segment == 5 and category.startswith("IAB1-")) or (interests[0] > 0.7 and fmt == "video")
               or (segment in (1, 2) and category == "IAB19"))
        y[i] = rng.random() < (0.9 if hot else 0.01)
        X[i] = feature_row(interests=interests, segments=[segment], loyalty=None, recency=float(rng.random()),
                           impressions_1h=int(rng.integers(0, 5)), max_per_hour=10, device_type="mobile",
                           position=int(rng.integers(0, 4)), batch_size=64, category=category,
                           max_bid_cpm=float(rng.uniform(1, 10)), observed_ctr=0.02, creative_format=fmt)
    reward = np.where(y > 0, 1.0, -0.1).astype(np.float32)
    return X, y, reward


@pytest.fixture(scope="module")
def data():
    return planted(4000, 1), planted(1000, 2)


def test_the_trainer_learns_a_planted_click_model(data):
    (X, y, reward), (Xt, yt, _) = data
    progress = []
    result = train(X, y, reward, version="planted-1", config=TrainConfig(epochs=30, seed=3), progress=progress.append)
    trained, seeded = predict_ctr(result.weights, Xt), predict_ctr(CoLaNetWeights.seeded(seed=3), Xt)
    assert auc(yt, trained) >= 0.9 > auc(yt, seeded)
    assert log_loss(yt, trained) < log_loss(yt, seeded)
    assert [row["epoch"] for row in progress] == list(range(1, 31)) and progress == result.history
    assert progress[-1]["loss"] < progress[0]["loss"]
    w = result.weights
    assert w.version == "planted-1" and all(getattr(w, k).dtype == np.float32 for k in ("W1", "b1", "theta", "W2", "b2"))


def test_one_seed_gives_the_same_weights_twice_and_another_seed_does_not(data):
    (X, y, reward), _ = data
    X, y, reward = X[:1000], y[:1000], reward[:1000]
    config = TrainConfig(epochs=3, seed=9)
    first, second = (train(X, y, reward, version="det", config=config).weights for _ in range(2))
    other = train(X, y, reward, version="det", config=TrainConfig(epochs=3, seed=10)).weights
    for name in ("W1", "b1", "theta", "W2", "b2"):
        assert np.array_equal(getattr(first, name), getattr(second, name)), name
    assert not np.array_equal(first.W1, other.W1)


def test_the_score_head_target_is_half_the_reward_clipped():
    assert score_target(np.array([2.0, 3.0, -0.1, 1.0, -5.0])).tolist() == pytest.approx([1.0, 1.0, -0.05, 0.5, -1.0])


def test_auc_counts_ties_half_and_log_loss_is_clipped():
    assert auc(np.array([0, 1, 0, 1]), np.array([0.1, 0.9, 0.5, 0.5])) == pytest.approx(0.875)
    assert np.isnan(auc(np.array([1, 1]), np.array([0.2, 0.3])))
    assert log_loss(np.array([1.0]), np.array([0.0])) == pytest.approx(-np.log(1e-6))
