import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from apps.inference import features as F


def make_user(**overrides):
    kwargs = dict(
        interests=[0.5] * 64,
        segments=[3, 70, 64, -1],
        loyalty=[0.5, 0.2, 0.25, 0.6, 0.1, 1.0, 0.33, 0.02],
        recency=0.75,
        impressions_1h=3,
        max_per_hour=10,
        device_type="tablet",
    )
    kwargs.update(overrides)
    return F.user_row(**kwargs)


def test_user_row_layout_is_exact():
    row = make_user()
    assert row.dtype == np.float32 and row.shape == (256,)
    assert np.all(row[0:64] == np.float32(0.5))
    # segments 3, 70 (70 % 64 = 6), 64 (-> 0) and -1 (-> 63) one-hot at 64 + id % 64
    assert sorted(np.flatnonzero(row[64:128]).tolist()) == [0, 3, 6, 63]
    assert np.all(row[64:128][[0, 3, 6, 63]] == 1.0)
    np.testing.assert_array_equal(row[128:136], np.float32([0.5, 0.2, 0.25, 0.6, 0.1, 1.0, 0.33, 0.02]))
    assert row[136] == np.float32(0.75)
    assert row[137] == np.float32(0.3)
    assert row[138] == np.float32(0.5)
    assert not row[139:].any()  # position, offer features and the tail are not user columns


def test_user_row_pads_truncates_and_defaults():
    row = make_user(interests=[1.0, 2.0], segments=[], loyalty=None, max_per_hour=0, device_type=None)
    np.testing.assert_array_equal(row[:3], np.float32([1.0, 2.0, 0.0]))
    assert not row[64:136].any()  # no segments, no loyalty data -> zeros
    assert row[137] == 1.0  # no allowance at all counts as fully used
    assert row[138] == -1.0
    long = make_user(interests=list(range(100)), loyalty=list(range(20)))
    np.testing.assert_array_equal(long[:64], np.arange(64, dtype=np.float32))
    np.testing.assert_array_equal(long[128:136], np.arange(8, dtype=np.float32))
    assert long[136] == np.float32(0.75)  # loyalty overflow did not spill into recency


@pytest.mark.parametrize(
    "device,code", [("desktop", 0.0), ("mobile", 1.0), ("tablet", 0.5), ("ctv", 0.75), ("unknown", -1.0), ("toaster", -1.0)]
)
def test_device_codes(device, code):
    assert make_user(device_type=device)[138] == np.float32(code)
    assert F.device_code(device) == code


@pytest.mark.parametrize(
    "devicetype,expected",
    [(1, "mobile"), (2, "desktop"), (3, "ctv"), (4, "mobile"), (5, "tablet"), (6, "unknown"), (7, "ctv"),
     (8, "unknown"), (99, "unknown"), (None, "unknown")],
)
def test_device_type_from_openrtb(devicetype, expected):
    assert F.device_type_from_openrtb(devicetype) == expected


def test_offer_features_sub_layout():
    vec = F.offer_features(category="IAB1-1", max_bid_cpm=25.0, observed_ctr=0.02, creative_format="video")
    assert vec.dtype == np.float32 and vec.shape == (64,)
    assert np.flatnonzero(vec[0:32]).tolist() == [zlib.crc32(b"IAB1-1") % 32]
    assert np.flatnonzero(vec[32:48]).tolist() == [zlib.crc32(b"IAB1") % 16]
    assert vec[48] == np.float32(0.5)
    assert vec[49] == np.float32(0.02)
    assert vec[50] == np.float32(0.4)
    np.testing.assert_array_equal(vec[51:55], np.float32([0, 1, 0, 0]))
    assert not vec[55:].any()


def test_offer_features_normalisation_and_unknowns():
    vec = F.offer_features(category="", max_bid_cpm=80.0, observed_ctr=0.2, creative_format="hologram")
    assert not vec[0:48].any()  # no category, no bit
    assert vec[48] == 1.0 and vec[49] == np.float32(0.2) and vec[50] == 1.0
    np.testing.assert_array_equal(vec[51:55], np.float32([0, 0, 0, 1]))
    # case and whitespace do not change the hashed category; sub-categories share the parent bit
    a = F.offer_features(category=" iab1-1 ", max_bid_cpm=1, observed_ctr=0, creative_format="Banner")
    b = F.offer_features(category="IAB1-1", max_bid_cpm=1, observed_ctr=0, creative_format="banner")
    c = F.offer_features(category="IAB1-2", max_bid_cpm=1, observed_ctr=0, creative_format="banner")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(b[32:48], c[32:48])


def test_offer_feature_hash_is_stable_across_processes():
    code = (
        "from apps.inference.features import offer_features;"
        "v = offer_features(category='IAB19-6', max_bid_cpm=3, observed_ctr=0.01, creative_format='native');"
        "print(v.nonzero()[0].tolist())"
    )
    outputs = {
        subprocess.run([sys.executable, "-c", code], env={"PYTHONHASHSEED": seed, "PATH": ""}, capture_output=True,
                       text=True, check=True, cwd=Path(F.__file__).resolve().parents[2]).stdout
        for seed in ("1", "2")
    }
    assert len(outputs) == 1


def test_feature_matrix_places_every_block():
    user = make_user()
    user[150] = 9.0  # junk outside USER_COLS must not leak into the matrix
    offers = np.arange(3 * 64, dtype=np.float32).reshape(3, 64)
    pos = F.position_column(3, 64)
    np.testing.assert_array_equal(pos, np.float32([0, 1 / 64, 2 / 64]))
    X = F.feature_matrix(user, offers, pos)
    assert X.shape == (3, 256) and X.dtype == np.float32
    for i in range(3):
        np.testing.assert_array_equal(X[i, :139], user[:139])
    np.testing.assert_array_equal(X[:, 139], pos)
    np.testing.assert_array_equal(X[:, 140:204], offers)
    assert not X[:, 204:].any()


def test_position_column_rejects_bad_batch_size():
    with pytest.raises(ValueError, match="batch_size must be positive"):
        F.position_column(3, 0)
