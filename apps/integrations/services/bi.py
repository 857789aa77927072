"""Power BI: the push dataset made once, then every campaign's figures for closed hours appended in
order, exactly once.

The position is ``(cursor hour, rows of that hour already sent)`` over rows ordered by hour and
campaign, advanced in Postgres after each accepted POST; a batch holds at most ``rows_per_request``
rows (10,000, Power BI's limit) and may span hours. One run per connection at a time (a Redis lock),
so an at-least-once redelivered or retried task starts from where the last accepted batch ended and
never appends an hour twice. A POST that may have reached Power BI without an answer (timeout, lost
connection, 500) marks the dataset ``uncertain_from`` and stops: rows cannot be deleted one by one
from a push dataset, so a person checks the table and resumes (admin action) rather than risk a
double count.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import structlog
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from apps.analytics import selectors as analytics
from apps.campaigns import selectors as campaign_selectors
from apps.core import redis as redis_store
from apps.core.outbound import OutboundError

from ..adaptors import ConnectionProblem, adaptor_for
from ..adaptors.powerbi import PowerBIAdaptor
from ..models import Connection, ConnectionKind, PowerBIPush
from .connections import connection_config

log = structlog.get_logger("apps.integrations")

HOUR = dt.timedelta(hours=1)
QUERY_SPAN = dt.timedelta(days=7)  # hours read from ClickHouse per query
MAX_SPAN_PER_RUN = dt.timedelta(days=92)  # a cursor far behind catches up over several runs
MAX_ROWS_PER_RUN = 1_000_000  # Power BI: 1,000,000 rows per hour per dataset
_UNLOCK = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


@dataclass
class PushSummary:
    rows: int = 0
    requests: int = 0
    cursor: str = ""
    note: str = ""


def _floor_hour(value: dt.datetime) -> dt.datetime:
    return value.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0)


def _start(adaptor: PowerBIAdaptor, now: dt.datetime) -> dt.datetime:
    raw = adaptor.config.option("start")
    if raw:
        return _floor_hour(dt.datetime.fromisoformat(str(raw).replace("Z", "+00:00")))
    return _floor_hour(now) - 24 * HOUR


def _save(push_id: int, **fields) -> None:
    PowerBIPush.objects.filter(pk=push_id).update(**fields)


def _names() -> dict[str, str]:
    cache: dict[str, str] = {}

    def name(campaign_id: str) -> str:
        if campaign_id not in cache:
            campaign = campaign_selectors.campaign_get_or_none(campaign_id=int(campaign_id)) \
                if campaign_id.isdigit() else None
            cache[campaign_id] = campaign.name if campaign else ""
        return cache[campaign_id]
    return name  # type: ignore[return-value]


def _row(item: dict, name) -> dict:
    return {"campaign_id": item["campaign_id"], "campaign_name": name(item["campaign_id"])[:4000],
            "hour": item["hour"].strftime("%Y-%m-%dT%H:%M:%SZ"), "bids": item["bids"], "impressions": item["wins"],
            "clicks": item["clicks"], "spend": item["spend"], "ctr": item["ctr"], "win_rate": item["win_rate"]}


def powerbi_push(*, connection_id: int, now: dt.datetime | None = None) -> PushSummary:
    """Create the dataset if needed, then append the closed hours behind the cursor."""
    connection = Connection.objects.get(pk=connection_id, kind=ConnectionKind.POWERBI)
    lock_key, token = f"integrations:powerbi:{connection_id}:lock", secrets.token_hex(8)
    redis = redis_store.client()
    if not redis.set(lock_key, token, nx=True, ex=900):
        return PushSummary(note="another push of this dataset is running")
    try:
        return _push(connection, now or timezone.now())
    finally:
        redis.eval(_UNLOCK, 1, lock_key, token)


def _push(connection: Connection, now: dt.datetime) -> PushSummary:
    adaptor = adaptor_for(connection_config(connection))
    assert isinstance(adaptor, PowerBIAdaptor)
    push, _ = PowerBIPush.objects.get_or_create(connection=connection)
    if push.uncertain_from is not None:
        return PushSummary(note=push.note, cursor=str(push.cursor))
    if not push.dataset_id:
        # A create whose answer was lost is found by name on the next run instead of made twice.
        push.dataset_id = adaptor.find_dataset() or adaptor.create_dataset()
        _save(push.pk, dataset_id=push.dataset_id, note=f"dataset {adaptor.dataset_name!r} ready")
        log.info("powerbi_dataset_ready", connection_id=connection.pk, dataset_id=push.dataset_id)
    cursor = push.cursor or _start(adaptor, now)
    offset = push.cursor_offset
    delay = dt.timedelta(minutes=float(adaptor.config.option("close_delay_minutes", 10)))
    closed_until = min(_floor_hour(now - delay), cursor + MAX_SPAN_PER_RUN)
    summary = PushSummary(cursor=cursor.isoformat())
    name = _names()
    while cursor < closed_until and summary.rows < MAX_ROWS_PER_RUN:
        span_end = min(cursor + QUERY_SPAN, closed_until)
        items = analytics.campaign_hourly_totals(start=cursor, end=span_end)
        # rows are ordered by hour then campaign: skip what accepted batches already sent of the cursor hour
        pending = [i for i in items if i["hour"] == cursor][offset:] + [i for i in items if i["hour"] > cursor]
        position = 0
        while position < len(pending):
            batch = pending[position:position + adaptor.rows_per_request]
            after = position + len(batch)
            if after < len(pending):
                next_hour = pending[after]["hour"]
                next_offset = sum(1 for i in pending[:after] if i["hour"] == next_hour) + (
                    offset if next_hour == cursor else 0)
            else:
                next_hour, next_offset = span_end, 0
            _save(push.pk, uncertain_from=batch[0]["hour"])
            try:
                adaptor.add_rows(push.dataset_id, [_row(i, name) for i in batch])
            except OutboundError as exc:
                answered_unprocessed = exc.kind in ("rate_limited", "breaker_open") or (
                    exc.status_code is not None and (exc.status_code < 500 or exc.status_code == 503))
                note = f"push of {len(batch)} rows from {batch[0]['hour']:%Y-%m-%d %H:00} failed: {exc}"[:500]
                _save(push.pk, note=note, **({"uncertain_from": None} if answered_unprocessed else {}))
                raise
            summary.rows += len(batch)
            summary.requests += 1
            with transaction.atomic():
                PowerBIPush.objects.filter(pk=push.pk).update(
                    cursor=next_hour, cursor_offset=next_offset, uncertain_from=None, last_push_at=timezone.now(),
                    rows_pushed=F("rows_pushed") + len(batch), note="")
            position = after
        cursor, offset = span_end, 0
        _save(push.pk, cursor=cursor, cursor_offset=0)
    summary.cursor = cursor.isoformat()
    if summary.rows:
        log.info("powerbi_rows_pushed", connection_id=connection.pk, rows=summary.rows, requests=summary.requests,
                 cursor=summary.cursor)
    return summary


def powerbi_resume(*, connection_id: int) -> None:
    """After a person checked the table following an uncertain push: carry on from the cursor."""
    PowerBIPush.objects.filter(connection_id=connection_id).update(uncertain_from=None, note="resumed by hand")


def powerbi_connection_ids() -> list[int]:
    return list(Connection.objects.filter(enabled=True, kind=ConnectionKind.POWERBI).values_list("pk", flat=True))


__all__ = ["ConnectionProblem", "PushSummary", "powerbi_connection_ids", "powerbi_push", "powerbi_resume"]
