"""docker/: the compose topology is complete and consistent, and the haproxy config really routes,
health-checks and rate-limits (run with the haproxy binary when it is installed; no Docker engine needed)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

from tests.support.ports import free_port
from tests.support.processes import start_process
from tests.support.wait import wait_until

DOCKER = Path(__file__).resolve().parents[2] / "docker"
APP_SERVICES = {"migrate", "web", "bid", "grpc", "agents", "worker", "beat"}
SECRETS = {"DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "CLICKHOUSE_PASSWORD", "BID_WIN_SECRET",
           "OUTBOUND_SECRET_KEYS"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_every_process_and_store_is_a_service(compose):
    services = compose["services"]
    assert set(services) == APP_SERVICES | {"static", "haproxy", "postgres", "redis", "clickhouse", "nats"}
    commands = {name: " ".join(services[name]["command"]) for name in APP_SERVICES}
    assert commands["web"].startswith("uvicorn config.asgi:application --host 0.0.0.0 --port 8080")
    assert commands["bid"].startswith("uvicorn apps.bidding.asgi:app --host 0.0.0.0 --port 8081 --workers 2")
    assert commands["grpc"] == "python manage.py run_grpc --host 0.0.0.0 --port 9090 --workers 2"
    assert "ports" not in services["grpc"] and '${GRPC_PORT:-9090}:9090' in services["haproxy"]["ports"]
    assert commands["agents"] == "python manage.py run_agents"
    assert commands["worker"].startswith("celery -A config worker")
    assert commands["beat"].startswith("celery -A config beat")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert "-js" in services["nats"]["command"]
    assert services["haproxy"]["volumes"] == ["./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro",
                                              "${HAPROXY_CERTS_DIR:-./certs}:/usr/local/etc/haproxy/certs:ro"]


def test_app_services_share_the_image_and_wait_for_migrations(compose):
    for name in APP_SERVICES:
        service = compose["services"][name]
        assert service["build"] == {"context": "..", "dockerfile": "docker/Dockerfile", "target": "app"}
        env = service["environment"]
        assert env["CAMPAIGN_EXPRESS_ENV"] == "production"
        assert env["DATABASE_URL"].endswith("@postgres:5432/campaign_express")
        assert env["NATS_URL"] == "nats://nats:4222"
        if name != "migrate":
            assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}
    assert compose["services"]["bid"]["environment"]["PROMETHEUS_MULTIPROC_DIR"] == "/app/var/prometheus"


def test_secrets_come_from_the_environment(compose):
    text = "\n".join(line.split("#", 1)[0] for line in (DOCKER / "compose.yaml").read_text().splitlines())
    for name in SECRETS:
        assert re.search(r"\$\{" + name + r":\?", text), f"{name} must be required (${{{name}:?...}})"
    example = (DOCKER / ".env.example").read_text()
    referenced = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    without_default = {n for n in referenced if not re.search(r"\$\{" + n + r":-", text)}
    documented = set(re.findall(r"^([A-Z0-9_]+)=", example, re.M))
    assert without_default <= documented, without_default - documented
    assert "password" not in yaml.safe_dump(compose).lower().replace("_password", "").replace("password:", "")


def test_dockerfile_runs_as_non_root_from_python_311_slim():
    dockerfile = (DOCKER / "Dockerfile").read_text()
    assert "FROM python:3.11-slim AS python-deps" in dockerfile
    assert "pip install -r requirements/base.txt" in dockerfile
    app_stage = dockerfile.split("AS app", 1)[1]
    assert "\nUSER app\n" in app_stage
    assert "nginx-static.conf" in dockerfile and (DOCKER / "nginx-static.conf").exists()


def test_haproxy_declares_the_rate_limits_and_health_checks():
    cfg = (DOCKER / "haproxy.cfg").read_text()
    assert "stick-table type ip size 1m expire 60s store http_req_rate(10s)" in cfg
    assert "track-sc1 req.hdr(X-Exchange-Key) table exchange_rate if is_bid has_exchange_key" in cfg
    assert "sc-inc-gpc(0,1) if is_bid has_exchange_key" in cfg  # admitted requests only count against a key
    assert "http-server-close" not in cfg and "http-reuse safe" in cfg
    assert cfg.count("balance leastconn") == 3  # web, bid, grpc
    assert 'bind "${HAPROXY_GRPC_BIND-*:9090}" proto h2' in cfg
    assert cfg.count("retry-on conn-failure empty-response") == 2  # bid and grpc: to another instance
    assert cfg.count("http-check send meth GET uri /ready") == 2


HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.access("/usr/sbin/haproxy", os.X_OK) else None)
if HAPROXY is None and os.environ.get("CI") == "true":
    raise RuntimeError("CI: haproxy is not installed (scripts/services.sh installs Debian's haproxy)")
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (scripts/services.sh installs it)")


@needs_haproxy
def test_haproxy_config_is_valid(tls_cert):
    result = subprocess.run([HAPROXY, "-c", "-f", str(DOCKER / "haproxy.cfg")], capture_output=True, text=True,
                            env={**os.environ, "HAPROXY_TLS_CERT": str(tls_cert)}, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


@needs_haproxy
def test_haproxy_refuses_to_start_without_its_certificate(tmp_path):
    result = subprocess.run([HAPROXY, "-c", "-f", str(DOCKER / "haproxy.cfg")], capture_output=True, text=True,
                            env={**os.environ, "HAPROXY_TLS_CERT": str(tmp_path / "missing.pem")}, timeout=30)
    assert result.returncode != 0


class _Backend(BaseHTTPRequestHandler):
    """One handler instance per accepted connection; keep-alive (HTTP/1.1)."""
    protocol_version = "HTTP/1.1"
    name = "?"
    connections: set  # client ports of connections that carried a non-health-check request
    health_checks: list  # one entry per health check (GET /ready, or /healthz for static) received

    def do_GET(self):
        if self.path in ("/ready", "/healthz"):
            self.health_checks.append(self.client_address[1])
        else:
            self.connections.add(self.client_address[1])
        body = (f"{self.name} {self.path} xff={self.headers.get('X-Forwarded-For')} "
                f"key={self.headers.get('X-Exchange-Key')} proto={self.headers.get('X-Forwarded-Proto')} "
                f"xff_headers={len(self.headers.get_all('X-Forwarded-For') or [])}").encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


def _serve(name: str) -> ThreadingHTTPServer:
    handler = type(f"{name}Handler", (_Backend,), {"name": name, "connections": set(), "health_checks": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture
def front_door(tmp_path, tls_cert):
    """The production docker/haproxy.cfg, unchanged: only its environment variables differ (local servers
    instead of Docker names, a local port, lowered limits: web 20 per 10 s per IP, bid 50 per s per key)."""
    backends = {name: _serve(name) for name in ("web", "bid", "static")}
    port = free_port()
    tls_port = free_port()
    env = {**os.environ, "HAPROXY_BIND": f"127.0.0.1:{port}", "HAPROXY_MAXCONN": "1000",
           "HAPROXY_TLS_BIND": f"127.0.0.1:{tls_port}", "HAPROXY_TLS_CERT": str(tls_cert),
           "WEB_IP_RATE_LIMIT": "20", "BID_EXCHANGE_QPS": "50",
           **{f"{name.upper()}_SERVER": f"127.0.0.1:{srv.server_address[1]}" for name, srv in backends.items()}}
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5)

    def answers() -> bool:
        client.get("/static/up")  # one request that gets through (it spends 1 of the web per-IP budget)
        return True

    try:
        with start_process([HAPROXY, "-db", "-f", str(DOCKER / "haproxy.cfg")], env=env, ready=answers,
                           log_path=tmp_path / "haproxy.log", timeout=10, name="haproxy") as proc:
            wait_until(lambda: all(srv.RequestHandlerClass.health_checks for srv in backends.values()), timeout=10,
                       message="haproxy's first health check of every backend", detail=proc.tail)
            client.tls_url = f"https://127.0.0.1:{tls_port}"
            yield client, backends
    finally:
        client.close()
        for server in backends.values():
            server.shutdown()
            server.server_close()


@needs_haproxy
def test_haproxy_routes_every_bid_app_path(front_door):
    client, _ = front_door
    key = {"X-Exchange-Key": "k1"}
    assert client.post("/v1/bid", headers=key).text.startswith("bid /v1/bid xff=127.0.0.1 key=k1")
    assert client.get("/v1/win?t=x&price=1", headers=key).text.startswith("bid /v1/win?t=x")
    assert client.get("/v1/click?t=x", headers=key).text.startswith("bid /v1/click?t=x")
    assert client.post("/v1/dsp/bid", headers=key).text.startswith("bid /v1/dsp/bid")
    assert client.get("/v1/dsp/status").text.startswith("web /v1/dsp/status")  # the DSP REST API is the web's
    assert client.get("/static/admin/css/base.css").text.startswith("static /static/")
    assert client.get("/admin/").text.startswith("web /admin/")
    assert client.get("/v1/bidders/").text.startswith("web /v1/bidders/")  # a prefix is not a bid path


@needs_haproxy
def test_exchange_key_is_limited_per_key_not_per_ip(front_door):
    client, _ = front_door
    # 40 bids in well under a second from one IP: twice the web per-IP limit, under the key's 50/s
    statuses = [client.post("/v1/bid", headers={"X-Exchange-Key": "k1"}).status_code for _ in range(40)]
    assert statuses == [200] * 40
    assert client.get("/v1/campaigns/").status_code == 200  # bids with a key do not count against the IP
    # above the key's QPS: 429 (only for that key; another key has its own budget)
    over = [client.post("/v1/bid", headers={"X-Exchange-Key": "k1"}).status_code for _ in range(30)]
    assert 429 in over and over.count(200) <= 10 + 2  # the 1 s window may roll over once
    assert client.post("/v1/bid", headers={"X-Exchange-Key": "k2"}).status_code == 200


@needs_haproxy
def test_web_api_and_keyless_bids_keep_the_per_ip_limit(front_door):
    client, _ = front_door
    statuses = [client.get("/v1/campaigns/").status_code for _ in range(25)]
    # the fixture's warm-up request spent 1 of the 20: 19 pass, then 429 until the rate drops
    assert statuses == [200] * 19 + [429] * 6
    # a bid without an exchange key (the bid app answers it 401 itself) counts against the IP too
    assert client.post("/v1/bid").status_code == 429
    assert client.post("/v1/bid", headers={"X-Exchange-Key": "k1"}).status_code == 200


@needs_haproxy
def test_backend_connections_are_reused(front_door):
    client, backends = front_door
    for _ in range(45):
        assert client.post("/v1/bid", headers={"X-Exchange-Key": "k1"}).status_code == 200
    # http-server-close would open 45; keep-alive with reuse at most one per server of the template
    assert 1 <= len(backends["bid"].RequestHandlerClass.connections) <= 8


@needs_haproxy
def test_haproxy_says_how_and_from_where_a_request_came_and_drops_what_a_client_claims(front_door):
    client, _ = front_door
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "6.6.6.6"}
    # Plain HTTP: Django must see http (and redirect to https), whatever the client claims.
    plain = client.get("/admin/", headers=forged).text
    assert plain.startswith("web /admin/ xff=127.0.0.1 ") and "proto=http " in plain and "xff_headers=1" in plain
    # The TLS bind: https, and the address HAProxy saw.
    with httpx.Client(base_url=client.tls_url, verify=False, timeout=5) as tls:
        secure = tls.get("/admin/", headers={"X-Forwarded-Proto": "http", "X-Forwarded-For": "6.6.6.6"}).text
    assert secure.startswith("web /admin/ xff=127.0.0.1 ") and "proto=https " in secure and "xff_headers=1" in secure
