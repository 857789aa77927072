"""The web process (config.asgi) hands /v1/bid, /v1/win and /v1/click to the bid app; the rest is Django's."""
from __future__ import annotations

import httpx
import pytest

from apps.bidding.snapshot import next_version, publish_snapshot
from apps.core.routing import bid_paths
from config import env
from tests.bidding.helpers import golden_weights, make_row

BANNER = b'{"id":"w1","imp":[{"id":"1","banner":{"w":300,"h":250}}],"device":{"geo":{"country":"USA"}}}'


def test_bid_paths_are_routed_to_the_bid_app():
    from apps.bidding.asgi import app

    assert bid_paths("/v1/bid") is app and bid_paths("/v1/win") is app and bid_paths("/v1/click") is app
    assert bid_paths("/v1/campaigns/") is None and bid_paths("/ready") is None


@pytest.mark.django_db
async def test_web_process_serves_bids_without_a_lifespan(redis_client, tmp_path, monkeypatch):
    from apps.bidding.asgi import app as bid_app
    from config.asgi import application

    models = tmp_path / "models"
    models.mkdir()
    golden_weights().to_npz(models / "colanet-golden-1.npz")
    # The bidder builds its BidConfig and runtime from config.env's constants on the first request.
    monkeypatch.setattr(env, "NPU_MODEL_DIR", str(models))
    monkeypatch.setattr(env, "BID_GC_FREEZE_SECONDS", 0.0)  # leave the test process's garbage collector alone
    publish_snapshot(redis_client, version=next_version(redis_client), offers=[make_row(offer_id=7)])
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=application), base_url="http://web.test") as c:
            r = await c.post("/v1/bid", content=BANNER)  # the bidder starts on this first request
            assert r.status_code == 200 and r.json()["seatbid"][0]["bid"][0]["adid"] == "7"
            assert (await c.post("/v1/bid", content=b"{")).status_code == 400
            assert (await c.get("/v1/win?t=x.y&price=1")).status_code == 403
    finally:
        await bid_app.shutdown()
