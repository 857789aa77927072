"""The gRPC sidecar: ``BiddingService`` (proto/bidding.proto) over the process's ``BidProcessor``.

``ProcessBid`` answers one request (malformed input → ``INVALID_ARGUMENT``, a bug → ``INTERNAL``);
``StreamBids`` answers a stream in order, one response per message, flagging a malformed message (or
one the bidder failed on) in the response's ``error`` field without ending the stream; ``HealthCheck`` reports SERVING once the model and the offer snapshot are loaded. With
``BID_EXCHANGE_KEYS`` set, calls need the ``x-exchange-key`` metadata (else ``UNAUTHENTICATED``).
"""
from __future__ import annotations

import time

import grpc
import structlog

from apps.bidding import metrics, openrtb
from apps.bidding.bidder import Bidder
from apps.bidding.grpc_gen import bidding_pb2, bidding_pb2_grpc

log = structlog.get_logger(__name__)

_perf = time.perf_counter
MAX_MESSAGE_BYTES = 1024 * 1024  # transport limit; the 64 KiB OpenRTB limit is checked (INVALID_ARGUMENT) by decode


def _exchange_key(context) -> str | None:
    for item in context.invocation_metadata() or ():
        if item.key == "x-exchange-key":
            return item.value if isinstance(item.value, str) else item.value.decode("latin-1")
    return None


INTERNAL_ERROR = "internal_error"


def _stream_error(started: float, error: str) -> bidding_pb2.BidResponseProto:
    """A StreamBids item that could not be answered: ``error`` set, empty ``openrtb_json`` (proto)."""
    return bidding_pb2.BidResponseProto(processing_time_us=int((_perf() - started) * 1e6), no_bid=True, error=error)


class BiddingServicer(bidding_pb2_grpc.BiddingServiceServicer):
    def __init__(self, bidder: Bidder):
        self.bidder = bidder

    async def _authenticate(self, context) -> str:
        exchange = self.bidder.config.exchange_for_key(_exchange_key(context))
        if exchange is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or unknown x-exchange-key metadata")
        return exchange

    async def _answer(self, payload: bytes, exchange: str, started: float) -> bidding_pb2.BidResponseProto:
        request = openrtb.decode_request(payload, max_bytes=self.bidder.config.max_body_bytes)
        outcome = await self.bidder.processor.process(request, started=started, exchange=exchange)
        body = openrtb.encode_response(outcome.response)
        return bidding_pb2.BidResponseProto(openrtb_json=body, processing_time_us=int((_perf() - started) * 1e6),
                                            no_bid=not outcome.bids)

    async def ProcessBid(self, request, context):  # noqa: N802 - gRPC method name
        started = _perf()
        exchange = await self._authenticate(context)
        try:
            return await self._answer(request.openrtb_json, exchange, started)
        except openrtb.InvalidRequest as exc:
            metrics.INVALID.labels("grpc").inc()
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"{exc.error}: {exc.detail}")
        except Exception:  # noqa: BLE001 - a bug, not bad input: log it and answer INTERNAL, not UNKNOWN
            log.exception("grpc_bid_failed")
            await context.abort(grpc.StatusCode.INTERNAL, f"{INTERNAL_ERROR}: the bidder failed on this request")

    async def StreamBids(self, request_iterator, context):  # noqa: N802
        exchange = await self._authenticate(context)
        async for request in request_iterator:
            started = _perf()
            try:
                yield await self._answer(request.openrtb_json, exchange, started)
            except openrtb.InvalidRequest as exc:
                metrics.INVALID.labels("grpc").inc()
                yield _stream_error(started, f"{exc.error}: {exc.detail}")
            except Exception:  # noqa: BLE001 - one request's failure must not end everyone's stream (proto)
                log.exception("grpc_stream_bid_failed")
                yield _stream_error(started, f"{INTERNAL_ERROR}: the bidder failed on this request")

    async def HealthCheck(self, request, context):  # noqa: N802
        status = self.bidder.status()
        serving = bidding_pb2.HealthCheckResponse.SERVING if self.bidder.ready else bidding_pb2.HealthCheckResponse.NOT_SERVING
        return bidding_pb2.HealthCheckResponse(status=serving, model_version=status["model_version"] or "",
                                               snapshot_version=status["snapshot_version"] or 0, offers=status["offers"])


async def start_server(bidder: Bidder, *, host: str = "127.0.0.1", port: int = 9090) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server on ``host:port`` (port 0 picks a free one); returns it and the bound port."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 0),
    ])
    bidding_pb2_grpc.add_BiddingServiceServicer_to_server(BiddingServicer(bidder), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"gRPC server could not bind {host}:{port}")
    await server.start()
    return server, bound
