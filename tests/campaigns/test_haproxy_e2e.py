"""The production front door (docker/haproxy.cfg, unchanged) in front of the REAL processes: the bid app
(``manage.py run_bid_app``) and the web app (``uvicorn config.asgi:application``) on the test database
(issue 16, defect 8). Only the config's environment variables differ: local addresses and low limits
(``BID_EXCHANGE_QPS=20`` per key per second, ``WEB_IP_RATE_LIMIT=20`` per address per 10 s).
Marked e2e; the module skips only where haproxy is missing, and under CI=true a missing haproxy is an
error (tests/campaigns/test_docker.py; scripts/setup.sh installs it through scripts/services.sh).

Between HAProxy and the bid app sits a transparent TCP relay that counts the connections HAProxy opens
and the bid requests they carry, so backend keep-alive is measured, not assumed. A 429 from HAProxy is
its own HTML page ("Too Many Requests"); every other answer below comes from the real app behind it.
"""
from __future__ import annotations

import os
import re
import socket
import sys
import threading
import time
import uuid

import httpx
import pytest
import redis

from apps.bidding.snapshot import next_version, publish_snapshot
from config import env
from tests.bidding.test_http import BANNER, rows_for_examples
from tests.campaigns.test_docker import DOCKER, HAPROXY, needs_haproxy
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess, start_process
from tests.support.wait import pause, wait_until

# django_db: the session sets up the test database the web app runs on (the module fixture commits its token
# outside the tests' transactions, so the web process sees it).
pytestmark = [pytest.mark.e2e, needs_haproxy, pytest.mark.django_db, pytest.mark.timeout(240)]

EXCHANGE_QPS = 20
WEB_LIMIT = 20
KEYS = ("k-adx", "k-magnite", "k-pubmatic", "k-index")
HAPROXY_429 = "Too Many Requests"


REQUEST_LINE = re.compile(rb"(GET|POST|PUT|PATCH|DELETE|HEAD|OPTIONS) (/\S*) HTTP/1\.[01]$")


class CountingRelay:
    """127.0.0.1:<port> -> target, byte for byte. Records the request lines (method, path) it carries, except
    HAProxy's health checks (``GET /ready``), and counts the connections that carried one of them."""

    def __init__(self, target: int):
        self.target = target
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.connections = 0
        self.requests: list[tuple[str, str]] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                downstream, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._relay, args=(downstream,), daemon=True).start()

    def _relay(self, downstream: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target))
        threading.Thread(target=self._pipe, args=(upstream, downstream), daemon=True).start()
        pending, counted = b"", False
        try:
            while data := downstream.recv(65536):
                upstream.sendall(data)
                *lines, pending = (pending + data).split(b"\r\n")
                for line in lines:  # a body without CRLF runs into the next request line: search, not match
                    found = REQUEST_LINE.search(line)
                    if found is None or found.group(2) == b"/ready":
                        continue
                    with self.lock:
                        self.requests.append((found.group(1).decode(), found.group(2).decode()))
                        if not counted:
                            counted = True
                            self.connections += 1
        except OSError:
            pass
        finally:
            for s in (upstream, downstream):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            try:
                dst.shutdown(socket.SHUT_WR)
            except OSError:
                pass

    def snapshot(self) -> tuple[int, int]:
        """(connections, bid requests) so far."""
        with self.lock:
            return self.connections, sum(1 for request in self.requests if request == ("POST", "/v1/bid"))

    def paths(self, since: int = 0) -> list[str]:
        with self.lock:
            return [path for _, path in self.requests[since:]]

    def close(self) -> None:
        self._closed = True
        self.sock.close()


@pytest.fixture(scope="module")
def apps(django_db_setup, django_db_blocker, tmp_path_factory):
    """The real bid app (one uvicorn worker, exchange keys required) and web app, each ready; a marketer's
    API token in the test database."""
    from django.conf import settings as django_settings
    from rest_framework.authtoken.models import Token

    from tests.factories import make_user

    tmp = tmp_path_factory.mktemp("front-door")
    redis_url = env.env_str("REDIS_URL", env.REDIS_URL)
    client = redis.Redis.from_url(redis_url)
    publish_snapshot(client, version=next_version(client), offers=rows_for_examples())
    conf = django_settings.DATABASES["default"]
    base_env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1", "LOG_LEVEL": "INFO",
                "DATABASE_URL": f"postgres://{conf['USER']}@{conf['HOST']}:{conf['PORT']}/{conf['NAME']}",
                "CELERY_TASK_ALWAYS_EAGER": "false", "DATABASE_POOL_MIN_SIZE": "0", "DATABASE_POOL_MAX_SIZE": "2"}
    base_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    bid_port, web_port = free_port(), free_port()
    bid_env = {**base_env, "BID_EXCHANGE_KEYS": ",".join(f"x{i}:{k}" for i, k in enumerate(KEYS)),
               "BID_WIN_SECRET": "front-door-secret", "BID_TMAX_CAP_MS": "2000",
               "DATABASE_APPLICATION_NAME": "front-door-bid"}
    procs = {
        "bid": ManagedProcess([sys.executable, "manage.py", "run_bid_app", "--port", str(bid_port), "--workers", "1",
                               "--metrics-dir", str(tmp / "prom")], env=bid_env, log_path=tmp / "bid.log",
                              name="bid").start(),
        "web": ManagedProcess([sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                               "--port", str(web_port), "--no-access-log"],
                              env={**base_env, "DATABASE_APPLICATION_NAME": "front-door-web"}, log_path=tmp / "web.log",
                              name="web").start(),
    }
    relay = CountingRelay(bid_port)
    with django_db_blocker.unblock():
        user = make_user("Marketer", username=f"front-door-{uuid.uuid4().hex[:8]}")
        token = Token.objects.create(user=user).key
    try:
        procs["bid"].wait_ready(f"http://127.0.0.1:{bid_port}/ready", timeout=90, interval=0.2)
        procs["web"].wait_ready(f"http://127.0.0.1:{web_port}/ready", timeout=90, interval=0.2)
        yield {"bid_port": bid_port, "web_port": web_port, "relay": relay, "token": token, "procs": procs}
    finally:
        relay.close()
        for proc in procs.values():
            proc.stop()
        with django_db_blocker.unblock():
            user.delete()
        client.close()


@pytest.fixture
def front_door(apps, tmp_path, tls_cert):
    """A fresh HAProxy (empty stick tables) on the production config in front of the module's apps."""
    port = free_port()
    hap_env = {**os.environ, "HAPROXY_BIND": f"127.0.0.1:{port}", "HAPROXY_MAXCONN": "1000",
               "HAPROXY_TLS_BIND": f"127.0.0.1:{free_port()}", "HAPROXY_TLS_CERT": str(tls_cert),
               "WEB_IP_RATE_LIMIT": str(WEB_LIMIT), "BID_EXCHANGE_QPS": str(EXCHANGE_QPS),
               "BID_SERVER": f"127.0.0.1:{apps['relay'].port}", "WEB_SERVER": f"127.0.0.1:{apps['web_port']}",
               "STATIC_SERVER": f"127.0.0.1:{free_port()}"}
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        # Up once each app passed HAProxy's health check (GET /ready). The bid side is probed with
        # a key (counted per key); each web probe counts against the address's WEB_LIMIT.
        web_probes = 0

        def answers(path: str, key: str | None, expected: int):
            def probe() -> bool:
                nonlocal web_probes
                web_probes += key is None
                return client.get(path, headers={"X-Exchange-Key": key} if key else {}).status_code == expected
            return probe

        with start_process([HAPROXY, "-db", "-f", str(DOCKER / "haproxy.cfg")], env=hap_env,
                           log_path=tmp_path / "haproxy.log", name="haproxy") as proc:
            for path, key, expected in (("/v1/win", "probe", 403), ("/ready", None, 200)):
                proc.wait_ready(answers(path, key, expected), timeout=30, interval=0.2)
            client.web_probes = web_probes
            yield client


def _bid(client: httpx.Client, key: str | None) -> httpx.Response:
    headers = {"Content-Type": "application/json", **({"X-Exchange-Key": key} if key else {})}
    return client.post("/v1/bid", content=BANNER, headers=headers)


def test_every_bid_app_path_reaches_the_bid_app_and_the_rest_the_web_app(front_door, apps):
    client = front_door
    relay = apps["relay"]
    start = len(relay.paths())
    bid = _bid(client, "k-adx")
    assert bid.status_code == 200, bid.text
    assert bid.json()["id"] == "r1" and bid.json()["seatbid"][0]["bid"][0]["adid"] == "1"
    assert _bid(client, "not-a-key").status_code == 401  # the bid app checks the key HAProxy passed on
    # the bid app's own answers to forged tokens
    win = client.get("/v1/win", params={"t": "forged", "price": "1.0"})
    assert win.status_code == 403 and win.json()["error"] == "bad_token", win.text
    click = client.get("/v1/click", params={"t": "forged"})
    assert click.status_code == 403 and click.json()["error"] == "bad_token", click.text
    dsp = client.post("/v1/dsp/bid", content=b"{}", headers={"X-Exchange-Key": "k-adx"})
    assert dsp.status_code == 400 and dsp.json()["error"] == "invalid_request", dsp.text  # the fan-out's decoder
    # the DSP slice's REST endpoints are the web app's
    assert client.get("/v1/dsp/status").status_code == 401
    # the web app: the REST API with a token, and a path that only starts like a bid path
    auth = {"Authorization": f"Token {apps['token']}"}
    campaigns = client.get("/v1/campaigns/", headers=auth)
    assert campaigns.status_code == 200 and "results" in campaigns.json(), campaigns.text
    assert client.get("/v1/bidders/", headers=auth).status_code == 404
    assert client.get("/v1/bid/extra", headers={"X-Exchange-Key": "k-adx"}).status_code == 404
    # what the bid app received, through the relay in front of it: the bid paths, and only those
    wait_until(lambda: len(relay.paths(start)) >= 5, timeout=5, message="the relay recorded the five bid-app requests")
    assert relay.paths(start) == ["/v1/bid", "/v1/bid", "/v1/win?t=forged&price=1.0", "/v1/click?t=forged",
                                  "/v1/dsp/bid"]


def test_an_exchange_key_gets_429_only_above_its_qps(front_door):
    client = front_door
    # Half the QPS for 3 s: never limited, from one address, although 30 requests > the web's 20 per 10 s.
    paced = []
    for _ in range(30):
        started = time.monotonic()
        paced.append(_bid(client, "k-adx").status_code)
        pause(max(0.0, 1 / (EXCHANGE_QPS / 2) - (time.monotonic() - started)), "pacing at half the key's QPS")
    assert paced == [200] * 30
    # As fast as one connection goes, for 3 s: above the QPS HAProxy answers 429 (its page, not the app's),
    # and the key still gets its QPS through (refused requests do not count against it).
    started = time.monotonic()
    burst = []
    while time.monotonic() - started < 3:
        burst.append(_bid(client, "k-magnite"))
    elapsed = time.monotonic() - started
    statuses = [r.status_code for r in burst]
    passed = statuses.count(200)
    assert set(statuses) <= {200, 429}
    assert all(HAPROXY_429 in r.text for r in burst if r.status_code == 429)
    if len(burst) > EXCHANGE_QPS * 2 * elapsed:  # a starved box may not reach twice the rate
        assert statuses.count(429) > 0, (elapsed, statuses)
        assert EXCHANGE_QPS * (elapsed - 1) <= passed <= EXCHANGE_QPS * (elapsed + 1), (elapsed, passed, len(burst))
    # other keys have their own budgets
    assert _bid(client, "k-pubmatic").status_code == 200


def test_the_web_api_keeps_the_per_ip_limit_and_bids_with_a_key_do_not_count(front_door, apps):
    client = front_door
    auth = {"Authorization": f"Token {apps['token']}"}
    for n in range(WEB_LIMIT + 6):  # bids with keys first (under each key's QPS): not counted per address
        assert _bid(client, ("k-index", "k-adx")[n % 2]).status_code == 200
    # the fixture's readiness probes of the web app spent some of the address's 20
    allowed = WEB_LIMIT - client.web_probes
    responses = [client.get("/v1/campaigns/", headers=auth) for _ in range(allowed + 6)]
    statuses = [r.status_code for r in responses]
    assert statuses == [200] * allowed + [429] * 6, statuses
    assert all(HAPROXY_429 in r.text for r in responses[allowed:])
    assert _bid(client, None).status_code == 429  # a bid without a key is limited per address
    assert _bid(client, "k-index").status_code == 200  # with a key it is not


def test_backend_connections_are_reused(front_door, apps):
    client = front_door
    relay = apps["relay"]
    # Warm-up: each server slot of the template (8, all this one bid app) opens its connection.
    for _ in range(8):
        assert _bid(client, "k-pubmatic").status_code == 200
    pause(1, "the warm connections go back to HAProxy's idle pool before the count starts")
    connections_before, requests_before = relay.snapshot()
    sent = 40
    for _ in range(sent):  # half the key's QPS: never limited
        assert _bid(client, "k-pubmatic").status_code == 200
        pause(2 / EXCHANGE_QPS, "pacing at half the key's QPS: never limited")
    wait_until(lambda: relay.snapshot()[1] - requests_before >= sent, timeout=5, message=f"the relay counted {sent} bids")
    connections, requests = relay.snapshot()
    new_connections, new_requests = connections - connections_before, requests - requests_before
    assert new_requests == sent
    # `option http-server-close` opened one backend connection per request (40); with keep-alive and
    # http-reuse the warm connections carry them (a slot whose idle connection was closed may reopen one).
    assert new_connections <= 2, (new_connections, new_requests)
