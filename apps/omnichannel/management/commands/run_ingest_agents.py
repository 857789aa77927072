"""Run only the NATS ingest consumers (``manage.py run_agents`` runs them beside the bid agents)."""
from __future__ import annotations

import asyncio
import signal

import nats
import structlog
from django.conf import settings
from django.core.management.base import BaseCommand

from apps.omnichannel.agents import QUEUE_GROUP, start_ingest_consumers, subject_pattern

log = structlog.get_logger(__name__)


class Command(BaseCommand):
    help = f"Consume ingest events from NATS (ingest.*.>, queue group {QUEUE_GROUP}) until SIGINT/SIGTERM."

    def add_arguments(self, parser):
        parser.add_argument("--consumers", type=int, default=4, help="Events processed at once (default 4)")
        parser.add_argument("--nats-url", default=None, help="Default: NATS_URL")

    def handle(self, *args, consumers: int, nats_url: str | None, **options):
        asyncio.run(self._run(nats_url or settings.NATS_URL, consumers))

    async def _run(self, url: str, consumers: int) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        nc = await nats.connect(url, name="ingest-agents", max_reconnect_attempts=-1)
        subscriptions = await start_ingest_consumers(nc, consumers=consumers)
        self.stdout.write(f"ingest agents ready: {len(subscriptions)} consumers on {subject_pattern()} ({url})", ending="\n")
        self.stdout.flush()
        await stop.wait()
        await nc.drain()  # finish the events in flight, then close
        self.stdout.write("ingest agents stopped")
