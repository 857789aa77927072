"""Run the NATS bid agents and, on the same connection, the omnichannel ingest consumers."""
from __future__ import annotations

import asyncio

import structlog
from django.core.management.base import BaseCommand

from apps.bidding import runner

log = structlog.get_logger(__name__)


class Command(BaseCommand):
    help = "Consume campaign-bids.bid-requests in queue group bid-agents and reply on each message's reply subject."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, default=20, help="asyncio consumers in this process (default 20)")
        parser.add_argument("--nats-url", default=None, help="default: NATS_URL")

    def handle(self, *args, count, nats_url, **options):
        runner.bid_process_environment()
        runner.ensure_snapshot()
        asyncio.run(self._serve(count, nats_url))

    async def _serve(self, count: int, nats_url: str | None) -> None:
        from apps.bidding.agents import BidAgents
        from apps.bidding.bidder import Bidder

        bidder = Bidder()
        await bidder.start()
        agents = BidAgents(bidder, count=count)
        await agents.start(nats_url)
        self.stdout.write(
            f"bid agents: {agents.count} consumers on {agents.subject} (queue {agents.queue}); "
            f"ingest consumers {'started' if agents.ingest_started else 'not available'}", ending="\n"
        )
        self.stdout.flush()
        try:
            await runner.wait_for_shutdown()
        finally:
            await agents.stop()
            await bidder.stop()
            log.info("bid_agents_stopped")
