import numpy as np
import pytest

from apps.inference import features as F
from apps.inference.model import CoLaNetWeights, ModelFileError, forward

from .conftest import random_weights


def offers_grid(n=64):
    cats = ["IAB1-1", "IAB2", "IAB3-4", "IAB19-6"]
    return np.stack([
        F.offer_features(category=cats[i % 4], max_bid_cpm=1 + 0.7 * i, observed_ctr=0.001 * i,
                         creative_format=("banner", "video", "native")[i % 3])
        for i in range(n)
    ])


def user():
    return F.user_row(interests=np.linspace(0, 1, 64), segments=[1, 5, 9], loyalty=[0.5] * 8, recency=0.3,
                      impressions_1h=1, max_per_hour=10, device_type="mobile")


def test_seeded_init_is_deterministic_and_seed_dependent():
    a, b, c = CoLaNetWeights.seeded(seed=7), CoLaNetWeights.seeded(seed=7), CoLaNetWeights.seeded(seed=8)
    assert a.version == "seed-7" and a.hidden == 128
    for name in ("W1", "b1", "theta", "W2", "b2"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    assert not np.array_equal(a.W1, c.W1)


def test_seeded_scores_differ_across_offers_and_follow_ctr_and_bid():
    weights = CoLaNetWeights.seeded(seed=42)
    offers = offers_grid()
    score, ctr = weights.forward(F.feature_matrix(user(), offers, F.position_column(64, 64)))
    assert score.dtype == np.float32 and ctr.dtype == np.float32
    assert len(np.unique(score)) > 48  # candidates do not all score the same
    assert np.all((score > -1) & (score < 1)) and np.all((ctr > 0) & (ctr < 1))
    observed = offers[:, F.OFFER_CTR]
    assert np.corrcoef(observed, ctr)[0, 1] > 0.95  # untrained CTR head tracks the observed CTR
    assert np.corrcoef(observed, score)[0, 1] > 0.8  # and the score prefers higher CTR / higher bids
    # below the 5 % ceiling: within one ladder step (0.156 %) plus the random units' nudges (~±15 %)
    below = observed < 0.05
    assert np.all(np.abs(ctr[below] - observed[below]) <= 0.0016 + 0.2 * observed[below])
    # same offer, higher max bid -> higher score (bid ladder), all else equal
    low = F.offer_features(category="IAB1", max_bid_cpm=2, observed_ctr=0.01, creative_format="banner")
    high = F.offer_features(category="IAB1", max_bid_cpm=40, observed_ctr=0.01, creative_format="banner")
    s, _ = weights.forward(F.feature_matrix(user(), np.stack([low, high]), np.zeros(2, np.float32)))
    assert s[1] > s[0]


def test_npz_round_trip(tmp_path):
    weights = random_weights(3, hidden=32, version="v1.2_rc-3")
    path = tmp_path / "w.npz"
    weights.to_npz(path)
    loaded = CoLaNetWeights.from_npz(path)
    assert loaded.version == "v1.2_rc-3" and loaded.hidden == 32
    for name in ("W1", "b1", "theta", "W2", "b2"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(weights, name))
        assert getattr(loaded, name).dtype == np.float32
        assert not getattr(loaded, name).flags.writeable  # immutable once loaded


def write(path, **arrays):
    base = random_weights(1, hidden=16)
    data = {"W1": base.W1, "b1": base.b1, "theta": base.theta, "W2": base.W2, "b2": base.b2, "version": np.array("v1")}
    data.update(arrays)
    data = {k: v for k, v in data.items() if v is not None}
    with open(path, "wb") as fh:
        np.savez(fh, **data)
    return path


@pytest.mark.parametrize(
    "arrays,message",
    [
        ({"W1": np.zeros((255, 16), np.float32)}, r"W1 must have shape \(256, H\), got \(255, 16\)"),
        ({"W2": np.zeros((16, 3), np.float32)}, r"W2 must have shape \(16, 2\) \(H=16\), got \(16, 3\)"),
        ({"b1": np.r_[np.zeros(15, np.float32), np.nan]}, r"b1 has 1 non-finite values"),
        ({"b2": np.array([1e300, 0.0])}, r"b2 has 1 non-finite values .*too large for float32"),
        ({"theta": None}, r"missing arrays \['theta'\]"),
        ({"W1": np.zeros((256, 16), np.int32)}, r"W1 must be a floating-point array, got dtype int32"),
        ({"theta": np.zeros(5, np.float32)}, r"theta must be a scalar or have shape \(16,\), got \(5,\)"),
        ({"version": np.array("../../etc/passwd")}, r"model version '../../etc/passwd' is invalid"),
        ({"version": np.array(7)}, r"'version' must be a 0-d string array"),
    ],
)
def test_from_npz_rejects_bad_files_with_clear_messages(tmp_path, arrays, message):
    path = write(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ModelFileError, match=message) as info:
        CoLaNetWeights.from_npz(path)
    assert str(path) in str(info.value)


def test_from_npz_rejects_non_npz_and_missing_files(tmp_path):
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"\x80\x04K\x01.")  # a pickle: must never be unpickled
    with pytest.raises(ModelFileError, match="not an .npz file"):
        CoLaNetWeights.from_npz(junk)
    with pytest.raises(ModelFileError, match="no such file"):
        CoLaNetWeights.from_npz(tmp_path / "absent.npz")
    truncated = tmp_path / "truncated.npz"
    write(tmp_path / "good.npz")
    truncated.write_bytes((tmp_path / "good.npz").read_bytes()[:5000])
    with pytest.raises(ModelFileError, match="truncated.npz"):
        CoLaNetWeights.from_npz(truncated)


def test_scalar_theta_is_broadcast(tmp_path):
    path = write(tmp_path / "scalar.npz", theta=np.float32(0.25))
    weights = CoLaNetWeights.from_npz(path)
    np.testing.assert_array_equal(weights.theta, np.full(16, 0.25, np.float32))


def test_forward_threshold_and_heads_by_hand():
    # one hidden unit reading column 0; it fires only above theta = 0.5
    W1 = np.zeros((256, 1))
    W1[0, 0] = 1.0
    weights = CoLaNetWeights(W1=W1, b1=np.zeros(1), theta=np.array([0.5]), W2=np.array([[2.0, -1.0]]),
                             b2=np.array([0.0, 0.0]), version="hand")
    X = np.zeros((3, 256), np.float32)
    X[:, 0] = [0.4, 0.5, 0.6]  # exactly at the threshold does not fire
    score, ctr = forward(weights, X)
    np.testing.assert_allclose(score, np.float32([0.0, 0.0, np.tanh(2.0)]), atol=1e-7)
    np.testing.assert_allclose(ctr, np.float32([0.5, 0.5, (np.tanh(-1.0) + 1) / 2]), atol=1e-7)
    # saturated outputs stay inside the open intervals
    huge = CoLaNetWeights(W1=W1, b1=np.zeros(1), theta=np.array([0.5]), W2=np.array([[50.0, -50.0]]),
                          b2=np.zeros(2), version="huge")
    score, ctr = huge.forward(X)
    assert score[2] < 1.0 and ctr[2] > 0.0
    with pytest.raises(ValueError, match=r"X must have shape \(n, 256\)"):
        forward(weights, np.zeros((2, 255), np.float32))
