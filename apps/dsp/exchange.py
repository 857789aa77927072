"""The fan-out: one bid request to every eligible platform at once, under one deadline
(docs/RULES.md §6, Prebid Server's ``exchange.getAllBids``).

1. Deadline ``min(tmax, DSP_TMAX_CAP_MS) - DSP_NETWORK_BUFFER_MS`` from the moment the request arrived;
   each platform gets ``min(its timeout, what is left)`` as its ``tmax`` and is skipped when that is
   under ``DSP_MIN_PLATFORM_MS``.
2. Skips, cheapest first: ``disabled``, ``budget`` (over its hourly budget), ``ineligible`` (too little
   time, or the adapter cannot take the request), ``breaker`` (open), ``qps`` (bucket empty).
3. The calls run as tasks waited on together until the deadline; what is not done then is counted as
   ``timeout`` and the answer goes out. Such a call is cancelled ``DSP_LATE_GRACE_MS`` later (50 ms):
   one only a little late gives its keep-alive connection back instead of costing a new one. A
   platform's failure is its own outcome, never the caller's.
4. Bids are validated as Prebid Server does (``id``, ``impid`` in the request, price > 0 unless a deal,
   ``crid``, currency in ``request.cur``: no rate source is reachable, so another currency is refused
   with reason ``currency``), multiplied by the platform's adjustment factor and dropped below the
   impression's ``bidfloor``.
5. Per impression the highest adjusted price wins; the answer's ``seatbid`` holds the winners
   (``seat`` = platform name) and ``ext.dsp`` every platform's outcome, latency and best price.
6. After answering: the auction's bids are stored for the win notice (``dsp:auction:{id}``), analytics
   events and breaker updates are written.
"""
from __future__ import annotations

import asyncio
import gzip
import time

import orjson
import structlog

from apps.analytics.emitter import emit as default_emit
from apps.bidding.openrtb import BidRequest
from apps.dsp import metrics
from apps.dsp import platforms as store
from apps.dsp.adapters import ADAPTERS, Ineligible, InvalidAnswer, OutRequest, PlatformConf
from apps.dsp.book import PlatformBook
from apps.dsp.conf import DspConfig
from apps.dsp.http import Transport, transport_class
from apps.dsp.macros import substitute

log = structlog.get_logger(__name__)
_perf = time.perf_counter

BID = "bid"
NO_BID = "no_bid"
TIMEOUT = "timeout"
ERROR = "error"
SKIPPED = "skipped"
#: How late past the deadline the fan-out may wake before its timeouts are taken as its own stall.
LOOP_LAG_S = 0.02
#: Markup macros the caller above us fills in (its clearing price), left as they are in ``adm``.
_KEEP_IN_ADM = frozenset({"AUCTION_PRICE", "AUCTION_LOSS", "AUCTION_MIN_TO_WIN"})


class Outcome:
    __slots__ = ("platform", "status", "reason", "latency_ms", "bids", "currency", "closed", "requests", "ours")

    def __init__(self, platform: PlatformConf, status: str, reason: str | None = None, latency_ms: float | None = None):
        self.platform = platform
        self.status = status
        self.reason = reason
        self.latency_ms = latency_ms
        self.bids: list[tuple[str, float, dict]] = []  # (impid, adjusted price, bid)
        self.currency = "USD"
        self.closed = False  # reported as a timeout: a late answer in the grace changes nothing
        self.requests: list[OutRequest] = []
        self.ours = False  # a timeout of our making (this worker woke up late): not held against the platform

    def as_ext(self) -> dict:
        out: dict = {"outcome": self.status}
        if self.reason:
            out["reason"] = self.reason
        if self.latency_ms is not None:
            out["latency_ms"] = round(self.latency_ms, 2)
        if self.bids:
            out["price"] = round(max(price for _, price, _ in self.bids), 6)
        return out


class DspExchange:
    def __init__(self, config: DspConfig | None = None, *, redis=None, pubsub_redis=None, emit=default_emit,
                 book: PlatformBook | None = None, **book_options):
        self.config = config or DspConfig.from_env()
        if redis is None:
            from apps.bidding.bidder import bid_redis

            redis = bid_redis(self.config.redis_url)
            pubsub_redis = bid_redis(self.config.redis_url, socket_timeout=None, health_check_interval=5)
        self.redis = redis
        self.pubsub_redis = pubsub_redis
        self.book = book or PlatformBook(self.config, redis, pubsub_redis=pubsub_redis, **book_options)
        self.emit = emit
        self.transports: dict[int, Transport] = {}
        self._background: set[asyncio.Task] = set()
        self._records: list[tuple[str, bytes]] = []
        self._breaker_updates: list = []
        self._flusher: asyncio.Task | None = None
        self._notice_transports: dict[str, Transport] = {}
        self.started = False

    async def start(self) -> None:
        if not self.started:
            self.started = True
            await self.book.start()

    async def flush(self, timeout: float = 2.0) -> None:
        """Wait (bounded) for what answered fan-outs left to write (tests, shutdown)."""
        if self._flusher is not None and not self._flusher.done():
            await asyncio.wait({self._flusher}, timeout=timeout)

    async def stop(self) -> None:
        await self.book.stop()
        await self.flush()
        for task in list(self._background):
            task.cancel()
        for transport in [*self.transports.values(), *self._notice_transports.values()]:
            try:  # bounded: a pool closing connections it had cancelled mid-answer must not hold shutdown
                await asyncio.wait_for(transport.close(), 2.0)
            except (TimeoutError, Exception) as exc:  # noqa: BLE001
                log.warning("dsp_transport_close_failed", platform=transport.platform, error=f"{type(exc).__name__}: {exc}")
        self.transports, self._notice_transports = {}, {}
        self.started = False

    def transport(self, platform: PlatformConf) -> Transport:
        transport = self.transports.get(platform.id)
        if transport is None or type(transport) is not transport_class(self.config.http_client, platform.endpoint_url):
            cls = transport_class(self.config.http_client, platform.endpoint_url)
            if transport is not None:  # the endpoint moved to or from https: a pool of the other kind
                asyncio.ensure_future(transport.close())
            transport = self.transports[platform.id] = cls(platform.name, self.config.pool_size)
        return transport

    def new_connections(self) -> int:
        return sum(getattr(t, "new_connections", 0) for t in self.transports.values())

    # --- the fan-out -------------------------------------------------------------------------------
    async def fanout(self, original: dict, request: BidRequest, *, started: float | None = None) -> dict:
        """The BidResponse (a dict, with ``ext.dsp``) for ``request``; ``original`` is its JSON as sent."""
        started = _perf() if started is None else started
        cfg = self.config
        tmax = request.tmax or cfg.tmax_cap_ms
        deadline = started + (min(tmax, cfg.tmax_cap_ms) - cfg.network_buffer_ms) / 1000
        hour = store.hour_of(time.time())
        book = self.book
        outcomes: list[Outcome] = []
        calls: dict[asyncio.Task, Outcome] = {}
        for platform in book.platforms:
            gate = book.gates[platform.id]
            if not platform.enabled:
                outcomes.append(Outcome(platform, SKIPPED, "disabled"))
                continue
            if book.is_over_budget(platform.id, hour):
                outcomes.append(Outcome(platform, SKIPPED, "budget"))
                continue
            left_ms = int((deadline - _perf()) * 1000)
            platform_ms = min(platform.timeout_ms, left_ms)
            if platform_ms < cfg.min_platform_ms:
                outcomes.append(Outcome(platform, SKIPPED, "ineligible"))
                continue
            adapter = ADAPTERS.get(platform.kind)
            try:
                if adapter is None:
                    raise Ineligible("kind")
                requests = adapter.make_requests(original, platform, platform_ms)
            except Ineligible:
                outcomes.append(Outcome(platform, SKIPPED, "ineligible"))
                continue
            if not await gate.allow():
                outcomes.append(Outcome(platform, SKIPPED, "breaker"))
                continue
            if not gate.try_acquire():
                outcomes.append(Outcome(platform, SKIPPED, "qps"))
                continue
            outcome = Outcome(platform, TIMEOUT)
            outcome.requests = requests
            outcomes.append(outcome)
            task = asyncio.ensure_future(self._call(platform, adapter, requests, platform_ms / 1000, request, outcome))
            calls[task] = outcome
        if calls:
            _done, pending = await asyncio.wait(calls, timeout=max(0.0, deadline - _perf()))
            if pending:
                loop = asyncio.get_running_loop()
                # Woken well past the deadline: the loop had no CPU (or was blocked), so an answer may have
                # been sitting unread: the timeout is ours, and the platform's breaker is not charged for it.
                ours = _perf() - deadline > LOOP_LAG_S
                for task in pending:
                    late = calls[task]
                    late.status, late.reason, late.latency_ms = TIMEOUT, None, (_perf() - started) * 1000
                    late.closed = True
                    late.ours = ours
                    task.add_done_callback(_swallow)
                    # A call cancelled mid-answer loses its connection (a new one next time); one that is only a
                    # little late may finish within the grace and give its connection back to the pool.
                    if cfg.late_grace_ms > 0:
                        loop.call_later(cfg.late_grace_ms / 1000, task.cancel)
                    else:
                        task.cancel()
        response, winners = self._auction(request, outcomes)
        self._after(request, outcomes, winners, started)
        return response

    async def _call(self, platform: PlatformConf, adapter, requests: list[OutRequest], timeout_s: float,
                    request: BidRequest, outcome: Outcome) -> None:
        t0 = _perf()
        transport = self.transport(platform)
        try:
            async with asyncio.timeout(timeout_s + self.config.late_grace_ms / 1000):
                if len(requests) == 1:
                    answers = [await self._post(transport, platform, requests[0])]
                else:
                    answers = await asyncio.gather(*(self._post(transport, platform, r) for r in requests))
        except TimeoutError:
            if not outcome.closed:
                elapsed = _perf() - t0
                outcome.status, outcome.latency_ms = TIMEOUT, elapsed * 1000
                outcome.ours = elapsed - timeout_s - self.config.late_grace_ms / 1000 > LOOP_LAG_S
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - connection refused/reset, bad gzip...: this platform's error
            if outcome.closed:
                return
            outcome.status, outcome.reason = ERROR, "connection"
            outcome.latency_ms = (_perf() - t0) * 1000
            log.debug("dsp_call_failed", platform=platform.name, error=f"{type(exc).__name__}: {exc}")
            return
        if outcome.closed:
            return
        outcome.latency_ms = (_perf() - t0) * 1000
        try:
            parsed = [adapter.parse(req, status, headers, body) for req, (status, headers, body) in zip(requests, answers, strict=False)]
        except InvalidAnswer as exc:
            outcome.status, outcome.reason = ERROR, exc.reason
            return
        except Exception:  # noqa: BLE001 - an adapter bug must not fail the fan-out (PBS recoverSafely)
            log.exception("dsp_adapter_failed", platform=platform.name)
            outcome.status, outcome.reason = ERROR, "adapter"
            return
        self._validate(platform, request, requests, parsed, outcome)

    async def _post(self, transport: Transport, platform: PlatformConf, out: OutRequest):
        body, headers = out.body, out.headers
        if platform.gzip:
            body = gzip.compress(body, compresslevel=1)
            headers = {**headers, "content-encoding": "gzip"}
        return await transport.post(out.url, body, headers)

    @staticmethod
    def _validate(platform: PlatformConf, request: BidRequest, requests: list[OutRequest], parsed, outcome: Outcome) -> None:
        imps = {imp.id: imp for imp in request.imp}
        allowed = request.cur or ["USD"]
        rejected: list[str] = []
        factor = platform.bid_adjustment
        for out, answer in zip(requests, parsed, strict=False):
            for bid in answer.bids:
                impid, price = bid.get("impid"), bid.get("price")
                if not isinstance(bid.get("id"), str) or not bid["id"]:
                    rejected.append("id")
                elif impid not in out.imp_ids:
                    rejected.append("impid")
                elif isinstance(price, bool) or not isinstance(price, (int, float)) or (price <= 0 and not bid.get("dealid")):
                    rejected.append("price")
                elif not bid.get("crid"):
                    rejected.append("crid")
                elif answer.currency not in allowed:
                    rejected.append("currency")
                else:
                    imp = imps[impid]
                    adjusted = float(price) * factor
                    if imp.bidfloor and imp.bidfloorcur != answer.currency:
                        rejected.append("currency")
                    elif adjusted < imp.bidfloor:
                        rejected.append("bidfloor")
                    else:
                        outcome.bids.append((impid, adjusted, bid))
                        outcome.currency = answer.currency
        if outcome.bids:
            outcome.status = BID
        elif rejected and any(r != "bidfloor" for r in rejected):
            outcome.status, outcome.reason = ERROR, next(r for r in rejected if r != "bidfloor")
        else:
            outcome.status = NO_BID
            outcome.reason = "bidfloor" if rejected else None

    # --- the auction and the answer ----------------------------------------------------------------
    def _auction(self, request: BidRequest, outcomes: list[Outcome]):
        allowed = request.cur or ["USD"]
        currencies = {o.currency for o in outcomes if o.bids}
        currency = next((c for c in allowed if c in currencies), allowed[0])
        best: dict[str, tuple[float, Outcome, dict]] = {}
        for outcome in outcomes:
            if not outcome.bids:
                continue
            if outcome.currency != currency:  # only one currency per answer, and no rates to compare them
                outcome.bids, outcome.status, outcome.reason = [], ERROR, "currency"
                continue
            for impid, price, bid in outcome.bids:
                current = best.get(impid)
                if current is None or price > current[0]:
                    best[impid] = (price, outcome, bid)
        seats: dict[str, list[dict]] = {}
        for impid, (price, outcome, bid) in best.items():
            name = outcome.platform.name
            values = {"AUCTION_ID": request.id, "AUCTION_BID_ID": str(bid["id"]), "AUCTION_IMP_ID": impid,
                      "AUCTION_SEAT_ID": name, "AUCTION_AD_ID": str(bid.get("adid") or ""), "AUCTION_CURRENCY": currency}
            out = {k: v for k, v in bid.items() if k not in ("nurl", "burl", "lurl", "ext")}
            out["price"] = round(price, 6)
            if isinstance(out.get("adm"), str):
                out["adm"] = substitute(out["adm"], values, keep=_KEEP_IN_ADM)
            seats.setdefault(name, []).append(out)
        response = {
            "id": request.id,
            "cur": currency,
            "seatbid": [{"seat": name, "bid": bids} for name, bids in seats.items()],
            "ext": {"dsp": {o.platform.name: o.as_ext() for o in outcomes}},
        }
        return response, best

    def _after(self, request: BidRequest, outcomes: list[Outcome], winners: dict, started: float) -> None:
        """What follows the answer, off its path: the auction record, events, breakers, metrics."""
        total_ms = (_perf() - started) * 1000
        metrics.record(outcomes, total_ms)
        record: dict[str, list[dict]] = {}
        for outcome in outcomes:
            p = outcome.platform
            if outcome.status in (BID, NO_BID):
                self.emit("dsp_bid", request_id=request.id, platform=p.name, reason=outcome.status,
                          latency_us=int((outcome.latency_ms or 0) * 1000),
                          price=max((price for _, price, _ in outcome.bids), default=None))
            elif outcome.status == TIMEOUT:
                self.emit("dsp_timeout", request_id=request.id, platform=p.name,
                          latency_us=int((outcome.latency_ms or 0) * 1000))
                self._timeout_notices(outcome)
            elif outcome.status == ERROR:
                self.emit("dsp_error", request_id=request.id, platform=p.name, reason=outcome.reason,
                          latency_us=int((outcome.latency_ms or 0) * 1000))
            for impid, price, bid in outcome.bids:
                won = winners.get(impid, (0, None, None))[2] is bid
                record.setdefault(impid, []).append({
                    "platform_id": p.id, "platform": p.name, "bid_id": str(bid["id"]), "price": price,
                    "factor": p.bid_adjustment, "currency": outcome.currency, "won": won,
                    "nurl": bid.get("nurl"), "burl": bid.get("burl"), "lurl": bid.get("lurl"),
                    "adid": bid.get("adid"),
                })
        if record:
            self._records.append((store.auction_key(request.id), orjson.dumps(record)))
        gates = self.book.gates
        for o in outcomes:
            if o.status in (BID, NO_BID, TIMEOUT, ERROR) and not o.ours:
                gate = gates.get(o.platform.id)
                if gate is not None and gate.needs_record(o.status in (BID, NO_BID)):
                    self._breaker_updates.append((gate, o.status in (BID, NO_BID)))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.ensure_future(self._flush())
            self._background.add(self._flusher)
            self._flusher.add_done_callback(self._background.discard)

    def _timeout_notices(self, outcome: Outcome) -> None:
        """Fire-and-forget timeout notices for the adapters that send one (Meta), 200 ms each."""
        adapter = ADAPTERS.get(outcome.platform.kind)
        if adapter is None:
            return
        for out in outcome.requests:
            url = adapter.timeout_notice(out, outcome.platform)
            if url:
                task = asyncio.ensure_future(self._notify(url))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    async def _notify(self, url: str) -> None:
        cls = transport_class(self.config.http_client, url)
        transport = self._notice_transports.get(cls.name)
        if transport is None:
            transport = self._notice_transports[cls.name] = cls("timeout-notices", 16)
        try:
            async with asyncio.timeout(0.2):
                await transport.notify(url)
        except Exception as exc:  # noqa: BLE001 - best effort, as Prebid Server's
            log.debug("dsp_timeout_notice_failed", url=url[:200], error=f"{type(exc).__name__}: {exc}")

    async def _flush(self) -> None:
        """Write what answered fan-outs left behind, batched: every auction record of the last
        millisecond in one pipelined round trip (one per fan-out measured ~25 % of a fan-out's CPU),
        then the breaker updates."""
        await asyncio.sleep(0.001)
        records, self._records = self._records, []
        updates, self._breaker_updates = self._breaker_updates, []
        try:
            if records:
                pipe = self.redis.pipeline(transaction=False)
                for key, value in records:
                    pipe.set(key, value, ex=self.config.auction_ttl_seconds)
                await pipe.execute()
        except Exception as exc:  # noqa: BLE001 - Redis down: wins for these auctions will be refused
            log.warning("dsp_auction_store_failed", auctions=len(records), error=f"{type(exc).__name__}: {exc}")
        for gate, ok in updates:
            try:
                await gate.record(ok)
            except Exception as exc:  # noqa: BLE001 - the breaker's store is down: it stays as it was
                log.warning("dsp_breaker_update_failed", platform=gate.platform.name, error=f"{type(exc).__name__}: {exc}")


def _swallow(task: asyncio.Task) -> None:
    if not task.cancelled():
        task.exception()
