"""The whole learning loop (issue 13): simulated users and a market against the REAL bid app, the real
analytics pipeline into ClickHouse, the real loyalty reward-signal API, and the real trainer and
champion/challenger publishing, round after round.

* **Planted click model**, unknown to the bidder: ``CTR[segment, category]`` (4 user segments × 4 offer
  categories, ``PLANTED`` below; each segment has a favourite category at 25 %, the others at 3, 1 and
  0.5 %). Every offer's observed CTR in the snapshot is the category's mean over the segments
  (7.375 % for each), what a platform measuring offer CTRs on untargeted traffic would have: the
  seeded model cannot tell the cells apart. The rates are far above display CTRs on purpose: the
  champion/challenger rule publishes only when the log loss gain exceeds the bootstrap half-width of
  the challenger's holdout log loss, and at 0.5–6 % CTRs that takes tens of thousands of holdout
  impressions (bench/README.md), more than a run of a few minutes on two cores serves.
* **Users**: ``--users`` profiles in Redis (segment ``u % 4``, 8 random interest floats, a recency).
* **Offers**: 2 per category (8), one banner size, max bid $4 CPM, budgets that never run out.
* **Market**: each bid faces a lognormal competing bid (median ``--market-median`` CPM, σ
  ``--market-sigma``); the higher bid wins and pays the competing one (second price).
* **Traffic**: OpenRTB 2.6 requests (one 300×250 impression, a phone) POSTed to ``/v1/bid`` of the
  bid app (``manage.py run_bid_app --workers 2``) on a free port with a Redis db, a ClickHouse
  database and a model directory of its own; a won bid's ``nurl`` is called with
  ``${AUCTION_PRICE}`` = the price paid, a click (probability = the planted CTR) GETs the click URL in
  the markup, and the user's loyalty reward signals are POSTed to ``/v1/loyalty/reward-signal``
  through Django's full request stack (Django's test ``Client`` in this process, an Integration
  user's token): "clicked" for every click, "redeemed" for ``--redeem-share`` of them, "ignored" for
  ``--ignore-share`` of the won impressions not clicked.
* **A round** sends requests until the market has charged ``--spend`` dollars (the fixed spend;
  round 0 runs on to ``--first-spend`` for a first training set large enough for the decision rule,
  its clicks still counted at ``--spend``), then
  drains the analytics stream into ClickHouse with the production writer (``apps.analytics.pipeline``)
  and, but after the last round, runs the real training service (``apps.training.services.model_train``,
  the code of ``manage.py train_model --publish``) on everything logged since the loop began: it
  trains a challenger and publishes it only when it beats the model in service on the time holdout.
  The loop then waits until the bid app answers with the published version.

Round 0 runs on the seeded model (no model file): the baseline. Per round it prints the CTR error of
the model in service against the planted rates — mean absolute error over the 16 cells of its mean
predicted CTR for the segment's users × the category's offers, rows built by the serving feature code
— and the clicks bought with the fixed spend.

    .venv/bin/python bench/learning_loop.py [--rounds 5] [--spend 5] [--first-spend 10] [--users 2000] [--seed 7]

Uses ``REDIS_URL``'s server with db ``--redis-db`` (14), ``CLICKHOUSE_URL``'s server with the database
``<its database>_loop`` (emptied first), ``DATABASE_URL`` (migrated if needed).
"""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import html
import json
import os
import re
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlparse, urlunparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import numpy as np  # noqa: E402

CATEGORIES = ("IAB1-1", "IAB2-3", "IAB8-5", "IAB19-6")
SEGMENTS = (11, 22, 33, 44)
#: planted CTR[segment, category]: each segment has a favourite category (6 %)
PLANTED = np.array([[0.250, 0.030, 0.010, 0.005],
                    [0.030, 0.250, 0.005, 0.010],
                    [0.010, 0.005, 0.250, 0.030],
                    [0.005, 0.010, 0.030, 0.250]])
OFFERS_PER_CATEGORY = 2
MAX_BID_CPM = 4.0
FREQ_MAX_PER_HOUR = 100_000
HREF = re.compile(r'href="([^"]+)"')


def _with_db(url: str, db: str) -> str:
    parts = urlparse(url)
    return urlunparse(parts._replace(path=f"/{db}"))


def configure(args) -> dict[str, str]:
    """This process's and the bid app's environment: a Redis db and a ClickHouse database of their own."""
    redis_url = _with_db(os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"), str(args.redis_db))
    ch_url = os.environ.get("CLICKHOUSE_URL", "clickhouse://default@127.0.0.1:9000/campaign_express")
    ch_url = _with_db(ch_url, urlparse(ch_url).path.strip("/") + "_loop")
    os.environ.update({"REDIS_URL": redis_url, "CLICKHOUSE_URL": ch_url, "BID_WIN_SECRET": "learning-loop",
                       "BID_FREQ_MAX_PER_HOUR": str(FREQ_MAX_PER_HOUR), "BID_FREQ_MAX_PER_DAY": str(FREQ_MAX_PER_HOUR * 24)})
    return {"redis": redis_url, "clickhouse": ch_url}


def seed_world(client, rng: np.random.Generator, users: int) -> tuple[list[dict], list[dict]]:
    """The snapshot (8 offers) and the user profiles; returns (offers, users) as the simulator knows them."""
    from apps.bidding.snapshot import OfferRow, next_version, publish_snapshot
    from apps.core.profiles import PROFILE_TTL_SECONDS, profile_key

    now = time.time()
    observed = PLANTED.mean(axis=0)  # what untargeted traffic would have shown of each category
    offers, rows = [], []
    for c, category in enumerate(CATEGORIES):
        for k in range(OFFERS_PER_CATEGORY):
            offer_id = 70_000 + c * 10 + k
            offers.append({"offer_id": offer_id, "adid": str(offer_id), "category": c})
            rows.append(OfferRow(
                offer_id=offer_id, campaign_id=700 + c, name=f"loop offer {offer_id}", advertiser="Loop Co",
                markup=f'<img src="https://cdn.example.com/loop/{offer_id}.png" width="300" height="250">',
                width=300, height=250, format="banner", landing_url=f"https://shop.example.com/loop/{offer_id}",
                adomain=f"brand{c}.example.com", category=category, max_bid_cpm=MAX_BID_CPM, priority=5,
                observed_ctr=float(observed[c]), countries=["USA"], device_types=[], segments=[],
                start_at=now - 60, end_at=now + 30 * 86400, budget_micros=10**15, max_per_hour=10**9,
                max_per_day=10**9))
    publish_snapshot(client, version=next_version(client), offers=rows)
    people = []
    pipe = client.pipeline(transaction=False)
    for u in range(users):
        user_id, s = f"loop-user-{u}", u % len(SEGMENTS)
        interests = np.round(rng.random(8), 3).tolist()
        recency = round(float(rng.random()), 3)
        people.append({"user_id": user_id, "segment": s, "interests": interests, "recency": recency})
        pipe.hset(profile_key(user_id), mapping={
            "interests": json.dumps(interests), "segments": json.dumps([SEGMENTS[s]]),
            "loyalty_tier": json.dumps("green"), "recency": json.dumps(recency), "updated_at": json.dumps(now)})
        pipe.expire(profile_key(user_id), PROFILE_TTL_SECONDS)
    pipe.execute()
    return offers, people


def ctr_error(weights, offers: list[dict], people: list[dict], batch_size: int) -> tuple[float, np.ndarray]:
    """Mean absolute error (16 cells) of the model's mean predicted CTR per segment × category, rows
    built by the serving feature code as the bidder builds them for these users and offers."""
    from apps.inference.features import feature_row
    from apps.training.trainer import predict_ctr

    observed = PLANTED.mean(axis=0)
    sample = people[:400]
    rows, cells = [], []
    for person in sample:
        for position, offer in enumerate(sorted(offers, key=lambda o: o["offer_id"])):
            rows.append(feature_row(
                interests=person["interests"], segments=[SEGMENTS[person["segment"]]], loyalty=None,
                recency=person["recency"], impressions_1h=0, max_per_hour=FREQ_MAX_PER_HOUR, device_type="mobile",
                position=position, batch_size=batch_size, category=CATEGORIES[offer["category"]],
                max_bid_cpm=MAX_BID_CPM, observed_ctr=float(observed[offer["category"]]), creative_format="banner"))
            cells.append((person["segment"], offer["category"]))
    p = predict_ctr(weights, np.stack(rows)).astype(np.float64)
    table = np.zeros_like(PLANTED)
    count = np.zeros_like(PLANTED)
    for (s, c), value in zip(cells, p, strict=True):
        table[s, c] += value
        count[s, c] += 1
    table /= count
    return float(np.abs(table - PLANTED).mean()), table


class Market:
    """One round of traffic: requests until the market has charged ``spend`` dollars."""

    def __init__(self, *, base: str, offers, people, rng: np.random.Generator, spend: float, median: float,
                 sigma: float, redeem_share: float, ignore_share: float, signals, mark: float):
        self.base, self.rng, self.budget = base, rng, spend
        self.category = {o["adid"]: o["category"] for o in offers}
        self.people, self.median, self.sigma = people, median, sigma
        self.redeem_share, self.ignore_share, self.signals = redeem_share, ignore_share, signals
        self.spent = 0.0
        self.mark, self.clicks_at_mark, self.wins_at_mark = mark, None, None  # the fixed spend compared
        self.requests = self.bids = self.wins = self.clicks = self.errors = 0
        self.cells = np.zeros((len(SEGMENTS), len(CATEGORIES), 2))  # wins, clicks per cell
        self.pending: list = []

    def _request(self, n: int, user_id: str) -> dict:
        return {"id": f"loop-{n}-{self.rng.integers(1 << 40)}", "at": 2, "tmax": 500, "cur": ["USD"],
                "imp": [{"id": "1", "tagid": "loop-slot", "bidfloor": 0.0, "bidfloorcur": "USD",
                         "banner": {"w": 300, "h": 250, "format": [{"w": 300, "h": 250}], "pos": 1}}],
                "device": {"devicetype": 4, "ua": "Mozilla/5.0 (iPhone)", "ip": "203.0.113.9",
                           "geo": {"country": "USA"}},
                "user": {"id": user_id}, "site": {"id": "loop-site", "domain": "news.example.com",
                                                  "publisher": {"id": "loop-pub"}}}

    async def _one(self, client, n: int) -> None:
        person = self.people[int(self.rng.integers(len(self.people)))]
        self.requests += 1
        response = await client.post(f"{self.base}/v1/bid", json=self._request(n, person["user_id"]))
        if response.status_code == 204:
            return
        if response.status_code != 200:
            self.errors += 1
            return
        bid = response.json()["seatbid"][0]["bid"][0]
        self.bids += 1
        competing = float(np.exp(np.log(self.median) + self.sigma * self.rng.standard_normal()))
        if bid["price"] <= competing:
            return  # lost the auction: no notice (the bid_inputs row stays unlabelled)
        paid = round(competing, 4)
        notice = await client.get(bid["nurl"].replace("${AUCTION_PRICE}", f"{paid}"))
        if notice.status_code != 200:
            self.errors += 1
            return
        self.wins += 1
        self.spent += paid / 1000.0
        if self.clicks_at_mark is None and self.spent >= self.mark:
            self.clicks_at_mark, self.wins_at_mark = self.clicks, self.wins
        s, c = person["segment"], self.category[bid["adid"]]
        self.cells[s, c, 0] += 1
        if self.rng.random() < PLANTED[s, c]:
            click = await client.get(html.unescape(HREF.search(bid["adm"]).group(1)))
            if click.status_code != 302:
                self.errors += 1
                return
            self.clicks += 1
            self.cells[s, c, 1] += 1
            kinds = ["clicked"] + (["redeemed"] if self.rng.random() < self.redeem_share else [])
        else:
            kinds = ["ignored"] if self.rng.random() < self.ignore_share else []
        for kind in kinds:
            self.pending.append(asyncio.get_running_loop().run_in_executor(
                self.signals.executor, self.signals.send, person["user_id"], bid["adid"], kind))

    async def run(self, concurrency: int) -> None:
        import httpx

        counter = iter(range(10**9))
        async with httpx.AsyncClient(timeout=10, limits=httpx.Limits(max_connections=concurrency)) as client:
            async def worker():
                while self.spent < self.budget:
                    await self._one(client, next(counter))

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        for result in await asyncio.gather(*self.pending):
            if result != 202:
                self.errors += 1


class Signals:
    """Reward signals through the loyalty API (Django's full request stack, one thread: one DB connection)."""

    def __init__(self):
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="signals")
        self.client = self.token = None
        self.executor.submit(self._setup).result()

    def _setup(self) -> None:
        from django.contrib.auth.models import Group, User
        from django.test import Client
        from rest_framework.authtoken.models import Token

        from apps.core.roles import Role

        user, _ = User.objects.get_or_create(username="learning-loop-app")
        user.groups.add(Group.objects.get(name=Role.INTEGRATION))
        self.token = Token.objects.get_or_create(user=user)[0].key
        self.client = Client(HTTP_AUTHORIZATION=f"Token {self.token}")

    def send(self, user_id: str, offer_id: str, kind: str) -> int:
        response = self.client.post("/v1/loyalty/reward-signal", {"user_id": user_id, "offer_id": offer_id,
                                                                  "signal_type": kind}, content_type="application/json")
        return response.status_code


def drain(expected_bids: int, since: dt.datetime, timeout: float = 60) -> None:
    """Write the analytics stream into ClickHouse (the production writer) until the round's bids are there."""
    from apps.analytics import testing
    from apps.analytics.emitter import default_emitter, stream_name
    from apps.core import clickhouse as ch

    default_emitter().flush(timeout=10)
    deadline = time.monotonic() + timeout
    while True:
        testing.consume_all(stream=stream_name())
        found = ch.execute("SELECT count() FROM bid_inputs FINAL WHERE timestamp >= toDateTime(%(s)s)",
                           {"s": int(since.timestamp())})[0][0]
        if found >= expected_bids:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"only {found} of {expected_bids} bid_inputs rows reached ClickHouse in {timeout:.0f} s")
        time.sleep(0.2)  # the bid workers flush their buffers every 100 ms


def wait_for_model(base: str, version: str, timeout: float = 10) -> float:
    """Seconds until 10 answers of /ready in a row (new connections: both workers) name ``version``."""
    import httpx

    started = time.monotonic()
    streak = 0
    while streak < 10:
        if time.monotonic() - started > timeout:
            raise SystemExit(f"the bid app did not switch to {version} within {timeout:.0f} s")
        status = httpx.get(f"{base}/ready", timeout=5).json()
        streak = streak + 1 if status.get("model_version") == version else 0
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="training rounds after the seeded round 0")
    parser.add_argument("--spend", type=float, default=5.0,
                        help="dollars the market charges per round: the fixed spend whose clicks are compared")
    parser.add_argument("--first-spend", type=float, default=10.0,
                        help="round 0 (seeded) runs on to this spend: the first training set (its clicks are "
                             "counted at --spend like every round's)")
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--market-median", type=float, default=3.0, help="competing bid's median CPM")
    parser.add_argument("--market-sigma", type=float, default=0.35, help="competing bid's lognormal sigma")
    parser.add_argument("--redeem-share", type=float, default=0.3)
    parser.add_argument("--ignore-share", type=float, default=0.1)
    parser.add_argument("--redis-db", type=int, default=14)
    args = parser.parse_args()
    urls = configure(args)

    import django

    django.setup()
    import logging

    import redis
    from django.core.management import call_command

    from apps.analytics import testing
    from apps.core import clickhouse as ch
    from apps.training.services import NotEnoughData, model_train, serving_weights
    from config import env
    from tests.support.ports import free_port
    from tests.support.processes import ManagedProcess

    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    rng = np.random.default_rng(args.seed)
    call_command("migrate", verbosity=0)
    testing.clickhouse_schema()
    for table in ("analytics_events", "bid_inputs"):
        ch.execute(f"TRUNCATE TABLE {table}", kind="ddl")
    client = redis.Redis.from_url(urls["redis"])
    client.flushdb()
    offers, people = seed_world(client, rng, args.users)
    tmp = Path(tempfile.mkdtemp(prefix="learning-loop-"))
    models, trained = tmp / "models", tmp / "trained"
    models.mkdir()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app_env = {**os.environ, "CAMPAIGN_EXPRESS__NPU__MODEL_DIR": str(models), "CAMPAIGN_EXPRESS__NPU__POLL_INTERVAL_S": "0.5",
               "BID_PUBLIC_BASE_URL": base, "BID_TMAX_CAP_MS": "2000", "LOG_LEVEL": "WARNING"}
    app_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    app = ManagedProcess([sys.executable, "manage.py", "run_bid_app", "--port", str(port), "--workers", "2",
                          "--metrics-dir", str(tmp / "prom")], env=app_env, log_path=tmp / "bid_app.log",
                         name="run_bid_app").start()
    print(f"learning loop: bid app {base} (2 workers), Redis {urls['redis']}, ClickHouse {urls['clickhouse']}, "
          f"{args.users} users, 8 offers, {args.spend:g} $ per round, market median {args.market_median:g} CPM "
          f"sigma {args.market_sigma:g}; logs in {tmp}", flush=True)
    print(f"planted CTR (rows: segments, columns: {', '.join(CATEGORIES)}):\n{np.round(PLANTED * 100, 2)} %", flush=True)
    signals = Signals()
    started = dt.datetime.now(dt.timezone.utc)
    results = []
    try:
        app.wait_ready(f"{base}/ready", 60)
        for r in range(args.rounds + 1):
            weights = serving_weights(models)
            error, table = ctr_error(weights, offers, people, env.BID_BATCH_SIZE)
            round_start = dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=1)
            t0 = time.monotonic()
            budget = max(args.first_spend, args.spend) if r == 0 else args.spend
            market = Market(base=base, offers=offers, people=people, rng=rng, spend=budget, mark=args.spend,
                            median=args.market_median, sigma=args.market_sigma, redeem_share=args.redeem_share,
                            ignore_share=args.ignore_share, signals=signals)
            asyncio.run(market.run(args.concurrency))
            traffic_s = time.monotonic() - t0
            drain(market.bids, round_start)
            served = dict(ch.execute("SELECT model_version, count() FROM bid_inputs FINAL WHERE timestamp >= "
                                     "toDateTime(%(s)s) GROUP BY model_version", {"s": int(round_start.timestamp())}))
            results.append({"round": r, "model": weights.version, "error": error, "clicks": market.clicks_at_mark,
                            "wins": market.wins_at_mark, "bids": market.bids, "spent": market.spent})
            print(f"\nround {r}: model {weights.version}  CTR error {error * 100:.3f} pp (mean |predicted - planted| "
                  f"over 16 cells)  predicted CTR %:\n{np.round(table * 100, 2)}", flush=True)
            print(f"  {market.requests} requests, {market.bids} bids, {market.wins} wins, {market.clicks} clicks for "
                  f"${market.spent:.2f}, {market.clicks_at_mark} clicks in the first ${args.spend:g} ({market.clicks / max(market.spent, 1e-9):.1f} clicks/$, CTR "
                  f"{market.clicks / max(market.wins, 1):.4f}), errors {market.errors}, {traffic_s:.0f} s; bids by scoring model (bid_inputs): {served}; won impressions "
                  f"per segment x category:\n{market.cells[..., 0].astype(int)}", flush=True)
            if r == args.rounds:
                break
            t0 = time.monotonic()
            try:
                outcome = model_train(since=started, until=dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=2),
                                      out_dir=trained, version=f"loop-{args.seed}-r{r + 1}", window_seconds=3600,
                                      needed=500, publish=True, model_dir=models, redis_client=client)
            except NotEnoughData as exc:
                print(f"  training: {exc}", flush=True)
                continue
            sel = outcome.selection
            print(f"  trained {outcome.result.weights.version} on {outcome.impressions} won impressions "
                  f"({outcome.clicks} clicks) in {time.monotonic() - t0:.0f} s: "
                  f"{'PUBLISHED' if sel.published else 'not published'} — {sel.reason}", flush=True)
            if sel.published:
                print(f"  bid app serves it after {wait_for_model(base, outcome.result.weights.version):.2f} s",
                      flush=True)
    finally:
        app.stop()
        signals.executor.shutdown()
    first, last = results[0], results[-1]
    halved = last["error"] <= first["error"] / 2
    rose = last["clicks"] > first["clicks"]
    print(f"\nround  model                 CTR error pp   clicks at ${args.spend:g}   wins at ${args.spend:g}")
    for row in results:
        print(f"{row['round']:>5}  {row['model']:<20}  {row['error'] * 100:>12.3f}   {row['clicks']:>12}   {row['wins']:>10}")
    print(f"\nCTR error {first['error'] * 100:.3f} -> {last['error'] * 100:.3f} pp: "
          f"{'halved' if halved else 'NOT halved'}; clicks at ${args.spend:g}: {first['clicks']} -> {last['clicks']}: "
          f"{'rose' if rose else 'did NOT rise'} (target: both)")


if __name__ == "__main__":
    main()
