"""NATS bid agents (docs/REQUEST_FLOW.md "Alternative Entry: NATS Agent").

``count`` asyncio consumers per process subscribe to ``campaign-bids.bid-requests`` in the queue
group ``bid-agents``; NATS spreads messages over every consumer of every process. Each message is an
OpenRTB 2.6 request; the answer — a BidResponse JSON (bids, or an empty ``seatbid`` with ``nbr``) —
goes to the message's reply subject with a ``Processing-Time-Us`` header. Malformed input gets an
``{"error", "detail"}`` reply with the NATS service-error headers (``Nats-Service-Error-Code: 400``).
With ``BID_EXCHANGE_KEYS`` set the ``X-Exchange-Key`` header is required (else a 401 error reply).
"""
from __future__ import annotations

import time

import nats
import structlog

from apps.bidding import metrics, openrtb
from apps.bidding.bidder import Bidder
from apps.omnichannel.agents import start_ingest_consumers

log = structlog.get_logger(__name__)

_perf = time.perf_counter


def _error_reply(status: int, error: str, detail: str) -> tuple[bytes, dict[str, str]]:
    body = openrtb.encode_json({"error": error, "detail": detail})
    return body, {"Nats-Service-Error-Code": str(status), "Nats-Service-Error": f"{error}: {detail}"[:200]}


class BidAgents:
    """The consumers of one process, sharing its ``Bidder``."""

    def __init__(self, bidder: Bidder, *, count: int = 20, subject: str | None = None, queue: str | None = None):
        self.bidder = bidder
        self.count = max(1, count)
        self.subject = subject or bidder.config.nats_subject
        self.queue = queue or bidder.config.nats_queue
        self.nc = None
        self.subscriptions: list = []
        self.ingest_started = False

    async def handle(self, msg) -> None:
        started = _perf()
        nc = self.nc
        if not msg.reply:
            log.debug("bid_agent_message_without_reply", subject=msg.subject)
            return
        cfg = self.bidder.config
        key = msg.headers.get("X-Exchange-Key") if msg.headers else None
        exchange = cfg.exchange_for_key(key)
        if exchange is None:
            body, headers = _error_reply(401, "unauthorized", "missing or unknown X-Exchange-Key header")
            await nc.publish(msg.reply, body, headers=headers)
            return
        try:
            request = openrtb.decode_request(msg.data, max_bytes=cfg.max_body_bytes)
            outcome = await self.bidder.processor.process(request, started=started, exchange=exchange)
        except openrtb.InvalidRequest as exc:
            metrics.INVALID.labels("nats").inc()
            body, headers = _error_reply(400, exc.error, exc.detail)
            await nc.publish(msg.reply, body, headers=headers)
            return
        except Exception:  # noqa: BLE001 - a bug: answer so the requester does not wait for its timeout
            log.exception("bid_agent_failed", subject=msg.subject)
            body, headers = _error_reply(500, "internal_error", "the bidder failed on this request")
            await nc.publish(msg.reply, body, headers=headers)
            return
        body = openrtb.encode_response(outcome.response)
        await nc.publish(msg.reply, body, headers={"Processing-Time-Us": str(int((_perf() - started) * 1e6))})

    async def start(self, nats_url: str | None = None) -> None:
        url = nats_url or self.bidder.config.nats_url

        async def _disconnected():
            log.warning("bid_agents_nats_disconnected", url=url)

        async def _reconnected():
            log.info("bid_agents_nats_reconnected", url=url)

        async def _error(exc):
            log.warning("bid_agents_nats_error", error=f"{type(exc).__name__}: {exc}")

        self.nc = await nats.connect(url, name=f"bid-agents-{self.bidder.config.node_id}", max_reconnect_attempts=-1,
                                     reconnect_time_wait=1, disconnected_cb=_disconnected,
                                     reconnected_cb=_reconnected, error_cb=_error)
        for _ in range(self.count):
            self.subscriptions.append(await self.nc.subscribe(self.subject, queue=self.queue, cb=self.handle))
        await self.nc.flush()
        log.info("bid_agents_started", consumers=self.count, subject=self.subject, queue=self.queue, url=url)
        # The omnichannel ingest consumers share the connection (docs/REQUEST_FLOW.md flow 5.2).
        await start_ingest_consumers(self.nc)
        self.ingest_started = True
        log.info("ingest_consumers_started")

    async def stop(self) -> None:
        if self.nc is not None and not self.nc.is_closed:
            try:
                await self.nc.drain()
            except Exception as exc:  # noqa: BLE001 - shutting down anyway
                log.warning("bid_agents_drain_failed", error=f"{type(exc).__name__}: {exc}")
        self.subscriptions = []
