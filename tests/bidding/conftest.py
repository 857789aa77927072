"""Fixtures of the bidding tests (builders live in ``tests.bidding.helpers``)."""
from __future__ import annotations

import shutil
import socket
import subprocess
import time

import pytest

from apps.bidding.processor import BidProcessor
from apps.inference.runtime import InferenceRuntime
from tests.bidding.helpers import EventRecorder, bid_config, golden_runtime, make_snapshot


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


class RedisServer:
    """A redis-server of our own on a free port, which a test may stop and start again."""

    def __init__(self, *args: str):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/services.sh installs it)")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.command = [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                        *args]
        self.proc = None
        self.start()

    def url(self, db: int = 0, password: str | None = None) -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.proc = subprocess.Popen(self.command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        probe = socket.socket()
        for _ in range(200):
            try:
                probe.connect(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.01)
        probe.close()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=5)


@pytest.fixture
def redis_server():
    servers: list[RedisServer] = []

    def start(*args: str) -> RedisServer:
        servers.append(RedisServer(*args))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()
