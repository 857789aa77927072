"""The gRPC sidecar in-process (``start_server`` over a real ``Bidder``): exchange keys, status codes
and StreamBids' per-message error field. The subprocess entry (``run_grpc``) is in test_e2e.py."""
from __future__ import annotations

import json

import grpc
import pytest

from apps.bidding.bidder import Bidder
from apps.bidding.grpc_gen import bidding_pb2, bidding_pb2_grpc
from apps.bidding.grpc_server import start_server
from apps.bidding.snapshot import next_version, publish_snapshot
from tests.bidding.helpers import bid_config, golden_runtime
from tests.bidding.test_http import BANNER, rows_for_examples

KEY = (("x-exchange-key", "k-123"),)


@pytest.fixture
async def sidecar(redis_client, tmp_path):
    """A sidecar whose bidder wants an exchange key, and one that accepts every caller."""
    publish_snapshot(redis_client, version=next_version(redis_client), offers=rows_for_examples())
    runtime = golden_runtime(tmp_path / "models")
    servers, bidders, channels = [], [], {}
    for name, keys in (("keyed", {"k-123": "adx"}), ("open", {})):
        bidder = Bidder(bid_config(exchange_keys=keys), inference=runtime)
        await bidder.start()
        server, port = await start_server(bidder, port=0)
        bidders.append(bidder)
        servers.append(server)
        channels[name] = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield {name: bidding_pb2_grpc.BiddingServiceStub(channel) for name, channel in channels.items()}
    finally:
        for channel in channels.values():
            await channel.close()
        for server in servers:
            await server.stop(grace=None)
        for bidder in bidders:
            await bidder.stop()


def _request(body: bytes) -> bidding_pb2.BidRequestProto:
    return bidding_pb2.BidRequestProto(openrtb_json=body)


async def test_unary_needs_a_known_exchange_key_when_keys_are_configured(sidecar):
    for metadata in ((), (("x-exchange-key", "wrong"),)):
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await sidecar["keyed"].ProcessBid(_request(BANNER), metadata=metadata, timeout=10)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    reply = await sidecar["keyed"].ProcessBid(_request(BANNER), metadata=KEY, timeout=10)
    assert not reply.no_bid and json.loads(reply.openrtb_json)["seatbid"]


async def test_without_keys_every_caller_is_answered(sidecar):
    reply = await sidecar["open"].ProcessBid(_request(BANNER), timeout=10)
    assert not reply.no_bid and reply.processing_time_us > 0


async def test_unary_malformed_input_is_invalid_argument(sidecar):
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await sidecar["open"].ProcessBid(_request(b'{"id": "x", "imp": ['), timeout=10)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert info.value.details().startswith("invalid_json: ")


async def test_stream_needs_the_key_and_flags_a_malformed_message_without_ending(sidecar):
    unauthenticated = sidecar["keyed"].StreamBids(iter([_request(BANNER)]), timeout=10)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        [reply async for reply in unauthenticated]
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

    bodies = [BANNER, b"not json", BANNER.replace(b'"id": "r1"', b'"id": "r2"'), b""]
    call = sidecar["keyed"].StreamBids(iter(_request(b) for b in bodies), metadata=KEY, timeout=10)
    replies = [reply async for reply in call]
    assert await call.code() == grpc.StatusCode.OK
    assert [bool(r.error) for r in replies] == [False, True, False, True]
    assert replies[1].error.startswith("invalid_json: ") and not replies[1].openrtb_json and replies[1].no_bid
    assert [json.loads(r.openrtb_json)["id"] for r in (replies[0], replies[2])] == ["r1", "r2"]  # in order


async def test_health_check_reports_serving(sidecar):
    health = await sidecar["keyed"].HealthCheck(bidding_pb2.HealthCheckRequest(), timeout=10)
    assert health.status == bidding_pb2.HealthCheckResponse.SERVING and health.model_version == "golden-1"
    assert health.offers == 4
