"""Many bid instances (issue 20): two bid apps (``manage.py run_bid_app``) and two gRPC sidecars
(``manage.py run_grpc --workers 2``) behind a real HAProxy running the production docker/haproxy.cfg,
whose environment names both instances of each (``BID_SERVER`` / ``BID_SERVER_2``, ``GRPC_SERVER`` /
``GRPC_SERVER_2``). The win notice URLs the bid apps hand out point at HAProxy, as in production.

What holds across instances, observed through their answers only: a bid's win sent to both instances
counts once; a campaign's budget spent through both stops both; a user's frequency cap reached through
both caps both (and the sidecars); a snapshot or model publish reaches every instance within a second;
an instance killed with SIGKILL mid-load loses no acknowledged win (Redis and, after the spend flush,
Postgres count every win that got a 2xx, and nothing twice). Marked e2e; skipped only where haproxy is
missing (an error under CI, see tests/campaigns/test_docker.py).
"""
from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import sys
import time
from decimal import Decimal
from urllib.parse import urlsplit

import grpc
import httpx
import pytest
import redis

from apps.bidding import wins
from apps.bidding.grpc_gen import bidding_pb2, bidding_pb2_grpc
from apps.bidding.snapshot import next_version, publish_snapshot
from apps.inference.services import model_publish
from config import env
from tests.bidding.helpers import golden_weights, make_row
from tests.bidding.test_services import launch, people  # noqa: F401 - people is a fixture
from tests.campaigns.test_docker import DOCKER, HAPROXY, needs_haproxy
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.wait import async_wait_until, wait_until

# django_db on every test: pytest-django runs database tests first, and the kill test (it needs Postgres)
# must run after the others, in file order.
pytestmark = [pytest.mark.e2e, needs_haproxy, pytest.mark.django_db, pytest.mark.timeout(300)]

KEY = "k-fleet"
PRICE = "1.00"  # every win clears at 1.00 CPM: 1,000 micro-dollars
PRICE_MICROS = 1000
START_TIMEOUT = 90
# Each test has its own banner size, so its offer is the only candidate for its requests.
PLAIN = dict(offer_id=9301, campaign_id=9301, width=300, height=250, observed_ctr=0.03, max_bid_cpm=6.0)
CAPPED = dict(offer_id=9302, campaign_id=9302, width=160, height=600, max_per_hour=2)
BUDGETED = dict(offer_id=9303, campaign_id=9303, width=468, height=60, budget_micros=2500)  # spent by the 3rd win
LOAD_SIZE = (728, 90)  # the kill test's offer, of a campaign in Postgres


def _request(*, user: str, size: tuple[int, int] = (300, 250), request_id: str = "r1") -> bytes:
    return json.dumps({"id": request_id, "imp": [{"id": "1", "banner": {"w": size[0], "h": size[1]}}],
                       "device": {"devicetype": 2, "geo": {"country": "USA"}}, "user": {"id": user}}).encode()


def _offers(*extra, plain=PLAIN):
    return [make_row(**plain), make_row(**CAPPED), make_row(**BUDGETED), *extra]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory, tls_cert):
    tmp = tmp_path_factory.mktemp("fleet")
    models = tmp / "models"
    models.mkdir()
    golden_weights("golden-1").to_npz(models / "colanet-golden-1.npz")
    redis_url = env.env_str("REDIS_URL", env.REDIS_URL)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    publish_snapshot(client, version=next_version(client), offers=_offers())
    front, grpc_front = free_port(), free_port()
    base_env = {**os.environ, "REDIS_URL": redis_url, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1",
                "LOG_LEVEL": "INFO", "CAMPAIGN_EXPRESS__NPU__MODEL_DIR": str(models),
                # the polls are slower than the one second a publish has to reach everyone: pub/sub does it
                "CAMPAIGN_EXPRESS__NPU__POLL_INTERVAL_S": "30", "BID_SNAPSHOT_POLL_SECONDS": "30",
                "BID_WIN_SECRET": "fleet-secret", "BID_PUBLIC_BASE_URL": f"http://127.0.0.1:{front}",
                "BID_EXCHANGE_KEYS": f"x0:{KEY}", "BID_TMAX_CAP_MS": "2000",
                "DATABASE_POOL_MIN_SIZE": "0", "DATABASE_POOL_MAX_SIZE": "1"}
    base_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    bid_ports, grpc_ports = [free_port(), free_port()], [free_port(), free_port()]
    procs: dict[str, ManagedProcess] = {}
    for n, port in enumerate(bid_ports):
        procs[f"bid{n}"] = ManagedProcess(
            [sys.executable, "manage.py", "run_bid_app", "--port", str(port), "--workers", "1",
             "--metrics-dir", str(tmp / f"prom-{n}")], env=base_env, log_path=tmp / f"bid{n}.log", name=f"bid{n}").start()
    for n, port in enumerate(grpc_ports):
        procs[f"grpc{n}"] = ManagedProcess(
            [sys.executable, "manage.py", "run_grpc", "--port", str(port), "--workers", "2"], env=base_env,
            log_path=tmp / f"grpc{n}.log", name=f"grpc{n}").start()
    hap_env = {**os.environ, "HAPROXY_BIND": f"127.0.0.1:{front}", "HAPROXY_MAXCONN": "1000",
               "HAPROXY_TLS_BIND": f"127.0.0.1:{free_port()}", "HAPROXY_TLS_CERT": str(tls_cert),
               "HAPROXY_GRPC_BIND": f"127.0.0.1:{grpc_front}", "BID_EXCHANGE_QPS": "100000",
               "WEB_IP_RATE_LIMIT": "1000000", "BID_SERVER_SLOTS": "2", "GRPC_SERVER_SLOTS": "2",
               "BID_SERVER": f"127.0.0.1:{bid_ports[0]}", "BID_SERVER_2": f"127.0.0.1:{bid_ports[1]}",
               "GRPC_SERVER": f"127.0.0.1:{grpc_ports[0]}", "GRPC_SERVER_2": f"127.0.0.1:{grpc_ports[1]}",
               "WEB_SERVER": f"127.0.0.1:{free_port()}", "STATIC_SERVER": f"127.0.0.1:{free_port()}"}
    try:
        for n, port in enumerate(bid_ports):
            procs[f"bid{n}"].wait_ready(f"http://127.0.0.1:{port}/ready", START_TIMEOUT, interval=0.2)
        for n in range(2):
            wait_until(lambda n=n: procs[f"grpc{n}"].output().count(" serving on ") >= 2, START_TIMEOUT, 0.2,
                       message=f"both workers of grpc{n} serving", detail=procs[f"grpc{n}"].tail)
        procs["haproxy"] = ManagedProcess([HAPROXY, "-db", "-f", str(DOCKER / "haproxy.cfg")], env=hap_env,
                                          log_path=tmp / "haproxy.log", name="haproxy").start()
        with httpx.Client(timeout=10) as http:
            procs["haproxy"].wait_ready(
                lambda: http.post(f"http://127.0.0.1:{front}/v1/bid", content=_request(user="probe"),
                                  headers={"X-Exchange-Key": KEY}).status_code == 200, 30, interval=0.2)
        yield {"front": f"http://127.0.0.1:{front}", "grpc_front": f"127.0.0.1:{grpc_front}",
               "bids": [f"http://127.0.0.1:{p}" for p in bid_ports], "grpcs": [f"127.0.0.1:{p}" for p in grpc_ports],
               "redis": client, "procs": procs, "models": models}
    finally:
        for proc in procs.values():
            proc.stop()
        client.close()


# --- clients -------------------------------------------------------------------------------------

def _bid(http: httpx.Client, base: str, body: bytes) -> httpx.Response:
    return http.post(f"{base}/v1/bid", content=body, headers={"X-Exchange-Key": KEY})


def _only_bid(response: httpx.Response) -> dict | None:
    """The one bid of a 200 answer, None for a no-bid (204)."""
    assert response.status_code in (200, 204), response.text
    return response.json()["seatbid"][0]["bid"][0] if response.status_code == 200 else None


def _win_path(bid: dict) -> str:
    """The bid's win notice as the exchange calls it (price substituted), path and query only."""
    url = urlsplit(bid["nurl"].replace("${AUCTION_PRICE}", PRICE))
    return f"{url.path}?{url.query}"


def _channel(target: str) -> grpc.aio.Channel:
    # A channel of its own (no subchannel shared with other channels to the same target): a new
    # connection, which the kernel hands to either worker of a sidecar.
    return grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])


async def _grpc_decision(target: str, body: bytes) -> tuple[str | None, float | None]:
    """(adid, price) of a fresh connection's answer, (None, None) for a no-bid."""
    async with _channel(target) as channel:
        reply = await bidding_pb2_grpc.BiddingServiceStub(channel).ProcessBid(
            bidding_pb2.BidRequestProto(openrtb_json=body), metadata=(("x-exchange-key", KEY),), timeout=5)
    parsed = json.loads(reply.openrtb_json)
    if not parsed.get("seatbid"):
        return None, None
    bid = parsed["seatbid"][0]["bid"][0]
    return bid.get("adid"), bid["price"]


async def _http_decision(http: httpx.AsyncClient, base: str, body: bytes) -> tuple[str | None, float | None]:
    r = await http.post(f"{base}/v1/bid", content=body, headers={"X-Exchange-Key": KEY})
    assert r.status_code in (200, 204), r.text
    if r.status_code == 204:
        return None, None
    bid = r.json()["seatbid"][0]["bid"][0]
    return bid.get("adid"), bid["price"]


GRPC_PROBES = 4  # fresh connections per sidecar per round, so both of its workers are asked


async def _decisions(fleet, body: bytes) -> dict[str, list[tuple[str | None, float | None]]]:
    """What every instance answers to ``body`` now: each bid app directly, each sidecar on
    ``GRPC_PROBES`` new connections."""
    async with httpx.AsyncClient(timeout=5) as http:
        names = [*(f"bid{n}" for n in range(2)), *(f"grpc{n}" for n in range(2))]
        calls = [_http_decision(http, base, body) for base in fleet["bids"]]
        calls += [asyncio.gather(*(_grpc_decision(target, body) for _ in range(GRPC_PROBES)))
                  for target in fleet["grpcs"]]
        answers = await asyncio.gather(*calls)
    return {name: (answer if isinstance(answer, list) else [answer]) for name, answer in zip(names, answers, strict=True)}


# --- tests ---------------------------------------------------------------------------------------

def test_bids_and_grpc_calls_and_streams_pass_through_haproxy(fleet):
    with httpx.Client(timeout=5) as http:
        for _ in range(10):
            bid = _only_bid(_bid(http, fleet["front"], _request(user="through")))
            assert bid is not None and bid["adid"] == "9301"
            assert bid["nurl"].startswith(fleet["front"] + "/v1/win?")  # the exchange calls HAProxy back

    async def over_grpc():
        async with _channel(fleet["grpc_front"]) as channel:  # one HTTP/2 connection, balanced per call
            stub = bidding_pb2_grpc.BiddingServiceStub(channel)
            replies = await asyncio.gather(*(stub.ProcessBid(bidding_pb2.BidRequestProto(openrtb_json=_request(user="g")),
                                                             metadata=(("x-exchange-key", KEY),), timeout=5)
                                             for _ in range(20)))
            health = await stub.HealthCheck(bidding_pb2.HealthCheckRequest(), timeout=5)
            bodies = [_request(user=f"s{n}", request_id=f"stream-{n}") for n in range(10)]

            async def messages():
                for body in bodies:
                    yield bidding_pb2.BidRequestProto(openrtb_json=body)

            streamed = [json.loads(r.openrtb_json)["id"] async for r in
                        stub.StreamBids(messages(), metadata=(("x-exchange-key", KEY),), timeout=10)]
        return replies, health, streamed

    replies, health, streamed = asyncio.run(over_grpc())
    assert [json.loads(r.openrtb_json)["seatbid"][0]["bid"][0]["adid"] for r in replies] == ["9301"] * 20
    assert streamed == [f"stream-{n}" for n in range(10)]  # a stream through HAProxy, answered in order
    assert health.status == bidding_pb2.HealthCheckResponse.SERVING and health.model_version == "golden-1"


def test_a_win_sent_to_both_instances_counts_once(fleet):
    spend_before = int(fleet["redis"].get(wins.spend_total_key(9301)) or 0)
    with httpx.Client(timeout=5) as http:
        bid = _only_bid(_bid(http, fleet["front"], _request(user="twice")))
        path = _win_path(bid)

        async def both_at_once():
            async with httpx.AsyncClient(timeout=5) as client:
                return await asyncio.gather(*(client.get(f"{base}{path}") for base in fleet["bids"]))

        answers = asyncio.run(both_at_once())
        again = http.get(f"{fleet['front']}{path}")  # and once more through HAProxy
    assert [a.status_code for a in answers] == [200, 200] and again.status_code == 200
    assert sorted(a.json()["status"] for a in answers) == ["counted", "duplicate"]
    assert again.json()["status"] == "duplicate"
    assert {a.json()["bid_id"] for a in answers} == {bid["id"]}
    assert int(fleet["redis"].get(wins.spend_total_key(9301))) - spend_before == PRICE_MICROS
    assert fleet["redis"].zcard("freq:twice") == 1


def test_a_frequency_cap_reached_through_both_instances_holds_on_every_instance(fleet):
    body = _request(user="capped-user", size=(CAPPED["width"], CAPPED["height"]))
    with httpx.Client(timeout=5) as http:
        for base in fleet["bids"]:  # one impression through each bid app: the cap is 2 per hour
            bid = _only_bid(_bid(http, base, body))
            assert bid is not None and bid["adid"] == "9302"
            assert http.get(f"{base}{_win_path(bid)}").json()["status"] == "counted"

    async def all_capped():
        answers = await _decisions(fleet, body)
        return answers if all(a == (None, None) for got in answers.values() for a in got) else None

    answers = asyncio.run(async_wait_until(all_capped, timeout=5, interval=0.05,
                                           message="every instance no-bids for the capped user"))
    assert set(answers) == {"bid0", "bid1", "grpc0", "grpc1"}
    with httpx.Client(timeout=5) as http:  # another user is not capped
        assert _only_bid(_bid(http, fleet["bids"][1], _request(user="fresh-user", size=(160, 600))))["adid"] == "9302"


def test_a_budget_spent_through_both_instances_stops_every_instance(fleet):
    body = lambda n: _request(user=f"budget-{n}", size=(BUDGETED["width"], BUDGETED["height"]))  # noqa: E731
    statuses = []
    with httpx.Client(timeout=5) as http:
        for n, base in enumerate([fleet["bids"][0], fleet["bids"][1], fleet["bids"][0]]):  # 3 x 1000 >= 2500
            bid = _only_bid(_bid(http, fleet["bids"][(n + 1) % 2], body(n)))  # bid on one, win on the other
            assert bid is not None and bid["adid"] == "9303", n
            statuses.append(http.get(f"{base}{_win_path(bid)}").json()["status"])
    assert statuses == ["counted"] * 3
    assert int(fleet["redis"].get(wins.spend_total_key(9303))) == 3 * PRICE_MICROS

    async def all_stopped():
        answers = await _decisions(fleet, body(99))
        return answers if all(a == (None, None) for got in answers.values() for a in got) else None

    asyncio.run(async_wait_until(all_stopped, timeout=5, interval=0.05, message="no instance bids for the spent campaign"))
    with httpx.Client(timeout=5) as http:
        assert http.get(f"{fleet['bids'][0]}/ready").json()["exhausted_campaigns"] == [9303]
        assert http.get(f"{fleet['bids'][1]}/ready").json()["exhausted_campaigns"] == [9303]


async def _every_instance_answers(fleet, body: bytes, wanted, what: str) -> float:
    """Seconds until every instance (each bid app, each sidecar on new connections) answers ``wanted``."""
    started = time.monotonic()
    last: dict = {}

    async def done():
        last.update(await _decisions(fleet, body))
        return all(wanted(answer) for got in last.values() for answer in got)

    await async_wait_until(done, timeout=5, interval=0.02, message=what, detail=lambda: repr(last))
    return time.monotonic() - started


def test_a_snapshot_publish_reaches_every_instance_within_a_second(fleet):
    body = _request(user="snapshot-watcher")
    replacement = {**PLAIN, "offer_id": 9311}  # the same campaign's 300x250 offer, replaced by another
    publish_snapshot(fleet["redis"], version=next_version(fleet["redis"]), offers=_offers(plain=replacement))
    elapsed = asyncio.run(_every_instance_answers(fleet, body, lambda a: a[0] == "9311", "the new offer everywhere"))
    assert elapsed < 1.0, f"the snapshot reached every instance after {elapsed:.2f} s"


def test_a_model_publish_reaches_every_instance_within_a_second(fleet, tmp_path):
    body = _request(user="model-watcher")
    before = asyncio.run(_decisions(fleet, body))
    (price,) = {answer[1] for got in before.values() for answer in got}
    base = golden_weights("golden-2")
    # golden-1 with its output bias raised: another predicted CTR, so another price for the same offer
    source = tmp_path / "colanet-golden-2.npz"
    type(base)(W1=base.W1, b1=base.b1, theta=base.theta, W2=base.W2, b2=base.b2 + 1.0, version="golden-2").to_npz(source)
    model_publish(source=source, model_dir=fleet["models"], redis_client=fleet["redis"])
    elapsed = asyncio.run(_every_instance_answers(fleet, body, lambda a: a[1] is not None and a[1] != price,
                                                  "a new price from the new model everywhere"))
    assert elapsed < 1.0, f"the model reached every instance after {elapsed:.2f} s"
    with httpx.Client(timeout=5) as http:
        assert {http.get(f"{b}/ready").json()["model_version"] for b in fleet["bids"]} == {"golden-2"}


def test_an_instance_killed_mid_load_loses_no_acknowledged_win(fleet, people):  # noqa: F811 - fixture
    """It kills bid app 1 (supervisor and worker, SIGKILL) while wins flow through HAProxy: the tests after
    it use the sidecars only."""
    from apps.bidding import services
    from apps.campaigns import selectors as campaign_selectors

    campaign = launch(people, budget="1000.00")
    load_offer = make_row(offer_id=9320, campaign_id=campaign.pk, width=LOAD_SIZE[0], height=LOAD_SIZE[1],
                          budget_micros=1_000_000_000, max_per_hour=1000, max_per_day=1000)
    redis_client = fleet["redis"]
    publish_snapshot(redis_client, version=next_version(redis_client), offers=_offers(load_offer))
    acked: list[str] = []        # bid ids whose win notice got a 2xx
    notices: dict[str, str] = {}  # bid id -> its win notice (path and query)
    attempted: list[str] = []    # bid ids whose win notice was sent
    failures: list[str] = []
    killed = asyncio.Event()
    after_kill: list[str] = []
    stop = asyncio.Event()
    duplicates = 0

    async def exchange(worker: int):
        nonlocal duplicates
        async with httpx.AsyncClient(base_url=fleet["front"], timeout=5) as http:
            n = 0
            while not stop.is_set():
                n += 1
                try:
                    r = await http.post("/v1/bid", content=_request(user=f"load-{worker}-{n}", size=LOAD_SIZE),
                                        headers={"X-Exchange-Key": KEY})
                    if r.status_code != 200:
                        failures.append(f"bid {r.status_code}")
                        continue
                    bid = r.json()["seatbid"][0]["bid"][0]
                    attempted.append(bid["id"])
                    notices[bid["id"]] = _win_path(bid)
                    w = await http.get(notices[bid["id"]])
                except httpx.HTTPError as exc:
                    failures.append(type(exc).__name__)
                    continue
                if 200 <= w.status_code < 300:
                    # "duplicate" too, once in a while: the killed instance counted the notice and died before
                    # answering, and HAProxy sent it again to the survivor (empty-response retry)
                    assert w.json()["bid_id"] == bid["id"] and w.json()["status"] in ("counted", "duplicate"), w.text
                    acked.append(bid["id"])
                    duplicates += w.json()["status"] == "duplicate"
                    if killed.is_set():
                        after_kill.append(bid["id"])
                else:
                    failures.append(f"win {w.status_code}")

    async def run():
        tasks = [asyncio.create_task(exchange(w)) for w in range(4)]
        await async_wait_until(lambda: len(acked) >= 40, timeout=60, message="40 wins before the kill")
        async with httpx.AsyncClient(timeout=5) as http:  # precondition: the instance to kill carries wins
            text = (await http.get(f"{fleet['bids'][1]}/metrics")).text
        assert float(re.search(r"^bids_wins_total (\S+)$", text, re.M).group(1)) > 0
        os.killpg(fleet["procs"]["bid1"].pid, signal.SIGKILL)  # the instance: its supervisor and its worker
        killed.set()
        await async_wait_until(lambda: len(after_kill) >= 40, timeout=60, message="40 wins after the kill",
                               detail=lambda: f"failures {failures[-10:]}")
        stop.set()
        await asyncio.gather(*tasks)

    asyncio.run(run())
    counted = [bid_id for bid_id in attempted if redis_client.exists(wins.win_key(bid_id, campaign.pk))]
    assert set(acked) <= set(counted), set(acked) - set(counted)  # no acknowledged win lost
    assert len(set(attempted)) == len(attempted)
    total = int(redis_client.get(wins.spend_total_key(campaign.pk)))
    assert total == PRICE_MICROS * len(counted)  # each counted once: a retried notice is a duplicate
    # Postgres: the spend flush moves exactly that into Campaign.spent
    services.spend_flush(client=redis_client)
    assert campaign_selectors.campaign_get(campaign_id=campaign.pk).spent == Decimal(total) / 1_000_000
    # the survivor knows every acknowledged win: sent again, each is a duplicate, and nothing is added
    with httpx.Client(base_url=fleet["bids"][0], timeout=5) as http:
        again = [http.get(notices[bid_id]).json()["status"] for bid_id in acked]
    assert again == ["duplicate"] * len(acked)
    assert int(redis_client.get(wins.spend_total_key(campaign.pk))) == total
    print(f"wins acknowledged {len(acked)} ({len(after_kill)} after the kill, {duplicates} as duplicates), counted {len(counted)}, "
          f"failed requests {len(failures)}: { {f: failures.count(f) for f in set(failures)} }")


def test_a_killed_sidecar_worker_is_replaced_and_calls_keep_flowing(fleet):
    proc = fleet["procs"]["grpc0"]
    pids = [int(p) for p in re.findall(r"\d+", proc.wait_for_line(r"gRPC sidecar: 2 workers .* pids \[([\d, ]+)\]").group(1))]
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    proc.wait_for_line(rf"worker {pids[0]} exited with code -9; restarting", timeout=10)
    wait_until(lambda: proc.output().count(" serving on ") >= 3, timeout=START_TIMEOUT, interval=0.2,
               message="the replacement worker serving", detail=proc.tail)

    async def calls():  # each on a new connection, straight to the sidecar: whichever worker the kernel picks
        return await asyncio.gather(*(_grpc_decision(fleet["grpcs"][0], _request(user=f"after-{n}")) for n in range(8)))

    assert [adid for adid, _ in asyncio.run(calls())] == ["9301"] * 8
    proc.assert_alive()


def test_a_sidecar_stops_gracefully_and_haproxy_sends_its_calls_to_the_other(fleet):
    """Last: SIGTERM to sidecar 1's supervisor (what Kubernetes sends) while calls flow through HAProxy."""
    proc = fleet["procs"]["grpc1"]
    results: list[str] = []

    async def calls(stop: asyncio.Event):
        async with _channel(fleet["grpc_front"]) as channel:
            stub = bidding_pb2_grpc.BiddingServiceStub(channel)
            while not stop.is_set():
                try:
                    reply = await stub.ProcessBid(bidding_pb2.BidRequestProto(openrtb_json=_request(user="g-stop")),
                                                  metadata=(("x-exchange-key", KEY),), timeout=5)
                    results.append("ok" if json.loads(reply.openrtb_json)["seatbid"] else "no-bid")
                except grpc.aio.AioRpcError as exc:
                    results.append(exc.code().name)

    async def run():
        stop = asyncio.Event()
        task = asyncio.create_task(calls(stop))
        await async_wait_until(lambda: len(results) >= 20, timeout=30, message="calls flowing")
        os.kill(proc.pid, signal.SIGTERM)
        await async_wait_until(lambda: not proc.alive, timeout=20, message="sidecar 1 stopped", detail=proc.tail)
        stopped = len(results)
        await async_wait_until(lambda: len(results) >= stopped + 40, timeout=30, message="calls after the stop")
        stop.set()
        await task
        return stopped

    stopped = asyncio.run(run())
    assert proc.returncode == 0, proc.tail()
    assert proc.output().count("grpc_server_stopped") == 2  # both workers shut down their server and bidder
    assert set(results[stopped:]) == {"ok"}, results[stopped:]  # the other sidecar answers everything
    assert results.count("ok") >= len(results) - 2, {r: results.count(r) for r in set(results)}
