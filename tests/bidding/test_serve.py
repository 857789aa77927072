"""The bid workers' uvicorn protocol (apps.bidding.protocol), through a real uvicorn server and socket."""
from __future__ import annotations

import asyncio
import socket

import pytest
import uvicorn

from apps.bidding import serve
from apps.bidding.protocol import RESPONSE_EXTENSION
from tests.support.ports import listening_socket
from tests.support.wait import async_pause, async_wait_until


async def _app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if scope["path"] == "/boom":
        raise RuntimeError("the app failed before answering")
    if scope["path"] == "/chunked":  # no content-length: uvicorn's chunked encoding
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ab", "more_body": True})
        await send({"type": "http.response.body", "body": b"cd"})
        return
    if scope["path"] == "/query":
        text = f"{scope['path']}|{scope['query_string'].decode()}|{scope['raw_path'].decode()}".encode()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(text))]})
        await send({"type": "http.response.body", "body": text})
        return
    if scope["path"] == "/whole":  # the whole-response message where the server offers it
        if RESPONSE_EXTENSION in scope.get("extensions", {}):
            await send({"type": RESPONSE_EXTENSION, "body": body,
                        "head": b"HTTP/1.1 201 Created\r\nx-whole: 1\r\ncontent-length: %d\r\n" % len(body)})
        else:
            await send({"type": "http.response.start", "status": 201,
                        "headers": [(b"x-whole", b"0"), (b"content-length", b"%d" % len(body))]})
            await send({"type": "http.response.body", "body": body})
        return
    if scope["path"] == "/empty":
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


@pytest.fixture
async def server(request):
    keep_alive = getattr(request, "param", 5)
    sock = listening_socket()
    config = uvicorn.Config(_app, http=serve._protocol_class(), lifespan="off", access_log=False,
                            log_level="critical", timeout_keep_alive=keep_alive)
    srv = uvicorn.Server(config)
    task = asyncio.create_task(srv.serve(sockets=[sock]))
    await async_wait_until(lambda: srv.started, timeout=10, message="uvicorn started")
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


class _Counting(asyncio.Protocol):
    """A client connection that counts how many segments (reads) the response arrived in."""

    def __init__(self):
        self.chunks: list[bytes] = []
        self.closed = asyncio.get_running_loop().create_future()

    def data_received(self, data):
        self.chunks.append(data)

    def connection_lost(self, exc):
        if not self.closed.done():
            self.closed.set_result(None)


async def test_head_and_body_leave_in_one_write(server):
    transport, client = await asyncio.get_running_loop().create_connection(_Counting, "127.0.0.1", server)
    sock = transport.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(5):
        client.chunks.clear()
        transport.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 4\r\n\r\nping")
        await async_wait_until(lambda: b"".join(client.chunks).endswith(b"ping"), timeout=2, message="the echo")
        response = b"".join(client.chunks)
        assert response.startswith(b"HTTP/1.1 200 OK\r\n") and b"content-length: 4\r\n" in response
        assert len(client.chunks) == 1  # one send(): status line, headers and body together
    transport.close()


async def test_a_whole_response_in_one_message_where_the_connection_stays_open(server):
    transport, client = await asyncio.get_running_loop().create_connection(_Counting, "127.0.0.1", server)
    transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for payload in (b"ping", b"pong!"):
        client.chunks.clear()
        transport.write(b"POST /whole HTTP/1.1\r\nhost: x\r\ncontent-length: %d\r\n\r\n%s" % (len(payload), payload))
        await async_wait_until(lambda p=payload: b"".join(client.chunks).endswith(p), timeout=2, message="the answer")
        head, _, body = b"".join(client.chunks).partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        assert lines[0] == b"HTTP/1.1 201 Created" and body == payload and len(client.chunks) == 1
        assert b"x-whole: 1" in lines and b"content-length: %d" % len(payload) in lines
        assert any(line.startswith(b"date: ") for line in lines)  # the server's default headers follow
    transport.close()
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"POST /whole HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\na"
                 b"POST /whole HTTP/1.1\r\nhost: x\r\ncontent-length: 2\r\n\r\nbc")  # pipelined
    assert await _read_responses(reader, 2) == [(b"201", b"a"), (b"201", b"bc")]
    writer.write(b"HEAD /whole HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")  # not offered: no body
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 201") and b"x-whole: 0" in head
    writer.write(b"POST /whole HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\nz")
    assert await _read_responses(reader, 1) == [(b"201", b"z")]
    writer.close()
    for request in (b"POST /whole HTTP/1.0\r\ncontent-length: 2\r\n\r\nhi",  # closed after: not offered
                    b"POST /whole HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi"):
        reader, writer = await asyncio.open_connection("127.0.0.1", server)
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), 2)
        assert b"x-whole: 0" in data and b"connection: close" in data and data.endswith(b"\r\n\r\nhi")
        writer.close()


async def test_chunked_responses_head_requests_queries_and_a_failing_app(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"GET /chunked HTTP/1.1\r\nhost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert b"transfer-encoding: chunked" in head
    assert await reader.readuntil(b"0\r\n\r\n") == b"2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n"
    writer.write(b"HEAD /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and b"content-length: 0" in head
    writer.write(b"GET /query?a=1&b=%20 HTTP/1.1\r\nhost: x\r\n\r\n")
    assert await _read_responses(reader, 1) == [(b"200", b"/query|a=1&b=%20|/query")]
    writer.write(b"GET /qu%65ry HTTP/1.1\r\nhost: x\r\n\r\n")  # percent-encoded path
    assert await _read_responses(reader, 1) == [(b"200", b"/query||/qu%65ry")]
    writer.write(b"GET /boom HTTP/1.1\r\nhost: x\r\n\r\n")
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 500") and b"connection: close" in head
    assert await reader.readexactly(21) == b"Internal Server Error"
    assert await reader.read() == b""  # closed after the 500
    writer.close()


async def test_http_1_0_and_connection_close_are_answered_then_closed(server):
    for request in (b"POST /echo HTTP/1.0\r\ncontent-length: 2\r\n\r\nhi",
                    b"POST /echo HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: 2\r\n\r\nhi"):
        reader, writer = await asyncio.open_connection("127.0.0.1", server)
        writer.write(request)
        data = await asyncio.wait_for(reader.read(), 2)  # EOF after the response
        assert data.endswith(b"\r\n\r\nhi") and b"connection: close" in data
        writer.close()


async def test_malformed_request_gets_a_400(server):
    reader, writer = await asyncio.open_connection("127.0.0.1", server)
    writer.write(b"NOT A REQUEST\r\n\r\n")
    data = await asyncio.wait_for(reader.read(), 2)
    assert data.startswith(b"HTTP/1.1 400")
    writer.close()


@pytest.mark.parametrize("server", [1], indirect=True)
async def test_idle_keep_alive_connections_are_closed_by_the_sweep(server):
    loop = asyncio.get_running_loop()
    busy_t, busy = await loop.create_connection(_Counting, "127.0.0.1", server)
    idle_t, idle = await loop.create_connection(_Counting, "127.0.0.1", server)
    idle_t.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\n.")
    started = loop.time()
    # the busy connection sends a request every 0.3 s: each one resets its idle time
    while loop.time() - started < 2.6:
        busy_t.write(b"POST /echo HTTP/1.1\r\nhost: x\r\ncontent-length: 1\r\n\r\n.")
        await async_pause(0.3, "the busy client's pace: time passing is what the sweep acts on")
    await asyncio.wait_for(idle.closed, 1)  # idle for >= 1 s: closed by a sweep (within about 2 s)
    assert b"".join(idle.chunks).startswith(b"HTTP/1.1 200")
    assert not busy.closed.done()
    busy_t.close()


def test_a_taken_port_stops_the_supervisor_with_its_name_before_any_worker_starts():
    # Workers bind with SO_REUSEPORT, which would share a port another server of ours already holds:
    # the bid app and the gRPC sidecar (run_grpc --workers N) check first, without it.
    taken = listening_socket()
    host, port = taken.getsockname()
    try:
        with pytest.raises(SystemExit, match=rf"^gRPC sidecar: cannot listen on {host}:{port}: "):
            serve.port_is_free(host, port, label="gRPC sidecar")
    finally:
        taken.close()
    serve.port_is_free(host, port, label="gRPC sidecar")  # free again: no error
