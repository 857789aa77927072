"""``rl_decide`` in process, as the API runs it: 50 candidates, posteriors from Redis (misses from
Postgres), Thompson choice and propensity, the decision row inserted in Postgres, the log record
queued — p50 / p99 over N decisions, with the propensity table hit and missed.

Writes decisions and posteriors into ``DATABASE_URL``'s database and ``REDIS_URL``: use a scratch
one (``manage.py migrate`` first). Rows it wrote are deleted at the end.

    DATABASE_URL=postgres://…/scratch REDIS_URL=redis://…/15 .venv/bin/python bench/decision_latency.py [--decisions 2000]
"""
from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import django  # noqa: E402

django.setup()

import numpy as np  # noqa: E402

from apps.analytics.emitter import default_emitter  # noqa: E402
from apps.rl import posteriors, services  # noqa: E402
from apps.rl.models import Decision, Posterior  # noqa: E402


def run(label: str, decisions: int, candidates: list[str], *, vary: bool) -> None:
    times = np.empty(decisions)
    for i in range(decisions):
        if vary:  # a reward on one arm between decisions: the propensity table misses every time
            Posterior.objects.filter(segment="web:gold", offer_id=candidates[i % 50]).update(failures=i + 1)
            posteriors._cache_write("web:gold", {candidates[i % 50]: (0, i + 1)})
        started = time.perf_counter_ns()
        services.rl_decide(user_id=f"bench-{i}", channel="web", context={"tier": "gold"}, candidates=candidates)
        times[i] = time.perf_counter_ns() - started
    p50, p99, worst = np.percentile(times, [50, 99, 100]) / 1e6
    print(f"{label:<44} p50 {p50:6.2f} ms  p99 {p99:6.2f} ms  max {worst:7.2f} ms  ({decisions} decisions)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--decisions", type=int, default=2000)
    args = parser.parse_args()
    candidates = [f"bench-offer-{i}" for i in range(50)]
    rng = np.random.default_rng(5)
    for offer in candidates:
        s = int(rng.integers(0, 200))
        Posterior.objects.update_or_create(offer_id=offer, segment="web:gold",
                                           defaults={"successes": s, "failures": s + int(rng.integers(0, 5000))})
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    try:
        run("warm-up", 200, candidates, vary=False)
        run("posteriors unchanged (propensity table hit)", args.decisions, candidates, vary=False)
        run("one arm changed before each (table miss)", args.decisions, candidates, vary=True)
    finally:
        Decision.objects.filter(user_id__startswith="bench-").delete()
        Posterior.objects.filter(offer_id__startswith="bench-offer-").delete()
        default_emitter().stop(flush=False)


if __name__ == "__main__":
    main()
