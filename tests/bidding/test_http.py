"""The ASGI bid app in-process: bid, win notice, click, readiness, bad input, exchange keys, and a
property-based test that only ever sees 200, 204 or 400."""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import jsonschema
import pytest
import referencing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.bidding.asgi import BidApp
from apps.bidding.bidder import Bidder
from apps.bidding.cache import freq_key
from apps.bidding.snapshot import next_version, publish_snapshot
from apps.bidding.tokens import WinToken, win_token
from apps.bidding.wins import spend_pending_key, spend_total_key
from apps.core import redis as redis_store
from apps.core.profiles import profile_write
from tests.bidding import fuzz
from tests.bidding.helpers import SECRET, bid_config, expected_price, golden_runtime, make_row
from tests.support.wait import async_wait_until

HERE = Path(__file__).parent
EXAMPLES = {p.stem: p.read_bytes() for p in sorted((HERE / "openrtb_examples").glob("*.json"))}
BANNER = json.dumps({"id": "r1", "imp": [{"id": "1", "banner": {"w": 300, "h": 250}}],
                     "device": {"devicetype": 2, "geo": {"country": "USA"}}, "user": {"id": "u1"}}).encode()


def response_validator() -> jsonschema.Draft202012Validator:
    """The IAB BidResponse schema (draft 2020-12) with its SeatBid and Bid references resolved locally."""
    schemas = {p.name: json.loads(p.read_text()) for p in (HERE / "openrtb_schema").glob("*.json")}
    registry = referencing.Registry().with_resources(
        (schema["$id"], referencing.Resource.from_contents(schema)) for schema in schemas.values()
    )
    return jsonschema.Draft202012Validator(schemas["BidResponse.json"], registry=registry)


VALIDATOR = response_validator()


def rows_for_examples():
    """Offers fitting the spec examples: every common banner size, a 640x480 video, any country."""
    return [
        make_row(offer_id=1, campaign_id=1, width=300, height=250, observed_ctr=0.03, max_bid_cpm=6.0),
        make_row(offer_id=2, campaign_id=1, width=728, height=90, observed_ctr=0.02, max_bid_cpm=5.0),
        make_row(offer_id=3, campaign_id=2, width=320, height=50, observed_ctr=0.01, max_bid_cpm=3.0),
        make_row(offer_id=4, campaign_id=3, width=640, height=480, format="video", markup="<VAST version=\"3.0\"/>",
                 observed_ctr=0.02, max_bid_cpm=12.0, category="IAB2-1", adomain="cars.example.com"),
    ]


@pytest.fixture
async def app(redis_client, tmp_path):
    publish_snapshot(redis_client, version=next_version(redis_client), offers=rows_for_examples())
    runtime = golden_runtime(tmp_path / "models")
    bid_app = BidApp(lambda: Bidder(bid_config(), inference=runtime), configure_logging=False)
    yield bid_app
    await bid_app.shutdown()


@pytest.fixture
async def client(app):
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bid.test") as c:
        yield c


async def test_bid_response_is_openrtb_and_validates_against_the_iab_schema(client):
    r = await client.post("/v1/bid", content=BANNER)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json" and r.headers["x-openrtb-version"] == "2.6"
    body = r.json()
    VALIDATOR.validate(body)
    assert body["id"] == "r1" and body["cur"] == "USD"
    assert body["seatbid"][0]["bid"][0]["adid"] == "1"


@pytest.mark.parametrize("name", sorted(EXAMPLES))
async def test_spec_examples_get_a_bid_or_a_204(client, name):
    r = await client.post("/v1/bid", content=EXAMPLES[name])
    assert r.status_code in (200, 204)
    if name == "pmp-direct-deal":
        # private_auction=1 and both deals are reserved for other seats: no deal we may serve.
        assert r.status_code == 204 and r.content == b""
        return
    assert r.status_code == 200, f"{name} should find an offer"
    body = r.json()
    VALIDATOR.validate(body)
    bid = body["seatbid"][0]["bid"][0]
    expected_offer = {"simple-banner": "1", "mobile-app": "2", "video": "4"}[name]
    assert bid["adid"] == expected_offer
    assert bid["price"] >= json.loads(EXAMPLES[name])["imp"][0]["bidfloor"]


async def test_pmp_example_bids_only_on_a_deal_when_one_is_open_to_us(client):
    request = json.loads(EXAMPLES["pmp-direct-deal"])
    request["imp"][0]["pmp"]["deals"].append({"id": "OPEN-1", "bidfloor": 1.0})
    r = await client.post("/v1/bid", json=request)
    assert r.status_code == 200
    bid = r.json()["seatbid"][0]["bid"][0]
    assert bid["dealid"] == "OPEN-1" and bid["price"] >= 1.0
    VALIDATOR.validate(r.json())


@pytest.mark.parametrize("body, error", [
    (b"{not json", "invalid_json"),
    (b'{"id": 5, "imp": [{"id": "1"}]}', "invalid_request"),
    (b'{"imp": [{"id": "1"}]}', "invalid_request"),
    (b'{"id": "r"}', "invalid_request"),
    (b'{"id": "r", "imp": []}', "invalid_request"),
    (b'{"id": "r", "imp": [{"id": "1", "banner": {"w": 30000000, "h": 250}}]}', "invalid_request"),
    (b'{"id": "r\xfe", "imp": [{"id": "1"}]}', "invalid_encoding"),
    (b"", "invalid_json"),
])
async def test_bad_input_is_a_400_naming_the_problem(client, body, error):
    r = await client.post("/v1/bid", content=body)
    assert r.status_code == 400
    assert r.json()["error"] == error and r.json()["detail"]


async def test_body_over_64_kib_is_a_400(client):
    big = b'{"id":"r","imp":[{"id":"1"}],"pad":"' + b"x" * 70_000 + b'"}'
    r = await client.post("/v1/bid", content=big)
    assert r.status_code == 400 and r.json()["error"] == "body_too_large"

    async def chunks():  # no content-length: refused while streaming
        for _ in range(20):
            yield b"x" * 4096

    r = await client.post("/v1/bid", content=chunks())
    assert r.status_code == 400 and r.json()["error"] == "body_too_large"


async def test_routes_and_methods(client):
    assert (await client.get("/v1/bid")).status_code == 405
    assert (await client.get("/nope")).status_code == 404
    assert (await client.get("/live")).json() == {"status": "live"}
    ready = await client.get("/ready")
    assert ready.status_code == 200 and ready.json()["model_version"] == "golden-1" and ready.json()["offers"] == 4
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200 and "bids_total_latency_us" in metrics.text


async def test_exchange_keys_authenticate_callers(redis_client, tmp_path):
    publish_snapshot(redis_client, version=next_version(redis_client), offers=rows_for_examples())
    runtime = golden_runtime(tmp_path / "models")
    config = bid_config(exchange_keys={"k-123": "adx"})
    app = BidApp(lambda: Bidder(config, inference=runtime), configure_logging=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bid.test") as c:
            assert (await c.post("/v1/bid", content=BANNER)).status_code == 401
            assert (await c.post("/v1/bid", content=BANNER, headers={"X-Exchange-Key": "wrong"})).status_code == 401
            assert (await c.post("/v1/bid", content=BANNER, headers={"X-Exchange-Key": "k-123"})).status_code == 200
    finally:
        await app.shutdown()


async def test_ready_fails_until_the_offer_snapshot_is_loaded(redis_client, tmp_path):
    runtime = golden_runtime(tmp_path / "models")
    # polling too slow to help: only the announcement can make it ready within the wait below
    app = BidApp(lambda: Bidder(bid_config(snapshot_poll_seconds=60), inference=runtime), configure_logging=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bid.test") as c:
            r = await c.get("/ready")
            assert r.status_code == 503
            assert r.json()["snapshot_loaded"] is False and r.json()["model_loaded"] is True
            assert (await c.post("/v1/bid", content=BANNER)).status_code == 204  # not ready: no-bid, not an error
            publish_snapshot(redis_client, version=next_version(redis_client), offers=rows_for_examples())
            await async_wait_until(lambda: _status(c.get("/ready"), 200), timeout=5,
                                   message="ready once the snapshot announcement is picked up")
            assert (await c.post("/v1/bid", content=BANNER)).status_code == 200
    finally:
        await app.shutdown()


# --- win notices and clicks ------------------------------------------------------------------------

async def _status(response, expected: int) -> bool:
    return (await response).status_code == expected


def _win_path(nurl: str, price: str) -> str:
    return nurl.replace("http://bid.test", "").replace("${AUCTION_PRICE}", price)


async def test_win_notice_counts_impression_and_spend_once(client, redis_client):
    bid = (await client.post("/v1/bid", content=BANNER)).json()["seatbid"][0]["bid"][0]
    first = await client.get(_win_path(bid["nurl"], "1.25"))
    assert first.status_code == 200 and first.json() == {"status": "counted", "bid_id": bid["id"]}
    again = await client.get(_win_path(bid["nurl"], "1.25"))
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    # 1.25 CPM for one impression = $0.00125 = 1250 micro-dollars, counted once.
    assert int(redis_client.get(spend_pending_key(1))) == 1250
    assert int(redis_client.get(spend_total_key(1))) == 1250
    assert redis_client.smembers("spend:dirty") == {b"1"}
    assert redis_client.zcard(freq_key("u1", cluster=redis_store.is_cluster(redis_client))) == 1


@pytest.mark.parametrize("price, status, error", [
    ("${AUCTION_PRICE}", 400, "macro_not_substituted"),
    ("", 400, "missing_price"),
    ("abc", 400, "bad_price"),
    ("-1", 400, "bad_price"),
    ("NaN", 400, "bad_price"),
    ("999", 400, "price_above_bid"),
])
async def test_bad_win_prices_are_refused_and_count_nothing(client, redis_client, price, status, error):
    bid = (await client.post("/v1/bid", content=BANNER)).json()["seatbid"][0]["bid"][0]
    r = await client.get(bid["nurl"].replace("http://bid.test", "").replace("${AUCTION_PRICE}", price))
    assert r.status_code == status and r.json()["error"] == error
    assert redis_client.get(spend_pending_key(1)) is None and redis_client.zcard(freq_key("u1", cluster=redis_store.is_cluster(redis_client))) == 0


async def test_forged_or_stale_win_notices_are_refused(client, redis_client):
    bid = (await client.post("/v1/bid", content=BANNER)).json()["seatbid"][0]["bid"][0]
    path = _win_path(bid["nurl"], "1.0")
    token = path.split("t=")[1].split("&")[0]
    tampered = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    r = await client.get(path.replace(token, tampered))
    assert r.status_code == 403 and r.json()["error"] == "bad_token"
    forged = win_token(b"someone-else's secret", WinToken("b", "r", "1", 1, 1, "u1", 5_000_000, int(time.time())))
    assert (await client.get(f"/v1/win?t={forged}&price=1.0")).status_code == 403
    old = win_token(SECRET, WinToken("b-old", "r", "1", 1, 1, "u1", 5_000_000, int(time.time()) - 2 * 86400))
    r = await client.get(f"/v1/win?t={old}&price=1.0")
    assert r.status_code == 410 and r.json()["error"] == "expired"
    assert redis_client.get(spend_pending_key(1)) is None


async def test_win_notices_drive_the_frequency_cap_within_a_second(redis_client, tmp_path):
    publish_snapshot(redis_client, version=next_version(redis_client), offers=rows_for_examples())
    runtime = golden_runtime(tmp_path / "models")
    app = BidApp(lambda: Bidder(bid_config(freq_max_per_hour=2), inference=runtime), configure_logging=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://bid.test") as c:
            for _ in range(2):
                r = await c.post("/v1/bid", content=BANNER)
                assert r.status_code == 200  # bids alone do not count: only won impressions do
                assert (await c.get(_win_path(r.json()["seatbid"][0]["bid"][0]["nurl"], "0.5"))).status_code == 200
            await async_wait_until(lambda: _status(c.post("/v1/bid", content=BANNER), 204), timeout=5,
                                   message="u1 frequency-capped after two wins")
            # Another user is not affected.
            other = BANNER.replace(b'"u1"', b'"u2"')
            assert (await c.post("/v1/bid", content=other)).status_code == 200
    finally:
        await app.shutdown()


async def test_budget_exhausted_by_a_win_stops_every_bidder_within_a_second(redis_client, tmp_path):
    tight = make_row(offer_id=1, campaign_id=1, observed_ctr=0.03, max_bid_cpm=6.0, budget_micros=2000)
    spare = make_row(offer_id=9, campaign_id=9, observed_ctr=0.005, max_bid_cpm=6.0)
    publish_snapshot(redis_client, version=next_version(redis_client), offers=[tight, spare])
    runtime = golden_runtime(tmp_path / "models")
    # polling too slow to help: the budget announcement is what stops the other bidder
    apps = [BidApp(lambda: Bidder(bid_config(snapshot_poll_seconds=60), inference=runtime), configure_logging=False)
            for _ in range(2)]
    try:
        clients = [httpx.AsyncClient(transport=httpx.ASGITransport(app=a), base_url="http://bid.test") for a in apps]
        for c in clients:
            assert (await c.post("/v1/bid", content=BANNER)).json()["seatbid"][0]["bid"][0]["adid"] == "1"
        r = await clients[0].post("/v1/bid", content=BANNER)
        # A 2.5 CPM clearing price costs 2500 micro-dollars: over the 2000 budget.
        win = await clients[0].get(_win_path(r.json()["seatbid"][0]["bid"][0]["nurl"], "2.5"))
        assert win.json()["status"] == "counted"
        assert redis_client.smembers("bidding:exhausted") == {b"1"}
        for c in clients:
            async def spare_wins(c=c) -> bool:
                return (await c.post("/v1/bid", content=BANNER)).json()["seatbid"][0]["bid"][0]["adid"] == "9"

            await async_wait_until(spare_wins, timeout=5, message="every bidder stopped bidding for campaign 1")
        for c in clients:
            await c.aclose()
    finally:
        for a in apps:
            await a.shutdown()


async def test_click_redirects_to_the_landing_page(client):
    bid = (await client.post("/v1/bid", content=BANNER)).json()["seatbid"][0]["bid"][0]
    click = bid["adm"].split('href="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
    r = await client.get(click.replace("http://bid.test", ""))
    assert r.status_code == 302 and r.headers["location"] == "https://shop.example.com/o/1"
    r = await client.get("/v1/click?t=bogus.token")
    assert r.status_code == 403


async def test_known_profile_through_http(client, redis_client):
    profile_write(user_id="u1", fields={"loyalty_tier": "gold"})
    r = await client.post("/v1/bid", content=BANNER)
    assert r.json()["seatbid"][0]["bid"][0]["price"] == expected_price(6.0, 0.03, "gold")


# --- property-based: generated and mutated requests only ever get 200, 204 or 400 -------------------

# A leaf that stands for a deeply nested value: json.dumps cannot nest 1,000 levels (it recurses too),
# so the encoded documents get the deep JSON spliced in where this string is (``encoded``).
DEEP_LEAF = "\u0000deep\u0000"
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.just(DEEP_LEAF),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12,
)
# deep enough for any real request, then past the decoder's limit of ~1,000 levels, up to 64 KiB of brackets
deep_json = st.builds(lambda depth, kind, leaf: fuzz.nest(depth, kind=kind, leaf=leaf),
                      st.integers(1, 100) | st.integers(900, 2_000) | st.integers(2_000, 10_000),
                      st.sampled_from(["array", "object", "mixed"]), st.sampled_from([b"1", b"null", b'"x"', b"{}"]))


@st.composite
def encoded(draw, documents):
    """A document from ``documents`` as JSON bytes, each ``DEEP_LEAF`` replaced by a deep value."""
    body = json.dumps(draw(documents)).encode()
    marker = json.dumps(DEEP_LEAF).encode()
    while marker in body:
        body = body.replace(marker, draw(deep_json), 1)
    return body

dims = st.one_of(st.integers(-10, 20_000), st.none(), st.text(max_size=3), st.floats(allow_nan=False))
banners = st.fixed_dictionaries({}, optional={
    "w": dims, "h": dims, "format": st.lists(st.fixed_dictionaries({}, optional={"w": dims, "h": dims}), max_size=3),
    "btype": st.lists(st.integers(0, 5), max_size=2)})
imps = st.fixed_dictionaries({"id": st.one_of(st.text(max_size=4), st.integers(), st.none())}, optional={
    "banner": banners, "video": st.fixed_dictionaries({}, optional={"w": dims, "h": dims}),
    "native": st.fixed_dictionaries({}, optional={"request": st.text(max_size=10)}),
    "bidfloor": st.one_of(st.floats(allow_nan=False), st.integers(), st.text(max_size=3)),
    "bidfloorcur": st.sampled_from(["USD", "EUR", ""]),
    "pmp": st.fixed_dictionaries({}, optional={
        "private_auction": st.integers(-1, 2),
        "deals": st.lists(st.fixed_dictionaries({"id": st.text(max_size=4)}, optional={
            "bidfloor": st.floats(0, 100), "wseat": st.lists(st.text(max_size=8), max_size=2)}), max_size=2)}),
    "ext": json_values})
requests_ = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.text(max_size=8), st.integers()),
    "imp": st.one_of(st.lists(imps, max_size=4), json_values),
    "tmax": st.one_of(st.integers(-5, 70_000), st.none()),
    "device": st.fixed_dictionaries({}, optional={"devicetype": st.one_of(st.integers(-3, 12), st.text(max_size=2)),
                                                  "ua": st.text(max_size=30),
                                                  "geo": st.fixed_dictionaries({}, optional={"country": st.text(max_size=4)})}),
    "user": st.fixed_dictionaries({}, optional={"id": st.one_of(st.text(max_size=6), st.integers()),
                                                "buyeruid": st.text(max_size=6),
                                                "data": st.lists(st.fixed_dictionaries({}, optional={
                                                    "segment": st.lists(st.fixed_dictionaries({}, optional={
                                                        "id": st.text(max_size=20)}), max_size=3)}), max_size=2)}),
    "bcat": st.lists(st.text(max_size=8), max_size=3), "badv": st.lists(st.text(max_size=12), max_size=3),
    "cur": st.lists(st.sampled_from(["USD", "EUR", "x"]), max_size=2), "wseat": st.lists(st.text(max_size=5), max_size=2),
    "regs": st.fixed_dictionaries({}, optional={"coppa": st.integers(-1, 2)}),
    "site": json_values, "app": json_values, "ext": json_values})


@st.composite
def mutated_examples(draw):
    raw = bytearray(draw(st.sampled_from(list(EXAMPLES.values()) + [BANNER])))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "cut", "insert", "delete"]))
        pos = draw(st.integers(0, max(len(raw) - 1, 0)))
        if op == "flip" and raw:
            raw[pos] = draw(st.integers(0, 255))
        elif op == "cut":
            del raw[pos:]
        elif op == "insert":
            raw[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete" and raw:
            del raw[pos:pos + draw(st.integers(1, 16))]
    return bytes(raw)


async def _asgi_post(app, body: bytes) -> tuple[int, bytes]:
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": "/v1/bid", "raw_path": b"/v1/bid", "query_string": b"", "root_path": "",
             "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
             "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8081)}
    await app(scope, receive, send)
    return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])


@pytest.fixture
def sync_app(redis_client, tmp_path):
    """The app on a private event loop, for hypothesis (which drives a sync test function)."""
    publish_snapshot(redis_client, version=next_version(redis_client), offers=rows_for_examples())
    runtime = golden_runtime(tmp_path / "models")
    loop = asyncio.new_event_loop()
    app = BidApp(lambda: Bidder(bid_config(), inference=runtime), configure_logging=False)
    loop.run_until_complete(app.ensure_bidder())
    yield loop, app
    loop.run_until_complete(app.shutdown())
    loop.close()


def _check(loop, app, body: bytes) -> None:
    status, payload = loop.run_until_complete(_asgi_post(app, body))
    assert status in (200, 204, 400), (status, payload, body)
    if status == 400:
        error = json.loads(payload)
        assert set(error) == {"error", "detail"} and error["detail"]
    elif status == 200:
        VALIDATOR.validate(json.loads(payload))
    else:
        assert payload == b""


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(body=encoded(requests_) | encoded(json_values))
def test_generated_requests_get_only_200_204_or_400(sync_app, body):
    _check(*sync_app, body)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(body=mutated_examples() | st.binary(max_size=200) | deep_json)
def test_mutated_requests_get_only_200_204_or_400(sync_app, body):
    _check(*sync_app, body)
