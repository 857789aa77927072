"""Store growth per bid: ClickHouse bytes per bid from the real tables (the migrations), filled through the real row builders with
a production-shaped mix, merged, then measured from ``system.parts`` (compressed bytes on disk).

    .venv/bin/python bench/store_growth.py                     # 100,000 bid requests
    .venv/bin/python bench/store_growth.py --bids 300000 --redis-url redis://127.0.0.1:6379/15

It migrates a scratch database ``<CLICKHOUSE_URL's database>_bytes`` (dropped at the end), writes per
bid request: a ``bid_response`` (65 %) or a ``no_bid`` (35 %) event; per bid a ``bid_inputs`` row with
a 64-float interest vector, 8 segments, 4 loyalty values and the OpenRTB context; a ``win`` for 30 %
of bids and a ``click`` for 4 % of wins — the demo mix (apps/analytics/demo.py) with every field a
real bid sets. ``OPTIMIZE TABLE … FINAL`` first, so the figure is the merged, compressed size.

Redis (``--redis-url``, an empty scratch database: it is flushed): the keys a win leaves, as the win
script writes them (``win:{bid_id}`` with its 3-day TTL, a member of ``freq:{user_id}``), measured as
the ``used_memory`` they add.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402

from apps.analytics import bid_inputs, clickhouse_schema, events  # noqa: E402
from apps.core import clickhouse as ch  # noqa: E402


def _bid_input_row(rng: random.Random, ts_us: int, bid_id: str, request_id: str, user_id: str, campaign: str, offer: str):
    seconds, micros = ts_us // 1_000_000, ts_us % 1_000_000
    return (
        bid_id, seconds, micros, bid_id, request_id, "1", user_id, campaign, offer,
        round(rng.uniform(1, 5), 4), rng.random() * 0.05, rng.random(),
        3, 1_733_000_000 + rng.randrange(100), "m-20261203", ts_us / 1e6,
        rng.choice(["bronze", "silver", "gold", ""]),
        [rng.random() for _ in range(64)], [rng.randrange(1000) for _ in range(8)], [rng.random() for _ in range(4)],
        rng.random() * 86400, rng.randrange(5), 10, rng.choice(["mobile", "desktop", "tablet"]), "USA",
        rng.randrange(3), rng.randrange(1, 4), rng.choice(["retail", "travel", "games"]), 8.0, rng.random() * 0.02,
        "banner", rng.choice(["exchange-a", "exchange-b"]), f"site{rng.randrange(5000)}", f"d{rng.randrange(5000)}.example",
        "", "", f"pub{rng.randrange(300)}", f"tag{rng.randrange(50)}", rng.randrange(8),
    )


def redis_bytes_per_win(url: str, wins: int) -> None:
    import redis

    from apps.bidding import wins as win_mod

    client = redis.Redis.from_url(url)
    client.flushdb()
    before = client.info("memory")["used_memory"]
    rng = random.Random(2)
    users = [uuid.uuid4().hex for _ in range(max(1, wins // 5))]
    pipe = client.pipeline(transaction=False)
    now = int(time.time())
    for n in range(wins):
        bid_id, campaign = uuid.uuid4().hex, rng.randrange(1, 200)
        pipe.set(win_mod.win_key(bid_id, campaign), now, ex=win_mod.WIN_KEY_TTL_SECONDS)
        pipe.zadd(f"freq:{rng.choice(users)}", {f"{bid_id}:{campaign}": now})
        if n % 1000 == 999:
            pipe.execute()
    pipe.execute()
    after = client.info("memory")["used_memory"]
    print(f"Redis: {wins:,} wins over {len(users):,} users add {(after - before) / 2**20:.1f} MiB: "
          f"{(after - before) / wins:.0f} B per win (win key + frequency member)")
    client.flushdb()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bids", type=int, default=100_000, help="bid requests (default 100,000)")
    parser.add_argument("--redis-url", help="an empty scratch Redis database to measure the win keys in (flushed)")
    args = parser.parse_args()
    if args.redis_url:
        redis_bytes_per_win(args.redis_url, 100_000)
    base = settings.CLICKHOUSE_URL.rsplit("/", 1)
    settings.CLICKHOUSE_URL = f"{base[0]}/{base[1]}_bytes"
    settings.CLICKHOUSE_CLUSTER = ""
    db = ch.database()
    clickhouse_schema.migrate()
    rng = random.Random(1)
    now_us = int(time.time()) * 1_000_000
    ev_rows, input_rows, counts = [], [], {"requests": 0, "bids": 0, "wins": 0, "clicks": 0}
    users = [uuid.uuid4().hex for _ in range(20_000)]
    try:
        for _ in range(args.bids):
            ts = now_us - rng.randrange(86_400 * 1_000_000)
            request_id, user = uuid.uuid4().hex, rng.choice(users)
            counts["requests"] += 1
            common = {"request_id": request_id, "user_id": user, "latency_us": int(rng.lognormvariate(6.9, 0.45)),
                      "platform": rng.choice(["site", "app"]), "country": "USA",
                      "device_type": rng.choice(["mobile", "desktop"]), "tier": rng.choice(["bronze", "silver", ""])}
            if rng.random() < 0.35:
                ev_rows.append(events.row_to_insert(events.to_row("no_bid", uuid.uuid4().hex, ts, {**common, "reason": "no_candidates"})))
                continue
            campaign, offer, bid_id = str(rng.randrange(1, 200)), str(rng.randrange(1, 2000)), uuid.uuid4().hex
            price = round(rng.uniform(1, 5), 4)
            ev_rows.append(events.row_to_insert(events.to_row("bid_response", bid_id, ts, {
                **common, "campaign_id": campaign, "offer_id": offer, "bid_id": bid_id, "imp_id": "1", "price": price})))
            input_rows.append(_bid_input_row(rng, ts, bid_id, request_id, user, campaign, offer))
            counts["bids"] += 1
            if rng.random() < 0.3:
                counts["wins"] += 1
                ev_rows.append(events.row_to_insert(events.to_row("win", uuid.uuid4().hex, ts + 300_000, {
                    "request_id": request_id, "campaign_id": campaign, "offer_id": offer, "bid_id": bid_id,
                    "user_id": user, "win_price": round(price * rng.uniform(0.6, 1), 4)})))
                if rng.random() < 0.04:
                    counts["clicks"] += 1
                    ev_rows.append(events.row_to_insert(events.to_row("click", uuid.uuid4().hex, ts + 9_000_000, {
                        "request_id": request_id, "campaign_id": campaign, "offer_id": offer, "bid_id": bid_id, "user_id": user})))
            if len(ev_rows) >= 50_000:
                ch.insert("analytics_events", events.COLUMNS, ev_rows)
                ch.insert(bid_inputs.TABLE, bid_inputs.COLUMNS, input_rows)
                ev_rows, input_rows = [], []
        ch.insert("analytics_events", events.COLUMNS, ev_rows)
        ch.insert(bid_inputs.TABLE, bid_inputs.COLUMNS, input_rows)
        print(f"rows written: {counts} (ClickHouse {ch.execute('SELECT version()')[0][0]})")
        print("| table | rows | bytes on disk (compressed) | uncompressed | bytes/row | per million bid requests |")
        print("|---|---|---|---|---|---|")
        for table in ("analytics_events", bid_inputs.TABLE):
            ch.execute(f"OPTIMIZE TABLE {table} FINAL", kind="ddl")
            rows, disk, raw = ch.execute(
                "SELECT sum(rows), sum(bytes_on_disk), sum(data_uncompressed_bytes) FROM system.parts "
                "WHERE database = %(db)s AND table = %(t)s AND active", {"db": db, "t": table})[0]
            per_million = disk / counts["requests"] * 1e6
            print(f"| {table} | {rows:,} | {disk / 2**20:.1f} MiB | {raw / 2**20:.1f} MiB | {disk / rows:.0f} | "
                  f"{per_million / 2**20:.0f} MiB |")
    finally:
        ch.execute(f"DROP DATABASE IF EXISTS {db}", kind="ddl", with_database=False)


if __name__ == "__main__":
    main()
