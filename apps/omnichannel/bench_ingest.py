"""Ingest throughput and latency on this machine: ``python -m apps.omnichannel.bench_ingest``.

Writes real rows (ids prefixed ``bench-<run>``) to the database of DATABASE_URL — run it against a
scratch database. Three measurements, each sequential unless said otherwise:

1. the processor alone, ``app_open`` events (validate, record; no trigger, no loyalty);
2. the processor alone, ``purchase`` events (interactions, loyalty_earn, a triggered activation
   queued for the in-app inbox — the Celery task runs eagerly here, so the send is included);
3. NATS request/reply through ``start_ingest_consumers`` (4 consumers), 8 requests in flight.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid


def _setup() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("CELERY_TASK_ALWAYS_EAGER", "true")
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    import django

    django.setup()


def _report(name: str, latencies: list[float], wall: float) -> None:
    latencies = sorted(latencies)
    p = lambda q: latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000  # noqa: E731
    print(f"{name:<42} {len(latencies) / wall:8.1f} events/s   p50 {p(0.50):6.2f} ms   p99 {p(0.99):6.2f} ms"
          f"   mean {statistics.mean(latencies) * 1000:6.2f} ms")


def _direct(run: str, count: int, event_type: str) -> None:
    from apps.omnichannel.services import ingest_event_process

    latencies = []
    started = time.perf_counter()
    for n in range(count):
        body = {"event_id": f"bench-{run}-{event_type}-{n}", "source": "pos", "event_type": event_type,
                "user_id": f"bench-{run}-u{n}"}
        if event_type == "purchase":
            body.update(amount_cents=1250, order_id=f"bench-{run}-o{n}", items=[{"item_id": "sku-1"}, {"item_id": "sku-2"}])
        t0 = time.perf_counter()
        ingest_event_process(data=body, transport="http", caller="bench:direct")
        latencies.append(time.perf_counter() - t0)
    _report(f"processor, {event_type}", latencies, time.perf_counter() - started)


async def _nats(run: str, count: int, in_flight: int) -> None:
    import nats
    import orjson
    from django.conf import settings

    from apps.omnichannel.agents import start_ingest_consumers

    settings.INGEST_NATS_SUBJECT_PREFIX = f"bench_{run}"
    nc = await nats.connect(settings.NATS_URL)
    await start_ingest_consumers(nc, consumers=4)
    latencies: list[float] = []
    semaphore = asyncio.Semaphore(in_flight)

    async def one(n: int) -> None:
        async with semaphore:
            body = orjson.dumps({"event_id": f"bench-{run}-nats-{n}", "event_type": "app_open", "user_id": f"bench-u{n}"})
            t0 = time.perf_counter()
            reply = await nc.request(f"bench_{run}.pos.app_open", body, timeout=10)
            latencies.append(time.perf_counter() - t0)
            assert reply.headers["Ce-Status"] == "201", reply.data

    started = time.perf_counter()
    await asyncio.gather(*(one(n) for n in range(count)))
    _report(f"NATS request/reply, app_open, {in_flight} in flight", latencies, time.perf_counter() - started)
    await nc.drain()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300)
    args = parser.parse_args()
    _setup()
    run = uuid.uuid4().hex[:8]
    _direct(run, args.events, "app_open")
    _direct(run, args.events, "purchase")
    asyncio.run(_nats(run, args.events, in_flight=8))


if __name__ == "__main__":
    main()
