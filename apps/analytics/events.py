"""The one event schema for everything the platform emits into analytics (docs/RULES.md §10).

An event is ``event_type`` plus any of the optional fields in :data:`FIELDS`. ``event_id`` (uuid4 hex)
and ``timestamp`` (UTC, microseconds) are added by :func:`apps.analytics.emitter.emit` at emit time, or
fixed by the caller with :func:`apps.analytics.emitter.emit_with_id` for an event a retry may emit again
(derived from the row that records the fact, so ClickHouse keeps one).

Field types (what ``emit`` accepts and what comes back out of ClickHouse):

* ids — ``request_id user_id campaign_id offer_id bid_id imp_id activation_id``: strings. An int id
  (e.g. a Django pk) is stored as its decimal string, so ``campaign_id=42`` reads back as ``"42"``.
* labels — ``reason channel platform country device_type tier``: strings.
* ``price`` / ``win_price`` (CPM, USD) and ``amount``: floats; ``latency_us`` and ``stars``: ints.
* ``extra``: a dict of anything else, stored as JSON text (values JSON cannot hold — Decimal, UUID,
  datetime — are stored as their ``str``). ``bid_request`` events are sampled: the emitter of a sampled
  ``bid_request`` puts ``extra={"sample_rate": 0.01}`` so raw counts can be scaled.

Absent fields are stored as ``""`` (strings) or NULL (numbers) and read back as ``None``.

The wire form between the emitter's flusher and the consumer is a *row*: a tuple in :data:`COLUMNS`
order with the timestamp as integer microseconds since the epoch (:func:`to_row`); normalising in
the flusher means a bad value is caught in the process that emitted it, never in the consumer
where it would poison a whole batch.
"""
from __future__ import annotations

import datetime as dt
import math
import uuid
from collections.abc import Callable
from typing import Any

import msgspec
import orjson

from apps.analytics import _rows, bid_inputs, event_ids, rl_decisions

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "bid_request", "bid_response", "no_bid", "win", "click",
        "loyalty_earn", "loyalty_redeem", "loyalty_expire", "loyalty_adjust", "loyalty_tier_change",
        "activation_queued", "activation_sent", "activation_delivered", "activation_failed",
        "email_delivered", "email_open", "email_click", "email_bounce", "email_spamreport",
        "email_unsubscribe",
        "dsp_bid", "dsp_win", "dsp_timeout", "dsp_error",
        "reward_signal",
    }
)

#: Records with a table of their own (``emit_record``): kind → (table, insert columns, the consumer's
#: last conversion of a row without its kind). One record
#: becomes one or more wire rows (:func:`record_rows`) that start like an event's (``event_id, kind,
#: seconds, microseconds``); the consumer routes them by kind and inserts them without the kind.
RECORDS: dict[str, tuple[str, tuple[str, ...], Callable[[tuple], tuple]]] = {
    bid_inputs.KIND: (bid_inputs.TABLE, bid_inputs.COLUMNS, bid_inputs.insert_row),
    rl_decisions.KIND: (rl_decisions.TABLE, rl_decisions.COLUMNS, rl_decisions.insert_row),
}
_RECORD_ROWS: dict[str, Callable[[int, tuple], list[tuple]]] = {
    bid_inputs.KIND: bid_inputs.to_rows, rl_decisions.KIND: rl_decisions.to_rows,
}


def record_rows(kind: str, ts_us: int, values: tuple) -> list[tuple]:
    """The wire rows of one record (flusher side). Raises InvalidEvent."""
    try:
        return _RECORD_ROWS[kind](ts_us, values)
    except ValueError as exc:
        raise InvalidEvent(str(exc)) from exc

ID_FIELDS = ("request_id", "user_id", "campaign_id", "offer_id", "bid_id", "imp_id", "activation_id")
LABEL_FIELDS = ("reason", "channel", "platform", "country", "device_type", "tier")
FLOAT_FIELDS = ("price", "win_price", "amount")
INT_FIELDS = ("latency_us", "stars")
STR_FIELDS = ID_FIELDS + LABEL_FIELDS

#: Every optional field ``emit`` accepts, in the order they are stored.
FIELDS: tuple[str, ...] = (
    "request_id", "user_id", "campaign_id", "offer_id", "bid_id", "imp_id",
    "price", "win_price", "latency_us", "reason", "channel", "activation_id",
    "stars", "amount", "platform", "country", "device_type", "tier", "extra",
)
FIELD_SET: frozenset[str] = frozenset(FIELDS)

#: Columns of ``analytics_events`` that a row carries, in row order.
COLUMNS: tuple[str, ...] = ("event_id", "event_type", "timestamp", "timestamp_us") + FIELDS

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


class Event(msgspec.Struct, kw_only=True, omit_defaults=True):
    """One analytics event as read back (and as documented for every emitter)."""

    event_id: str
    event_type: str
    timestamp: dt.datetime
    request_id: str | None = None
    user_id: str | None = None
    campaign_id: str | None = None
    offer_id: str | None = None
    bid_id: str | None = None
    imp_id: str | None = None
    price: float | None = None
    win_price: float | None = None
    latency_us: int | None = None
    reason: str | None = None
    channel: str | None = None
    activation_id: str | None = None
    stars: int | None = None
    amount: float | None = None
    platform: str | None = None
    country: str | None = None
    device_type: str | None = None
    tier: str | None = None
    extra: dict[str, Any] | None = None


class InvalidEvent(ValueError):
    """A field value that cannot be stored (raised in the flusher, counted and logged there)."""


def check(event_type: str, fields: dict[str, Any]) -> None:
    """The cheap checks ``emit`` does on the caller's thread: ValueError / TypeError."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown analytics event type {event_type!r}")
    if not fields.keys() <= FIELD_SET:
        unknown = sorted(set(fields) - FIELD_SET)
        raise TypeError(f"unknown analytics event field(s) {unknown} for {event_type!r}")


def _json_default(value: Any) -> str:
    return str(value)


_STR_SET = frozenset(STR_FIELDS)
_EMPTY_STRING_FIELDS = _STR_SET | {"extra"}  # String columns: absent is ''; numbers: NULL
_FLOAT_SET = frozenset(FLOAT_FIELDS)
_INT_SET = frozenset(INT_FIELDS)


def _kind(name: str) -> type:
    return str if name in _STR_SET else float if name in _FLOAT_SET else int if name in _INT_SET else dict


#: Per field: its index in a row and the Python type stored for it (``dict`` for ``extra``).
_PLAN: dict[str, tuple[int, type]] = {name: (4 + i, _kind(name)) for i, name in enumerate(FIELDS)}
#: A row's field values when absent: ``""`` for String columns (and ``extra``), NULL for numbers.
_DEFAULTS: tuple = tuple("" if name in _EMPTY_STRING_FIELDS else None for name in FIELDS)


def to_row(event_type: str, event_id: str, ts_us: int, fields: dict[str, Any]) -> tuple:
    """Normalise one emitted event into a storable row (see module docstring). Raises InvalidEvent.

    Runs in the flusher thread for every event: it starts from the row of defaults and converts only
    the fields the event carries (a bid response carries 11 of 19), the common case — a ``str`` id or
    label, a ``float`` price, an ``int`` latency — with one type test."""
    out = [event_id, event_type, ts_us // 1_000_000, ts_us % 1_000_000, *_DEFAULTS]
    for name, value in fields.items():
        if value is None:
            continue
        plan = _PLAN.get(name)
        if plan is None:  # emit() refuses unknown fields; a hand-made row just ignores them
            continue
        index, kind = plan
        cls = type(value)
        if cls is kind and cls is not dict:
            if cls is float and not math.isfinite(value):
                raise InvalidEvent(f"{name} must be finite, got {value!r}")
            if cls is int and not _INT64_MIN <= value <= _INT64_MAX:
                raise InvalidEvent(f"{name} out of range: {value!r}")
            out[index] = value
        else:
            out[index] = _convert(name, kind, value)
    return tuple(out)


def _convert(name: str, kind: type, value: Any) -> Any:
    """The slow path of :func:`to_row`: anything but the column's own Python type."""
    if kind is str:
        # ints and UUIDs are fine as ids; a float, a bool or a container is a programming error
        if isinstance(value, bool) or not isinstance(value, (int, uuid.UUID, str)):
            raise InvalidEvent(f"{name} must be a string or an int id, got {type(value).__name__}")
        return str(value)
    if kind is float:
        if isinstance(value, bool):
            raise InvalidEvent(f"{name} must be a number, got bool")
        try:
            number = float(value)
        except (TypeError, ValueError) as exc:
            raise InvalidEvent(f"{name} must be a number, got {value!r}") from exc
        if not math.isfinite(number):
            raise InvalidEvent(f"{name} must be finite, got {value!r}")
        return number
    if kind is int:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InvalidEvent(f"{name} must be an int, got {value!r}")
        if isinstance(value, float):
            if not math.isfinite(value):
                raise InvalidEvent(f"{name} must be finite, got {value!r}")
            value = int(round(value))
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise InvalidEvent(f"{name} out of range: {value!r}")
        return int(value)
    # extra
    if not isinstance(value, dict):
        raise InvalidEvent(f"extra must be a dict, got {type(value).__name__}")
    return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()


#: Index of the whole-second timestamp in a row; the consumer turns it into a datetime.
TS_INDEX = 2

UTC = dt.timezone.utc


def row_to_insert(row: list | tuple) -> tuple:
    """A decoded wire row → the tuple ``clickhouse_driver`` inserts (timestamp as a UTC datetime)."""
    values = list(row)
    values[TS_INDEX] = dt.datetime.fromtimestamp(values[TS_INDEX], UTC)
    return tuple(values)


def from_db(record: dict[str, Any]) -> Event:
    """A row read from ``analytics_events`` (a column → value dict) → :class:`Event`."""
    ts = record["timestamp"]
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    kwargs: dict[str, Any] = {
        "event_id": record["event_id"],
        "event_type": record["event_type"],
        "timestamp": ts.astimezone(UTC).replace(microsecond=int(record.get("timestamp_us") or 0)),
    }
    for name in FIELDS:
        value = record.get(name)
        if name == "extra":
            kwargs[name] = orjson.loads(value) if value else None
        elif value == "" or value is None:
            kwargs[name] = None
        else:
            kwargs[name] = value
    return Event(**kwargs)



#: The bid path's record of one answered request, when its processor writes to the emitter's own
#: methods: its ``bid_response`` events and its serve-time inputs in one buffer entry,
#: ``(ctx, per_bid, latency_us)`` with ``ctx`` and ``per_bid`` as in :mod:`apps.analytics.bid_inputs`.
#: The flusher turns it into the same wire rows the separate ``emit`` calls and ``bid_inputs`` record
#: would have given (:func:`served_rows`), for one buffer append per request instead of one per bid
#: plus one, and no keyword dict per bid.
SERVED = "bid_served"
_new_event_id = event_ids.new_event_id


def bid_response_fields(ctx: tuple, bid: tuple, latency_us: int) -> dict[str, Any]:
    """The ``bid_response`` event's fields (what ``emit`` would get) for one bid of a served record."""
    offer = bid[4]
    return {"request_id": ctx[0], "user_id": ctx[2], "campaign_id": offer[0], "offer_id": offer[1],
            "bid_id": bid[0], "imp_id": bid[1], "price": bid[5], "latency_us": latency_us,
            "device_type": ctx[9], "country": ctx[10], "tier": ctx[3]}


def served_rows(ts_us: int, values: tuple) -> list[tuple]:
    """The wire rows of a :data:`SERVED` record: one ``bid_response`` event row per bid (an event id
    drawn here, the record's timestamp), then the ``bid_inputs`` rows. Each event row is what
    :func:`to_row` makes of :func:`bid_response_fields`, built directly when every value has its
    column's own type (the bid path's always do; ``apps.analytics._rows``, compiled where built),
    else by ``to_row`` itself. Raises InvalidEvent."""
    try:
        ctx, per_bid, latency_us = values
        rows = _rows.bid_response_rows(ts_us // 1_000_000, ts_us % 1_000_000, ctx, per_bid, latency_us,
                                       _new_event_id)
        for i, row in enumerate(rows):
            if row is None:
                rows[i] = to_row("bid_response", _new_event_id(), ts_us,
                                 bid_response_fields(ctx, per_bid[i], latency_us))
        rows.extend(bid_inputs.to_rows(ts_us, (ctx, per_bid)))
    except InvalidEvent:
        raise
    except bid_inputs.InvalidRecord as exc:
        raise InvalidEvent(str(exc)) from exc
    except (TypeError, ValueError, IndexError) as exc:
        raise InvalidEvent(f"bad {SERVED} record: {type(exc).__name__}: {exc}") from exc
    return rows


_RECORD_ROWS[SERVED] = served_rows
#: Rows already converted and msgpack-encoded by the emitter (``Emitter.emit_served``): a tuple of
#: ``msgspec.Raw`` rows, which the flusher's msgpack writes as they are (the same bytes).
ENCODED = "encoded_rows"
_RECORD_ROWS[ENCODED] = lambda ts_us, values: list(values)
#: The kinds ``emit_record`` accepts: each table's record, and the bid path's :data:`SERVED`.
RECORD_KINDS: frozenset[str] = frozenset(_RECORD_ROWS)
