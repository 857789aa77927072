"""Load generator for the dedicated bid app (see bench/README.md).

Seeds 64 live offers and 10,000 loyalty profiles into a Redis database of its own, starts the bid
app (``manage.py run_bid_app``, 2 uvicorn workers) on 127.0.0.1, then runs:

1. warm-up (L1 caches fill),
2. open loop at a fixed rate (default 4,000 req/s) with the realistic mix: site and app traffic,
   1-3 impressions with ``format`` lists, known users with loyalty profiles and unknown users,
3. the same rate with known (L1-resident) users only, for the server-side L1-hit latency,
4. closed loop at maximum throughput.

Each open-loop phase is measured after a ``--lead-in`` (2 s) at its own rate and requests. For each
phase it prints the achieved rate, errors, client-side p50/p90/p99/p99.9 (from the moment the
request was written to the kernel's receive time of the response; the JSON line also gives the
latency from the request's scheduled time, which includes the generator's own lag, and until the
generator read the response) and the server-side ``bids_total_latency_us`` and
``inference_latency_us`` percentiles scraped from ``/metrics`` (aggregated over both workers).

The client speaks HTTP/1.1 keep-alive over raw sockets with httptools' parser: the open loop from
one thread that wakes once a millisecond (``TickClient``), the closed loop on an asyncio (uvloop)
event loop. It costs far less CPU per request than the server — it shares the 2 cores.

    .venv/bin/python bench/bid_load.py                       # everything, about a minute
    .venv/bin/python bench/bid_load.py --rate 4000 --duration 20 --max-duration 20
    .venv/bin/python bench/bid_load.py --url http://127.0.0.1:8081 --no-start   # an app you started
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import select
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httptools  # noqa: E402

SIZES = [(300, 250), (320, 50), (728, 90), (300, 600), (160, 600)]
CATEGORIES = ["IAB1-1", "IAB2-3", "IAB3-1", "IAB8-5", "IAB9-9", "IAB17-12", "IAB18-1", "IAB19-6", "IAB20-3", "IAB22-1"]
TIERS = ["green"] * 6 + ["gold"] * 3 + ["reserve"]
N_OFFERS = 64
N_USERS = 10_000


# --- seeding ---------------------------------------------------------------------------------------

def seed(client, *, offers: int, users: int, rng: random.Random) -> None:
    """64 live offers across 8 campaigns (US, any device, common sizes) and ``users`` profiles. The
    analytics stream of the bench's database is emptied too: no consumer reads it here, and run after
    run it would grow by ~100 MB."""
    from apps.analytics.emitter import DEFAULT_STREAM

    client.delete(DEFAULT_STREAM)
    from apps.bidding.snapshot import OfferRow, next_version, publish_snapshot
    from apps.core.profiles import PROFILE_TTL_SECONDS, profile_key

    now = time.time()
    rows = []
    for i in range(offers):
        w, h = SIZES[i % len(SIZES)]
        rows.append(OfferRow(
            offer_id=10_000 + i, campaign_id=500 + i % 8, name=f"bench offer {i}", advertiser="Bench Co",
            markup=f'<img src="https://cdn.example.com/bench/{i}.png" width="{w}" height="{h}">', width=w, height=h,
            format="banner", landing_url=f"https://shop.example.com/bench/{i}", adomain=f"brand{i % 8}.example.com",
            category=CATEGORIES[i % len(CATEGORIES)], max_bid_cpm=round(1.5 + (i % 9) * 0.75, 2), priority=i % 10,
            observed_ctr=0.004 + (i % 11) * 0.003, countries=["USA"], device_types=[], segments=[],
            start_at=now - 60, end_at=now + 30 * 86400, budget_micros=10**15, max_per_hour=10**6, max_per_day=10**6,
        ))
    publish_snapshot(client, version=next_version(client), offers=rows)
    pipe = client.pipeline(transaction=False)
    for u in range(users):
        key = profile_key(f"bench-user-{u}")
        pipe.hset(key, mapping={
            "interests": json.dumps([round(rng.random(), 3) for _ in range(64)]),
            "segments": json.dumps(rng.sample(range(200), 5)),
            "loyalty_tier": json.dumps(rng.choice(TIERS)),
            "loyalty": json.dumps([round(rng.random(), 3) for _ in range(8)]),
            "recency": json.dumps(round(rng.random(), 3)),
            "updated_at": json.dumps(now),
        })
        pipe.expire(key, PROFILE_TTL_SECONDS)
        if u % 1000 == 999:
            pipe.execute()
    pipe.execute()


# --- requests --------------------------------------------------------------------------------------

UNKNOWN_MARK = b"@@UNKNOWN@@"


def make_bodies(n: int, rng: random.Random, *, unknown_ratio: float) -> list[bytes]:
    """Realistic OpenRTB 2.6 requests (~1-2.5 KB). Unknown users get a fresh id per request (see Client)."""
    bodies = []
    for r in range(n):
        imps = []
        for k in range(rng.choices([1, 2, 3], weights=[6, 3, 1])[0]):
            w, h = rng.choice(SIZES[:3])
            fmt = [{"w": w, "h": h}] + [{"w": a, "h": b} for a, b in rng.sample(SIZES, rng.randint(0, 2)) if (a, b) != (w, h)]
            imps.append({"id": str(k + 1), "tagid": f"slot-{k}", "bidfloor": round(rng.choice([0.1, 0.25, 0.5, 1.0]), 2),
                         "bidfloorcur": "USD", "secure": 1,
                         "banner": {"w": w, "h": h, "format": fmt, "pos": rng.choice([0, 1, 3]), "btype": [4], "battr": [14]},
                         "ext": {"gpid": f"/1234/home/slot-{k}"}})
        if rng.random() < unknown_ratio:
            user = {"id": UNKNOWN_MARK.decode()}
        else:
            user = {"id": f"bench-user-{rng.randrange(N_USERS)}", "buyeruid": f"b{r}"}
        device = {"ua": "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
                  "devicetype": rng.choice([1, 2, 4, 5]), "ip": "203.0.113.7", "os": "iOS", "language": "en",
                  "geo": {"country": "USA", "region": "CA", "city": "San Francisco", "lat": 37.77, "lon": -122.42}}
        body = {"id": f"bench-{r}", "at": 1, "tmax": 120, "cur": ["USD"], "imp": imps, "device": device, "user": user,
                "bcat": ["IAB25", "IAB26", "IAB7-39"], "badv": ["blocked.example.com"],
                "regs": {"coppa": 0, "ext": {"gdpr": 0}}, "source": {"tid": f"tid-{r}", "fd": 1}}
        if rng.random() < 0.5:
            body["site"] = {"id": f"site-{r % 50}", "domain": "news.example.com", "page": "https://news.example.com/a",
                            "cat": ["IAB12"], "publisher": {"id": "pub-1", "name": "Example News"}}
        else:
            body["app"] = {"id": f"app-{r % 50}", "bundle": "com.example.weather", "name": "Weather",
                           "cat": ["IAB15"], "publisher": {"id": "pub-2"}}
        bodies.append(json.dumps(body, separators=(",", ":")).encode())
    return bodies


# --- HTTP client -----------------------------------------------------------------------------------

class Conn(asyncio.Protocol):
    """One keep-alive connection; requests may be pipelined, responses come back in order."""

    def __init__(self, bench: "Client"):
        self.bench = bench  # counts parse errors; responses are credited to the phase that sent them
        self.pending: deque[tuple[float, float, Client]] = deque()  # (scheduled, sent, phase)
        self.parser = httptools.HttpResponseParser(self)
        self.transport = None
        self.closed = False

    def connection_made(self, transport):
        self.transport = transport
        sock = transport.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data):
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            self.bench.errors += 1
            self.transport.close()

    def on_message_complete(self):
        scheduled, sent, owner = self.pending.popleft()
        owner.done(self, self.parser.get_status_code(), scheduled, sent)

    def usable(self) -> bool:
        return not self.closed and not self.transport.is_closing()

    def close(self) -> None:
        self.transport.close()

    def connection_lost(self, exc):
        self.closed = True
        for _, _, owner in self.pending:
            owner.errors += 1
        self.pending.clear()

    def send(self, payload: bytes, scheduled: float, owner: "Client") -> None:
        self.pending.append((scheduled, time.perf_counter(), owner))
        self.transport.write(payload)


class Client:
    def __init__(self, host: str, port: int, bodies: list[bytes]):
        self.host, self.port = host, port
        head = f"POST /v1/bid HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n".encode()
        self.templates = [(head, body) for body in bodies]
        self.i = 0
        self.unknown = 0
        self.conns: list[Conn] = []
        self.reset()

    def reset(self):
        self.latencies: list[float] = []
        self.sent_at: list[float] = []
        self.from_schedule: list[float] = []
        self.lags: list[float] = []
        self.read_latencies: list[float] = []  # TickClient: until the generator read the response
        self.statuses: dict[int, int] = {}
        self.errors = 0
        self.completed = 0
        self.bids = 0

    async def connect(self, n: int) -> None:
        """Open connections until ``n`` are alive (the server closes keep-alive connections idle for 5 s)."""
        loop = asyncio.get_running_loop()
        self.conns = [c for c in self.conns if c.usable()]
        while len(self.conns) < n:
            _, conn = await loop.create_connection(lambda: Conn(self), self.host, self.port)
            self.conns.append(conn)

    def next_payload(self) -> bytes:
        head, body = self.templates[self.i % len(self.templates)]
        self.i += 1
        if UNKNOWN_MARK in body:
            self.unknown += 1
            body = body.replace(UNKNOWN_MARK, f"new-user-{os.getpid()}-{self.unknown}".encode())
        return head + b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body

    clock = staticmethod(time.perf_counter)  # the time base of ``sent`` and ``scheduled``

    def done(self, conn, status: int, scheduled: float, sent: float, now: float | None = None) -> None:
        if now is None:
            now = self.clock()
        self.completed += 1
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status not in (200, 204):
            self.errors += 1
        if status == 200:
            self.bids += 1
        self.latencies.append(now - sent)
        self.sent_at.append(sent)
        if scheduled:
            self.from_schedule.append(now - scheduled)
            self.lags.append(sent - scheduled)
        if self.on_done is not None:
            self.on_done(conn)

    on_done = None

    def pick(self) -> Conn:
        """The first idle connection, else the least loaded (pipelining). Like the idle pool of an
        exchange's HTTP client (Go's net/http takes the most recently used idle connection), a few
        connections carry most requests. Round robin over all 64 measured ~15 % more CPU per request
        on both sides here (every request wakes a different socket) and far worse tails."""
        best = None
        for conn in self.conns:
            if not conn.usable():
                continue
            if not conn.pending:
                return conn
            if best is None or len(conn.pending) < len(best.pending):
                best = conn
        if best is None:
            raise RuntimeError("all connections closed")
        return best

    async def closed_loop(self, duration: float) -> float:
        """Each connection keeps one request in flight: maximum throughput."""
        stop_at = time.perf_counter() + duration

        def again(conn: Conn):
            if time.perf_counter() < stop_at and conn.usable():
                conn.send(self.next_payload(), 0.0, self)

        self.on_done = again
        start = time.perf_counter()
        for conn in self.conns:
            conn.send(self.next_payload(), 0.0, self)
        while time.perf_counter() < stop_at:
            await asyncio.sleep(0.05)
        while any(c.pending for c in self.conns) and time.perf_counter() - stop_at < 30:
            await asyncio.sleep(0.01)
        self.on_done = None
        return time.perf_counter() - start


# --- open loop: a generator that does not wake up per response ------------------------------------

SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux: kernel receive time of the data, ns
_TIMESPEC = struct.Struct("qq")


class TickConn:
    """A non-blocking keep-alive socket read once per tick; responses are timed by the kernel's
    receive timestamp (``SO_TIMESTAMPNS``), not by when the generator got round to reading them."""

    def __init__(self, sock: socket.socket):
        self.sock = sock
        self.fd = sock.fileno()
        self.pending: deque[tuple[float, float, Client]] = deque()  # (scheduled, sent, phase)
        self.parser = httptools.HttpResponseParser(self)
        self.out = b""  # what the socket did not take yet
        self.arrived = self.read_at = 0.0
        self.closed = False

    def usable(self) -> bool:
        return not self.closed

    def close(self) -> None:
        self.lost()

    def on_message_complete(self):
        scheduled, sent, owner = self.pending.popleft()
        owner.done(self, self.parser.get_status_code(), scheduled, sent, self.arrived)
        owner.read_latencies.append(self.read_at - sent)

    def send(self, payload: bytes, scheduled: float, owner: "Client") -> None:
        self.pending.append((scheduled, time.time(), owner))
        if self.out:
            self.out += payload
            return
        self.write(payload)

    def write(self, data: bytes) -> None:
        try:
            n = self.sock.send(data)
        except BlockingIOError:
            n = 0
        except OSError:
            self.lost()
            return
        self.out = data[n:]

    def read(self, bench: "Client") -> None:
        while True:
            try:
                data, ancillary, _, _ = self.sock.recvmsg(65536, 64)
            except BlockingIOError:
                return
            except OSError:
                self.lost()
                return
            if not data:
                self.lost()
                return
            self.arrived = self.read_at = time.time()
            for level, kind, raw in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = _TIMESPEC.unpack_from(raw)
                    self.arrived = sec + nsec / 1e9
            try:
                self.parser.feed_data(data)
            except httptools.HttpParserError:
                bench.errors += 1
                self.lost()
                return

    def lost(self) -> None:
        if self.closed:
            return
        self.closed = True
        for _, _, owner in self.pending:
            owner.errors += 1
        self.pending.clear()
        self.sock.close()


class TickClient(Client):
    """Open loop on a fixed schedule from one thread that wakes every millisecond — sends what is
    due, reads what has arrived (``epoll`` with no wait) and sleeps again — instead of an event loop
    that wakes for every response. On 2 cores shared with the server each of those wake-ups cost the
    server too: the generator woke ~3,600 times a second and preempted a worker ~2,200 times a
    second. Latency runs from the moment a request was written to the kernel's receive timestamp of
    its response (the last segment read with it), so reading late does not count against the server."""

    clock = staticmethod(time.time)

    def sharing(self, bodies: list[bytes]) -> "TickClient":
        """A new phase (its own counts and request set) on this client's connections."""
        phase = TickClient(self.host, self.port, bodies)
        phase.conns = self.conns
        return phase

    async def connect(self, n: int) -> None:
        self.conns = [c for c in self.conns if c.usable()]
        while len(self.conns) < n:
            sock = socket.create_connection((self.host, self.port))
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            sock.setblocking(False)
            self.conns.append(TickConn(sock))

    def open_loop(self, rate: float, duration: float, tick: float = 0.001) -> float:
        """Send at a fixed rate regardless of responses (latency measured from the schedule too)."""
        self.on_done = None
        by_fd = {c.fd: c for c in self.conns}
        poller = select.epoll()
        for fd in by_fd:
            poller.register(fd, select.EPOLLIN)
        start = time.time()
        sent = 0
        total = int(rate * duration)
        try:
            while sent < total or any(c.pending for c in self.conns):
                now = time.time()
                if sent < total:
                    due = min(total, int((now - start) * rate) + 1)
                    while sent < due:
                        self.pick().send(self.next_payload(), start + sent / rate, self)
                        sent += 1
                elif now - start > duration + 30:
                    break
                for conn in self.conns:
                    if conn.out and not conn.closed:
                        conn.write(conn.out)
                for fd, _ in poller.poll(0):
                    by_fd[fd].read(self)
                time.sleep(tick)
        finally:
            poller.close()
        return time.time() - start


# --- server metrics --------------------------------------------------------------------------------

_SAMPLE = re.compile(r'^(\w+)_bucket\{([^}]*)\} (\S+)$', re.M)


def scrape(base: str) -> str:
    import httpx

    return httpx.get(f"{base}/metrics", timeout=5).text


def buckets(text: str, name: str) -> dict[float, float]:
    """Cumulative bucket counts of a histogram, summed over label sets (workers, providers)."""
    out: dict[float, float] = {}
    for metric, labels, value in _SAMPLE.findall(text):
        if metric != name:
            continue
        le = re.search(r'le="([^"]+)"', labels).group(1)
        bound = float("inf") if le == "+Inf" else float(le)
        out[bound] = out.get(bound, 0.0) + float(value)
    return out


def counter(text: str, name: str) -> float:
    """A counter's value summed over label sets (workers)."""
    return sum(float(v) for v in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.M))


def quantile(before: dict, after: dict, q: float) -> float | None:
    """Quantile of the observations between two scrapes (linear inside a bucket)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    total = counts[-1] if counts else 0
    if total <= 0:
        return None
    target = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound, count in zip(bounds, counts, strict=True):
        if count >= target:
            if bound == float("inf"):
                return prev_bound
            span = count - prev_count
            return prev_bound + (bound - prev_bound) * ((target - prev_count) / span if span else 1.0)
        prev_bound, prev_count = bound, count
    return prev_bound


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def processes() -> dict[int, tuple[str, int, float]]:
    """pid -> (name, process group, CPU seconds of the process and of its children it has reaped).
    A short-lived process shows up in its parent's reaped-children time once it has ended."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, rest = (entry / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        fields = rest.split()  # from the state field: [2] pgrp, [11..14] utime stime cutime cstime
        cpu = (int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])) / tick
        out[int(entry.name)] = (head.split("(", 1)[1], int(fields[2]), cpu)
    return out


def process_group_cpu(pgid: int | None, table: dict | None = None) -> float | None:
    """CPU seconds used so far by every process in a process group (the bid app and its workers)."""
    if pgid is None:
        return None
    return sum(cpu for _, group, cpu in (table or processes()).values() if group == pgid)


def other_processes(before: dict, after: dict, top: int = 3) -> str:
    """The processes other than the bid app and this generator that used most CPU in between —
    what to look at when a phase's tail is long while the bid app's CPU per request is not."""
    used: dict[str, float] = {}
    for pid, (name, group, cpu) in after.items():
        if group == SERVER_PGID or pid == os.getpid():
            continue
        delta = cpu - before[pid][2] if pid in before else cpu
        if delta > 0:
            used[name] = used.get(name, 0.0) + delta
    busiest = sorted(used.items(), key=lambda item: -item[1])[:top]
    return ", ".join(f"{name} {seconds:.2f} s" for name, seconds in busiest if seconds >= 0.02) or "none"


SERVER_PGID: int | None = None


class RedisMeter:
    """What the Redis servers behind ``--redis-url`` did during a phase: CPU seconds of the local
    ``redis-server`` processes listening on those ports (found by the port in the process title) and
    commands executed (``INFO commandstats``, summed over the nodes: every master of a cluster).
    Per request these say whether a store costs more work per bid, apart from the bid app's own CPU."""

    def __init__(self, client):
        from apps.core.redis import is_cluster

        if is_cluster(client):
            self.nodes = [node.redis_connection or client.get_redis_connection(node)
                          for node in client.get_primaries()]
        else:
            self.nodes = [client]
        self.ports = {int(n.connection_pool.connection_kwargs.get("port", 6379)) for n in self.nodes}
        self.pids = self._pids()

    def _pids(self) -> list[int]:
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "redis-server" in title and {int(p) for p in re.findall(r":(\d+)\b", title)} & self.ports:
                pids.append(int(entry.name))
        return pids

    def sample(self) -> tuple[float | None, int, int]:
        """(CPU seconds, commands, wake-ups: voluntary context switches, i.e. times a server slept
        and had to be woken by a request)."""
        tick = os.sysconf("SC_CLK_TCK")
        cpu = 0.0
        for pid in self.pids:
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            cpu += (int(fields[11]) + int(fields[12])) / tick
        calls = sum(int(stat["calls"]) for node in self.nodes for stat in node.info("commandstats").values())
        return (cpu if self.pids else None), calls, sum(context_switches(pid)[0] for pid in self.pids)


REDIS: RedisMeter | None = None


def context_switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches of a process's threads so far (0, 0 if gone)."""
    total = [0, 0]
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0, 0
    for task in tasks:
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches:"):
                    total[0] += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches:"):
                    total[1] += int(line.split()[1])
        except OSError:
            continue
    return total[0], total[1]


def server_preemptions() -> int | None:
    """Involuntary context switches of the bid app's processes so far: the times another process
    (the generator, a redis-server, anything on the box) took a worker's core while it had work."""
    if SERVER_PGID is None:
        return None
    return sum(context_switches(pid)[1] for pid, (_, group, _) in processes().items() if group == SERVER_PGID)


def cpu_busy() -> tuple[float, float]:
    """(busy jiffies, wall seconds) of the whole machine from /proc/stat."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    values = [int(v) for v in fields]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK"), time.monotonic()


def busy_cores(start: tuple[float, float], end: tuple[float, float]) -> float:
    return (end[0] - start[0]) / max(end[1] - start[1], 1e-9)


def report(name: str, client: Client, elapsed: float, before: str, after: str, cpu: float | None = None,
           client_cpu: float | None = None, redis_used: tuple | None = None) -> dict:
    ms = lambda v: round(v * 1000, 3)  # noqa: E731
    lat = client.latencies
    row = {
        "phase": name, "requests": client.completed, "seconds": round(elapsed, 2),
        "req_per_s": round(client.completed / elapsed, 1), "bids_per_s": round(client.bids / elapsed, 1),
        "errors": client.errors, "statuses": client.statuses,
        "p50_ms": ms(pct(lat, .5)), "p90_ms": ms(pct(lat, .9)), "p99_ms": ms(pct(lat, .99)), "p999_ms": ms(pct(lat, .999)),
    }
    if cpu is not None and client.completed:
        row["server_cpu_us_per_req"] = round(cpu / client.completed * 1e6)
        row["server_cores"] = round(cpu / elapsed, 2)
    if redis_used is not None and client.completed:
        redis_cpu, redis_calls, wakeups, preempted = redis_used
        if redis_cpu is not None:
            row["redis_cpu_us_per_req"] = round(redis_cpu / client.completed * 1e6, 1)
            row["redis_cores"] = round(redis_cpu / elapsed, 3)
            row["redis_wakeups_per_req"] = round(wakeups / client.completed, 3)
        row["redis_cmds_per_req"] = round(redis_calls / client.completed, 3)
        if preempted is not None:
            row["server_preempted_per_req"] = round(preempted / client.completed, 3)
    if client_cpu is not None:
        row["client_cores"] = round(client_cpu / elapsed, 2)
        row["other_cores"] = round(max(0.0, busy_cores(*client.busy) - row.get("server_cores", 0) - row["client_cores"]
                                       - row.get("redis_cores", 0)), 2) \
            if getattr(client, "busy", None) else None
    if client.read_latencies:
        row["read_p99_ms"] = ms(pct(client.read_latencies, .99))
    if client.from_schedule:
        row.update(sched_p50_ms=ms(pct(client.from_schedule, .5)), sched_p99_ms=ms(pct(client.from_schedule, .99)),
                   send_lag_p99_ms=ms(pct(client.lags, .99)))
    misses = counter(after, "cache_l1_miss_total") - counter(before, "cache_l1_miss_total")
    row["l1_misses"] = round(misses)  # requests of the phase that read L2 (each: profile + frequency)
    for metric, key in (("bids_total_latency_us", "server"), ("inference_latency_us", "inference")):
        b0, b1 = buckets(before, metric), buckets(after, metric)
        for q in (0.5, 0.99):
            value = quantile(b0, b1, q)
            row[f"{key}_p{int(q * 100)}_us"] = round(value) if value is not None else None
    print(json.dumps(row), flush=True)
    return row


# --- main ------------------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(port: int, workers: int, redis_url: str, metrics_dir: str) -> subprocess.Popen:
    env = {**os.environ, "REDIS_URL": redis_url, "OPENBLAS_NUM_THREADS": "1", "BID_REQUEST_SAMPLE_RATE": "0.01",
           "BID_FREQ_MAX_PER_HOUR": "1000000", "BID_FREQ_MAX_PER_DAY": "1000000", "LOG_LEVEL": "WARNING"}
    return subprocess.Popen([sys.executable, "manage.py", "run_bid_app", "--port", str(port), "--workers", str(workers),
                             "--metrics-dir", metrics_dir], cwd=ROOT, env=env, start_new_session=True)


def wait_ready(base: str, timeout: float = 60) -> dict:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            r = httpx.get(f"{base}/ready", timeout=1)
            if r.status_code == 200:
                return r.json()
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise SystemExit(f"bid app at {base} not ready after {timeout} s")


def connections_per_process(port: int) -> list[int] | str:
    """Established connections to ``port`` per server process (from ``ss``): how evenly the kernel
    spread them over the workers."""
    try:
        out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown (no ss)"
    per_pid: dict[str, int] = {}
    for pid in re.findall(r"pid=(\d+)", out):
        per_pid[pid] = per_pid.get(pid, 0) + 1
    return sorted(per_pid.values(), reverse=True)


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def redis_start() -> tuple | None:
    return (REDIS.sample() if REDIS else None), server_preemptions()


def redis_delta(start: tuple) -> tuple | None:
    """(CPU seconds or None, commands, wake-ups, bid app preemptions or None) since ``start``
    (``redis_start``)."""
    sample, preempted = start
    if sample is None or REDIS is None:
        return None
    cpu, calls, wakeups = REDIS.sample()
    now_preempted = server_preemptions()
    return ((cpu - sample[0] if cpu is not None and sample[0] is not None else None), calls - sample[1],
            wakeups - sample[2], now_preempted - preempted if preempted is not None and now_preempted is not None else None)


async def run(args) -> list[dict]:
    url = urlparse(args.url)
    rng = random.Random(args.seed)
    bodies = make_bodies(2000, rng, unknown_ratio=args.unknown_ratio)
    known_only = [b for b in bodies if UNKNOWN_MARK not in b]
    client = TickClient(url.hostname, url.port, bodies)
    await client.connect(args.connections)
    results = []

    print(f"# warm-up {args.warmup}s at {args.rate // 2} req/s ({args.connections} connections)", flush=True)
    client.open_loop(args.rate / 2, args.warmup)
    warm_every_worker(client, known_only, url.port, args.rate / 2)

    for name, request_set in ((f"open-loop {args.rate}/s, mix ({args.unknown_ratio:.0%} unknown users)", bodies),
                              (f"open-loop {args.rate}/s, known users (L1 hits)", known_only)):
        await client.connect(args.connections)
        if args.lead_in:  # the same rate and requests, not measured: the phase starts in steady state
            client.sharing(request_set).open_loop(args.rate, args.lead_in)
        phase = client.sharing(request_set)
        print(f"# connections per server process: {connections_per_process(url.port)}", flush=True)
        procs0 = processes()
        redis0 = redis_start()
        before, cpu0, own0, busy0 = scrape(args.url), process_group_cpu(SERVER_PGID, procs0), time.process_time(), cpu_busy()
        elapsed = phase.open_loop(args.rate, args.duration)
        procs1 = processes()
        cpu, own, phase.busy = process_group_cpu(SERVER_PGID, procs1), time.process_time(), (busy0, cpu_busy())
        results.append(report(name, phase, elapsed, before, scrape(args.url), cpu - cpu0 if cpu0 is not None else None,
                              own - own0, redis_delta(redis0)))
        if SERVER_PGID is not None:
            print(f"# other processes by CPU during the phase: {other_processes(procs0, procs1)}", flush=True)
        if args.trace:
            write_trace(args.trace, len(results), phase)

    phase = Client(url.hostname, url.port, bodies)
    await phase.connect(args.max_connections)
    redis0 = redis_start()
    before, cpu0, own0, busy0 = scrape(args.url), process_group_cpu(SERVER_PGID), time.process_time(), cpu_busy()
    elapsed = await phase.closed_loop(args.max_duration)
    cpu, own, phase.busy = process_group_cpu(SERVER_PGID), time.process_time(), (busy0, cpu_busy())
    results.append(report(f"closed-loop max throughput, {len(phase.conns)} connections, mix", phase, elapsed,
                          before, scrape(args.url), cpu - cpu0 if cpu0 is not None else None, own - own0,
                          redis_delta(redis0)))
    for conn in client.conns + phase.conns:
        conn.close()
    return results


def conns_by_worker(conns: list, port: int) -> dict[int, list]:
    """The open-loop connections grouped by the server process that accepted each (from ``ss``:
    the server side's peer port is our local port); empty when ``ss`` is missing."""
    try:
        out = subprocess.run(["ss", "-Htnp", "state", "established", f"( sport = :{port} )"],
                             capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return {}
    worker_of = {int(peer): int(pid) for peer, pid in re.findall(r":\d+\s+\S+:(\d+)\s+users:\(\(\"[^\"]*\",pid=(\d+)", out)}
    groups: dict[int, list] = {}
    for conn in conns:
        pid = worker_of.get(conn.sock.getsockname()[1])
        if pid is not None:
            groups.setdefault(pid, []).append(conn)
    return groups


def warm_every_worker(client: "TickClient", known: list[bytes], port: int, rate: float) -> None:
    """Every known user into every worker's L1: all known requests over one connection of each
    worker in turn. (An open loop over all connections leaves some users out of one worker's L1 —
    ``pick`` favours the first idle connections — and those users' L2 reads then land in the
    "L1 hits" phase: up to a few per cent of its requests, enough to move its p99.)"""
    groups = conns_by_worker(client.conns, port)
    if not groups:
        client.sharing(known).open_loop(rate, 3)
        return
    for conns in groups.values():
        phase = client.sharing(known)
        phase.conns = conns[:1]
        phase.open_loop(rate, len(known) / rate)


def write_trace(directory: str, number: int, client: "Client") -> None:
    """``<directory>/phase<N>.tsv``: one line per answered request, seconds since the phase's first
    request was written and the client-side latency in ms. Slow requests that bunch in time point
    at a stall of the server or of the box; spread out, at queueing."""
    os.makedirs(directory, exist_ok=True)
    start = min(client.sent_at, default=0.0)
    with open(os.path.join(directory, f"phase{number}.tsv"), "w") as out:
        epoch = start if client.clock is time.time else time.time() - (client.clock() - start)
        out.write(f"# first request at unix time {epoch:.3f}\n")
        for sent, latency in zip(client.sent_at, client.latencies, strict=False):  # requests still in flight have no latency
            out.write(f"{sent - start:.6f}\t{latency * 1000:.3f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default=None, help="bid app base URL (default: start one on a free port)")
    parser.add_argument("--no-start", action="store_true", help="use the app at --url (seeding its REDIS_URL)")
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
                        help="Redis database the bench seeds (and the app it starts reads); default db 14")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rate", type=int, default=4000, help="open-loop rate, req/s")
    parser.add_argument("--duration", type=float, default=15, help="seconds per open-loop phase")
    parser.add_argument("--max-duration", type=float, default=15, help="seconds of the max-throughput phase")
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--lead-in", type=float, default=2,
                        help="seconds at the phase's rate and requests before each open-loop phase is measured")
    parser.add_argument("--connections", type=int, default=64, help="keep-alive connections (open loop)")
    parser.add_argument("--max-connections", type=int, default=16, help="connections in the closed-loop phase")
    parser.add_argument("--unknown-ratio", type=float, default=0.1, help="share of requests from unknown users")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--trace", metavar="DIR", help="write each open-loop phase's per-request latencies to DIR")
    args = parser.parse_args()

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from apps.core.redis import sync_from_url  # redis:// or redis+cluster:// (bench/redis_cluster.py)

    client = sync_from_url(args.redis_url)
    print(f"# seeding {N_OFFERS} live offers and {N_USERS} profiles into {args.redis_url}", flush=True)
    seed(client, offers=N_OFFERS, users=N_USERS, rng=random.Random(args.seed))
    global REDIS
    REDIS = RedisMeter(client)
    proc = None
    tmp = tempfile.TemporaryDirectory(prefix="bid-bench-")
    if not args.no_start:
        port = free_port()
        args.url = f"http://127.0.0.1:{port}"
        proc = start_app(port, args.workers, args.redis_url, os.path.join(tmp.name, "prom"))
        global SERVER_PGID
        SERVER_PGID = proc.pid
    elif not args.url:
        raise SystemExit("--no-start needs --url")
    try:
        status = wait_ready(args.url)
        print(f"# bid app {args.url}: {status['offers']} offers, model {status['model_version']}; "
              f"{os.cpu_count()} CPUs, load average {load_average()}", flush=True)
        import uvloop

        results = uvloop.run(run(args))
        print(f"# load average after: {load_average()}", flush=True)
        print("\n| phase | req/s | bids/s | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | server p50/p99 µs "
              "| inference p50/p99 µs | server CPU µs/req | Redis CPU µs/req, cmds/req | cores: server / generator / Redis / other |")
        print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
        for r in results:
            print(f"| {r['phase']} | {r['req_per_s']:,.0f} | {r['bids_per_s']:,.0f} | {r['errors']} | {r['p50_ms']} | "
                  f"{r['p90_ms']} | {r['p99_ms']} | {r['p999_ms']} | {r['server_p50_us']}/{r['server_p99_us']} | "
                  f"{r['inference_p50_us']}/{r['inference_p99_us']} | {r.get('server_cpu_us_per_req', '-')} | "
                  f"{r.get('redis_cpu_us_per_req', '-')}, {r.get('redis_cmds_per_req', '-')} | "
                  f"{r.get('server_cores', '-')} / {r.get('client_cores', '-')} / {r.get('redis_cores', '-')} / "
                  f"{r.get('other_cores', '-')} |")
    finally:
        if proc is not None and proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        tmp.cleanup()


if __name__ == "__main__":
    main()
