"""Reads across campaigns for the campaign overview (admin › Campaigns › Overview), from ClickHouse
with the report API's definitions (``apps.analytics.selectors.campaign_report``)."""
from __future__ import annotations

import datetime as dt
from typing import Any

from apps.analytics.selectors import TABLE, _ratio, _ts
from apps.core import clickhouse as ch

MESSAGE_EVENTS = ("activation_sent", "activation_delivered", "activation_failed", "email_open", "email_click")


def campaigns_overview(*, start: dt.datetime, end: dt.datetime) -> dict[str, dict[str, Any]]:
    """Every campaign's totals over ``[start, end)``, by campaign id: ``bids``, ``wins``, ``clicks``,
    ``spend`` with the definitions of :func:`campaign_report` (so the overview equals the report API
    for the same period), ``ctr``, ``win_rate``, and the messages of its activations (``messages``:
    ``{channel: {activation_sent: n, ...}}``, email opens and clicks under ``email``). One query."""
    rows = ch.execute(
        f"""
        SELECT campaign_id, event_type, channel, count() AS n, sum(ifNull(win_price, 0)) AS price
        FROM {TABLE} FINAL
        WHERE campaign_id != ''
          AND event_type IN %(types)s
          AND timestamp >= toDateTime(%(start)s) AND timestamp < toDateTime(%(end)s)
        GROUP BY campaign_id, event_type, channel
        """,
        {"types": ("bid_response", "win", "click", *MESSAGE_EVENTS), "start": _ts(start), "end": _ts(end)},
        kind="report",
    )
    out: dict[str, dict[str, Any]] = {}
    keys = {"bid_response": "bids", "win": "wins", "click": "clicks"}
    for campaign_id, event_type, channel, n, price in rows:
        item = out.setdefault(campaign_id, {"bids": 0, "wins": 0, "clicks": 0, "spend": 0.0, "messages": {}})
        if event_type in keys:
            item[keys[event_type]] += int(n)
            if event_type == "win":
                item["spend"] += float(price or 0.0) / 1000
        else:
            where = "email" if event_type.startswith("email_") else (channel or "unknown")
            bucket = item["messages"].setdefault(where, {})
            bucket[event_type] = bucket.get(event_type, 0) + int(n)
    for item in out.values():
        item["spend"] = round(item["spend"], 6)
        item["ctr"] = _ratio(item["clicks"], item["wins"])
        item["win_rate"] = _ratio(item["wins"], item["bids"])
    return out
