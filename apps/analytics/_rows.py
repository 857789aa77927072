# cython: annotation_typing=False
"""The bid worker flusher's row builders for the bid path's records, in one plain Python module that
``scripts/build_ext.py`` also compiles with Cython as it is (``_rows.cpython-311-*.so`` next to this
file: the import system prefers it). Without the build this very code runs, so both give the same rows
by construction; ``tests/analytics/test_rows.py`` also compares them. Compiled, a record's rows cost
about half (the tuple building and type tests in C): ``bench/README.md``, bid_inprocess.py.

:func:`bid_inputs_rows` is ``apps.analytics.bid_inputs.to_rows`` (see that module for the record and
its rows); :func:`bid_response_rows` the direct path of ``apps.analytics.events.served_rows``.
No annotations on purpose: Cython would read ``float`` as a C double, which converts what Python
would refuse.
"""
import math
from array import array

BID_INPUTS = "bid_inputs"
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_isfinite = math.isfinite


class InvalidRecord(ValueError):
    """A record the flusher cannot turn into a row (counted and logged as an invalid event)."""


def f32(values):
    """A float32 vector as its bytes (native order; every host here is little-endian): one copy, no
    per-element work in the bid worker's flusher. The consumer (``bid_inputs.insert_row``) expands it."""
    if values is None:
        return b""
    dtype = getattr(values, "dtype", None)
    # the bid path's read-only numpy arrays: native float32 (dtype == "float32", without parsing the string)
    if dtype is not None and dtype.char == "f" and dtype.isnative:
        return values.tobytes()
    return array("f", [float(v) for v in values]).tobytes()


def finite(*numbers):
    for number in numbers:
        if not _isfinite(number):
            raise InvalidRecord(f"{BID_INPUTS}: non-finite number {number!r}")


def bid_inputs_rows(ts_us, values):
    """The wire rows of one ``bid_inputs`` record, one per bid. Raises InvalidRecord.

    Does as little as it can: strings pass as they are (``None`` becomes ``""``), float32 vectors
    travel as bytes, the segment ids as a tuple (msgpack writes a tuple as the list it was)."""
    try:
        ctx, per_bid = values
        (request_id, exchange, user_id, tier, interests, segments, loyalty, recency, impressions_1h, device_type,
         country, snapshot_version, model_version, served_at, layout, site_id, site_domain, app_id, app_bundle,
         publisher_id) = ctx
        layout_version, max_per_hour, batch_size = layout
        served_at, recency = float(served_at), float(recency)
        if not (_isfinite(served_at) and _isfinite(recency)):
            finite(served_at, recency)
        shared_user = (
            int(layout_version), int(snapshot_version), model_version or "", served_at, tier or "",
            f32(interests), tuple(map(int, segments)) if segments is not None else (), f32(loyalty),
            recency, int(impressions_1h), int(max_per_hour), device_type or "", country or "",
        )
        shared_context = (exchange or "", site_id or "", site_domain or "", app_id or "", app_bundle or "",
                          publisher_id or "")
        seconds, micros = ts_us // 1_000_000, ts_us % 1_000_000
        request_id, user_id = str(request_id), user_id or ""
        rows = []
        for bid_id, imp_id, imp_tagid, imp_banner_pos, offer, price, position, predicted_ctr, score in per_bid:
            campaign_id, offer_id, category, max_bid_cpm, observed_ctr, creative_format = offer
            price, predicted_ctr, score = float(price), float(predicted_ctr), float(score)
            max_bid_cpm, observed_ctr = float(max_bid_cpm), float(observed_ctr)
            if not (_isfinite(price) and _isfinite(predicted_ctr) and _isfinite(score) and _isfinite(max_bid_cpm)
                    and _isfinite(observed_ctr)):
                finite(price, predicted_ctr, score, max_bid_cpm, observed_ctr)  # raises, naming the first
            rows.append((
                bid_id.replace("-", ""), BID_INPUTS, seconds, micros,
                bid_id, request_id, str(imp_id), user_id, str(campaign_id), str(offer_id),
                price, predicted_ctr, score,
                *shared_user,
                int(position), int(batch_size),
                category or "", max_bid_cpm, observed_ctr, creative_format or "",
                *shared_context,
                imp_tagid or "", int(imp_banner_pos) if imp_banner_pos is not None else -1,
            ))
        return rows
    except InvalidRecord:
        raise
    except (TypeError, ValueError, AttributeError, OverflowError) as exc:
        raise InvalidRecord(f"bad {BID_INPUTS} record: {type(exc).__name__}: {exc}") from exc


def bid_response_rows(seconds, micros, ctx, per_bid, latency_us, new_id):
    """Per bid of a served record its ``bid_response`` event row (``events.COLUMNS`` order; absent
    fields ``""`` for strings and extra, ``None`` for numbers), or ``None`` for a bid whose values are
    not all of their column's own type (the caller converts those with ``events.to_row``). ``ctx``
    must be indexable (the caller checked)."""
    request_id, user_id, tier, device_type, country = ctx[0], ctx[2], ctx[3], ctx[9], ctx[10]
    direct = (type(request_id) is str and type(user_id) is str and type(tier) is str and type(device_type) is str
              and (country is None or type(country) is str) and type(latency_us) is int
              and _INT64_MIN <= latency_us <= _INT64_MAX)
    country = country or ""
    rows = []
    for bid in per_bid:
        bid_id, imp_id, offer, price = bid[0], bid[1], bid[4], bid[5]
        campaign_id, offer_id = offer[0], offer[1]
        if (direct and type(bid_id) is str and type(imp_id) is str and type(campaign_id) is str
                and type(offer_id) is str and type(price) is float and _isfinite(price)):
            rows.append((new_id(), "bid_response", seconds, micros, request_id, user_id, campaign_id, offer_id,
                         bid_id, imp_id, price, None, latency_us, "", "", "", None, None, "", country, device_type,
                         tier, ""))
        else:
            rows.append(None)
    return rows
