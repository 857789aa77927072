"""POST /v1/dsp/bid on the bid app: exchange keys, the /v1/bid decoder's validation, the answer."""
from __future__ import annotations

import httpx
import orjson
import pytest

from apps.bidding.asgi import BidApp
from apps.bidding.bidder import Bidder
from apps.bidding.snapshot import next_version, publish_snapshot
from apps.core import redis as redis_store
from apps.dsp import platforms as store
from apps.dsp.exchange import DspExchange
from tests.bidding.helpers import bid_config, golden_runtime
from tests.dsp.conftest import platform
from tests.dsp.requests import site_request


@pytest.fixture
async def client(redis_client, tmp_path, local_dsp, dsp_config):
    publish_snapshot(redis_client, version=next_version(redis_client), offers=[])
    store.publish(redis_client, [platform(1, "amazon", "amazon", f"{local_dsp}/bid/amazon?latency_ms=3")])
    runtime = golden_runtime(tmp_path / "models")
    aredis = redis_store.async_client(dsp_config.redis_url)
    app = BidApp(lambda: Bidder(bid_config(exchange_keys={"k-1": "adx"}), inference=runtime), configure_logging=False,
                 dsp_factory=lambda: DspExchange(dsp_config, redis=aredis, bucket_factory=None, breaker_factory=None,
                                                 emit=lambda *a, **k: None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bid.test",
                                 headers={"X-Exchange-Key": "k-1"}) as c:
        yield c
    await app.shutdown()
    await aredis.aclose()


async def test_fan_out_answers_an_openrtb_response_with_ext_dsp(client):
    response = await client.post("/v1/dsp/bid", content=orjson.dumps(site_request("r-route")))
    assert response.status_code == 200 and response.headers["x-openrtb-version"] == "2.6"
    body = response.json()
    assert body["id"] == "r-route" and body["seatbid"][0]["seat"] == "amazon"
    assert body["ext"]["dsp"]["amazon"]["outcome"] == "bid"


@pytest.mark.parametrize("content, error, detail", [
    (b"", "invalid_json", "empty"),
    (b"{not json", "invalid_json", ""),
    (b'{"id":"x","imp":[]}', "invalid_request", "$.imp"),
    (b'{"id":"x","imp":[{"id":"1","banner":{"w":-5}}]}', "invalid_request", "$.imp[0].banner.w"),
])
async def test_malformed_requests_are_a_400_naming_the_problem(client, content, error, detail):
    response = await client.post("/v1/dsp/bid", content=content)
    assert response.status_code == 400
    assert response.json()["error"] == error and detail in response.json()["detail"]


async def test_exchange_keys_and_methods(client):
    body = orjson.dumps(site_request())
    assert (await client.post("/v1/dsp/bid", content=body, headers={"X-Exchange-Key": "nope"})).status_code == 401
    assert (await client.get("/v1/dsp/bid")).status_code == 405
