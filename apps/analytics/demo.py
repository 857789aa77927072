"""Demo data for ``manage.py seed_demo``: 48 hours of bid traffic history for each live campaign, so
the admin dashboard (/admin/analytics/dashboard/) has something to draw on a fresh ``make run``.

The rows are synthetic and marked ``extra={"demo": true}``; they go into ClickHouse through the same
row schema as real events. Real traffic (``make bench``, curl to /v1/bid) adds real rows on top.
Idempotent: a campaign that already has demo rows is skipped. ClickHouse down: logged and skipped.
"""
from __future__ import annotations

import datetime as dt
import random
import uuid

import structlog

from apps.analytics import clickhouse_schema, events
from apps.core import clickhouse as ch

log = structlog.get_logger(__name__)

HOURS = 48
DEMO_MARKER = '{"demo":true}'  # the stored form of extra={"demo": True}
UTC = dt.timezone.utc


def _rows_for(campaign_id: str, now: dt.datetime, rng: random.Random) -> list[tuple]:
    rows = []

    def add(event_type: str, ts: dt.datetime, **fields) -> None:
        us = int(ts.timestamp()) * 1_000_000 + ts.microsecond
        rows.append(events.row_to_insert(events.to_row(event_type, uuid.uuid4().hex, us, {**fields, "extra": {"demo": True}})))

    start = now.replace(minute=0, second=0, microsecond=0) - dt.timedelta(hours=HOURS)
    for hour in range(HOURS):
        base = start + dt.timedelta(hours=hour)
        daily = 0.6 + 0.4 * abs(12 - (base.hour + 6) % 24) / 12  # quieter at night (UTC-6-ish)
        for _ in range(int(rng.randrange(150, 300) * daily)):
            ts = base + dt.timedelta(seconds=rng.randrange(3600), microseconds=rng.randrange(10**6))
            request_id = uuid.uuid4().hex
            latency = int(rng.lognormvariate(6.9, 0.45))
            if rng.random() < 0.35:
                add("no_bid", ts, request_id=request_id, reason="no_candidates", latency_us=latency)
                continue
            price = round(rng.uniform(1.0, 5.0), 4)
            add("bid_response", ts, request_id=request_id, campaign_id=campaign_id, price=price, latency_us=latency,
                bid_id=uuid.uuid4().hex, imp_id="1", country="USA", device_type="mobile")
            if rng.random() < 0.3:
                win_ts = ts + dt.timedelta(milliseconds=rng.randrange(50, 900))
                add("win", win_ts, request_id=request_id, campaign_id=campaign_id, win_price=round(price * rng.uniform(0.6, 1.0), 4))
                if rng.random() < 0.04:
                    add("click", win_ts + dt.timedelta(seconds=rng.randrange(2, 60)), request_id=request_id, campaign_id=campaign_id)
    return rows


def seed_campaign(campaign_id: str, *, now: dt.datetime | None = None) -> int:
    """Write the demo history of one campaign unless it has some; returns the rows written."""
    (existing,) = ch.execute(
        "SELECT count() FROM analytics_events WHERE campaign_id = %(cid)s AND extra = %(marker)s",
        {"cid": str(campaign_id), "marker": DEMO_MARKER},
    )[0]
    if existing:
        return 0
    rows = _rows_for(str(campaign_id), now or dt.datetime.now(UTC), random.Random(str(campaign_id)))
    ch.insert("analytics_events", events.COLUMNS, rows)
    log.info("analytics_demo_history_written", campaign_id=campaign_id, events=len(rows))
    return len(rows)


def seed() -> None:
    """Write the demo history for live campaigns that have none yet."""
    from apps.campaigns import selectors as campaign_selectors

    try:
        clickhouse_schema.migrate()
        for campaign in campaign_selectors.campaign_list(status="live")[:5]:
            seed_campaign(str(campaign.pk))
    except ch.ClickHouseError as exc:
        log.warning("analytics_demo_skipped", error=f"{type(exc).__name__}: {exc}")
