"""Database connections stay bounded under load (issue 16, defect 1).

The real web process (``uvicorn config.asgi:application``) and a real Celery worker (prefork, two
children, as in the Procfile) run against the test database; eight clients post invalid and valid
campaigns and read them for a few seconds while a sampler counts the connections each process holds
in ``pg_stat_activity`` (every process names itself with ``DATABASE_APPLICATION_NAME``).

Under ASGI every request runs its Django code in a thread of its own; with persistent connections each
of those threads left a connection open until the garbage collector found it — more so when the request
ended in an exception — so the count grew with the number of requests. With the per-process pool a
process never holds more than ``DATABASE_POOL_MAX_SIZE``, and no answer is a 5xx.
"""
from __future__ import annotations

import os
import sys
import threading
import uuid
from collections import Counter
from datetime import timedelta

import httpx
import psycopg
import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from tests.factories import make_user
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(180)]

CLIENTS = 8
LOAD_REQUESTS = 400  # answers before the load stops: ~8 s of eight clients on a shared 2-core box
WEB_POOL = 6
WORKER_POOL = 2
TOTAL_BOUND = 40  # the bound for every process of `make run` together


def conninfo(conf: dict, application_name: str) -> str:
    return (f"host={conf['HOST']} port={conf['PORT']} user={conf['USER']} dbname={conf['NAME']} "
            f"password={conf['PASSWORD']} application_name={application_name}")


class Sampler:
    """Counts the test database's connections per application name every 50 ms; keeps the peaks."""

    def __init__(self, conf: dict):
        self.database = conf["NAME"]
        self.conn = psycopg.connect(conninfo(conf, "e2e-sampler"), autocommit=True)
        self.peak_by_app: Counter = Counter()
        self.peak_total = 0
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def sample(self) -> Counter:
        rows = self.conn.execute(
            "SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s GROUP BY 1",
            [self.database]).fetchall()
        return Counter({name: count for name, count in rows})

    def _run(self) -> None:
        while not self._stop.is_set():
            counts = self.sample()
            for name, count in counts.items():
                self.peak_by_app[name] = max(self.peak_by_app[name], count)
            self.peak_total = max(self.peak_total, sum(counts.values()))
            self.rounds += 1
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)
        assert not self._thread.is_alive(), "the sampler did not stop"
        self.conn.close()


@pytest.fixture
def platform(transactional_db, tmp_path):
    tag = uuid.uuid4().hex[:8]
    conf = django_settings.DATABASES["default"]
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1", "LOG_LEVEL": "INFO",
           "DATABASE_URL": f"postgres://{conf['USER']}@{conf['HOST']}:{conf['PORT']}/{conf['NAME']}",
           "CELERY_TASK_ALWAYS_EAGER": "false"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    port = free_port()
    names = {"web": f"e2e-web-{tag}", "worker": f"e2e-worker-{tag}"}
    procs = {
        "web": ManagedProcess([sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                               "--port", str(port), "--no-access-log"],
                              env={**env, "DATABASE_APPLICATION_NAME": names["web"],
                                   "DATABASE_POOL_MAX_SIZE": str(WEB_POOL)},
                              log_path=tmp_path / "web.log", name="web").start(),
        "worker": ManagedProcess([sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork",
                                  "--concurrency=2", "-n", f"db-e2e-{tag}@%h", "--without-heartbeat",
                                  "--without-gossip", "--without-mingle", "--loglevel=INFO"],
                                 env={**env, "DATABASE_APPLICATION_NAME": names["worker"],
                                      "DATABASE_POOL_MAX_SIZE": str(WORKER_POOL),
                                      "CELERY_METRICS_PORT": str(free_port())},
                                 log_path=tmp_path / "worker.log", name="worker").start(),
    }
    try:
        procs["worker"].wait_for_line(r" ready\.", timeout=90)
        base = f"http://127.0.0.1:{port}"
        procs["web"].wait_ready(f"{base}/live", timeout=90, interval=0.2)
        yield {"base": base, "names": names, "procs": procs, "conf": conf}
    finally:
        for proc in procs.values():
            proc.stop(timeout=20)


def campaign(**overrides) -> dict:
    now = timezone.now()
    body = {"name": "Bound", "advertiser": "Stride Shoes", "budget": "100.00", "channels": ["display"],
            "start_at": (now + timedelta(days=1)).isoformat(), "end_at": (now + timedelta(days=5)).isoformat()}
    body.update(overrides)
    return body


INVALID = [
    ("json", {}),
    ("json", campaign(budget="-5")),
    ("json", campaign(budget="1e999")),
    ("json", campaign(channels=[])),
    ("json", campaign(channels=["carrier-pigeon"])),
    ("json", campaign(end_at=(timezone.now() - timedelta(days=3)).isoformat())),
    ("json", campaign(start_at="yesterday")),
    ("json", campaign(name=["not", "a", "string"])),
    ("json", campaign(targeting={"segments": [-1]})),
    ("json", [campaign()]),
    ("raw", b'{"name": "truncated'),
    ("raw", b"\xff\xfe not utf-8"),
]


def client_loop(base: str, token: str, index: int, stop: threading.Event, statuses: Counter, lock: threading.Lock):
    headers = {"Authorization": f"Token {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
        n = index
        while not stop.is_set():
            n += 1
            if n % 10 == 0:
                response = http.post("/v1/campaigns/", json=campaign(name=f"valid-{index}-{n}"))
            elif n % 10 == 5:
                response = http.get("/v1/campaigns/")
            else:
                kind, body = INVALID[n % len(INVALID)]
                if kind == "json":
                    response = http.post("/v1/campaigns/", json=body)
                else:
                    response = http.post("/v1/campaigns/", content=body, headers={"Content-Type": "application/json"})
            with lock:
                statuses[(response.request.method, response.status_code)] += 1
                if response.status_code >= 500:
                    statuses[("body", response.text[:200])] += 1


def _answered(statuses: Counter, lock: threading.Lock) -> int:
    with lock:
        return sum(count for key, count in statuses.items() if key[0] != "body")


def test_connections_stay_bounded_and_no_5xx_under_invalid_campaigns(platform):
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=make_user("Marketer", username="bound-marketer")).key
    statuses: Counter = Counter()
    lock = threading.Lock()
    stop = threading.Event()
    with Sampler(platform["conf"]) as sampler:
        errors: list[BaseException] = []

        def client(i: int) -> None:
            try:
                client_loop(platform["base"], token, i, stop, statuses, lock)
            except BaseException as exc:  # noqa: BLE001 - a client that failed is reported below
                errors.append(exc)
                stop.set()

        threads = [threading.Thread(target=client, args=(i,)) for i in range(CLIENTS)]
        for thread in threads:
            thread.start()
        try:
            wait_until(lambda: errors or _answered(statuses, lock) >= LOAD_REQUESTS, timeout=90, interval=0.2,
                       message=f"{LOAD_REQUESTS} answers", detail=lambda: f"statuses={dict(statuses)}")
        finally:
            stop.set()
            for thread in threads:
                thread.join(60)
        assert not [t for t in threads if t.is_alive()], "a client thread did not finish"
        assert errors == [], errors
        rounds = sampler.rounds  # the sampler sees the connections settle too
        wait_until(lambda: sampler.rounds >= rounds + 5, timeout=10, message="five more samples after the load")

    web, worker = platform["names"]["web"], platform["names"]["worker"]
    report = (f"statuses={dict(statuses)} peaks={dict(sampler.peak_by_app)} total={sampler.peak_total}\n"
              f"web log:\n{platform['procs']['web'].tail()}")
    server_errors = {key: count for key, count in statuses.items() if key[0] == "body" or key[1] >= 500}
    assert not server_errors, report
    assert statuses[("POST", 400)] >= 50, report  # the load really ran: many invalid bodies refused
    assert statuses[("POST", 201)] >= 5, report
    assert statuses[("GET", 200)] >= 5, report
    assert 1 <= sampler.peak_by_app[web] <= WEB_POOL, report
    # Prefork: the main process and each of the two children may hold their own pool.
    assert sampler.peak_by_app[worker] <= 3 * WORKER_POOL, report
    assert sampler.peak_total <= TOTAL_BOUND, report

    ready = httpx.get(f"{platform['base']}/ready", timeout=10)
    assert ready.status_code == 200, ready.text
    # Nothing was left behind: the web process still holds at most its pool.
    with psycopg.connect(conninfo(platform["conf"], "e2e-check"), autocommit=True) as conn:
        [(held,)] = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name = %s",
                                 [platform["conf"]["NAME"], web]).fetchall()
    assert held <= WEB_POOL
