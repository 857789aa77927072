"""Power BI: the push dataset made once, then every campaign's figures for closed hours appended in
order, exactly once.

The position is ``(cursor hour, rows of that hour already sent)`` over rows ordered by hour and
campaign, advanced in Postgres after each accepted POST; a batch holds at most ``rows_per_request``
rows (10,000, Power BI's limit) and may span hours. One run per connection at a time (a Redis lock),
so an at-least-once redelivered or retried task starts from where the last accepted batch ended and
never appends an hour twice.

A lost answer (timeout, dropped connection, 500 after Power BI read the request):

* creating the dataset: the dataset is looked up by name (``GET datasets``) before any create, and
  again right after a create whose answer was lost, so the retry adopts the one Power BI made;
* pushing rows: ``POST …/rows`` has no idempotency key and a push dataset cannot delete single rows
  (only the whole table), so neither re-sending (a double count) nor skipping (a gap) is safe to guess.
  The batch is recorded (``uncertain_from``/``uncertain_to``, ``uncertain_rows``, the cursor after it)
  and the dataset stops — Celery retries and later runs send nothing — until a person counts those
  hours' rows in the table and says in the admin (Power BI push datasets) "the rows arrived" (the
  cursor moves past the batch) or "they did not" (the batch is sent again). A late dashboard is
  visible and fixable; a silent double count is neither.
"""
from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import dataclass

import structlog
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

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
#: Power BI: 1,000,000 rows added per hour per dataset. Counted in Redis per clock hour; a push may
#: use what this hour and the one before left together, so no 60-minute window holds more.
MAX_ROWS_PER_HOUR = 1_000_000
_CERTAIN = {"uncertain_from": None, "uncertain_to": None, "uncertain_rows": 0, "uncertain_next": None,
            "uncertain_next_offset": 0}
POWERBI_UNCERTAIN = Counter("integrations_powerbi_uncertain_total",
                            "Power BI row pushes whose answer was lost (dataset stopped for a check)", ["connection"])
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
        push.dataset_id = _dataset(adaptor, push)
    cursor = push.cursor or _start(adaptor, now)
    offset = push.cursor_offset
    delay = dt.timedelta(minutes=float(adaptor.config.option("close_delay_minutes", 10)))
    closed_until = min(_floor_hour(now - delay), cursor + MAX_SPAN_PER_RUN)
    summary = PushSummary(cursor=cursor.isoformat())
    name = _names()
    redis = redis_store.client()
    budget = _hour_budget(redis, connection.pk)
    limited = False
    while cursor < closed_until and not limited:
        span_end = min(cursor + QUERY_SPAN, closed_until)
        items = analytics.campaign_hourly_totals(start=cursor, end=span_end)
        # rows are ordered by hour then campaign: skip what accepted batches already sent of the cursor hour
        pending = [i for i in items if i["hour"] == cursor][offset:] + [i for i in items if i["hour"] > cursor]
        position, pushed_to = 0, cursor
        while position < len(pending):
            if budget <= 0:
                limited = True
                break
            batch = pending[position:position + min(adaptor.rows_per_request, budget)]
            after = position + len(batch)
            if after < len(pending):
                next_hour = pending[after]["hour"]
                next_offset = sum(1 for i in pending[:after] if i["hour"] == next_hour) + (
                    offset if next_hour == cursor else 0)
            else:
                next_hour, next_offset = span_end, 0
            # recorded before the POST: a worker killed mid-call leaves the batch unconfirmed too
            _save(push.pk, uncertain_from=batch[0]["hour"], uncertain_to=batch[-1]["hour"], uncertain_rows=len(batch),
                  uncertain_next=next_hour, uncertain_next_offset=next_offset)
            try:
                adaptor.add_rows(push.dataset_id, [_row(i, name) for i in batch])
            except OutboundError as exc:
                answered_unprocessed = exc.kind in ("rate_limited", "breaker_open") or (
                    exc.status_code is not None and (exc.status_code < 500 or exc.status_code == 503))
                span = f"{batch[0]['hour']:%Y-%m-%d %H:00} to {batch[-1]['hour']:%Y-%m-%d %H:00} UTC"
                if answered_unprocessed:
                    _save(push.pk, note=f"push of {len(batch)} rows ({span}) refused: {exc}"[:500], **_CERTAIN)
                else:
                    POWERBI_UNCERTAIN.labels(str(connection.pk)).inc()
                    log.warning("powerbi_push_uncertain", connection_id=connection.pk, rows=len(batch), span=span,
                                error=str(exc))
                    _save(push.pk, note=(f"NEEDS A CHECK: the answer to a push of {len(batch)} rows ({span}) was lost "
                                         f"({exc.kind}); count those hours' rows in table {adaptor.table!r}, then "
                                         "resume saying whether they arrived.")[:500])
                raise
            summary.rows += len(batch)
            summary.requests += 1
            budget -= len(batch)
            _count_rows(redis, connection.pk, len(batch))
            with transaction.atomic():
                PowerBIPush.objects.filter(pk=push.pk).update(
                    cursor=next_hour, cursor_offset=next_offset, last_push_at=timezone.now(),
                    rows_pushed=F("rows_pushed") + len(batch), note="", **_CERTAIN)
            position = after
            pushed_to = next_hour
        if limited:
            _save(push.pk, note=f"Power BI's {MAX_ROWS_PER_HOUR:,} rows per hour reached: the next run carries on")
            cursor = pushed_to
            break
        cursor, offset = span_end, 0
        _save(push.pk, cursor=cursor, cursor_offset=0)
    summary.cursor = cursor.isoformat()
    if summary.rows:
        log.info("powerbi_rows_pushed", connection_id=connection.pk, rows=summary.rows, requests=summary.requests,
                 cursor=summary.cursor)
    return summary


def _hour_keys(connection_id: int) -> tuple[str, str]:
    now = dt.datetime.now(dt.UTC)
    return tuple(f"integrations:powerbi:{connection_id}:rows:{t:%Y%m%d%H}" for t in (now, now - HOUR))  # type: ignore[return-value]


def _hour_budget(redis, connection_id: int) -> int:
    """Rows this dataset may still take now within Power BI's rows-per-hour limit."""
    used = sum(int(v or 0) for v in redis.mget(_hour_keys(connection_id)))
    return max(0, MAX_ROWS_PER_HOUR - used)


def _count_rows(redis, connection_id: int, rows: int) -> None:
    key = _hour_keys(connection_id)[0]
    pipe = redis.pipeline()
    pipe.incrby(key, rows)
    pipe.expire(key, 3 * 3600)
    pipe.execute()


def powerbi_resume(*, connection_id: int, arrived: bool, actor: str = "") -> str:
    """After a person counted the unconfirmed batch's hours in the Power BI table: ``arrived`` moves
    the cursor past the batch (its rows are counted as pushed), otherwise the next run sends it again.
    Returns what was done (for the admin's message)."""
    with transaction.atomic():
        push = PowerBIPush.objects.select_for_update().filter(connection_id=connection_id).first()
        if push is None or push.uncertain_from is None:
            return "nothing to resume"
        span = f"{push.uncertain_from:%Y-%m-%d %H:00} to {push.uncertain_to or push.uncertain_from:%Y-%m-%d %H:00} UTC"
        who = f" by {actor}" if actor else ""
        if arrived:
            push.cursor, push.cursor_offset = push.uncertain_next, push.uncertain_next_offset
            push.rows_pushed += push.uncertain_rows
            push.note = f"resumed{who}: the {push.uncertain_rows} rows of {span} were in the table, not sent again"
        else:
            push.note = f"resumed{who}: the {push.uncertain_rows} rows of {span} were not in the table, sent again"
        for name, value in _CERTAIN.items():
            setattr(push, name, value)
        push.save()
    log.info("powerbi_push_resumed", connection_id=connection_id, arrived=arrived, actor=actor)
    return push.note


def _dataset(adaptor: PowerBIAdaptor, push: PowerBIPush) -> str:
    """The dataset's id: the one named ``dataset_name`` in the workspace if there is one (an earlier
    create whose answer was lost, or a dataset made by hand), else a new one. A create that may have
    arrived without an answer is looked up again at once; not found, the error is raised (retried)."""
    dataset_id = adaptor.find_dataset()
    adopted = dataset_id is not None
    if dataset_id is None:
        try:
            dataset_id = adaptor.create_dataset()
        except OutboundError as exc:
            maybe_made = exc.kind in ("timeout", "network") or (exc.status_code or 0) >= 500
            note = f"creating dataset {adaptor.dataset_name!r} failed: {exc}"
            try:
                dataset_id = adaptor.find_dataset() if maybe_made else None
            except OutboundError as lookup:
                note = f"creating dataset {adaptor.dataset_name!r}: the answer was lost and the lookup failed " \
                       f"({lookup}); the next run looks it up by name before creating"
                dataset_id = None
            if dataset_id is None:
                _save(push.pk, note=note[:500])
                raise
            adopted = True
    how = "adopted the existing" if adopted else "created"
    _save(push.pk, dataset_id=dataset_id, note=f"{how} dataset {adaptor.dataset_name!r}")
    log.info("powerbi_dataset_ready", connection_id=push.connection_id, dataset_id=dataset_id, adopted=adopted)
    return dataset_id


def powerbi_connection_ids() -> list[int]:
    return list(Connection.objects.filter(enabled=True, kind=ConnectionKind.POWERBI).values_list("pk", flat=True))


__all__ = ["ConnectionProblem", "PushSummary", "powerbi_connection_ids", "powerbi_push", "powerbi_resume"]
