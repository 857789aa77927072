"""Local HTTP servers on 127.0.0.1 that speak the providers' documented formats.

Each records every request it receives (method, path, headers, raw body) and answers the way the real
API does: it checks the credentials and the path, and replies with the real success shape (SendGrid
202 + ``X-Message-Id``; Twilio 201 Message JSON; FCM 200 ``{"name": ...}``; APNs 200 + ``apns-id``) or
with a scripted answer (``fail_next``) in the provider's error format. ``hold()`` keeps the next
request waiting (the request is already recorded) until ``release()`` — used to kill a worker in
the middle of a provider call.
"""
from __future__ import annotations

import abc
import base64
import json
import secrets
import threading
from collections import deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl

from tests.support.wait import wait_until


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)

    def form(self) -> dict[str, str]:
        return dict(parse_qsl(self.body.decode(), keep_blank_values=True))

    def header(self, name: str) -> str | None:
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None


class ProviderServer(abc.ABC):
    """Base fake: subclasses implement ``answer(recorded) -> (status, headers, body)``."""

    name = "provider"

    def __init__(self):
        self.requests: list[Recorded] = []
        self._scripted: deque = deque()
        self._lock = threading.Lock()
        self._hold = threading.Event()
        self._hold.set()
        self.arrived = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                recorded = Recorded(self.command, self.path, dict(self.headers.items()), body)
                with server._lock:
                    server.requests.append(recorded)
                    scripted = server._scripted.popleft() if server._scripted else None
                server.arrived.set()
                server._hold.wait(30)
                status, headers, payload = scripted if scripted else server.answer(recorded)
                data = payload if isinstance(payload, bytes) else json.dumps(payload).encode() if payload is not None else b""
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                if data and not any(k.lower() == "content-type" for k in headers):
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if data:
                    self.wfile.write(data)

            do_POST = _handle
            do_GET = _handle

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02},
                                       name=f"fake-{self.name}", daemon=True)

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> "ProviderServer":
        self.thread.start()
        return self

    def stop(self) -> None:
        self._hold.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    # --- scripting ---------------------------------------------------------------------------------
    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self._scripted.clear()
        self._hold.set()
        self.arrived.clear()

    def fail_next(self, status: int, body=None, headers: dict | None = None, times: int = 1) -> None:
        for _ in range(times):
            self._scripted.append((status, headers or {}, body))

    def hold(self) -> None:
        self._hold.clear()

    def release(self) -> None:
        self._hold.set()

    def wait_for_requests(self, count: int, timeout: float = 15.0) -> list[Recorded]:
        wait_until(lambda: len(self.requests) >= count, timeout, 0.02, message=f"{self.name}: {count} request(s)",
                   detail=lambda: f"got {len(self.requests)}")
        return list(self.requests)

    @abc.abstractmethod
    def answer(self, recorded: Recorded):
        """The provider's own answer: ``(status, headers, body)``."""


class SendGridServer(ProviderServer):
    """``POST /v3/mail/send`` with ``Authorization: Bearer <api key>`` → 202, empty body, X-Message-Id."""

    name = "sendgrid"

    def __init__(self, api_key: str):
        super().__init__()
        self.api_key = api_key

    def answer(self, recorded):
        if recorded.method != "POST" or recorded.path != "/v3/mail/send":
            return 404, {}, {"errors": [{"message": "Not Found", "field": None}]}
        if recorded.header("Authorization") != f"Bearer {self.api_key}":
            return 401, {}, {"errors": [{"message": "The provided authorization grant is invalid, expired, or revoked",
                                         "field": None, "help": None}]}
        try:
            body = recorded.json()
        except ValueError:
            return 400, {}, {"errors": [{"message": "Bad Request", "field": None}]}
        if not body.get("personalizations"):
            return 400, {}, {"errors": [{"message": "The personalizations field is required.", "field": "personalizations"}]}
        return 202, {"X-Message-Id": secrets.token_urlsafe(16)}, None


class TwilioServer(ProviderServer):
    """``POST /2010-04-01/Accounts/{Sid}/Messages.json`` (form, basic auth) → 201 Message resource."""

    name = "twilio"

    def __init__(self, account_sid: str, auth_token: str):
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token

    def answer(self, recorded):
        if recorded.path != f"/2010-04-01/Accounts/{self.account_sid}/Messages.json":
            return 404, {}, {"code": 20404, "message": "The requested resource was not found", "status": 404}
        expected = "Basic " + base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if recorded.header("Authorization") != expected:
            return 401, {}, {"code": 20003, "message": "Authenticate", "status": 401}
        form = recorded.form()
        if not form.get("To"):
            return 400, {}, {"code": 21604, "message": "A 'To' phone number is required.", "status": 400}
        sid = "SM" + secrets.token_hex(16)
        return 201, {}, {"sid": sid, "account_sid": self.account_sid, "to": form["To"], "from": form.get("From"),
                         "body": form.get("Body"), "status": "queued", "num_segments": "1", "direction": "outbound-api",
                         "api_version": "2010-04-01", "error_code": None, "error_message": None,
                         "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json"}


class FcmServer(ProviderServer):
    """``POST /v1/projects/{project}/messages:send`` with a Bearer token → 200 ``{"name": ...}``."""

    name = "fcm"

    def __init__(self, project: str, access_token: str):
        super().__init__()
        self.project = project
        self.access_token = access_token

    def answer(self, recorded):
        if recorded.path != f"/v1/projects/{self.project}/messages:send":
            return 404, {}, {"error": {"code": 404, "message": "Requested entity was not found.", "status": "NOT_FOUND"}}
        if recorded.header("Authorization") != f"Bearer {self.access_token}":
            return 401, {}, {"error": {"code": 401, "message": "Request had invalid authentication credentials.",
                                       "status": "UNAUTHENTICATED"}}
        message = recorded.json().get("message") or {}
        if not message.get("token"):
            return 400, {}, fcm_error(400, "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token")
        return 200, {}, {"name": f"projects/{self.project}/messages/0:{secrets.token_hex(8)}"}


def fcm_error(code: int, status: str, message: str, error_code: str | None = None) -> dict:
    return {"error": {"code": code, "message": message, "status": status,
                      "details": [{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                                   "errorCode": error_code or status}]}}


class ApnsServer(ProviderServer):
    """``POST /3/device/{token}`` with ``authorization: bearer <jwt>`` and ``apns-topic`` → 200 + apns-id.
    (Real APNs speaks only HTTP/2; this local server speaks HTTP/1.1 — same method, path, headers, body.)"""

    name = "apns"

    def __init__(self, topic: str, jwt: str):
        super().__init__()
        self.topic = topic
        self.jwt = jwt

    def answer(self, recorded):
        if not recorded.path.startswith("/3/device/"):
            return 404, {}, {"reason": "BadPath"}
        if recorded.header("authorization") != f"bearer {self.jwt}":
            return 403, {}, {"reason": "InvalidProviderToken"}
        if recorded.header("apns-topic") != self.topic:
            return 400, {}, {"reason": "BadTopic"}
        return 200, {"apns-id": recorded.header("apns-id") or "00000000-0000-0000-0000-000000000000"}, None
