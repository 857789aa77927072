"""``POST /v1/dsp/bid`` on the bid app (``apps.bidding.asgi``; not mounted on the web process).

Exchange keys as for ``/v1/bid``; the body is validated with the same decoder
(``apps.bidding.openrtb.decode_request``: malformed → 400 naming the problem) and then forwarded to the
platforms as the JSON the caller sent (the decoder keeps only what our bidder reads; ``ext``,
``source.schain``, consent and publisher fields are for the DSPs). Answers 200 with the BidResponse
(``seatbid`` of the winners, possibly empty, and ``ext.dsp``).
"""
from __future__ import annotations

import time

import orjson

from apps.bidding import asgi as bid_asgi
from apps.bidding import metrics as bid_metrics
from apps.bidding import openrtb

_HEADERS = [(b"content-type", b"application/json"), (b"x-openrtb-version", b"2.6")]


async def handle(scope, receive, send, bidder, exchange) -> None:
    started = time.perf_counter()
    cfg = bidder.config
    limit = cfg.max_body_bytes
    key = None
    for name, value in scope["headers"]:
        if name == b"x-exchange-key":
            key = value.decode("latin-1")
    if cfg.exchange_for_key(key) is None:
        await bid_asgi._send_error(send, 401, "unauthorized", "missing or unknown X-Exchange-Key")
        return
    try:
        body = await bid_asgi._read_body(receive, limit)
        request = openrtb.decode_request(body, max_bytes=limit)
        original = orjson.loads(body)
    except bid_asgi._BodyTooLarge:
        bid_metrics.INVALID.labels("dsp").inc()
        await bid_asgi._send_error(send, 400, "body_too_large", f"request body is over the {limit}-byte limit")
        return
    except bid_asgi._Disconnected:
        return
    except openrtb.InvalidRequest as exc:
        bid_metrics.INVALID.labels("dsp").inc()
        await bid_asgi._send_error(send, 400, exc.error, exc.detail)
        return
    response = await exchange.fanout(original, request, started=started)
    await bid_asgi._send(send, 200, orjson.dumps(response), _HEADERS)
