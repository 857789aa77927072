"""Serve the dedicated bid app (``apps.bidding.asgi:app``) with uvicorn and several workers."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand

from apps.bidding import runner


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
            Path(metrics_dir or settings.BID_METRICS_DIR or runner.ROOT / "var" / "prometheus" / f"bid-{port}")
        )
        self.stdout.write(
            f"bid app: http://{host}:{port}/v1/bid  ({workers} uvicorn workers, one SO_REUSEPORT socket each, "
            f"uvloop + httptools)\n"
            f"  win notices /v1/win, clicks /v1/click, readiness /ready, metrics /metrics "
            f"(workers aggregated through {directory})"
        )
        self.stdout.flush()
        # Replace this (Django) process with the bare supervisor of apps.bidding.serve: the uvicorn workers
        # it spawns never load Django, and signals sent to this pid (honcho, Ctrl-C) reach it directly.
        argv = [sys.executable, "-m", "apps.bidding.serve", "--host", host, "--port", str(port),
                "--workers", str(workers), "--log-level", log_level]
        # Not a read of configuration: the supervisor inherits this process's environment (with the
        # metrics directory just set) and reads it through config.env when it starts.
        os.execve(sys.executable, argv, {**os.environ, "PYTHONPATH": str(runner.ROOT)})
