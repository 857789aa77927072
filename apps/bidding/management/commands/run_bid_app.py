"""Serve the dedicated bid app (``apps.bidding.asgi:app``) with uvicorn and several workers."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from django.core.management.base import BaseCommand

from apps.bidding import runner
from config import env


class Command(BaseCommand):
    help = "Serve POST /v1/bid, win notices, /ready, /live and /metrics (plain ASGI) with uvicorn workers."

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8081)
        parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes (default 2)")
        parser.add_argument("--log-level", default="warning", help="uvicorn's own log level (default warning)")
        parser.add_argument("--metrics-dir", default=None,
                            help="prometheus multiprocess directory, emptied at start "
                                 "(default $BID_METRICS_DIR or var/prometheus/bid-<port>)")

    def handle(self, *args, host, port, workers, log_level, metrics_dir, **options):
        runner.bid_process_environment()
        runner.ensure_snapshot()
        directory = runner.prepare_multiprocess_metrics(
            Path(metrics_dir or env.env_str("BID_METRICS_DIR", "") or runner.ROOT / "var" / "prometheus" / f"bid-{port}")
        )
        self.stdout.write(
            f"bid app: http://{host}:{port}/v1/bid  ({workers} uvicorn workers, uvloop + httptools)\n"
            f"  win notices /v1/win, clicks /v1/click, readiness /ready, metrics /metrics "
            f"(workers aggregated through {directory})"
        )
        self.stdout.flush()
        # Replace this (Django) process with a bare uvicorn: the bid workers it spawns never load Django,
        # and signals sent to this pid (honcho, Ctrl-C) reach uvicorn's supervisor directly.
        argv = [sys.executable, "-m", "uvicorn", "apps.bidding.asgi:app", "--host", host, "--port", str(port),
                "--workers", str(workers), "--loop", "uvloop", "--http", "httptools", "--lifespan", "on",
                "--no-access-log", "--log-level", log_level, "--timeout-graceful-shutdown", "5"]
        os.execve(sys.executable, argv, {**os.environ, "PYTHONPATH": str(runner.ROOT)})
