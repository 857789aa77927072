"""The bid workers' uvicorn protocol writes each response with one send() (apps.bidding.serve)."""
from __future__ import annotations

import asyncio
import socket

import pytest
import uvicorn

from apps.bidding import serve


class _Recorder(asyncio.Transport):
    """A transport that records what is written (the proxy's only collaborator)."""

    def __init__(self):
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data):
        self.writes.append(bytes(data))

    def is_closing(self):
        return self.closed

    def close(self):
        self.closed = True

    def get_write_buffer_size(self):
        return 0

    def get_extra_info(self, name, default=None):
        return {"peername": ("127.0.0.1", 1)}.get(name, default)


async def test_head_and_body_leave_as_one_write():
    raw = _Recorder()
    t = serve._CoalescingTransport(raw, asyncio.get_running_loop())
    t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
    assert raw.writes == [] and t.get_write_buffer_size() > 0
    t.write(b"{}")
    assert raw.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
    await asyncio.sleep(0)  # the scheduled flush finds nothing held
    assert len(raw.writes) == 1 and t.get_extra_info("peername") == ("127.0.0.1", 1)


async def test_interim_heads_pass_and_a_lone_head_is_flushed():
    raw = _Recorder()
    t = serve._CoalescingTransport(raw, asyncio.get_running_loop())
    t.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it before sending the body
    assert raw.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    t.write(b"HTTP/1.1 500 Internal Server Error\r\ncontent-length: 0\r\n\r\n")
    await asyncio.sleep(0)
    assert raw.writes[-1].startswith(b"HTTP/1.1 500")
    t.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    t.close()  # closing writes what is held first
    assert raw.writes[-1] == b"HTTP/1.1 204 No Content\r\n\r\n" and raw.closed


async def _app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server():
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    config = uvicorn.Config(_app, http=serve._protocol_class(), lifespan="off", access_log=False,
                            log_level="warning")
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    while not srv.started:
        await asyncio.sleep(0.01)
    yield sock.getsockname()[1]
    srv.should_exit = True
    await task


async def _read_responses(reader, count):
    out = []
    for _ in range(count):
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        out.append((head.split(b" ")[1], await reader.readexactly(length)))
    return out


async def test_pipelined_keep_alive_and_expect_continue_through_uvicorn(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    requests = b"".join(
        b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (len(b), b) for b in (b"one", b"two!")
    ) + b"POST /empty HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n"
    writer.write(requests)  # pipelined: answered in order
    assert await _read_responses(reader, 3) == [(b"200", b"one"), (b"200", b"two!"), (b"204", b"")]
    writer.write(b"POST /echo HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\ncontent-length: 5\r\n\r\n")
    assert await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 2) == b"HTTP/1.1 100 Continue\r\n\r\n"
    writer.write(b"hello")
    assert await _read_responses(reader, 1) == [(b"200", b"hello")]
    writer.close()
