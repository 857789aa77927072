"""The dedicated bid app: plain ASGI, no Django request machinery (docs/DESIGN.md "The hot path").

Routes:

* ``POST /v1/bid`` — OpenRTB 2.6 bid request → 200 BidResponse, 204 no-bid, 400 ``{"error", "detail"}``
  for malformed input, 401 when ``BID_EXCHANGE_KEYS`` is set and ``X-Exchange-Key`` is missing or wrong.
* ``GET /v1/win?t=<token>&price=<clearing CPM>`` — win notice (our ``nurl``).
* ``GET /v1/click?t=<token>`` — click tracking, 302 to the offer's landing page.
* ``POST /v1/dsp/bid`` — the DSP fan-out (``apps.dsp.route``; bid app only, started at lifespan start-up).
* ``GET /ready`` (503 until the model and the offer snapshot are loaded), ``GET /live``, ``GET /metrics``.

Serve with ``manage.py run_bid_app`` (uvicorn, several workers). The web process also mounts the
``/v1/bid``, ``/v1/win`` and ``/v1/click`` paths (``apps.core.routing``); there is no lifespan
there, so the bidder starts on the first request.
"""
from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from urllib.parse import parse_qs

import structlog

from apps.analytics.emitter import emit
from apps.bidding import metrics, openrtb, runner, wins
from apps.bidding.bidder import Bidder
from apps.bidding.protocol import RESPONSE_EXTENSION
from apps.bidding.tokens import BadToken, parse_click_token
from apps.core import metrics as core_metrics

log = structlog.get_logger(__name__)

_JSON = [(b"content-type", b"application/json")]
_BID_HEADERS = [(b"content-type", b"application/json"), (b"x-openrtb-version", b"2.6")]
_NO_BID_START = {"type": "http.response.start", "status": 204, "headers": [(b"x-openrtb-version", b"2.6")]}
_EMPTY_BODY = {"type": "http.response.body", "body": b""}
# The same two answers as whole responses, for the bid workers' server (apps.bidding.protocol): one
# message of ready bytes, no header list to build and check per request.
_BID_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nx-openrtb-version: 2.6\r\ncontent-length: "
_NO_BID_WHOLE = {"type": RESPONSE_EXTENSION, "head": b"HTTP/1.1 204 No Content\r\nx-openrtb-version: 2.6\r\n",
                 "body": b""}
_NO_EXTENSIONS: dict = {}
_perf = time.perf_counter

async def _send(send, status: int, body: bytes, headers=_JSON) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*headers, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def _send_error(send, status: int, error: str, detail: str) -> None:
    await _send(send, status, openrtb.encode_json({"error": error, "detail": detail}))


class _BodyTooLarge(Exception):
    pass


class _Disconnected(Exception):
    pass


async def _read_body(receive, limit: int) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise _Disconnected
    body = message.get("body", b"")
    if not message.get("more_body", False):
        if len(body) > limit:
            raise _BodyTooLarge
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _BodyTooLarge
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _bid(scope, receive, send, bidder: Bidder) -> None:
    started = _perf()
    cfg = bidder.config
    limit = cfg.max_body_bytes
    key = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                declared = int(value)
            except ValueError:
                declared = 0
            if declared > limit:
                metrics.INVALID.labels("http").inc()
                await _send_error(send, 400, "body_too_large", f"request body is {declared} bytes; the limit is {limit}")
                return
        elif name == b"x-exchange-key":
            key = value.decode("latin-1")
    exchange = cfg.exchange_for_key(key)
    if exchange is None:
        await _send_error(send, 401, "unauthorized", "missing or unknown X-Exchange-Key")
        return
    try:
        body = await _read_body(receive, limit)
        request = openrtb.decode_request(body, max_bytes=limit)
    except _BodyTooLarge:
        metrics.INVALID.labels("http").inc()
        await _send_error(send, 400, "body_too_large", f"request body is over the {limit}-byte limit")
        return
    except _Disconnected:
        return
    except openrtb.InvalidRequest as exc:
        metrics.INVALID.labels("http").inc()
        await _send_error(send, 400, exc.error, exc.detail)
        return
    outcome = await bidder.processor.process(request, started=started, exchange=exchange)
    whole = RESPONSE_EXTENSION in (scope.get("extensions") or _NO_EXTENSIONS)
    if outcome.bids:
        body = openrtb.encode_response(outcome.response)
        if whole:
            await send({"type": RESPONSE_EXTENSION, "head": b"%s%d\r\n" % (_BID_HEAD, len(body)), "body": body})
        else:
            await _send(send, 200, body, _BID_HEADERS)
    elif whole:
        await send(_NO_BID_WHOLE)
    else:
        await send(_NO_BID_START)
        await send(_EMPTY_BODY)


def _query(scope) -> dict[str, str]:
    raw = scope.get("query_string", b"").decode("latin-1")
    return {k: v[0] for k, v in parse_qs(raw, keep_blank_values=True).items()}


async def _win(scope, send, bidder: Bidder) -> None:
    q = _query(scope)
    cfg = bidder.config
    token = q.get("t", "")
    snap = bidder.processor.snapshot
    budgets = snap.budgets if snap is not None else {}
    try:
        result = await wins.record_win(bidder.redis, secret=cfg.win_secret, token=token, price=q.get("price"),
                                       now=time.time(), max_age=cfg.win_max_age_seconds, budget_for=budgets.get)
    except wins.WinRejected as exc:
        metrics.WIN_REJECTED.labels(exc.reason).inc()
        await _send_error(send, exc.status, exc.reason, str(exc))
        return
    except Exception as exc:  # noqa: BLE001 - Redis down: the exchange retries the notice later
        log.warning("bid_win_store_unavailable", error=f"{type(exc).__name__}: {exc}")
        await _send_error(send, 503, "unavailable", "win store unavailable, retry later")
        return
    t = result.token
    if result.counted:
        # L1 learns of the impression from the ``bidding:wins`` announcement (every process, this one too).
        if result.budget_exhausted:
            bidder.processor.mark_exhausted(t.campaign_id)
        emit("win", request_id=t.request_id, user_id=t.user_id, campaign_id=t.campaign_id, offer_id=t.offer_id,
             bid_id=t.bid_id, imp_id=t.imp_id, price=t.bid_price_micros / 1_000_000, win_price=float(result.win_price))
    body = {"status": "counted" if result.counted else "duplicate", "bid_id": t.bid_id}
    await _send(send, 200, openrtb.encode_json(body))


async def _click(scope, send, bidder: Bidder) -> None:
    q = _query(scope)
    try:
        t = parse_click_token(bidder.config.win_secret, q.get("t", ""))
    except BadToken as exc:
        await _send_error(send, 403, "bad_token", f"click token rejected: {exc}")
        return
    emit("click", user_id=t.user_id, campaign_id=t.campaign_id, offer_id=t.offer_id, bid_id=t.bid_id)
    await send({"type": "http.response.start", "status": 302,
                "headers": [(b"location", t.landing_url.encode("utf-8")), (b"content-length", b"0")]})
    await send(_EMPTY_BODY)


class BidApp:
    """The ASGI callable. ``bidder_factory`` builds the process's ``Bidder`` (tests pass their own)."""

    def __init__(self, bidder_factory: Callable[[], Bidder] = Bidder, *, configure_logging: bool = True,
                 dsp_factory: Callable | None = None):
        self.bidder_factory = bidder_factory
        self.configure_logging = configure_logging
        self.bidder: Bidder | None = None
        self._start_lock: asyncio.Lock | None = None
        self.dsp_factory = dsp_factory
        self.dsp = None  # apps.dsp.exchange.DspExchange, started on the bid app only
        self._dsp_handle: Callable | None = None

    async def ensure_dsp(self):
        """Start the DSP exchange once (lifespan start-up of the bid app, or its first request)."""
        if self.dsp is None:
            from apps.dsp.exchange import DspExchange
            from apps.dsp.route import handle

            exchange = (self.dsp_factory or DspExchange)()
            await exchange.start()
            if self.dsp is None:
                self.dsp, self._dsp_handle = exchange, handle
            else:
                await exchange.stop()
        return self.dsp

    async def ensure_bidder(self) -> Bidder:
        """Start the bidder once (lifespan startup, or the first request in the web process)."""
        if self.bidder is not None:
            return self.bidder
        if self._start_lock is None:
            self._start_lock = asyncio.Lock()
        async with self._start_lock:
            if self.bidder is None:
                bidder = self.bidder_factory()
                await bidder.start()
                self.bidder = bidder
        return self.bidder

    async def shutdown(self) -> None:
        if self.dsp is not None:
            await self.dsp.stop()
            self.dsp = None
        if self.bidder is not None:
            await self.bidder.stop()
            self.bidder = None

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    if self.configure_logging:
                        runner.configure_logging()
                    await self.ensure_bidder()
                    await self.ensure_dsp()
                except Exception as exc:  # noqa: BLE001 - report the reason to the server, which exits
                    log.exception("bid_app_startup_failed")
                    await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def __call__(self, scope, receive, send) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self._lifespan(receive, send)
            return
        if kind != "http":
            return
        bidder = self.bidder or await self.ensure_bidder()
        path = scope["path"]
        method = scope["method"]
        if path == "/v1/bid":
            if method != "POST":
                await _send_error(send, 405, "method_not_allowed", "use POST for bid requests")
                return
            try:
                await _bid(scope, receive, send, bidder)
            except Exception:  # noqa: BLE001 - a bug, not bad input: log it and answer 500
                log.exception("bid_request_failed")
                await _send_error(send, 500, "internal_error", "the bidder failed on this request")
        elif path == "/v1/win":
            await _win(scope, send, bidder)
        elif path == "/v1/dsp/bid":
            if method != "POST":
                await _send_error(send, 405, "method_not_allowed", "use POST for bid requests")
                return
            dsp = self.dsp or await self.ensure_dsp()
            assert self._dsp_handle is not None
            try:
                await self._dsp_handle(scope, receive, send, bidder, dsp)
            except Exception:  # noqa: BLE001 - a bug, not bad input
                log.exception("dsp_bid_request_failed")
                await _send_error(send, 500, "internal_error", "the DSP exchange failed on this request")
        elif path == "/v1/click":
            await _click(scope, send, bidder)
        elif path == "/ready":
            await _send(send, 200 if bidder.ready else 503, openrtb.encode_json(bidder.status()))
        elif path == "/live":
            await _send(send, 200, b'{"status":"live"}')
        elif path == "/metrics":
            await _send(send, 200, core_metrics.render(),
                        [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")])
        else:
            await _send_error(send, 404, "not_found", f"no route for {path}")


#: ``apps.bidding.asgi:app`` - what uvicorn serves (one bidder per worker process).
app = BidApp()
