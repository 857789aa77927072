"""Serve ``BiddingService`` (proto/bidding.proto) with grpc.aio."""
from __future__ import annotations

import asyncio

import structlog
from django.core.management.base import BaseCommand

from apps.bidding import runner

log = structlog.get_logger(__name__)


class Command(BaseCommand):
    help = "Serve the gRPC BiddingService (ProcessBid, StreamBids, HealthCheck) on :9090."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9090, help="0 picks a free port (printed at start-up)")

    def handle(self, *args, host, port, **options):
        runner.bid_process_environment()
        runner.ensure_snapshot()
        asyncio.run(self._serve(host, port))

    async def _serve(self, host: str, port: int) -> None:
        from apps.bidding.bidder import Bidder
        from apps.bidding.grpc_server import start_server

        bidder = Bidder()
        await bidder.start()
        server, bound = await start_server(bidder, host=host, port=port)
        log.info("grpc_server_started", address=f"{host}:{bound}", ready=bidder.ready)
        self.stdout.write(f"gRPC BiddingService listening on {host}:{bound}", ending="\n")
        self.stdout.flush()
        try:
            await runner.wait_for_shutdown()
        finally:
            await server.stop(grace=2)
            await bidder.stop()
            log.info("grpc_server_stopped")
