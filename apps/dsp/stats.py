"""Per platform and hour: requests, bid rate, timeouts, errors, p50/p99 latency (ClickHouse
``analytics_events``: ``dsp_bid`` / ``dsp_timeout`` / ``dsp_error`` / ``dsp_win``), wins and spend against
budget (the exact spend rows, ``selectors.dsp_spend``). SQL kept to what ClickHouse 18.16 runs."""
from __future__ import annotations

import datetime as dt
from typing import Any

from apps.core import clickhouse as ch
from apps.dsp import selectors

TABLE = "analytics_events"
CALLS = ("dsp_bid", "dsp_timeout", "dsp_error")
UTC = dt.timezone.utc


def _ts(value: dt.datetime) -> int:
    return int(value.timestamp())


def platform_hourly(*, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    rows = ch.execute(
        f"""
        SELECT platform, toStartOfHour(timestamp) AS hour,
               countIf(event_type IN ('dsp_bid', 'dsp_timeout', 'dsp_error')) AS requests,
               countIf(event_type = 'dsp_bid' AND reason = 'bid') AS bids,
               countIf(event_type = 'dsp_timeout') AS timeouts,
               countIf(event_type = 'dsp_error') AS errors,
               quantilesExactIf(0.5, 0.99)(ifNull(latency_us, 0),
                   event_type IN ('dsp_bid', 'dsp_timeout', 'dsp_error') AND isNotNull(latency_us)) AS latency,
               countIf(event_type = 'dsp_win') AS wins
        FROM {TABLE} FINAL
        WHERE event_type IN ('dsp_bid', 'dsp_timeout', 'dsp_error', 'dsp_win') AND platform != ''
          AND timestamp >= toDateTime(%(start)s) AND timestamp < toDateTime(%(end)s)
        GROUP BY platform, hour
        ORDER BY hour, platform
        """,
        {"start": _ts(start), "end": _ts(end)},
        kind="report",
    )
    spend = {(r["platform"], r["hour"]): r for r in selectors.dsp_spend(platform=None, start=start, end=end)}
    budgets = {p.name: p.hourly_budget for p in selectors.platform_list()}
    out: dict[tuple[str, dt.datetime], dict] = {}
    for platform, hour, requests, bids, timeouts, errors, latency, wins in rows:
        hour = hour.replace(tzinfo=UTC) if hour.tzinfo is None else hour
        out[(platform, hour)] = {
            "platform": platform, "hour": hour, "requests": requests, "bids": bids, "timeouts": timeouts,
            "errors": errors, "bid_rate": (bids / requests) if requests else None,
            "latency_p50_ms": latency[0] / 1000 if requests else None,
            "latency_p99_ms": latency[1] / 1000 if requests else None, "wins": wins,
        }
    for (platform, hour), row in spend.items():
        entry = out.setdefault((platform, hour), {
            "platform": platform, "hour": hour, "requests": 0, "bids": 0, "timeouts": 0, "errors": 0,
            "bid_rate": None, "latency_p50_ms": None, "latency_p99_ms": None, "wins": 0})
        entry["wins"] = max(entry["wins"], row["wins"])
    for (platform, hour), entry in out.items():
        spent = spend.get((platform, hour))
        entry["spend"] = float(spent["spend"]) if spent else 0.0
        entry["budget"] = float(budgets.get(platform) or 0)
    hours = []
    cursor = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    while cursor < end:
        hours.append(cursor)
        cursor += dt.timedelta(hours=1)
    return {"hours": hours, "platforms": sorted({p for p, _ in out} | set(budgets)),
            "rows": [out[k] for k in sorted(out, key=lambda k: (k[1], k[0]))], "cells": out}


def chart_data(report: dict) -> dict:
    labels = [h.strftime("%m-%d %H:00") for h in report["hours"]]
    series: dict[str, dict[str, list]] = {}
    for name in report["platforms"]:
        rows = [report["cells"].get((name, h)) for h in report["hours"]]

        def col(key, rows=rows):
            return [None if r is None else r.get(key) for r in rows]

        series[name] = {k: col(k) for k in ("requests", "bid_rate", "timeouts", "errors", "latency_p50_ms",
                                             "latency_p99_ms", "wins", "spend", "budget")}
    return {"labels": labels, "series": series}
