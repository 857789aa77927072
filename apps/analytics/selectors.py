"""Reads from ClickHouse: campaign reports, live figures, raw events. Never Postgres event scans.

Why reports aggregate the raw table at query time (``GROUP BY`` over ``analytics_events FINAL``)
instead of reading a SummingMergeTree / AggregatingMergeTree materialized view: delivery into
ClickHouse is at-least-once (a worker that dies between the INSERT and the Redis XACK re-inserts its
batch). The raw table absorbs that — it is a ReplacingMergeTree keyed by ``event_id`` and ``FINAL``
collapses duplicates at read time — but a materialized view is fed by *every* inserted block, so a
re-inserted batch would be summed twice and never corrected. Querying the raw table keeps "each event
counted once" true at the level the reports read; at this platform's scale ClickHouse aggregates
millions of rows per query in tens of milliseconds, and the sorting key starts with ``campaign_id``
so a campaign report reads only that campaign's granules.

Report figures per bucket (UTC hour or day):

* ``requests`` — bid requests the platform answered in the bucket: distinct ``request_id`` of
  ``bid_response`` events plus ``no_bid`` events (every request ends in one or more bid_responses or
  exactly one no_bid). Platform-wide, because a request is an opportunity for every campaign and
  ``no_bid`` events carry no campaign. ``bid_request`` events are sampled (``extra.sample_rate``) and
  are kept for inspection, not counted.
* ``bids`` — the campaign's ``bid_response`` events (one per bid); ``wins`` — its ``win`` events;
  ``clicks`` — its ``click`` events.
* ``spend`` — sum of ``win_price / 1000`` over wins (CPM clearing prices → USD).
* ``ctr`` = clicks / wins, ``win_rate`` = wins / bids (None when the denominator is 0).
* ``latency_p50/p95/p99_us`` — exact quantiles of ``latency_us`` over the campaign's
  ``bid_response`` events and any ``no_bid`` events tagged with the campaign. ClickHouse's
  ``quantilesExact`` returns the sorted value at index ``floor(level * n)``.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

from apps.analytics import events
from apps.core import clickhouse as ch
from apps.core.exceptions import ServiceError

TABLE = "analytics_events"
GRANULARITIES = {"hour": ("toStartOfHour", dt.timedelta(hours=1)), "day": ("toStartOfDay", dt.timedelta(days=1))}
MAX_BUCKETS = 24 * 92  # three months of hours; a longer range must use granularity=day
QUANTILES = (0.5, 0.95, 0.99)
UTC = dt.timezone.utc


def _ts(value: dt.datetime) -> int:
    """A datetime as epoch seconds: compared with ``toDateTime(int)`` so the server's time zone and
    the driver's datetime formatting cannot shift the range."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return int(value.timestamp())


def bucket_start(value: dt.datetime, granularity: str) -> dt.datetime:
    """The UTC bucket a moment falls in (what ``toStartOfHour`` / ``toStartOfDay`` return)."""
    value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if granularity == "hour":
        return value.replace(minute=0, second=0, microsecond=0)
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def buckets(start: dt.datetime, end: dt.datetime, granularity: str) -> list[dt.datetime]:
    """Every bucket start overlapping ``[start, end)``."""
    step = GRANULARITIES[granularity][1]
    current, out = bucket_start(start, granularity), []
    end = end.astimezone(UTC) if end.tzinfo else end.replace(tzinfo=UTC)
    while current < end:
        out.append(current)
        current += step
    return out


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def campaign_report(*, campaign_id: int | str, start: dt.datetime, end: dt.datetime, granularity: str) -> dict[str, Any]:
    """Campaign performance per bucket over ``[start, end)`` plus totals (see module docstring)."""
    func, _ = GRANULARITIES[granularity]
    params = {"cid": str(campaign_id), "start": _ts(start), "end": _ts(end)}
    rows = ch.execute(
        f"""
        SELECT {func}(timestamp) AS bucket,
               countIf(event_type = 'bid_response') AS bids,
               countIf(event_type = 'win') AS wins,
               sumIf(ifNull(win_price, 0), event_type = 'win') / 1000 AS spend,
               countIf(event_type = 'click') AS clicks,
               countIf(event_type IN ('bid_response', 'no_bid') AND isNotNull(latency_us)) AS latency_n,
               quantilesExactIf({", ".join(map(str, QUANTILES))})(
                   ifNull(latency_us, 0), event_type IN ('bid_response', 'no_bid') AND isNotNull(latency_us)
               ) AS latency
        FROM {TABLE} FINAL
        WHERE campaign_id = %(cid)s
          AND event_type IN ('bid_response', 'no_bid', 'win', 'click')
          AND timestamp >= toDateTime(%(start)s) AND timestamp < toDateTime(%(end)s)
        GROUP BY bucket
        ORDER BY bucket
        """,
        params,
        kind="report",
    )
    request_rows = ch.execute(
        f"""
        SELECT {func}(timestamp) AS bucket,
               uniqExactIf(request_id, event_type = 'bid_response') + countIf(event_type = 'no_bid') AS requests
        FROM {TABLE} FINAL
        WHERE event_type IN ('bid_response', 'no_bid')
          AND timestamp >= toDateTime(%(start)s) AND timestamp < toDateTime(%(end)s)
        GROUP BY bucket
        """,
        params,
        kind="report",
    )
    requests = {_aware(bucket): int(n) for bucket, n in request_rows}
    found = {_aware(row[0]): row for row in rows}
    series = []
    totals = {"requests": 0, "bids": 0, "wins": 0, "spend": 0.0, "clicks": 0}
    for bucket in buckets(start, end, granularity):
        row = found.get(bucket)
        bids, wins, spend, clicks, latency_n, latency = (row[1:] if row else (0, 0, 0.0, 0, 0, None))
        item = {
            "bucket": bucket.isoformat().replace("+00:00", "Z"),
            "requests": requests.get(bucket, 0),
            "bids": int(bids),
            "wins": int(wins),
            "spend": round(float(spend or 0.0), 6),
            "clicks": int(clicks),
            "ctr": _ratio(clicks, wins),
            "win_rate": _ratio(wins, bids),
        }
        for level, value in zip(QUANTILES, latency if latency_n else (None,) * len(QUANTILES), strict=True):
            item[f"latency_p{int(level * 100)}_us"] = int(value) if value is not None else None
        series.append(item)
        for key in totals:
            totals[key] += item[key]
    totals["spend"] = round(totals["spend"], 6)
    totals["ctr"] = _ratio(totals["clicks"], totals["wins"])
    totals["win_rate"] = _ratio(totals["wins"], totals["bids"])
    return {
        "campaign_id": str(campaign_id),
        "from": _iso(start),
        "to": _iso(end),
        "granularity": granularity,
        "buckets": series,
        "totals": totals,
    }


def spend_to_date(*, campaign) -> dict[str, Any]:
    """The campaign's whole spend as the report API, the dashboard and the campaign list show it
    (``apps.bidding.selectors.campaign_spend``: Redis's running total first)."""
    from apps.bidding.selectors import campaign_spend

    figure = campaign_spend(campaigns=[campaign])[campaign.pk]
    return {"spent": f"{figure.spent:.6f}", "recorded": f"{figure.recorded:.6f}", "pending": f"{figure.pending:.6f}",
            "in_sync": figure.in_sync,
            "reconciled_at": _iso(figure.reconciled_at) if figure.reconciled_at else None}


def sampled_requests_estimate(*, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Bid requests received platform-wide over ``[start, end)``, estimated from the sampled
    ``bid_request`` events: each stands for ``1 / extra.sample_rate`` requests. ``sampled`` is the raw
    count, ``estimate`` the scaled one (None without samples)."""
    rows = ch.execute(
        f"""
        SELECT count(), sum(if(visitParamExtractFloat(extra, 'sample_rate') > 0, 1 / visitParamExtractFloat(extra, 'sample_rate'), 1))
        FROM {TABLE} FINAL
        WHERE event_type = 'bid_request'
          AND timestamp >= toDateTime(%(start)s) AND timestamp < toDateTime(%(end)s)
        """,
        {"start": _ts(start), "end": _ts(end)},
        kind="report",
    )
    sampled, scaled = rows[0] if rows else (0, 0)
    return {"sampled": int(sampled), "estimate": int(round(scaled)) if sampled else None}


def _aware(value: dt.datetime) -> dt.datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso(value: dt.datetime) -> str:
    return _aware(value).isoformat().replace("+00:00", "Z")


def live_stats(*, seconds: int = 60, now: dt.datetime | None = None) -> dict[str, Any]:
    """Bids per second and bid latency (p50/p99, µs) for each of the last ``seconds`` seconds, from
    ``bid_response`` / ``no_bid`` events (the dashboard's live view; events reach ClickHouse about a
    second after they happen, so the newest second fills in on the next push). Read without
    ``FINAL`` — it would merge every campaign's parts once a second — so a batch re-inserted after a
    consumer crash can show up twice here for a minute; the reports are exact."""
    now = now or dt.datetime.now(UTC)
    end = _ts(now) + 1
    start = end - seconds
    rows = ch.execute(
        f"""
        SELECT toUInt32(timestamp) AS second,
               countIf(event_type = 'bid_response') AS bids,
               countIf(event_type = 'no_bid') AS no_bids,
               quantilesExact(0.5, 0.99)(ifNull(latency_us, 0)) AS latency
        FROM {TABLE}
        WHERE event_type IN ('bid_response', 'no_bid')
          AND timestamp >= toDateTime(%(start)s) AND timestamp < toDateTime(%(end)s)
        GROUP BY second
        ORDER BY second
        """,
        {"start": start, "end": end},
        kind="live",
    )
    found = {int(second): (bids, no_bids, latency) for second, bids, no_bids, latency in rows}
    points = []
    for second in range(start, end):
        bids, no_bids, latency = found.get(second, (0, 0, (None, None)))
        points.append(
            {
                "t": second,
                "bids": int(bids),
                "no_bids": int(no_bids),
                "latency_p50_us": int(latency[0]) if latency[0] is not None else None,
                "latency_p99_us": int(latency[1]) if latency[1] is not None else None,
            }
        )
    return {"now": end, "points": points}


def campaign_ids_with_events(*, days: int = 90, limit: int = 500) -> list[str]:
    """Campaign ids that have events in the last ``days`` days (the dashboard's picker)."""
    rows = ch.execute(
        f"""
        SELECT campaign_id, count() AS n FROM {TABLE}
        WHERE campaign_id != '' AND timestamp >= toDateTime(%(start)s)
        GROUP BY campaign_id ORDER BY n DESC LIMIT {int(limit)}
        """,
        {"start": max(0, _ts(dt.datetime.now(UTC) - dt.timedelta(days=days)))},
        kind="report",
    )
    return [row[0] for row in rows]


def event_list(*, event_ids: list[str] | None = None, campaign_id: str | None = None, limit: int = 10_000) -> list[events.Event]:
    """Raw events (deduplicated) by id or campaign, oldest first."""
    conditions, params = [], {}
    if event_ids is not None:
        conditions.append("event_id IN %(ids)s")
        params["ids"] = tuple(event_ids) or ("",)
    if campaign_id is not None:
        conditions.append("campaign_id = %(cid)s")
        params["cid"] = str(campaign_id)
    where = " AND ".join(conditions) or "1"
    columns = ", ".join(events.COLUMNS)
    rows = ch.execute(
        f"SELECT {columns} FROM {TABLE} FINAL WHERE {where} ORDER BY timestamp, timestamp_us LIMIT {int(limit)}",
        params,
        kind="events",
    )
    return [events.from_db(dict(zip(events.COLUMNS, row, strict=True))) for row in rows]


def _parse_moment(raw: str, *, field: str, end_of_day: bool = False) -> dt.datetime:
    value = (raw or "").strip()
    try:
        if len(value) == 10:  # a date: the whole day, in UTC
            day = dt.date.fromisoformat(value)
            moment = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
            return moment + dt.timedelta(days=1) if end_of_day else moment
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00").replace(" ", "T", 1))
    except ValueError:
        raise ServiceError(
            f"'{field}' must be an ISO 8601 date or date-time (e.g. 2024-05-01 or 2024-05-01T13:00:00Z), got {raw!r}.",
            field=field,
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def report_range(*, start: str | None, end: str | None, granularity: str | None, now: dt.datetime | None = None) -> tuple[dt.datetime, dt.datetime, str]:
    """Validate report parameters (the API's ``from``/``to``/``granularity``); ServiceError names the
    bad one. Defaults: granularity hour; ``to`` now; ``from`` 24 hours (hour) or 30 days (day) before
    ``to``. A date as ``to`` means the end of that day."""
    for name, value in (("granularity", granularity), ("from", start), ("to", end)):
        if value is not None and not value.strip():
            raise ServiceError(f"'{name}' may not be empty; omit it for the default.", field=name)
    granularity = (granularity or "hour").strip().lower()
    if granularity not in GRANULARITIES:
        raise ServiceError(f"'granularity' must be 'hour' or 'day', got {granularity!r}.", field="granularity")
    now = now or dt.datetime.now(UTC).replace(microsecond=0)
    end_at = _parse_moment(end, field="to", end_of_day=True) if end is not None else now
    default_span = dt.timedelta(hours=24) if granularity == "hour" else dt.timedelta(days=30)
    start_at = _parse_moment(start, field="from") if start is not None else end_at - default_span
    if start_at >= end_at:
        raise ServiceError("'from' must be earlier than 'to'.", field="from")
    if start_at.year < 1971 or end_at.year > 2105:  # DateTime's range
        raise ServiceError("'from' and 'to' must lie between 1971 and 2105.", field="from" if start_at.year < 1971 else "to")
    if len(buckets(start_at, end_at, granularity)) > MAX_BUCKETS:
        raise ServiceError(
            f"The range holds more than {MAX_BUCKETS} {granularity} buckets; shorten it or use granularity=day.",
            field="to",
        )
    return start_at, end_at, granularity


# --- training reads: serve-time inputs and their outcomes (apps.training) ---------------------------

BID_INPUTS_TABLE = "bid_inputs"


def bid_inputs_list(*, start: dt.datetime | None = None, end: dt.datetime | None = None,
                    bid_ids: list[str] | None = None, limit: int = 5_000_000) -> list[dict[str, Any]]:
    """Rows of ``bid_inputs`` (each bid once: ``FINAL``) served in ``[start, end)`` and/or with the
    given bid ids, oldest first, as column → value dicts (``apps.analytics.bid_inputs.COLUMNS``)."""
    from apps.analytics import bid_inputs

    where, params = ["1"], {}
    if start is not None:
        where.append("timestamp >= toDateTime(%(start)s)")
        params["start"] = _ts(start)
    if end is not None:
        where.append("timestamp < toDateTime(%(end)s)")
        params["end"] = _ts(end)
    if bid_ids is not None:
        where.append("bid_id IN %(bid_ids)s")
        params["bid_ids"] = tuple(bid_ids) or ("",)
    columns = bid_inputs.COLUMNS
    rows = ch.execute(
        f"SELECT {', '.join(columns)} FROM {BID_INPUTS_TABLE} FINAL WHERE {' AND '.join(where)} "
        f"ORDER BY timestamp, timestamp_us, event_id LIMIT {int(limit)}",
        params,
    )
    return [dict(zip(columns, row, strict=True)) for row in rows]


def bid_inputs_chunks(*, start: dt.datetime, end: dt.datetime, chunk_rows: int) -> Iterator[list[dict[str, Any]]]:
    """The rows of ``bid_inputs`` served in ``[start, end)`` (each bid once: ``FINAL``), in lists of at
    most ``chunk_rows``, ordered by the table's key ``(timestamp, event_id)``: a long window never sits
    in memory whole. Each query reads a span of whole hours holding about ``chunk_rows`` rows (hourly
    counts first), an hour with more in pages by key, so no query scans the rest of the window."""
    from apps.analytics import bid_inputs

    if chunk_rows < 1:
        raise ValueError(f"chunk_rows must be at least 1, got {chunk_rows}")
    lo, hi = _ts(start), _ts(end)
    hours = ch.execute(
        f"SELECT intDiv(toUInt32(timestamp), 3600) AS h, count() FROM {BID_INPUTS_TABLE} "
        "WHERE timestamp >= toDateTime(%(lo)s) AND timestamp < toDateTime(%(hi)s) GROUP BY h ORDER BY h",
        {"lo": lo, "hi": hi},
    )
    spans: list[tuple[int, int]] = []  # [first hour, last hour] of about chunk_rows rows each
    total = 0
    for hour, count in hours:
        if spans and total + count <= chunk_rows:
            spans[-1] = (spans[-1][0], hour)
            total += count
        else:
            spans.append((hour, hour))
            total = count
    columns = bid_inputs.COLUMNS
    select = f"SELECT {', '.join(columns)} FROM {BID_INPUTS_TABLE} FINAL WHERE "
    for first, last in spans:
        params: dict[str, Any] = {"lo": max(lo, first * 3600), "hi": min(hi, (last + 1) * 3600)}
        after = ""
        while True:
            rows = ch.execute(
                f"{select} timestamp >= toDateTime(%(lo)s) AND timestamp < toDateTime(%(hi)s) {after} "
                f"ORDER BY timestamp, event_id LIMIT {int(chunk_rows)}", params)
            if rows:
                yield [dict(zip(columns, row, strict=True)) for row in rows]
            if len(rows) < chunk_rows:
                break
            last_row = rows[-1]
            params.update(after_ts=_ts(last_row[1]), after_id=last_row[0])
            after = "AND (timestamp, event_id) > (toDateTime(%(after_ts)s), %(after_id)s)"


def bid_outcome_times(*, start: dt.datetime, end: dt.datetime) -> dict[str, dict[str, int]]:
    """``{"win": {bid_id: µs}, "click": {bid_id: µs}}``: the first win and the first click of each bid
    that has one in ``[start, end)`` (time in µs since the epoch)."""
    rows = ch.execute(
        f"""
        SELECT event_type, bid_id, min(toUInt64(timestamp) * 1000000 + timestamp_us)
        FROM {TABLE} FINAL
        WHERE event_type IN ('win', 'click') AND bid_id != ''
          AND timestamp >= toDateTime(%(start)s) AND timestamp < toDateTime(%(end)s)
        GROUP BY event_type, bid_id
        """,
        {"start": _ts(start), "end": _ts(end)},
    )
    out: dict[str, dict[str, int]] = {"win": {}, "click": {}}
    for event_type, bid_id, at_us in rows:
        out[event_type][bid_id] = int(at_us)
    return out


def reward_signal_list(*, start: dt.datetime, end: dt.datetime) -> list[tuple[str, str, int, float, str]]:
    """Loyalty reward signals (docs/RULES.md §2.6) in ``[start, end)``:
    ``[(user_id, offer_id, µs since the epoch, reward, signal_type)]``, oldest first."""
    rows = ch.execute(
        f"""
        SELECT user_id, offer_id, toUInt64(timestamp) * 1000000 + timestamp_us AS at_us, amount, reason
        FROM {TABLE} FINAL
        WHERE event_type = 'reward_signal' AND user_id != '' AND offer_id != ''
          AND timestamp >= toDateTime(%(start)s) AND timestamp < toDateTime(%(end)s)
        ORDER BY at_us
        """,
        {"start": _ts(start), "end": _ts(end)},
    )
    return [(u, o, int(at), float(amount or 0.0), reason) for u, o, at, amount, reason in rows]


def campaign_hourly_totals(*, start: dt.datetime, end: dt.datetime) -> list[dict[str, Any]]:
    """Every campaign's figures per UTC hour over ``[start, end)`` (hours with activity only), ordered
    by hour then campaign: bids, wins (impressions), clicks, spend, ctr, win_rate, as the report
    computes them. For BI pushes (apps.integrations' Power BI dataset)."""
    rows = ch.execute(
        f"""
        SELECT toStartOfHour(timestamp) AS hour, campaign_id,
               countIf(event_type = 'bid_response') AS bids,
               countIf(event_type = 'win') AS wins,
               sumIf(ifNull(win_price, 0), event_type = 'win') / 1000 AS spend,
               countIf(event_type = 'click') AS clicks
        FROM {TABLE} FINAL
        WHERE event_type IN ('bid_response', 'win', 'click') AND campaign_id != ''
          AND timestamp >= toDateTime(%(start)s) AND timestamp < toDateTime(%(end)s)
        GROUP BY hour, campaign_id
        ORDER BY hour, campaign_id
        """,
        {"start": _ts(start), "end": _ts(end)},
        kind="report",
    )
    return [{"hour": _aware(hour), "campaign_id": str(cid), "bids": int(bids), "wins": int(wins),
             "spend": round(float(spend or 0.0), 6), "clicks": int(clicks), "ctr": _ratio(clicks, wins),
             "win_rate": _ratio(wins, bids)} for hour, cid, bids, wins, spend, clicks in rows]
# --- decision reads (apps.rl) ----------------------------------------------------------------------

RL_DECISIONS_TABLE = "rl_decisions"
FEEDBACK_EVENT_TYPES = ("reward_signal", "email_click")


def decision_feedback_list(*, inserted_since: dt.datetime, inserted_until: dt.datetime,
                           happened_since: dt.datetime | None = None, limit: int = 100_000) -> list[events.Event]:
    """Loyalty reward signals and email clicks with a user and an offer that reached ClickHouse in
    ``[inserted_since, inserted_until)`` (by arrival, so late events are seen), oldest first.
    ``happened_since`` (event time) lets ClickHouse skip older monthly partitions."""
    columns = ", ".join(events.COLUMNS)
    rows = ch.execute(
        f"""
        SELECT {columns} FROM {TABLE} FINAL
        WHERE event_type IN %(types)s AND user_id != '' AND offer_id != ''
          AND inserted_at >= toDateTime(%(since)s) AND inserted_at < toDateTime(%(until)s)
          AND timestamp >= toDateTime(%(happened)s)
        ORDER BY timestamp, timestamp_us, event_id LIMIT {int(limit)}
        """,
        {"types": FEEDBACK_EVENT_TYPES, "since": _ts(inserted_since), "until": _ts(inserted_until) + 1,
         "happened": _ts(happened_since) if happened_since is not None else 0},
        kind="events",
    )
    return [events.from_db(dict(zip(events.COLUMNS, row, strict=True))) for row in rows]


def rl_decision_log(*, start: dt.datetime, end: dt.datetime, closed_only: bool = True,
                    limit: int = 5_000_000) -> list[dict[str, Any]]:
    """The decision log (one row per decision, its latest version) for decisions made in
    ``[start, end)``, oldest first, as column → value dicts (``apps.analytics.rl_decisions.COLUMNS``)."""
    from apps.analytics import rl_decisions

    columns = rl_decisions.COLUMNS
    where = "timestamp >= toDateTime(%(start)s) AND timestamp < toDateTime(%(end)s)"
    if closed_only:
        where += " AND status != 'open'"
    rows = ch.execute(
        f"SELECT {', '.join(columns)} FROM {RL_DECISIONS_TABLE} FINAL WHERE {where} "
        f"ORDER BY timestamp, timestamp_us, event_id LIMIT {int(limit)}",
        {"start": _ts(start), "end": _ts(end)},
    )
    return [dict(zip(columns, row, strict=True)) for row in rows]
