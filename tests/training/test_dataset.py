"""Training sets (apps.training.dataset) from real ClickHouse: bids through the real processor and
analytics pipeline, wins and clicks joined by bid id within the window, reward signals (stored by
the loyalty service) by (user, offer), features rebuilt equal to the scored rows. And
``manage.py train_model`` on them."""
from __future__ import annotations

import asyncio
import datetime as dt
import time
import uuid

import numpy as np
import pytest
from django.core.management import CommandError, call_command

from apps.analytics import selectors, testing
from apps.analytics.emitter import emit_with_id, new_event_id
from apps.bidding.cache import UserState
from apps.bidding.processor import BidProcessor
from apps.inference.model import CoLaNetWeights
from apps.loyalty.services import loyalty_reward_signal
from apps.training.dataset import training_set_build
from tests.bidding.helpers import EventRecorder, bid_config, bid_request, make_row, make_snapshot
from tests.bidding.test_serve_inputs import RecordingInference

pytestmark = pytest.mark.django_db(transaction=True)  # reward signals are emitted after commit
UTC = dt.timezone.utc
WINDOW = 600


@pytest.fixture(scope="module")
def clickhouse_db():
    return testing.clickhouse_schema()


@pytest.fixture
def runtime(tmp_path):
    from apps.inference.runtime import InferenceRuntime

    weights = CoLaNetWeights.seeded(seed=5, version="dataset-1")
    (tmp_path / "m").mkdir()
    weights.to_npz(tmp_path / "m" / "colanet-dataset-1.npz")
    rt = InferenceRuntime(model_dir=tmp_path / "m")
    rt.load()
    return rt


def _outcome(event_type: str, bid, user_id: str, at: float) -> None:
    emit_with_id(event_type, event_id=new_event_id(), timestamp_us=int(at * 1_000_000), bid_id=bid.id,
                 user_id=user_id, offer_id=bid.adid, campaign_id=bid.cid)


async def _serve(runtime):
    tag = uuid.uuid4().hex[:8]
    users = [f"tr-{tag}-{i}" for i in range(4)]
    offers = [make_row(offer_id=int(uuid.uuid4().int % 10**8), observed_ctr=0.01 * (i + 1), category=c)
              for i, c in enumerate(("IAB1-1", "IAB8-5"))]
    inference = RecordingInference(runtime)
    processor = BidProcessor(config=bid_config(), inference=inference, emit_event=EventRecorder())
    processor.set_snapshot(make_snapshot(offers))
    for i, user_id in enumerate(users):
        processor.cache.put(UserState(user_id, tier="gold", segments=(i, 40 + i), recency=0.1 * i, known=True,
                                      interests=np.full(64, 0.125 * i, np.float32), loyalty=np.full(8, 0.25, np.float32),
                                      loaded_at=time.time()))
    bids = []
    for user_id in users:
        outcome = await processor.process(bid_request(id=f"req-{user_id}", user_id=user_id))
        assert len(outcome.bids) == 1
        bids.append(outcome.bids[0])
    return users, bids, inference.scored


def test_labels_join_by_bid_id_and_by_user_and_offer_within_the_window(clickhouse_db, runtime):
    start = dt.datetime.now(UTC) - dt.timedelta(seconds=5)
    users, bids, scored = asyncio.run(_serve(runtime))
    now = time.time()
    for bid, user_id in zip(bids[:3], users[:3], strict=True):  # bids 0-2 win, bid 3 does not
        _outcome("win", bid, user_id, now + 1)
    _outcome("click", bids[0], users[0], now + 30)  # in the window
    _outcome("click", bids[1], users[1], now + WINDOW + 30)  # too late
    loyalty_reward_signal(user_id=users[0], offer_id=bids[0].adid, signal_type="redeemed")  # +2 -> bid 0
    loyalty_reward_signal(user_id=users[2], offer_id=bids[2].adid, signal_type="ignored")  # -0.1 -> bid 2
    loyalty_reward_signal(user_id=users[3], offer_id=bids[3].adid, signal_type="clicked")  # bid 3 not won: nobody
    loyalty_reward_signal(user_id=users[1], offer_id="other-offer", signal_type="clicked")  # another offer
    testing.flush_and_consume()

    full = training_set_build(since=start, until=dt.datetime.now(UTC) + dt.timedelta(seconds=5),
                              window_seconds=WINDOW)
    index = {bid_id: i for i, bid_id in enumerate(full.bid_ids)}
    rows = [index[b.id] for b in bids]
    assert full.won[rows].tolist() == [True, True, True, False]
    assert full.y_click[rows].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert full.reward[rows].tolist() == pytest.approx([2.0, 0.0, -0.1, 0.0])
    assert full.X.dtype == np.float32 and full.X.shape[1] == 256
    position = {r["bid_id"]: r["position"] for r in selectors.bid_inputs_list(bid_ids=[b.id for b in bids])}
    for k, (bid, i) in enumerate(zip(bids, rows, strict=True)):
        assert np.array_equal(full.X[i], scored[k][position[bid.id]])
    won = full.won_only()
    assert {b.id for b in bids[:3]} <= set(won.bid_ids) and bids[3].id not in won.bid_ids
    assert full.model_versions.get("dataset-1", 0) >= 4
    # read a row at a time, or only the won impressions: the same set
    window = {"since": start, "until": dt.datetime.now(UTC) + dt.timedelta(seconds=5), "window_seconds": WINDOW}
    small = training_set_build(**window, chunk=1)
    assert small.bid_ids == full.bid_ids and np.array_equal(small.X, full.X) and small.bids == full.bids == len(full)
    assert np.array_equal(small.y_click, full.y_click) and np.array_equal(small.reward, full.reward)
    only = training_set_build(**window, won_only=True, chunk=2)
    assert only.bid_ids == won.bid_ids and np.array_equal(only.X, won.X) and np.array_equal(only.reward, won.reward)
    assert np.array_equal(only.y_click, won.y_click) and only.won.all() and only.bids == full.bids


def _stored_row(event_id: str, at: dt.datetime) -> tuple:
    """A ``bid_inputs`` row as the analytics consumer inserts it (only the key and times matter here)."""
    from apps.analytics.bid_inputs import COLUMNS

    values = {"event_id": event_id, "timestamp": at, "timestamp_us": 0, "bid_id": event_id, "served_at": at.timestamp(),
              "interests": [], "segments": [], "loyalty": [], "layout_version": 1}
    text = {"request_id", "imp_id", "user_id", "campaign_id", "offer_id", "model_version", "tier", "device_type",
            "country", "offer_category", "offer_format", "exchange", "site_id", "site_domain", "app_id", "app_bundle",
            "publisher_id", "imp_tagid"}
    return tuple(values.get(c, "" if c in text else 0) for c in COLUMNS)


def test_bid_inputs_are_read_in_chunks_each_row_once_in_key_order(clickhouse_db):
    from apps.analytics.bid_inputs import COLUMNS
    from apps.core import clickhouse as ch

    tag = uuid.uuid4().hex[:8]
    # a 3-hour window of the year 2001 no other run uses (the test database keeps its rows)
    base = dt.datetime(2001, 1, 1, tzinfo=UTC) + dt.timedelta(hours=3 * (int(tag, 16) % 2900))
    moments = [base + dt.timedelta(minutes=m) for m in (0, 5, 5, 59, 130, 131, 132, 150)]  # hours 0, 0, 0, 0, 2, 2, 2, 2
    rows = [_stored_row(f"{tag}{i:02d}", at) for i, at in enumerate(moments)]
    outside = _stored_row(f"{tag}99", base + dt.timedelta(hours=3))
    ch.insert("bid_inputs", COLUMNS, [*rows, rows[3], outside])  # row 3 twice: at-least-once delivery
    expected = sorted((r[1], r[0]) for r in rows)
    for size in (1, 3, 4, 100):
        chunks = list(selectors.bid_inputs_chunks(start=base, end=base + dt.timedelta(hours=3), chunk_rows=size))
        got = [(c["timestamp"], c["event_id"]) for chunk in chunks for c in chunk if c["event_id"].startswith(tag)]
        assert got == expected, size
        assert all(0 < len(chunk) <= size for chunk in chunks)
    assert len(list(selectors.bid_inputs_chunks(start=base, end=base + dt.timedelta(hours=3), chunk_rows=4))) == 2
    with pytest.raises(ValueError, match="chunk_rows must be at least 1"):
        list(selectors.bid_inputs_chunks(start=base, end=base, chunk_rows=0))


def test_train_model_trains_on_the_logged_window_and_refuses_too_little_data(clickhouse_db, runtime, tmp_path,
                                                                                   capsys):
    start = dt.datetime.now(UTC) - dt.timedelta(seconds=5)
    users, bids, _ = asyncio.run(_serve(runtime))
    for bid, user_id in zip(bids, users, strict=True):
        _outcome("win", bid, user_id, time.time())
    testing.flush_and_consume()
    until = dt.datetime.now(UTC) + dt.timedelta(seconds=5)
    args = ["--since", start.isoformat(), "--until", until.isoformat(), "--out-dir", str(tmp_path / "out"),
            "--window-seconds", str(WINDOW)]

    with pytest.raises(CommandError, match=r"^not enough training data: \d+ impressions, need 100000$"):
        call_command("train_model", *args, "--min-impressions", "100000")
    assert not (tmp_path / "out").exists()

    call_command("train_model", *args, "--min-impressions", "4", "--epochs", "2", "--seed", "7", "--model-version", "cmd-1")
    out = capsys.readouterr().out
    assert "epoch   1/2" in out and "epoch   2/2" in out and "Trained cmd-1 on" in out
    weights = CoLaNetWeights.from_npz(tmp_path / "out" / "colanet-cmd-1.npz")
    assert weights.version == "cmd-1"

    empty = ["--since", "1999-01-01", "--until", "1999-01-08", "--out-dir", str(tmp_path / "none")]
    with pytest.raises(CommandError, match=r"^not enough training data: 0 impressions, need 1000$"):
        call_command("train_model", *empty)
    with pytest.raises(CommandError, match="--since must be an ISO date"):
        call_command("train_model", "--since", "last week")


def test_the_daily_round_is_scheduled_and_skips_a_window_without_data(clickhouse_db, monkeypatch, settings, tmp_path):
    from apps.training import tasks
    from config.celery import app

    entry = app.conf.beat_schedule["training-train-and-publish"]
    assert entry["task"] == "training.train_and_publish" and entry["options"]["expires"] == 3600
    from config import env

    settings.TRAINING_MIN_IMPRESSIONS = 100_000_000
    monkeypatch.setattr(env, "NPU_MODEL_DIR", str(tmp_path / "models"))
    result = tasks.train_and_publish()
    assert result["trained"] is False and result["reason"].startswith("not enough training data: ")
    assert result["reason"].endswith("impressions, need 100000000")
    assert not (tmp_path / "models").exists()
