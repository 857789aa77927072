"""apps.analytics._rows: the compiled module (scripts/build_ext.py) and its own Python source give the
same rows and refuse the same records."""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

from apps.analytics import _rows

SOURCE = Path(_rows.__file__).with_name("_rows.py")


@pytest.fixture(scope="module")
def python_rows():
    spec = importlib.util.spec_from_file_location("_rows_as_python", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_bid_path_imports_the_compiled_module():
    if not _rows.__file__.endswith(".so"):
        pytest.skip("scripts/build_ext.py has not built apps/analytics/_rows (the Python source runs)")
    assert _rows.__file__.endswith(".so")


def _records(rng):
    offers = [("91", "901", "IAB8-5", 6.5, 0.031, "banner"), (92, 902, None, 9, 0.0, "video")]
    for i in range(200):
        ctx = (f"r-{i}", "open" if i % 3 else None, f"u-{i}" if i % 5 else "", "gold",
               rng.random(64, dtype=np.float32) if i % 2 else np.zeros(64, np.float32),
               tuple(rng.integers(0, 200, i % 4)), [0.5] * 8 if i % 7 == 0 else np.ones(8, np.float32),
               0.25 if i % 4 else 1, i % 3, "mobile", None if i % 6 else "USA", 17, "m-1" if i % 2 else None,
               1_700_000_000.5 + i, (1, 10, 8), "s", None, "a" if i % 9 == 0 else None, None, "p")
        per_bid = tuple((f"b-{i}-{j}", str(j) if i % 10 else j, None if j else "tag", j or None, offers[j % 2],
                         round(float(rng.random()) * 3, 4), j, float(rng.random()) / 10, float(rng.random()))
                        for j in range(1 + i % 3))
        yield ctx, per_bid, i * 10 if i % 8 else float(i)


def test_compiled_and_python_give_the_same_rows(python_rows):
    rng = np.random.default_rng(3)
    direct = converted = 0
    for ctx, per_bid, latency in _records(rng):
        ts_us = 1_700_000_000_123_456
        assert _rows.bid_inputs_rows(ts_us, (ctx, per_bid)) == python_rows.bid_inputs_rows(ts_us, (ctx, per_bid))
        ours = _rows.bid_response_rows(1, 2, ctx, per_bid, latency, lambda: "id")
        assert ours == python_rows.bid_response_rows(1, 2, ctx, per_bid, latency, lambda: "id")
        direct += sum(row is not None for row in ours)
        converted += sum(row is None for row in ours)
    assert direct > 50 and converted > 50  # both paths: built here, and left to events.to_row


@pytest.mark.parametrize("bad", [
    lambda ctx, bids: (ctx[:13] + (math.nan,) + ctx[14:], bids),  # served_at
    lambda ctx, bids: (ctx, ((*bids[0][:5], math.inf, *bids[0][6:]),)),  # price
    lambda ctx, bids: (ctx[:3], bids),  # a short context
    lambda ctx, bids: (ctx, (("b", "1", None, None, ("1", "2", "c", "x", 0.1, "banner"), 1.0, 0, 0.1, 0.2),)),
])
def test_both_refuse_the_same_records(python_rows, bad):
    ctx, per_bid, _ = next(_records(np.random.default_rng(1)))
    record = bad(ctx, per_bid)
    with pytest.raises(_rows.InvalidRecord) as compiled:
        _rows.bid_inputs_rows(1, record)
    with pytest.raises(python_rows.InvalidRecord) as python:
        python_rows.bid_inputs_rows(1, record)
    # the same reason (Cython words a failed unpacking its own way)
    assert str(compiled.value).split(":")[:2] == str(python.value).split(":")[:2]
