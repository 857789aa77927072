"""The gRPC sidecar: ``BiddingService`` (proto/bidding.proto) over the process's ``BidProcessor``.

``ProcessBid`` answers one request (malformed input → ``INVALID_ARGUMENT``, a bug → ``INTERNAL``);
``StreamBids`` answers a stream in order, one response per message, flagging a malformed message (or
one the bidder failed on) in the response's ``error`` field without ending the stream; ``HealthCheck`` reports SERVING once the model and the offer snapshot are loaded. With
``BID_EXCHANGE_KEYS`` set, calls need the ``x-exchange-key`` metadata (else ``UNAUTHENTICATED``).

``manage.py run_grpc --workers N`` pre-forks N such sidecars on one port (``serve_workers``).
"""
from __future__ import annotations

import socket
import time
from collections.abc import Callable

import grpc
import structlog

from apps.bidding import metrics, openrtb
from apps.bidding.bidder import Bidder
from apps.bidding.grpc_gen import bidding_pb2, bidding_pb2_grpc

log = structlog.get_logger(__name__)

_perf = time.perf_counter
GRACE_SECONDS = 5  # a graceful stop: calls in flight may finish for this long
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
        config = self.bidder.config
        if not config.exchange_keys:  # every caller accepted: no need to build the call's metadata tuple
            return "open"
        exchange = config.exchange_for_key(_exchange_key(context))
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
        """Messages are answered one at a time, in order. Read with ``context.read()`` and written with
        ``context.write()`` (grpc.aio's reader/writer API) rather than iterating ``request_iterator``
        and yielding, which skips grpc.aio's async-generator layers: in 3 alternated pairs it took 7-22 %
        less server CPU per message (callgrind could not tell them apart: median 144k against 148k
        instructions per message, within its run-to-run spread). Answering a stream's messages
        concurrently, or reading the next one ahead, cost more than it saved (bench/README.md, grpc_load)."""
        exchange = await self._authenticate(context)
        while (request := await context.read()) is not grpc.aio.EOF:
            started = _perf()
            try:
                answer = await self._answer(request.openrtb_json, exchange, started)
            except openrtb.InvalidRequest as exc:
                metrics.INVALID.labels("grpc").inc()
                answer = _stream_error(started, f"{exc.error}: {exc.detail}")
            except Exception:  # noqa: BLE001 - one request's failure must not end everyone's stream (proto)
                log.exception("grpc_stream_bid_failed")
                answer = _stream_error(started, f"{INTERNAL_ERROR}: the bidder failed on this request")
            await context.write(answer)

    async def HealthCheck(self, request, context):  # noqa: N802
        status = self.bidder.status()
        serving = bidding_pb2.HealthCheckResponse.SERVING if self.bidder.ready else bidding_pb2.HealthCheckResponse.NOT_SERVING
        return bidding_pb2.HealthCheckResponse(status=serving, model_version=status["model_version"] or "",
                                               snapshot_version=status["snapshot_version"] or 0, offers=status["offers"])


async def start_server(bidder: Bidder, *, host: str = "127.0.0.1", port: int = 9090,
                       reuse_port: bool = False) -> tuple[grpc.aio.Server, int]:
    """Start the gRPC server on ``host:port`` (port 0 picks a free one); returns it and the bound port.

    ``reuse_port``: bind with ``SO_REUSEPORT``, for worker processes sharing a port (``serve_workers``);
    off otherwise, so a second sidecar started on a taken port fails instead of sharing it."""
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.so_reuseport", 1 if reuse_port else 0),
    ])
    bidding_pb2_grpc.add_BiddingServiceServicer_to_server(BiddingServicer(bidder), server)
    bound = server.add_insecure_port(f"{host}:{port}")
    if bound == 0:
        raise OSError(f"gRPC server could not bind {host}:{port}")
    await server.start()
    return server, bound


async def serve_until_stopped(*, host: str, port: int, reuse_port: bool = False,
                              started: Callable[[int], None] = lambda port: None) -> None:
    """One process's sidecar: a ``Bidder`` and its server until SIGTERM or SIGINT, then a graceful stop
    (calls in flight get ``GRACE_SECONDS`` to finish, new ones are refused) and the bidder's shutdown
    (its analytics events flushed). ``started(bound_port)`` is called once it serves."""
    from apps.bidding import runner

    bidder = Bidder()
    await bidder.start()
    server, bound = await start_server(bidder, host=host, port=port, reuse_port=reuse_port)
    log.info("grpc_server_started", address=f"{host}:{bound}", ready=bidder.ready)
    started(bound)
    try:
        await runner.wait_for_shutdown()
    finally:
        await server.stop(grace=GRACE_SECONDS)
        await bidder.stop()
        log.info("grpc_server_stopped")


def _worker(host: str, port: int) -> None:
    """A pre-forked worker (``serve_workers``): its own Bidder and server on the shared port."""
    import asyncio
    import os

    from apps.bidding import runner

    runner.configure_logging()

    def started(bound: int) -> None:
        print(f"gRPC worker {os.getpid()} serving on {host}:{bound}", flush=True)

    asyncio.run(serve_until_stopped(host=host, port=port, reuse_port=True, started=started))


def serve_workers(*, host: str, port: int, workers: int) -> int:
    """Serve with ``workers`` processes, each a whole sidecar (Bidder, L1, model) with its own
    ``SO_REUSEPORT`` listening socket, supervised like the bid app's workers (``apps.bidding.serve``):
    the kernel spreads client connections over them (an HTTP/2 client keeps one connection, so one
    client lands on one worker; several clients, or HAProxy's connections, use them all). Port 0
    picks a free port, held by a bound (not listening) socket while the workers run."""
    from apps.bidding import serve

    held = None
    if port == 0:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        held = socket.socket(family, socket.SOCK_STREAM)
        held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        held.bind((host, 0))
        port = held.getsockname()[1]
    else:
        serve.port_is_free(host, port, label="gRPC sidecar")
    print(f"gRPC BiddingService listening on {host}:{port} ({workers} workers)", flush=True)
    try:
        return serve.supervise(_worker, (host, port), workers=workers, label="gRPC sidecar", where=f"{host}:{port}")
    finally:
        if held is not None:
            held.close()
