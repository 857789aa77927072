"""DSP reads: status per platform (breaker, bucket, budget) and spend per platform and hour."""
from __future__ import annotations

import datetime as dt
import time
from decimal import Decimal

from django.conf import settings
from django.db.models import QuerySet

from apps.core.outbound import CircuitBreaker
from apps.dsp import platforms as store
from apps.dsp import spend
from apps.dsp.book import breaker_name
from apps.dsp.models import Platform, PlatformHourSpend


def platform_list() -> QuerySet[Platform]:
    return Platform.objects.order_by("name")


def _breaker_state(platform: Platform) -> str:
    breaker = CircuitBreaker(breaker_name(platform.name), settings.DSP_BREAKER_FAILURES,
                             settings.DSP_BREAKER_RESET_SECONDS)
    return str(breaker.state())


def dsp_status(*, now: float | None = None) -> list[dict]:
    """Per platform: enabled, breaker state, QPS bucket, this hour's budget and spend."""
    now = time.time() if now is None else now
    hour = store.hour_of(now)
    out = []
    for p in platform_list():
        wins, spend_micros = spend.hour_totals(platform_id=p.pk, hour=hour)
        budget = p.hourly_budget
        out.append({
            "platform": p.name, "kind": p.kind, "enabled": p.enabled,
            "breaker": _breaker_state(p),
            "bucket": {"qps_cap": p.qps_cap, "per_worker_rate": (p.qps_cap / settings.DSP_QPS_WORKERS) if p.qps_cap else None,
                       "workers": settings.DSP_QPS_WORKERS},
            "budget": {"hourly_budget": budget, "hour": dt.datetime.fromtimestamp(hour * 3600, tz=dt.timezone.utc),
                       "wins": wins, "spend": Decimal(spend_micros) / 1_000_000,
                       "remaining": (budget - Decimal(spend_micros) / 1_000_000) if budget > 0 else None,
                       "over_budget": bool(budget > 0 and spend_micros >= budget * 1_000_000)},
        })
    return out


def dsp_spend(*, platform: str | None, start: dt.datetime, end: dt.datetime, now: float | None = None) -> list[dict]:
    """Wins, spend and average win price per platform and hour in [start, end): Postgres, with the
    hours not flushed yet (the current and the previous one) read from the exact Redis counters."""
    platforms = platform_list()
    if platform:
        platforms = platforms.filter(name=platform)
    by_key: dict[tuple[int, dt.datetime], tuple[int, int]] = {}
    rows = PlatformHourSpend.objects.filter(platform__in=platforms, hour__gte=start, hour__lt=end)
    for row in rows:
        by_key[(row.platform_id, row.hour)] = (row.wins, row.spend_micros)
    now = time.time() if now is None else now
    current = store.hour_of(now)
    names = {p.pk: p for p in platforms}
    for pid in names:
        for hour in (current - 1, current):
            start_of = dt.datetime.fromtimestamp(hour * 3600, tz=dt.timezone.utc)
            if start <= start_of < end:
                wins, micros = spend.hour_totals(platform_id=pid, hour=hour)
                old = by_key.get((pid, start_of), (0, 0))
                if wins or old[0]:
                    by_key[(pid, start_of)] = (max(wins, old[0]), max(micros, old[1]))
    out = []
    for (pid, hour_start), (wins, micros) in sorted(by_key.items(), key=lambda kv: (kv[0][1], names[kv[0][0]].name)):
        p = names[pid]
        amount = Decimal(micros) / 1_000_000
        out.append({"platform": p.name, "hour": hour_start, "wins": wins, "spend": amount, "currency": p.currency,
                    "average_win_price": (amount * 1000 / wins) if wins else None,
                    "hourly_budget": p.hourly_budget})
    return out
