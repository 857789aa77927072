#!/usr/bin/env python
"""Load-and-fault soak of the web API against stores of its own (issue 16, "Hold the line").

    python bench/api_soak.py --minutes 10 --clients 32          # the full soak
    python bench/api_soak.py --minutes 2                         # a short one
    python bench/api_soak.py --bound --seconds 45 --clients 8    # defect 1's bound: invalid campaigns only

It never touches the shared services: it starts its own Postgres (a temporary initdb cluster, trust
auth), Redis (append-only file, so a restart keeps the broker queue and the analytics stream), NATS
with JetStream and ClickHouse (a temporary config and data directory), all on free ports of
127.0.0.1; migrates and seeds them; starts web (uvicorn), worker (prefork, concurrency 2), beat and
agents against them with the Procfile's pool sizes; then ``--clients`` threads mix reads, campaign
writes, invalid campaigns, loyalty earns and redeems, and ingest, while each store is stopped once
(down ``--down-seconds``) and started again.

Clients retry a failed call (transport error or 5xx) with the same body and idempotency key. A 5xx is
allowed only inside an outage window — from the stop until 5 s after the store is ready again — and
only as a JSON 503. Afterwards the totals must equal the acknowledged operations: every member's
balance is the sum of acknowledged earns minus redeems, ingest rows equal acknowledged event ids, campaign
rows equal acknowledged creates (each carries an ``Idempotency-Key``), and ClickHouse holds one
``loyalty_earn`` event per acknowledged earn and one ``loyalty_redeem`` per acknowledged redeem.

The bound mode (defect 1): every process up (web, worker, beat, agents, grpc, bid), ``--clients``
clients posting invalid campaigns; peak connections to the database, 5xx count, /ready afterwards.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import psycopg

ROOT = Path(__file__).resolve().parents[1]
PG_BIN = Path(sorted(Path("/usr/lib/postgresql").iterdir())[-1]) / "bin"
GRACE = 5.0  # seconds after a store is ready again during which a 503 is still allowed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:  # noqa: BLE001 - not up yet
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up in {timeout:.0f} s")


# --- stores ---------------------------------------------------------------------------------------

class Store:
    name = "store"

    def __init__(self, root: Path):
        self.dir = root / self.name
        self.dir.mkdir()
        self.port = free_port()
        self.proc: subprocess.Popen | None = None
        self.log = open(self.dir / "server.log", "ab")

    def command(self) -> list[str]:
        raise NotImplementedError

    user: str | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command(), stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir,
                                     user=self.user, group=self.user, start_new_session=True)
        wait(self.ready, 60, self.name)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(self.stop_signal)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    stop_signal = signal.SIGTERM

    def ready(self) -> bool:
        return port_open(self.port)


class Postgres(Store):
    name = "postgres"
    user = "postgres"
    stop_signal = signal.SIGINT  # fast shutdown: open transactions are rolled back, clients cut off

    def __init__(self, root: Path):
        super().__init__(root)
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(self.data), "-A", "trust",
                        "-U", "postgres", "--no-sync"], check=True, stdout=subprocess.DEVNULL)

    def command(self) -> list[str]:
        return [str(PG_BIN / "postgres"), "-D", str(self.data), "-p", str(self.port), "-k", str(self.dir),
                "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=100", "-c", "fsync=off"]

    def ready(self) -> bool:
        with psycopg.connect(self.url("postgres"), connect_timeout=1) as conn:
            conn.execute("SELECT 1")
        return True

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"


class Redis(Store):
    name = "redis"

    def command(self) -> list[str]:
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
                "--appendfsync", "always", "--dir", str(self.dir)]

    def ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")


class Nats(Store):
    name = "nats"

    def command(self) -> list[str]:
        return ["nats-server", "-a", "127.0.0.1", "-p", str(self.port), "-js", "-sd", str(self.dir / "js")]


class ClickHouse(Store):
    name = "clickhouse"
    user = "clickhouse"

    def __init__(self, root: Path):
        super().__init__(root)
        self.http_port = free_port()
        shutil.copy("/etc/clickhouse-server/users.xml", self.dir / "users.xml")
        (self.dir / "config.xml").write_text(f"""<?xml version="1.0"?>
<yandex>
  <logger><level>warning</level><log>{self.dir}/ch.log</log><errorlog>{self.dir}/ch.err.log</errorlog></logger>
  <http_port>{self.http_port}</http_port>
  <tcp_port>{self.port}</tcp_port>
  <listen_host>127.0.0.1</listen_host>
  <max_connections>256</max_connections>
  <keep_alive_timeout>3</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <mark_cache_size>268435456</mark_cache_size>
  <path>{self.dir}/data/</path>
  <tmp_path>{self.dir}/tmp/</tmp_path>
  <user_files_path>{self.dir}/user_files/</user_files_path>
  <format_schema_path>{self.dir}/format_schemas/</format_schema_path>
  <users_config>users.xml</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
</yandex>
""")
        for path in [self.dir, *self.dir.iterdir()]:
            shutil.chown(path, "clickhouse", "clickhouse")

    def command(self) -> list[str]:
        return [shutil.which("clickhouse-server") or "/usr/sbin/clickhouse-server", f"--config-file={self.dir}/config.xml"]

    def ready(self) -> bool:
        return httpx.get(f"http://127.0.0.1:{self.http_port}/ping", timeout=1).text.startswith("Ok")


# --- platform processes --------------------------------------------------------------------------

class Proc:
    def __init__(self, name: str, args: list[str], env: dict[str, str], logdir: Path):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self.popen = subprocess.Popen(args, cwd=ROOT, env=env, stdout=open(self.log_path, "ab"),
                                      stderr=subprocess.STDOUT, start_new_session=True)

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)


class Platform:
    def __init__(self, stores: dict[str, Store], root: Path, *, every_process: bool):
        self.stores, self.root = stores, root
        self.web_port = free_port()
        pg, redis = stores["postgres"], stores["redis"]
        self.database = "campaign_express"
        r = f"redis://127.0.0.1:{redis.port}"
        self.env = {
            **os.environ, "PYTHONUNBUFFERED": "1", "OPENBLAS_NUM_THREADS": "1", "LOG_LEVEL": "WARNING",
            "DATABASE_URL": pg.url(self.database), "REDIS_URL": f"{r}/0", "CACHE_URL": f"{r}/1",
            "CELERY_BROKER_URL": f"{r}/2", "CHANNEL_LAYER_URL": f"{r}/3",
            "CLICKHOUSE_URL": f"clickhouse://default@127.0.0.1:{stores['clickhouse'].port}/campaign_express",
            "NATS_URL": f"nats://127.0.0.1:{stores['nats'].port}",
            "CELERY_TASK_ALWAYS_EAGER": "false", "CELERY_METRICS_PORT": str(free_port()),
            "CAMPAIGN_EXPRESS__NPU__MODEL_DIR": str(root / "models"),
            # The per-token and per-address rate limits must not limit the soak's clients.
            "API_RATE_LIMIT_USER": "1000000/m", "API_RATE_LIMIT_ANON": "1000000/m",
        }
        self.env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.every_process = every_process
        self.procs: dict[str, Proc] = {}

    def manage(self, *args: str, capture: bool = False) -> str:
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env, check=True,
                              capture_output=True, text=True)
        return done.stdout

    def prepare(self, clients: int) -> dict[str, list[str]]:
        with psycopg.connect(self.stores["postgres"].url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {self.database}")
        self.manage("migrate", "--noinput", "-v0")
        self.manage("migrate_clickhouse")
        # One token per client and role: the soak measures the platform, not per-token throttling.
        script = f"""
import json
from django.contrib.auth.models import Group, User
from rest_framework.authtoken.models import Token
out = {{"Marketer": [], "Integration": []}}
for role in out:
    group = Group.objects.get_or_create(name=role)[0]
    for i in range({clients}):
        user = User.objects.create_user(username=f"soak-{{role.lower()}}-{{i}}")
        user.groups.add(group)
        out[role].append(Token.objects.create(user=user).key)
print("TOKENS" + json.dumps(out))
"""
        output = self.manage("shell", "-c", script)
        return json.loads(output.split("TOKENS", 1)[1])

    def start(self) -> None:
        py, env, logs = sys.executable, self.env, self.root
        pool = lambda name, size: {**env, "DATABASE_APPLICATION_NAME": f"ce-{name}", "DATABASE_POOL_MAX_SIZE": str(size)}  # noqa: E731
        prom = self.root / "prometheus"
        prom.mkdir(exist_ok=True)
        self.procs["web"] = Proc("web", [py, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                                         "--port", str(self.web_port), "--no-access-log"], pool("web", 10), logs)
        self.procs["worker"] = Proc("worker", [py, "-m", "celery", "-A", "config", "worker", "--concurrency=2",
                                               "--loglevel=WARNING", "-n", "soak@%h"],
                                    {**pool("worker", 2), "PROMETHEUS_MULTIPROC_DIR": str(prom)}, logs)
        self.procs["beat"] = Proc("beat", [py, "-m", "celery", "-A", "config", "beat", "--loglevel=WARNING",
                                           f"--schedule={self.root / 'beat-schedule'}"], {**pool("beat", 1), "DATABASE_POOL_MIN_SIZE": "0"}, logs)
        self.procs["agents"] = Proc("agents", [py, "manage.py", "run_agents", "--count", "4"], pool("agents", 4), logs)
        if self.every_process:
            self.procs["grpc"] = Proc("grpc", [py, "manage.py", "run_grpc", "--host", "127.0.0.1", "--port",
                                               str(free_port())], {**pool("grpc", 1), "DATABASE_POOL_MIN_SIZE": "0"}, logs)
            self.procs["bid"] = Proc("bid", [py, "manage.py", "run_bid_app", "--host", "127.0.0.1", "--port",
                                             str(free_port()), "--workers", "2", "--metrics-dir",
                                             str(self.root / "bid-prom")], {**pool("bid", 1), "DATABASE_POOL_MIN_SIZE": "0"}, logs)
        wait(lambda: httpx.get(f"{self.base}/ready", timeout=5).status_code == 200, 120, "web /ready")

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.stop()


# --- measurements ---------------------------------------------------------------------------------

class ConnectionSampler:
    """Peak connections to the platform's database (pg_stat_activity), per application name too."""

    def __init__(self, pg: Postgres, database: str):
        self.pg, self.database = pg, database
        self.peak, self.peak_by_app = 0, Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        conn = None
        while not self._stop.is_set():
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(self.pg.url("postgres"), autocommit=True, connect_timeout=1,
                                           application_name="soak-sampler")
                rows = conn.execute("SELECT application_name, count(*) FROM pg_stat_activity WHERE datname = %s "
                                    "GROUP BY 1", [self.database]).fetchall()
                self.peak = max(self.peak, sum(count for _, count in rows))
                for name, count in rows:
                    self.peak_by_app[name] = max(self.peak_by_app[name], count)
            except psycopg.Error:
                conn = None
            self._stop.wait(0.2)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


@dataclass
class Outage:
    store: str
    stopped_at: float
    ready_at: float | None = None

    def covers(self, t: float, answered: float | None = None) -> bool:
        """Whether a call sent at ``t`` (answered at ``answered``) was in flight during the window."""
        end = (self.ready_at if self.ready_at is not None else float("inf")) + GRACE
        return t <= end and (answered if answered is not None else t) >= self.stopped_at


@dataclass
class Results:
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[tuple[float, str, int, bool, str, float]] = field(default_factory=list)
    # (sent at, op, status, is a JSON 503, body, answered at)
    transport_errors: Counter = field(default_factory=Counter)
    transport_error_times: list[float] = field(default_factory=list)
    gave_up: Counter = field(default_factory=Counter)
    earned: Counter = field(default_factory=Counter)   # user -> acknowledged stars earned
    spent: Counter = field(default_factory=Counter)    # user -> acknowledged stars spent
    earns: set = field(default_factory=set)            # acknowledged earn transaction ids
    ingested: set = field(default_factory=set)         # acknowledged ingest event ids
    campaigns: set = field(default_factory=set)       # acknowledged campaign ids
    redeems: set = field(default_factory=set)         # acknowledged redeem idempotency keys
    lock: threading.Lock = field(default_factory=threading.Lock)


def is_json_503(response: httpx.Response) -> bool:
    if response.status_code != 503:
        return False
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and "error" in body


def campaign_body(name: str, **overrides) -> dict:
    now = datetime.now(timezone.utc)
    body = {"name": name, "advertiser": "Soak Ltd", "budget": "100.00", "channels": ["display"],
            "start_at": (now + timedelta(days=1)).isoformat(), "end_at": (now + timedelta(days=5)).isoformat()}
    body.update(overrides)
    return body


INVALID = [{}, {"name": 5}, campaign_body("x", budget="-1"), campaign_body("x", channels=[]),
           campaign_body("x", channels=["pigeon"]), campaign_body("x", start_at="yesterday"),
           campaign_body("x", budget="1e999"), [1, 2, 3]]


class Client(threading.Thread):
    RETRY_FOR = 90.0

    def __init__(self, index: int, base: str, tokens: dict, results: Results, stop: threading.Event,
                 users: list[str], mix: dict[str, int], seed: int):
        super().__init__(daemon=True)
        self.index, self.results, self.stop_event, self.users = index, results, stop, users
        self.rng = random.Random(seed)
        self.ops, self.weights = zip(*mix.items(), strict=True)
        self.marketer = {"Authorization": f"Token {tokens['Marketer'][index % len(tokens['Marketer'])]}"}
        self.integration = {"Authorization": f"Token {tokens['Integration'][index % len(tokens['Integration'])]}"}
        self.http = httpx.Client(base_url=base, timeout=30)

    def call(self, op: str, method: str, path: str, *, headers: dict, json_body=None, retry: bool = True):
        """One operation: retried with the same body and key on a transport error or 5xx (``retry=False``:
        on a 5xx only, which changed nothing; a transport error's outcome is unknown)."""
        deadline = time.monotonic() + self.RETRY_FOR
        while True:
            started, started_wall = time.monotonic(), time.time()
            try:
                response = self.http.request(method, path, headers=headers, json=json_body)
            except httpx.TransportError as exc:
                with self.results.lock:
                    self.results.transport_errors[(op, type(exc).__name__)] += 1
                    self.results.transport_error_times.append(started_wall)
                response = None
            elapsed = time.monotonic() - started
            with self.results.lock:
                self.results.latencies[op].append(elapsed)
                if response is not None:
                    self.results.statuses[(op, response.status_code)] += 1
                    if response.status_code >= 500:
                        self.results.server_errors.append((started_wall, op, response.status_code,
                                                           is_json_503(response), response.text[:200], time.time()))
            if response is not None and response.status_code < 500:
                return response
            if (not retry and response is None) or time.monotonic() > deadline:
                with self.results.lock:
                    self.results.gave_up[op] += 1
                return None
            time.sleep(0.5)

    def run(self) -> None:
        n = 0
        while not self.stop_event.is_set():
            n += 1
            op = self.rng.choices(self.ops, self.weights)[0]
            getattr(self, op)(n)
        self.http.close()

    def read(self, n: int) -> None:
        if n % 2:
            self.call("read", "GET", "/v1/campaigns/", headers=self.marketer)
        else:
            self.call("read", "GET", f"/v1/loyalty/balance/{self.rng.choice(self.users)}", headers=self.integration)

    def write(self, n: int) -> None:
        # With an Idempotency-Key a create is retried like any write (a lost answer's retry returns the
        # campaign the first attempt made); rows are compared with acknowledged creates.
        response = self.call("write", "POST", "/v1/campaigns/", headers={**self.marketer, "Idempotency-Key": uuid.uuid4().hex},
                             json_body=campaign_body(f"soak-{self.index}-{n}"))
        if response is not None and response.status_code == 201:
            with self.results.lock:
                self.results.campaigns.add(response.json()["id"])

    def invalid(self, n: int) -> None:
        self.call("invalid", "POST", "/v1/campaigns/", headers=self.marketer, json_body=self.rng.choice(INVALID))

    def earn(self, n: int) -> None:
        user = self.rng.choice(self.users)
        txn = f"soak-{uuid.uuid4().hex}"
        body = {"user_id": user, "amount_cents": self.rng.randint(100, 5000), "channel": "app", "transaction_id": txn}
        response = self.call("earn", "POST", "/v1/loyalty/earn", headers=self.integration, json_body=body)
        if response is not None and response.status_code in (200, 201):
            with self.results.lock:
                if txn not in self.results.earns:
                    self.results.earns.add(txn)
                    self.results.earned[user] += response.json()["stars_earned"]

    def redeem(self, n: int) -> None:
        user = self.rng.choice(self.users)
        key = uuid.uuid4().hex
        response = self.call("redeem", "POST", "/v1/loyalty/redeem", headers={**self.integration, "Idempotency-Key": key},
                             json_body={"user_id": user, "redemption_tier": "customization"})
        if response is not None and response.status_code == 200:
            with self.results.lock:
                if key not in self.results.redeems:
                    self.results.redeems.add(key)
                    self.results.spent[user] += response.json()["stars_spent"]

    def ingest(self, n: int) -> None:
        event_id = f"soak-{uuid.uuid4().hex}"
        body = {"event_id": event_id, "source": "web", "event_type": "page_view",
                "user_id": self.rng.choice(self.users), "timestamp": datetime.now(timezone.utc).isoformat()}
        response = self.call("ingest", "POST", "/v1/channels/ingest", headers=self.integration, json_body=body)
        if response is not None and response.status_code in (200, 201):
            with self.results.lock:
                self.results.ingested.add(event_id)


# --- run ------------------------------------------------------------------------------------------

def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]


def run_faults(stores: dict[str, Store], order: list[str], duration: float, down: float, outages: list[Outage],
               stop: threading.Event, log) -> None:
    start = time.monotonic()
    for i, name in enumerate(order):
        at = start + duration * (i + 1) / (len(order) + 1)
        while time.monotonic() < at:
            if stop.wait(0.2):
                return
        outage = Outage(name, time.time())
        outages.append(outage)
        log(f"stopping {name}")
        stores[name].stop()
        time.sleep(down)
        stores[name].start()
        outage.ready_at = time.time()
        log(f"{name} ready again after {outage.ready_at - outage.stopped_at:.1f} s")


def verify(platform: Platform, results: Results, log) -> dict[str, tuple[int, int]]:
    """Totals in the stores against what the clients saw acknowledged: {what: (expected, found)}."""
    pg = platform.stores["postgres"]
    checks: dict[str, tuple[int, int]] = {}
    with psycopg.connect(pg.url(platform.database), autocommit=True) as conn:
        balances = dict(conn.execute("SELECT user_id, balance FROM loyalty_loyaltyaccount").fetchall())
        users = set(results.earned) | set(results.spent) | set(balances)
        wrong = [u for u in users if balances.get(u, 0) != results.earned[u] - results.spent[u]]
        checks["loyalty balances equal acknowledged earns - redeems (members off)"] = (0, len(wrong))
        checks["loyalty stars (sum of balances)"] = (sum(results.earned.values()) - sum(results.spent.values()),
                                                     sum(balances.values()))
        [(ingested,)] = conn.execute("SELECT count(*) FROM omnichannel_ingestevent WHERE event_id LIKE 'soak-%%'").fetchall()
        checks["ingest events"] = (len(results.ingested), ingested)
        [(campaigns,)] = conn.execute("SELECT count(*) FROM campaigns_campaign WHERE name LIKE 'soak-%%'").fetchall()
        checks["campaigns (creates with an Idempotency-Key)"] = (len(results.campaigns), campaigns)
    from clickhouse_driver import Client as CH

    ch = CH(host="127.0.0.1", port=platform.stores["clickhouse"].port, database="campaign_express")
    deadline = time.monotonic() + 90
    for event_type, expected in (("loyalty_earn", len(results.earns)), ("loyalty_redeem", len(results.redeems))):
        found = -1
        while time.monotonic() < deadline:  # the analytics pipeline runs every second; let it drain
            try:
                found = ch.execute("SELECT count() FROM analytics_events FINAL WHERE event_type = %(t)s",
                                   {"t": event_type})[0][0]
            except Exception as exc:  # noqa: BLE001
                log(f"clickhouse: {exc}")
            if found >= expected:
                break
            time.sleep(2)
        checks[f"analytics {event_type} events in ClickHouse (FINAL)"] = (expected, found)
    return checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, help="duration in seconds (overrides --minutes)")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--down-seconds", type=float, default=5.0, help="how long each store stays stopped")
    parser.add_argument("--faults", default="postgres,redis,nats,clickhouse", help="stores to restart, in order ('' for none)")
    parser.add_argument("--bound", action="store_true", help="defect 1: every process, invalid campaigns only, no faults")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = parser.parse_args()
    duration = args.seconds if args.seconds else args.minutes * 60
    t0 = time.monotonic()

    def log(message: str) -> None:
        print(f"[{time.monotonic() - t0:7.1f}s] {message}", flush=True)

    root = Path(tempfile.mkdtemp(prefix="ce-soak-"))
    os.chmod(root, 0o755)
    stores: dict[str, Store] = {}
    platform = None
    try:
        for cls in (Postgres, Redis, Nats, ClickHouse):
            store = cls(root)
            store.start()
            stores[store.name] = store
        log("stores up: " + ", ".join(f"{n}:{s.port}" for n, s in stores.items()))
        platform = Platform(stores, root, every_process=args.bound)
        tokens = platform.prepare(args.clients)
        platform.start()
        log(f"platform up ({', '.join(platform.procs)}), web on {platform.base}; running {duration:.0f} s "
            f"with {args.clients} clients")
        results = Results()
        stop = threading.Event()
        outages: list[Outage] = []
        mix = ({"invalid": 1} if args.bound else
               {"read": 30, "write": 8, "invalid": 15, "earn": 22, "redeem": 5, "ingest": 20})
        users = [f"soak-member-{i}" for i in range(50)]
        order = [] if args.bound else [name for name in args.faults.split(",") if name]
        with ConnectionSampler(stores["postgres"], platform.database) as sampler:
            clients = [Client(i, platform.base, tokens, results, stop, users, mix, seed=i) for i in range(args.clients)]
            for client in clients:
                client.start()
            faults = threading.Thread(target=run_faults, args=(stores, order, duration, args.down_seconds, outages,
                                                                stop, log), daemon=True)
            faults.start()
            stop.wait(duration)
            stop.set()
            faults.join(120)
            for client in clients:
                client.join(Client.RETRY_FOR + 40)
            ready = httpx.get(f"{platform.base}/ready", timeout=10)
        log(f"load done; /ready {ready.status_code}")

        # --- report -------------------------------------------------------------------------------
        print("\noperation   calls     p50 ms   p99 ms   statuses")
        for op in sorted(results.latencies):
            lat = sorted(results.latencies[op])
            statuses = {status: count for (o, status), count in sorted(results.statuses.items()) if o == op}
            print(f"{op:10} {len(lat):6} {lat[len(lat) // 2] * 1000:9.1f} {p99(lat) * 1000:8.1f}   {statuses}")
        for outage in outages:
            print(f"outage {outage.store:10} {outage.ready_at - outage.stopped_at:5.1f} s "
                  f"(window + {GRACE:.0f} s grace)")
        inside = [e for e in results.server_errors if any(o.covers(e[0], e[5]) for o in outages)]
        outside = [e for e in results.server_errors if e not in inside]
        bad_inside = [e for e in inside if not e[3]]
        print(f"5xx: {len(results.server_errors)} total; {len(inside)} inside outage windows "
              f"({len(bad_inside)} not a JSON 503); {len(outside)} outside")
        by_store = Counter(next(o.store for o in outages if o.covers(e[0], e[5])) for e in inside)
        if by_store:
            print(f"5xx inside windows by store: {dict(by_store)}")
        for e in (bad_inside + outside)[:10]:
            print(f"  offending 5xx: op={e[1]} status={e[2]} body={e[4]!r}")
        if results.transport_errors:
            print(f"transport errors (retried): {dict(results.transport_errors)}")
            started_in = Counter(next((o.store for o in outages if o.covers(t)), "no outage")
                                 for t in results.transport_error_times)
            print(f"transport errors by the outage window their request started in: {dict(started_in)}")
        if results.gave_up:
            print(f"operations given up after {Client.RETRY_FOR:.0f} s of retries: {dict(results.gave_up)}")
        print(f"peak database connections: {sampler.peak} (by process: {dict(sampler.peak_by_app)})")
        ok = ready.status_code == 200 and not outside and not bad_inside
        if args.bound:
            print(f"bound: peak {sampler.peak} <= 40: {'yes' if sampler.peak <= 40 else 'NO'}")
            ok = ok and sampler.peak <= 40
        else:
            checks = verify(platform, results, log)
            print("\ntotals (acknowledged vs in the stores):")
            for what, (expected, found) in checks.items():
                good = found == expected
                ok = ok and good
                print(f"  {'ok ' if good else 'BAD'} {what}: acknowledged {expected}, found {found}")
        print(f"\nresult: {'PASS' if ok else 'FAIL'}")
        return 0 if ok else 1
    finally:
        if platform:
            platform.stop()
        for store in stores.values():
            store.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
