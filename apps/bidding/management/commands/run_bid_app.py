"""Serve the dedicated bid app (``apps.bidding.asgi:app``) with uvicorn and several workers."""
from __future__ import annotations

import structlog
from django.core.management.base import BaseCommand

from apps.bidding import runner

log = structlog.get_logger(__name__)


class Command(BaseCommand):
    help = "Serve POST /v1/bid, win notices, /ready, /live and /metrics (plain ASGI) with uvicorn workers."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8081)
        parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
        parser.add_argument("--log-level", default="warning", help="uvicorn's own log level (default warning)")

    def handle(self, *args, host, port, workers, log_level, **options):
        import uvicorn

        runner.bid_process_environment()
        metrics_dir = runner.prepare_multiprocess_metrics(f"bid-{port}")
        runner.ensure_snapshot()
        self.stdout.write(
            f"bid app: http://{host}:{port}/v1/bid  ({workers} uvicorn workers, uvloop + httptools)\n"
            f"  win notices /v1/win, clicks /v1/click, readiness /ready, metrics /metrics "
            f"(multiprocess dir {metrics_dir})"
        )
        uvicorn.run(
            "apps.bidding.asgi:app", host=host, port=port, workers=workers, loop="uvloop", http="httptools",
            lifespan="on", access_log=False, log_level=log_level, timeout_graceful_shutdown=5,
        )
