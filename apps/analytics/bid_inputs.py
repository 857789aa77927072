"""Serve-time inputs of every bid: the ``bid_inputs`` record and its ClickHouse table.

For every bid it returns, the bid path records what rebuilds the bid's 256-float feature row exactly
(docs/DESIGN.md "Serve-time inputs", docs/RULES.md §10): the user part as scored, the offer's
feature inputs from the snapshot it scored with, the context, the snapshot / model / feature-layout
versions, the bid id, offer and price. ``apps.inference.features.feature_row`` rebuilds the row
from them with the serving code; the trainer (``apps.training``) does that offline.

Hot path: the processor calls ``emit_record(KIND, values)`` with values it already holds (no
conversion, no copy): strings, numbers, tuples of them and the profile's read-only numpy arrays —
immutable, and nothing the garbage collector has to walk while they wait in the buffer (holding the
decoded request and one record per bid measured +4 % instructions per request, half of it in the
collector; atomic values and one record per request, +1.7 %).
``values`` is one request's bids::

    (ctx, [(bid_id, imp_id, imp_tagid, imp_banner_pos, offer, price, position, predicted_ctr, score), ...])
    ctx = (request_id, exchange, user_id, tier, interests, segments, loyalty, recency, impressions_1h,
           device_type, country, snapshot_version, model_version, served_at,
           (layout_version, max_per_hour, batch_size), site_id, site_domain, app_id, app_bundle,
           publisher_id)
    offer = (campaign_id, offer_id, category, max_bid_cpm, observed_ctr, format)   # OfferEntry.serve_inputs

The emitter's flusher turns the record into one row per bid (:func:`to_rows`) — off the request —
and the analytics consumer inserts them into ``bid_inputs`` (``ReplacingMergeTree`` keyed by
``event_id``, like ``analytics_events``: at-least-once delivery, read ``FINAL``). A row's
``event_id`` is its bid id without dashes: a bid id is a fresh uuid4, so it identifies the row and a
re-sent record collapses into the same rows.
"""
from __future__ import annotations

from array import array
from typing import Any

from apps.analytics import _rows

KIND = _rows.BID_INPUTS  # "bid_inputs"
TABLE = "bid_inputs"

#: Columns of a wire row (after the common ``event_id, event_type, timestamp, timestamp_us``).
FIELDS: tuple[str, ...] = (
    "bid_id", "request_id", "imp_id", "user_id", "campaign_id", "offer_id",
    "price", "predicted_ctr", "score",
    "layout_version", "snapshot_version", "model_version", "served_at",
    "tier", "interests", "segments", "loyalty", "recency", "impressions_1h", "max_per_hour", "device_type",
    "country", "position", "batch_size",
    "offer_category", "offer_max_bid_cpm", "offer_observed_ctr", "offer_format",
    "exchange", "site_id", "site_domain", "app_id", "app_bundle", "publisher_id", "imp_tagid", "imp_banner_pos",
)
#: Columns of the ClickHouse table, in insert order (the wire row without ``event_type``).
COLUMNS: tuple[str, ...] = ("event_id", "timestamp", "timestamp_us") + FIELDS
#: What ``feature_row`` needs, by the name of its keyword (column name → keyword).
ROW_INPUTS: dict[str, str] = {
    "interests": "interests", "segments": "segments", "loyalty": "loyalty", "recency": "recency",
    "impressions_1h": "impressions_1h", "max_per_hour": "max_per_hour", "device_type": "device_type",
    "position": "position", "batch_size": "batch_size", "offer_category": "category",
    "offer_max_bid_cpm": "max_bid_cpm", "offer_observed_ctr": "observed_ctr", "offer_format": "creative_format",
}


#: A record the flusher cannot turn into a row (counted and logged as an invalid event).
InvalidRecord = _rows.InvalidRecord

#: The wire rows of one record, one per bid (see the module docstring); raises InvalidRecord. Runs in
#: the bid worker's flusher, so it does as little as it can: strings pass as they are (``None`` becomes
#: ``""``), float32 vectors travel as bytes. In ``apps.analytics._rows``, compiled where built.
to_rows = _rows.bid_inputs_rows


_INTERESTS = COLUMNS.index("interests")
_LOYALTY = COLUMNS.index("loyalty")


def insert_row(row: tuple) -> tuple:
    """A decoded wire row (kind already dropped, timestamp a datetime) → the tuple ClickHouse inserts:
    the float32 vectors back as lists (consumer side, in the analytics worker)."""
    values = list(row)
    for index in (_INTERESTS, _LOYALTY):
        raw = values[index]
        if isinstance(raw, (bytes, bytearray)):
            vector = array("f")
            vector.frombytes(raw)
            values[index] = vector.tolist()
    return tuple(values)


def row_inputs(record: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``apps.inference.features.feature_row`` from a ``bid_inputs`` row
    read back as a column → value dict."""
    return {keyword: record[column] for column, keyword in ROW_INPUTS.items()}
