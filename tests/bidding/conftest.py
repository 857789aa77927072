"""Fixtures of the bidding tests (builders live in ``tests.bidding.helpers``)."""
from __future__ import annotations

import pytest

from apps.bidding.processor import BidProcessor
from apps.inference.runtime import InferenceRuntime
from tests.bidding.helpers import EventRecorder, bid_config, golden_runtime, make_snapshot
from tests.support.redis_server import RedisServer


@pytest.fixture
def runtime(tmp_path) -> InferenceRuntime:
    return golden_runtime(tmp_path / "models")


@pytest.fixture
def events() -> EventRecorder:
    return EventRecorder()


@pytest.fixture
def make_processor(runtime, events):
    def build(rows, *, redis=None, **config) -> BidProcessor:
        processor = BidProcessor(config=bid_config(**config), inference=runtime, redis=redis, emit_event=events, emit_inputs=events.record)
        processor.set_snapshot(make_snapshot(rows))
        return processor

    return build


@pytest.fixture
def redis_server():
    servers: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        servers.append(RedisServer(*args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
