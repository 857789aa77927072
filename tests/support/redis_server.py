"""A redis-server of a test's own (free port, no persistence), which the test may stop and start again
to show what happens while Redis is down. The shared test Redis is never stopped."""
from __future__ import annotations

import shutil
import socket

import pytest

from tests.support.ports import HOST, free_port
from tests.support.processes import ManagedProcess


class RedisServer:
    def __init__(self, *args: str):
        binary = shutil.which("redis-server")
        if binary is None:
            pytest.fail("redis-server is not installed (scripts/services.sh installs it)")
        self.port = free_port()
        self.process = ManagedProcess([binary, "--port", str(self.port), "--bind", HOST, "--save", "",
                                       "--appendonly", "no", *args], name=f"redis-server-{self.port}")
        self.start()

    def url(self, db: int = 0, password: str | None = None) -> str:
        auth = f":{password}@" if password else ""
        return f"redis://{auth}{HOST}:{self.port}/{db}"

    def start(self) -> None:
        """Start (again, on the same port: an empty Redis) and return once it accepts connections."""
        self.process.start()
        self.process.wait_ready(self._accepts, timeout=10, interval=0.01)

    def _accepts(self) -> bool:
        socket.create_connection((HOST, self.port), timeout=1).close()
        return True

    def stop(self) -> None:
        self.process.stop(timeout=5)
