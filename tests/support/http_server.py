"""A local HTTP server on 127.0.0.1 for vendor-format tests (outbound toolkit, integrations, DSPs).

It records every request (method, path, query, headers, raw body) and answers from a script
(``script(status, body, headers, times)``: used first, in order) or from ``answer(recorded)``, which
a vendor fake overrides (or passes as ``handler=``) to speak that vendor's format. ``hold()`` keeps
answers waiting until ``release()`` (a slow vendor, a timeout); the request is recorded first.
``drop(times, when=)`` is the lost answer: the matching request is read and acted on (``answer`` runs,
the vendor's state changes) and the connection is then closed without a byte of the answer
(``act=False``: read, not acted on, closed: the vendor failed before doing anything).

    with LocalHTTPServer() as server:
        server.script(503, {"error": "busy"}, {"Retry-After": "0"})
        ...
        assert [r.path for r in server.requests] == [...]
"""
from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, dict, object]


@dataclass
class Recorded:
    method: str
    target: str  # path and query, as sent
    headers: dict[str, str]
    body: bytes
    answered: threading.Event = field(default_factory=threading.Event, repr=False)

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, list[str]]:
        return parse_qs(urlsplit(self.target).query, keep_blank_values=True)

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self):
        return json.loads(self.body)


class LocalHTTPServer:
    """Threaded HTTP/1.1 server with keep-alive; answers JSON unless the body is bytes."""

    def __init__(self, handler: Callable[[Recorded], Answer] | None = None):
        self.requests: list[Recorded] = []
        self._handler = handler
        self._scripted: deque[Answer] = deque()
        self._drops: list[list] = []  # [times left, predicate, act]
        self._lock = threading.Lock()
        self._go = threading.Event()
        self._go.set()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(self.command, self.path, dict(self.headers.items()), body)
                with server._lock:
                    server.requests.append(recorded)
                    drop = next((d for d in server._drops if d[0] > 0 and d[1](recorded)), None)
                    if drop is not None:
                        drop[0] -= 1
                    scripted = None if drop is not None or not server._scripted else server._scripted.popleft()
                server._go.wait(30)
                if drop is not None and not drop[2]:
                    self.close_connection = True
                    recorded.answered.set()
                    return
                status, headers, payload = scripted if scripted is not None else server.answer(recorded)
                if drop is not None:  # acted on, answer lost: close without a status line
                    self.close_connection = True
                    recorded.answered.set()
                    return
                if isinstance(payload, bytes):
                    data = payload
                elif payload is None:
                    data = b""
                else:
                    data = json.dumps(payload).encode()
                try:
                    self.send_response(status)
                    for key, value in headers.items():
                        self.send_header(key, value)
                    if data and not any(k.lower() == "content-type" for k in headers):
                        self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if data:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)
                recorded.answered.set()

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       name="local-http-server", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> LocalHTTPServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self._go.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> LocalHTTPServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    # --- behaviour ---------------------------------------------------------------------------------
    def answer(self, recorded: Recorded) -> Answer:
        if self._handler is not None:
            return self._handler(recorded)
        return 200, {}, {"ok": True}

    def script(self, status: int, body: object = None, headers: dict | None = None, times: int = 1) -> None:
        with self._lock:
            for _ in range(times):
                self._scripted.append((status, dict(headers or {}), body))

    def drop(self, times: int = 1, *, when: Callable[[Recorded], bool] | None = None, act: bool = True) -> None:
        """Lose the answer to the next ``times`` requests matching ``when`` (all by default), after
        acting on them (``act=False``: without)."""
        with self._lock:
            self._drops.append([times, when or (lambda recorded: True), act])

    def hold(self) -> None:
        self._go.clear()

    def release(self) -> None:
        self._go.set()

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._scripted.clear()
            self._drops.clear()
        self._go.set()
