"""docker/: the compose topology is complete and consistent, and the haproxy config really routes,
health-checks and rate-limits (run with the haproxy binary when it is installed; no Docker engine needed)."""
from __future__ import annotations

import re
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest
import yaml

DOCKER = Path(__file__).resolve().parents[2] / "docker"
APP_SERVICES = {"migrate", "web", "bid", "grpc", "agents", "worker", "beat"}
SECRETS = {"DJANGO_SECRET_KEY", "POSTGRES_PASSWORD", "REDIS_PASSWORD", "CLICKHOUSE_PASSWORD", "BID_WIN_SECRET"}


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load((DOCKER / "compose.yaml").read_text())


def test_every_process_and_store_is_a_service(compose):
    services = compose["services"]
    assert set(services) == APP_SERVICES | {"static", "haproxy", "postgres", "redis", "clickhouse", "nats"}
    commands = {name: " ".join(services[name]["command"]) for name in APP_SERVICES}
    assert commands["web"].startswith("uvicorn config.asgi:application --host 0.0.0.0 --port 8080")
    assert commands["bid"].startswith("uvicorn apps.bidding.asgi:app --host 0.0.0.0 --port 8081 --workers 2")
    assert commands["grpc"] == "python manage.py run_grpc --host 0.0.0.0 --port 9090"
    assert commands["agents"] == "python manage.py run_agents"
    assert commands["worker"].startswith("celery -A config worker")
    assert commands["beat"].startswith("celery -A config beat")
    assert services["clickhouse"]["image"].startswith("clickhouse/clickhouse-server:")
    assert "-js" in services["nats"]["command"]
    assert services["haproxy"]["volumes"] == ["./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]


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


def test_haproxy_declares_the_rate_limit_and_health_checks():
    cfg = (DOCKER / "haproxy.cfg").read_text()
    assert "stick-table type ip size 1m expire 60s store http_req_rate(10s)" in cfg
    assert "http-request deny deny_status 429 if { sc_http_req_rate(0) gt 10000 }" in cfg
    assert cfg.count("balance leastconn") == 2
    assert cfg.count("http-check send meth GET uri /ready") == 2


HAPROXY = shutil.which("haproxy")
needs_haproxy = pytest.mark.skipif(HAPROXY is None, reason="haproxy is not installed (apt-get install haproxy)")


@needs_haproxy
def test_haproxy_config_is_valid():
    result = subprocess.run([HAPROXY, "-c", "-f", str(DOCKER / "haproxy.cfg")], capture_output=True, text=True,
                            timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class _Backend(BaseHTTPRequestHandler):
    name = "?"

    def do_GET(self):
        body = f"{self.name} {self.path} xff={self.headers.get('X-Forwarded-For')}".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def _serve(name: str) -> ThreadingHTTPServer:
    handler = type(f"{name}Handler", (_Backend,), {"name": name})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@needs_haproxy
def test_haproxy_routes_and_rate_limits(tmp_path):
    """The real config with the Docker names swapped for local servers and the limit lowered to 20."""
    backends = {name: _serve(name) for name in ("web", "bid", "static")}
    port = _free_port()
    cfg = (DOCKER / "haproxy.cfg").read_text()
    for name, server in backends.items():
        cfg = re.sub(rf"server-template {name} \d+ {name}:\d+ (check[^\n]*?) resolvers docker init-addr none",
                     rf"server {name}1 127.0.0.1:{server.server_address[1]} \1", cfg)
    cfg = cfg.replace("bind *:8080", f"bind 127.0.0.1:{port}").replace("gt 10000", "gt 20")
    # no log target, and a connection limit within this machine's file-descriptor limit
    cfg = cfg.replace("log stdout format raw local0 info", "").replace("maxconn 50000", "maxconn 1000")
    assert "server-template" not in cfg
    path = tmp_path / "haproxy.cfg"
    path.write_text(cfg)
    proc = subprocess.Popen([HAPROXY, "-db", "-f", str(path)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            for _ in range(100):
                assert proc.poll() is None, proc.stdout.read().decode()
                try:
                    client.get("/ready")
                    break
                except httpx.TransportError:
                    time.sleep(0.05)
            # 1 request above spent; routing by path, with X-Forwarded-For added
            assert client.get("/v1/bid").text.startswith("bid /v1/bid xff=127.0.0.1")
            assert client.get("/v1/win/abc").text.startswith("bid /v1/win/abc")
            assert client.get("/static/admin/css/base.css").text.startswith("static /static/")
            assert client.get("/admin/").text.startswith("web /admin/")
            statuses = [client.get("/v1/campaigns/").status_code for _ in range(20)]
            assert client.get("/v1/bid").status_code == 429  # per source IP, whatever the path
        # 5 requests before these (warm-up and routing): 15 more pass, the 21st and later in 10 s get 429
        assert statuses == [200] * 15 + [429] * 5
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        for server in backends.values():
            server.shutdown()
            server.server_close()
