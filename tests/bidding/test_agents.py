"""The NATS bid agents (``apps.bidding.agents``): bid consumers and, on the same connection, the omnichannel
ingest consumers (docs/REQUEST_FLOW.md "Alternative Entry: NATS Agent", step 4)."""
from __future__ import annotations

import uuid

import nats
import orjson
import pytest
from django.conf import settings as django_settings

from apps.bidding import agents as bid_agents
from apps.bidding.bidder import Bidder
from apps.omnichannel.agents import STATUS_HEADER
from tests.bidding.helpers import bid_config

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
async def agents(runtime, settings):
    """Bid agents on their own subjects (other processes on the shared NATS never take these messages)."""
    settings.INGEST_NATS_SUBJECT_PREFIX = f"ingest_t{uuid.uuid4().hex[:10]}"
    bidder = Bidder(bid_config(), inference=runtime)  # not started: no offers, so every request is a no-bid
    made = bid_agents.BidAgents(bidder, count=2, subject=f"bids_t{uuid.uuid4().hex[:10]}", queue="bid-agents-test")
    yield made
    await made.stop()
    await bidder.redis.aclose()
    await bidder.redis_pubsub.aclose()


async def test_start_hands_its_connection_to_the_ingest_consumers(agents, monkeypatch):
    calls = []

    async def start_ingest_consumers(nc, **options):
        calls.append((nc, options))
        return []

    monkeypatch.setattr(bid_agents, "start_ingest_consumers", start_ingest_consumers)
    assert agents.ingest_started is False
    await agents.start(django_settings.NATS_URL)
    assert calls == [(agents.nc, {})]
    assert agents.ingest_started is True
    assert len(agents.subscriptions) == 2


async def test_the_agents_connection_answers_bids_and_ingest_events(agents):
    await agents.start(django_settings.NATS_URL)
    client = await nats.connect(django_settings.NATS_URL, connect_timeout=2)
    try:
        bid = await client.request(agents.subject, orjson.dumps({"id": "r1", "imp": [{"id": "1"}]}), timeout=5)
        assert orjson.loads(bid.data)["seatbid"] == []
        # A body that is not JSON is refused before the database is touched, with the HTTP endpoint's answer.
        reply = await client.request(f"{django_settings.INGEST_NATS_SUBJECT_PREFIX}.pos.store-1", b"{", timeout=5)
        assert reply.headers[STATUS_HEADER] == "400"
        assert orjson.loads(reply.data)["error"] == "parse_error"
    finally:
        await client.drain()
