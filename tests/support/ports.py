"""Ports for processes and servers a test starts."""
from __future__ import annotations

import socket

HOST = "127.0.0.1"


def free_port(host: str = HOST) -> int:
    """A TCP port nothing listens on right now: bound, read and released again.

    Also a port where a connection is refused, for "the store is down" tests (nobody listens there)."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def listening_socket(host: str = HOST, backlog: int = 16) -> socket.socket:
    """A socket bound to a free port and listening, to hand to an in-process server (no port race)."""
    sock = socket.socket()
    sock.bind((host, 0))
    sock.listen(backlog)
    return sock
