"""``rl_decide`` in process, as the API runs it: 50 candidates, posteriors from Redis (misses from
Postgres), Thompson choice and propensity, the decision row inserted in Postgres, the log record
queued — p50 / p99 over N decisions (wall clock, and the CPU time of the calling thread: what the
path itself costs, without the waits for the stores and for the cores), in three cases: the candidates given and the propensity table
hit; one candidate's posterior changed before each decision (table miss); no candidates given (the
50 live offers of a channel, as the activation cascade asks).

``--profile`` adds, for the first case, where the time goes: cProfile's top functions (cumulative)
and each store round trip timed alone (the Redis read, a durable and an asynchronous one-row INSERT,
``SELECT 1``) — the floor the path stands on.

Writes decisions, posteriors, one campaign with 50 offers into ``DATABASE_URL``'s database and
``REDIS_URL``: use a scratch one (``manage.py migrate`` first). Rows it wrote are deleted at the end.
Runs against any checkout that has ``services.rl_decide`` (for a before/after, copy it into the old
tree's bench/).

    DATABASE_URL=postgres://…/scratch REDIS_URL=redis://…/15 .venv/bin/python bench/decision_latency.py [--decisions 2000] [--profile]
"""
from __future__ import annotations

import argparse
import cProfile
import io
import os
import pathlib
import pstats
import sys
import time
from datetime import timedelta
from decimal import Decimal

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402
from django.db import connection  # noqa: E402
from django.utils import timezone  # noqa: E402

from apps.analytics.emitter import default_emitter  # noqa: E402
from apps.core import redis as redis_store  # noqa: E402
from apps.rl import posteriors, services  # noqa: E402
from apps.rl.models import Decision, Posterior  # noqa: E402

CHANNEL_OF_LIVE = "in_store"  # a channel nobody else's rows use in a scratch database


def percentiles(times: np.ndarray) -> tuple[float, float, float]:
    p50, p99, worst = np.percentile(times, [50, 99, 100]) / 1e6
    return float(p50), float(p99), float(worst)


def run(label: str, decisions: int, candidates: list[str] | None, *, vary: bool, channel: str = "web") -> np.ndarray:
    times = np.empty(decisions)
    cpu = np.empty(decisions)
    segment = f"{channel}:gold"
    for i in range(decisions):
        if vary:  # a reward on one arm between decisions: the propensity table misses every time
            assert candidates is not None
            Posterior.objects.filter(segment=segment, offer_id=candidates[i % 50]).update(failures=i + 1)
            posteriors._cache_write(segment, {candidates[i % 50]: (0, i + 1)})
        started, on_cpu = time.perf_counter_ns(), time.thread_time_ns()
        services.rl_decide(user_id=f"bench-{i}", channel=channel, context={"tier": "gold"}, candidates=candidates)
        times[i] = time.perf_counter_ns() - started
        cpu[i] = time.thread_time_ns() - on_cpu
    p50, p99, worst = percentiles(times)
    cpu50, cpu99, _ = percentiles(cpu)
    print(f"{label:<48} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {worst:7.2f} ms  | own CPU p50 {cpu50:5.2f} ms  "
          f"p99 {cpu99:5.2f} ms  ({decisions} decisions, load {os.getloadavg()[0]:.2f})", flush=True)
    return times


def live_offers(n: int) -> list[str]:
    """One live campaign on CHANNEL_OF_LIVE with ``n`` offers (rows written directly)."""
    from django.contrib.auth.models import User

    from apps.campaigns.models import Campaign, Offer

    owner, _ = User.objects.get_or_create(username="bench-decision-owner")
    now = timezone.now()
    campaign = Campaign.objects.create(
        name="bench-decisions", advertiser="Bench", budget=Decimal("1000000"), channels=[CHANNEL_OF_LIVE],
        start_at=now - timedelta(days=1), end_at=now + timedelta(days=30), created_by=owner)
    for i in range(n):
        Offer.objects.create(campaign=campaign, name=f"bench offer {i}", creative_markup="<div/>", width=300,
                             height=250, landing_url="https://bench.example.com/", advertiser_domain="bench.example.com",
                             category="IAB8", max_bid_cpm=Decimal("2.5"))
    Campaign.objects.filter(pk=campaign.pk).update(status="live")
    return [str(pk) for pk in Offer.objects.filter(campaign=campaign).order_by("id").values_list("pk", flat=True)]


def drop_live_offers() -> None:
    from apps.campaigns.models import Campaign

    Campaign.objects.filter(name="bench-decisions").delete()


def floor(calls: int, candidates: list[str]) -> None:
    """Each store round trip of the path, alone."""
    client = redis_store.client()
    key = posteriors.KEY_PREFIX + "web:gold"

    def timed(call) -> tuple[float, float, float]:
        times = np.empty(calls)
        for i in range(calls):
            started = time.perf_counter_ns()
            call()
            times[i] = time.perf_counter_ns() - started
        return percentiles(times)

    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE IF NOT EXISTS bench_probe_seq (n int)")  # warms the connection
        cursor.execute("CREATE TABLE IF NOT EXISTS bench_decision_probe (id bigserial PRIMARY KEY, v text)")
        rows = [("Redis HMGET of 50 posteriors", lambda: client.hmget(key, candidates)),
                ("Postgres SELECT 1", lambda: cursor.execute("SELECT 1")),
                ("Postgres one-row INSERT, durable commit", lambda: cursor.execute(
                    "INSERT INTO bench_decision_probe (v) VALUES ('x')"))]
        for label, call in rows:
            p50, p99, worst = timed(call)
            print(f"  {label:<46} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  max {worst:7.2f} ms", flush=True)
        cursor.execute("SET synchronous_commit = off")
        p50, p99, worst = timed(lambda: cursor.execute("INSERT INTO bench_decision_probe (v) VALUES ('x')"))
        print(f"  {'Postgres one-row INSERT, synchronous_commit off':<46} p50 {p50:6.3f} ms  p99 {p99:6.3f} ms  "
              f"max {worst:7.2f} ms  (load {os.getloadavg()[0]:.2f})", flush=True)
        cursor.execute("RESET synchronous_commit")
        cursor.execute("DROP TABLE bench_decision_probe")


def profile(decisions: int, candidates: list[str]) -> None:
    profiler = cProfile.Profile()
    profiler.enable()
    for i in range(decisions):
        services.rl_decide(user_id=f"bench-p{i}", channel="web", context={"tier": "gold"}, candidates=candidates)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(25)
    print(f"\n## cProfile, {decisions} decisions (table hit), top 25 by cumulative time (profiler overhead included)")
    print("\n".join(line for line in out.getvalue().splitlines() if line.strip())[:6000])
    print(f"\n## each round trip alone ({decisions} calls)")
    floor(decisions, candidates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="where the time goes (cProfile, each round trip)")
    parser.add_argument("--cases", default="hit,miss,live", help="comma-separated: hit, miss, live")
    args = parser.parse_args()
    cases = set(args.cases.split(","))
    candidates = [f"bench-offer-{i}" for i in range(50)]
    rng = np.random.default_rng(5)
    for offer in candidates:
        s = int(rng.integers(0, 200))
        Posterior.objects.update_or_create(offer_id=offer, segment="web:gold",
                                           defaults={"successes": s, "failures": s + int(rng.integers(0, 5000))})
    live = live_offers(50) if "live" in cases else []
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} cores, "
          f"{time.strftime('%Y-%m-%d %H:%M:%S UTC', time.gmtime())}", flush=True)
    try:
        run("warm-up", 200, candidates, vary=False)
        if "hit" in cases:
            run("50 candidates given, posteriors unchanged (hit)", args.decisions, candidates, vary=False)
        if "miss" in cases:
            run("one arm changed before each (table miss)", args.decisions, candidates, vary=True)
        if "live" in cases:
            run("no candidates: the 50 live offers of a channel", args.decisions, None, vary=False,
                channel=CHANNEL_OF_LIVE)
        if args.profile:
            profile(args.decisions, candidates)
    finally:
        Decision.objects.filter(user_id__startswith="bench-").delete()
        Posterior.objects.filter(offer_id__startswith="bench-offer-").delete()
        Posterior.objects.filter(offer_id__in=live).delete()
        drop_live_offers()
        default_emitter().stop(flush=False)


if __name__ == "__main__":
    main()
