"""The bid workers' HTTP/1.1 protocol: uvicorn's httptools protocol with a cheaper request cycle.

uvicorn serves the bid app (``apps.bidding.serve``) and this class is its ``http`` protocol. The ASGI
contract is unchanged (scope, ``receive``, ``send``, one task per request), and so is everything
uvicorn's connection handling does: pipelining, ``Expect: 100-continue``, flow control, a 400 for
unparseable input, graceful shutdown. What costs less, per request, on a path that answers thousands
of requests a second per core:

* **One ``send()`` per response.** The status line and headers are held until the body follows and
  leave in one write. On loopback every write is a syscall that also runs the receiver's TCP path,
  and the client would wake twice.
* **No keep-alive timer per response.** uvicorn arms a ``call_later`` after every response and
  cancels it when the next request arrives; here a connection notes when it went idle and one
  sweep per second closes those idle for longer than ``timeout_keep_alive``.
* **A lighter cycle**: built from the protocol's own attributes, a plain flag-and-future signal in
  place of an ``asyncio.Event`` per request, the URL split by hand when it has no ``%`` or query,
  and header validity checked once per distinct header (the app sends the same few again and again).

* **A whole response in one message**, for an app that has its bytes ready: when the request keeps
  its connection alive and is not a HEAD, the scope's ``extensions`` offer ``RESPONSE_EXTENSION``
  and the app may answer with one ``{"type": RESPONSE_EXTENSION, "head": ..., "body": ...}``:
  ``head`` is the status line and the header lines (each ending in CRLF, ``content-length``
  included where the status has one), written as given with the server's default headers (date)
  after them. No header list, no validation per header (the app's bytes are constants it checked
  once), no second message. Another server offers no such extension and the app sends the usual
  ``http.response.start`` / ``http.response.body`` (``apps.bidding.asgi`` does both).

Measured in process with callgrind (``/v1/bid``-sized request, trivial app): see bench/README.md.
"""
from __future__ import annotations

import urllib.parse

import httptools
from uvicorn.protocols.http.httptools_impl import (
    HEADER_RE,
    HEADER_VALUE_RE,
    STATUS_LINE,
    HttpToolsProtocol,
    RequestResponseCycle,
)
from uvicorn.protocols.utils import get_client_addr, get_path_with_query_string

SWEEP_SECONDS = 1.0
_ASGI = {"version": "3.0", "spec_version": "2.3"}
#: The message type of a whole response (module docstring), offered in ``scope["extensions"]``.
RESPONSE_EXTENSION = "campaign_express.http.response"
_EXTENSIONS: dict = {RESPONSE_EXTENSION: {}}
# the server's default headers (uvicorn replaces the list every second: a new date) as bytes
_defaults: tuple[list | None, bytes] = (None, b"")


def _default_block(headers: list) -> bytes:
    global _defaults
    cached, block = _defaults
    if cached is not headers:
        for name, value in headers:
            _check_header(name, value)
        block = b"".join(b"%s: %s\r\n" % (name.lower(), value) for name, value in headers)
        _defaults = (headers, block)
    return block
# header (name, value) pairs already checked: the app repeats a handful (content-length values vary)
_VALID_HEADERS: set[tuple[bytes, bytes]] = set()
_VALID_HEADERS_MAX = 4096


class _Signal:
    """What the cycle needs of an ``asyncio.Event`` (``set``/``clear``/``wait``), for one waiter."""

    __slots__ = ("_loop", "_set", "_waiter")

    def __init__(self, loop) -> None:
        self._loop = loop
        self._set = False
        self._waiter = None

    def set(self) -> None:
        self._set = True
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(True)

    def clear(self) -> None:
        self._set = False

    def is_set(self) -> bool:
        return self._set

    async def wait(self) -> bool:
        if self._set:
            return True
        self._waiter = waiter = self._loop.create_future()
        try:
            return await waiter
        finally:
            self._waiter = None


def _check_header(name: bytes, value: bytes) -> None:
    if (name, value) in _VALID_HEADERS:
        return
    if HEADER_RE.search(name):
        raise RuntimeError("Invalid HTTP header name.")
    if HEADER_VALUE_RE.search(value):
        raise RuntimeError("Invalid HTTP header value.")
    if len(_VALID_HEADERS) >= _VALID_HEADERS_MAX:
        _VALID_HEADERS.clear()
    _VALID_HEADERS.add((name, value))


class BidCycle(RequestResponseCycle):
    """One request and its response. ``run_asgi`` and ``receive`` are uvicorn's; ``send`` is
    uvicorn's logic with the head held until the first body message."""

    def __init__(self, protocol: "BidHttpProtocol", scope, keep_alive: bool, expect_100_continue: bool) -> None:
        # the attributes RequestResponseCycle's methods use, without its keyword-argument constructor
        self.scope = scope
        self.transport = protocol.transport
        self.flow = protocol.flow
        self.logger = protocol.logger
        self.access_logger = protocol.access_logger
        self.access_log = protocol.access_log
        self.default_headers = protocol.server_state.default_headers
        self.message_event = _Signal(protocol.loop)
        self.on_response = protocol.on_response_complete
        self.disconnected = False
        self.keep_alive = keep_alive
        self.waiting_for_100_continue = expect_100_continue
        self.body = bytearray()
        self.more_body = True
        self.response_started = False
        self.response_complete = False
        self.chunked_encoding: bool | None = None
        self.expected_content_length = 0
        self._head: bytes | None = None

    async def send(self, message) -> None:
        if self.flow.write_paused and not self.disconnected:
            await self.flow.drain()
        if self.disconnected:
            return
        kind = message["type"]
        if kind == RESPONSE_EXTENSION:
            self._send_whole(message)
            return
        if not self.response_started:
            if kind != "http.response.start":
                raise RuntimeError(f"Expected ASGI message 'http.response.start', but got '{kind}'.")
            self.response_started = True
            self.waiting_for_100_continue = False
            status_code = message["status"]
            if self.access_log:
                self.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(self.scope), self.scope["method"],
                                        get_path_with_query_string(self.scope), self.scope["http_version"],
                                        status_code)
            content = [STATUS_LINE[status_code]]
            has_connection_close = False
            for name, value in (*self.default_headers, *message.get("headers", ())):
                _check_header(name, value)
                name = name.lower()
                if name == b"content-length" and self.chunked_encoding is None:
                    self.expected_content_length = int(value.decode())
                    self.chunked_encoding = False
                elif name == b"transfer-encoding" and value.lower() == b"chunked":
                    self.expected_content_length = 0
                    self.chunked_encoding = True
                elif name == b"connection":
                    if b"close" in [token.lower().strip() for token in value.split(b",")]:
                        self.keep_alive = False
                        has_connection_close = True
                content += (name, b": ", value, b"\r\n")
            if not self.keep_alive and not has_connection_close:
                content.append(b"connection: close\r\n")
            if self.chunked_encoding is None and self.scope["method"] != "HEAD" and status_code not in (204, 304):
                self.chunked_encoding = True
                content.append(b"transfer-encoding: chunked\r\n")
            content.append(b"\r\n")
            # held: the body (sent in the same event-loop turn by any app that has it) joins it
            self._head = b"".join(content)
            return
        if self.response_complete:
            raise RuntimeError(f"Unexpected ASGI message '{kind}' sent, after response already completed.")
        if kind != "http.response.body":
            raise RuntimeError(f"Expected ASGI message 'http.response.body', but got '{kind}'.")
        body = message.get("body", b"")
        more_body = message.get("more_body", False)
        head, self._head = self._head, None
        if self.scope["method"] == "HEAD":
            self.expected_content_length = 0
            out = head or b""
        elif self.chunked_encoding:
            out = b"".join([head or b"", b"%x\r\n" % len(body), body, b"\r\n"] if body else [head or b""])
            if not more_body:
                out += b"0\r\n\r\n"
        else:
            if len(body) > self.expected_content_length:
                raise RuntimeError("Response content longer than Content-Length")
            self.expected_content_length -= len(body)
            out = head + body if head is not None else body
        if out:
            self.transport.write(out)
        if not more_body:
            if self.expected_content_length != 0:
                raise RuntimeError("Response content shorter than Content-Length")
            self.response_complete = True
            self.message_event.set()
            if not self.keep_alive:
                self.transport.close()
            self.on_response()


    def _send_whole(self, message) -> None:
        """A whole response in one message (``RESPONSE_EXTENSION``): one write, the cycle complete."""
        if self.response_started:
            raise RuntimeError(f"Unexpected ASGI message '{RESPONSE_EXTENSION}' after the response started.")
        self.response_started = True
        self.waiting_for_100_continue = False
        head = message["head"]
        if self.access_log:
            self.access_logger.info('%s - "%s %s HTTP/%s" %d', get_client_addr(self.scope), self.scope["method"],
                                    get_path_with_query_string(self.scope), self.scope["http_version"],
                                    int(head[9:12]))
        block = _default_block(self.default_headers)
        if not self.keep_alive:  # the server is shutting down since the request arrived
            block += b"connection: close\r\n"
        self.transport.write(b"".join((head, block, b"\r\n", message["body"])))
        self.response_complete = True
        self.message_event.set()
        if not self.keep_alive:
            self.transport.close()
        self.on_response()


class BidHttpProtocol(HttpToolsProtocol):
    """uvicorn's ``HttpToolsProtocol`` with :class:`BidCycle` and a swept keep-alive (module docstring)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._idle_since: float | None = None

    # --- keep-alive: a timestamp and one sweep per second, not a timer per response ------------
    def _unset_keepalive_if_required(self) -> None:
        self._idle_since = None

    def on_response_complete(self) -> None:
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._idle_since = self.loop.time()
            _Sweeper.ensure(self.loop, self.connections)

    # --- a request ------------------------------------------------------------------------------
    def on_message_begin(self) -> None:
        self.url = b""
        self.expect_100_continue = False
        self.headers = []
        self.scope = {
            "type": "http", "asgi": _ASGI, "http_version": "1.1", "server": self.server, "client": self.client,
            "scheme": self.scheme, "root_path": self.root_path, "headers": self.headers,
            "state": self.app_state.copy() if self.app_state else {},
        }

    def on_headers_complete(self) -> None:
        parser = self.parser
        http_version = parser.get_http_version()
        scope = self.scope
        scope["method"] = parser.get_method().decode("ascii")
        if http_version != "1.1":
            scope["http_version"] = http_version
        if parser.should_upgrade() and self._should_upgrade():
            return
        url = self.url
        if url[:1] == b"/" and b"?" not in url and b"%" not in url and b"#" not in url:
            raw_path, query = url, b""
        else:
            parsed = httptools.parse_url(url)
            raw_path, query = parsed.path, parsed.query or b""
        path = raw_path.decode("ascii")
        if "%" in path:
            path = urllib.parse.unquote(path)
        scope["path"] = self.root_path + path if self.root_path else path
        scope["raw_path"] = self.root_path.encode("ascii") + raw_path if self.root_path else raw_path
        scope["query_string"] = query
        if self.limit_concurrency is not None and (
            len(self.connections) >= self.limit_concurrency or len(self.tasks) >= self.limit_concurrency
        ):
            from uvicorn.protocols.http.flow_control import service_unavailable

            app = service_unavailable
            self.logger.warning("Exceeded concurrency limit.")
        else:
            app = self.app
        existing = self.cycle
        keep_alive = http_version != "1.0" and parser.should_keep_alive()
        if keep_alive and scope["method"] != "HEAD":
            scope["extensions"] = _EXTENSIONS
        self.cycle = BidCycle(self, scope, keep_alive, self.expect_100_continue)
        if existing is None or existing.response_complete:
            self._start_asgi_task(self.cycle, app)
        else:  # pipelined: queued until the response before it is complete
            self.flow.pause_reading()
            self.pipeline.appendleft((self.cycle, app))


class _Sweeper:
    """Closes the keep-alive connections of one server (its ``connections`` set) that have been idle
    for longer than their ``timeout_keep_alive``; reschedules itself while there are connections."""

    _active: dict[int, "_Sweeper"] = {}

    def __init__(self, loop, connections) -> None:
        self.loop = loop
        self.connections = connections
        self.handle = None

    @classmethod
    def ensure(cls, loop, connections) -> None:
        sweeper = cls._active.get(id(connections))
        if sweeper is None or sweeper.connections is not connections or sweeper.loop is not loop:
            sweeper = cls._active[id(connections)] = cls(loop, connections)
        if sweeper.handle is None:
            sweeper.handle = loop.call_later(SWEEP_SECONDS, sweeper.sweep)

    def sweep(self) -> None:
        self.handle = None
        now = self.loop.time()
        for protocol in list(self.connections):
            since = getattr(protocol, "_idle_since", None)
            if since is not None and now - since >= protocol.timeout_keep_alive:
                protocol._idle_since = None
                protocol.timeout_keep_alive_handler()
        if self.connections:
            self.handle = self.loop.call_later(SWEEP_SECONDS, self.sweep)
        elif self._active.get(id(self.connections)) is self:
            del self._active[id(self.connections)]
