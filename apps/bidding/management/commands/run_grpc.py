"""Serve ``BiddingService`` (proto/bidding.proto) with grpc.aio, in this process or in N pre-forked workers."""
from __future__ import annotations

import asyncio
import sys

import structlog
from django.core.management.base import BaseCommand

from apps.bidding import runner

log = structlog.get_logger(__name__)


class Command(BaseCommand):
    help = "Serve the gRPC BiddingService (ProcessBid, StreamBids, HealthCheck) on :9090."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=9090, help="0 picks a free port (printed at start-up)")
        parser.add_argument("--workers", type=int, default=1,
                            help="worker processes, each with its own SO_REUSEPORT socket on the port "
                                 "(default 1: serve in this process)")

    def handle(self, *args, host, port, workers, **options):
        runner.bid_process_environment()
        runner.ensure_snapshot()
        if workers > 1:
            from apps.bidding.grpc_server import serve_workers

            sys.exit(serve_workers(host=host, port=port, workers=workers))
        asyncio.run(self._serve(host, port))

    async def _serve(self, host: str, port: int) -> None:
        from apps.bidding.grpc_server import serve_until_stopped

        def started(bound: int) -> None:
            self.stdout.write(f"gRPC BiddingService listening on {host}:{bound}", ending="\n")
            self.stdout.flush()

        await serve_until_stopped(host=host, port=port, started=started)
