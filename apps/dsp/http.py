"""Keep-alive HTTP pools for the fan-out, one per platform, behind one small interface so the client
is a configuration choice (``DSP_HTTP_CLIENT``: ``lean``, ``aiohttp`` or ``httpx``).

Both count the TCP connections they open (``dsp_new_connections_total{platform}``): with keep-alive
working that stays near zero under steady load; a late platform (whose connection is dropped when
the deadline cancels its call) or a pool that is too small shows up there.

Why ``lean`` by default: measured side by side on this box (bench/README.md "DSP fan-out"), one
fan-out to four platforms cost ~700 µs of CPU with ``LeanTransport``, ~1,700 µs with aiohttp's
``ClientSession`` and ~6,300 µs with httpx's ``AsyncClient`` (whose calls, 20 at once on warm
connections, took 107 ms for a 20 ms endpoint against 25 ms with aiohttp). An https endpoint goes
through aiohttp (``transport_class``).
"""
from __future__ import annotations

import abc
import asyncio
from collections.abc import Mapping
from typing import Any

from prometheus_client import Counter

NEW_CONNECTIONS = Counter("dsp_new_connections", "TCP connections opened to DSP platforms", ["platform"])


class Transport(abc.ABC):
    name = "base"

    def __init__(self, platform: str, pool_size: int):
        self.platform = platform
        self.pool_size = pool_size
        self.new_connections = 0

    @abc.abstractmethod
    async def post(self, url: str, body: bytes, headers: dict[str, str]) -> tuple[int, Mapping[str, str], bytes]:
        ...

    @abc.abstractmethod
    async def notify(self, url: str) -> int:
        """A fire-and-forget GET (timeout notices): the status, body read and dropped."""

    async def close(self) -> None:
        return None


class AiohttpTransport(Transport):
    name = "aiohttp"

    def __init__(self, platform: str, pool_size: int):
        self.platform = platform
        self.pool_size = pool_size
        self.new_connections = 0
        self._session = None
        self._counter = NEW_CONNECTIONS.labels(platform)
        self._urls: dict = {}

    def _open(self):
        import aiohttp

        async def on_created(_session, _ctx, _params) -> None:
            self.new_connections += 1
            self._counter.inc()

        trace = aiohttp.TraceConfig()
        trace.on_connection_create_end.append(on_created)
        connector = aiohttp.TCPConnector(limit=self.pool_size, limit_per_host=self.pool_size, keepalive_timeout=60,
                                         ttl_dns_cache=300)
        self._session = aiohttp.ClientSession(connector=connector, trace_configs=[trace], auto_decompress=True,
                                              skip_auto_headers=("User-Agent",))
        return self._session

    async def post(self, url, body, headers):
        session = self._session or self._open()
        parsed = self._urls.get(url)
        if parsed is None:  # parsing the URL (and its query) costs more than the rest of building the call
            import yarl

            if len(self._urls) > 1024:
                self._urls.clear()
            parsed = self._urls[url] = yarl.URL(url)
        async with session.post(parsed, data=body, headers=headers, allow_redirects=False) as response:
            payload = await response.read()
            return response.status, response.headers, payload

    async def notify(self, url: str) -> int:
        session = self._session or self._open()
        async with session.get(url, allow_redirects=False) as response:
            await response.read()
            return response.status

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class HttpxTransport(Transport):
    name = "httpx"

    def __init__(self, platform: str, pool_size: int):
        self.platform = platform
        self.pool_size = pool_size
        self.new_connections = 0
        self._client = None
        self._counter = NEW_CONNECTIONS.labels(platform)

    def _open(self):
        import httpx

        limits = httpx.Limits(max_connections=self.pool_size, max_keepalive_connections=self.pool_size,
                              keepalive_expiry=60)
        self._client = httpx.AsyncClient(limits=limits, timeout=None, follow_redirects=False)
        return self._client

    async def _trace(self, event: str, _info) -> None:
        if event == "connection.connect_tcp.complete":
            self.new_connections += 1
            self._counter.inc()

    async def post(self, url, body, headers):
        client = self._client or self._open()
        response = await client.post(url, content=body, headers=headers, extensions={"trace": self._trace})
        return response.status_code, response.headers, response.content

    async def notify(self, url: str) -> int:
        client = self._client or self._open()
        return (await client.get(url)).status_code

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


TRANSPORTS: dict[str, type[Transport]] = {"aiohttp": AiohttpTransport, "httpx": HttpxTransport}


class _LeanConn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time, parsed by httptools."""

    __slots__ = ("transport", "parser", "waiter", "status", "headers", "chunks", "_name", "closed", "got_bytes",
                 "keep_alive")

    def __init__(self) -> None:
        import httptools

        self.transport: Any = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.got_bytes = False
        self.keep_alive = True
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: dict[str, str] = {}
        self.chunks: list[bytes] = []
        self._name = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except Exception as exc:  # noqa: BLE001 - httptools.HttpParserError: a broken answer
            self._fail(ConnectionError(f"unparsable HTTP answer: {exc}"))
            self.transport.close()

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)

    def on_message_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result((self.status, self.headers, b"".join(self.chunks)))

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._fail(ConnectionError(f"connection closed{f': {exc}' if exc else ''}"))

    def _fail(self, exc: Exception) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, payload: bytes) -> asyncio.Future:
        self._reset()
        self.got_bytes = False
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(payload)
        return self.waiter


class LeanTransport(Transport):
    """A minimal keep-alive HTTP/1.1 client (asyncio protocol + httptools), written for the fan-out:
    POST a body, read status, headers and body, keep the connection. No redirects, no proxies, no TLS
    (the platforms here are plain http; a TLS endpoint uses ``aiohttp``). Measured against aiohttp and
    httpx in bench/README.md ("DSP fan-out")."""

    name = "lean"

    def __init__(self, platform: str, pool_size: int):
        super().__init__(platform, pool_size)
        self._idle: dict[tuple[str, int], list[_LeanConn]] = {}
        self._targets: dict[str, tuple[str, int, bytes]] = {}
        self._counter = NEW_CONNECTIONS.labels(platform)
        self._all: set[_LeanConn] = set()

    def _target(self, url: str) -> tuple[str, int, bytes]:
        target = self._targets.get(url)
        if target is None:
            from urllib.parse import urlsplit

            parts = urlsplit(url)
            if parts.scheme != "http":
                raise ValueError(f"the lean client speaks plain http only, not {parts.scheme!r}: use DSP_HTTP_CLIENT=aiohttp")
            host, port = parts.hostname or "127.0.0.1", parts.port or 80
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            head = f"POST {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAccept-Encoding: gzip\r\n".encode("latin-1")
            if len(self._targets) > 1024:
                self._targets.clear()
            target = self._targets[url] = (host, port, head)
        return target

    async def _connect(self, host: str, port: int) -> _LeanConn:
        import socket

        _, conn = await asyncio.get_running_loop().create_connection(_LeanConn, host, port)
        sock = conn.transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.new_connections += 1
        self._counter.inc()
        self._all.add(conn)
        return conn

    async def notify(self, url: str) -> int:
        host, port, head = self._target(url)
        payload = b"GET" + head[4:] + b"\r\n"
        status, _, _ = await self._send(host, port, payload)
        return status

    async def post(self, url, body, headers):
        host, port, head = self._target(url)
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()).encode("latin-1")
        payload = b"".join((head, extra, b"Content-Length: ", str(len(body)).encode(), b"\r\n\r\n", body))
        return await self._send(host, port, payload)

    async def _send(self, host: str, port: int, payload: bytes):
        idle = self._idle.setdefault((host, port), [])
        for _attempt in range(2):
            conn = None
            while idle:
                candidate = idle.pop()
                if not candidate.closed:
                    conn = candidate
                    break
            reused = conn is not None
            if conn is None:
                conn = await self._connect(host, port)
            try:
                status, answer_headers, data = await conn.send(payload)
            except ConnectionError:
                self._drop(conn)
                if reused and not conn.got_bytes:
                    continue  # the server had closed the idle connection: once more on a fresh one
                raise
            except BaseException:  # cancelled (deadline) mid-answer: the connection cannot be reused
                self._drop(conn)
                raise
            if conn.keep_alive and len(idle) < self.pool_size:
                idle.append(conn)
            else:
                self._drop(conn)
            if answer_headers.get("content-encoding") == "gzip":
                import zlib

                data = zlib.decompress(data, 16 + zlib.MAX_WBITS)
            return status, answer_headers, data
        raise ConnectionError("connection closed")

    def _drop(self, conn: _LeanConn) -> None:
        self._all.discard(conn)
        if conn.transport is not None and not conn.closed:
            conn.transport.close()

    async def close(self) -> None:
        for conn in list(self._all):
            self._drop(conn)
        self._idle = {}


TRANSPORTS["lean"] = LeanTransport


def transport_class(client: str, url: str) -> type[Transport]:
    """The class for a platform: the configured client, except that ``lean`` speaks plain http only."""
    if client == "lean" and not url.startswith("http://"):
        return AiohttpTransport
    return TRANSPORTS[client]
