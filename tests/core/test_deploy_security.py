"""Production transport security (issue 16, defect 9): ``manage.py check --deploy`` is clean, TLS is
trusted from HAProxy's X-Forwarded-Proto, plain HTTP is redirected except the health probes, and
HAProxy sets the header itself.

Each test runs a real process with the production environment (``CAMPAIGN_EXPRESS_ENV=production``
and the secrets production refuses to start without), so what is checked is what production loads,
not a setting a test flipped."""
from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HOST = "campaigns.example.com"


def production_env(**overrides: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DJANGO_SECURE_", "DJANGO_SESSION_", "DJANGO_CSRF_", "STAFF_"))}
    env.pop("DJANGO_DEBUG", None)
    env.update(
        CAMPAIGN_EXPRESS_ENV="production",
        DJANGO_SETTINGS_MODULE="config.settings",
        DJANGO_SECRET_KEY=secrets.token_urlsafe(64),
        DJANGO_ALLOWED_HOSTS=HOST,
        BID_WIN_SECRET=secrets.token_hex(32),
        OUTBOUND_SECRET_KEYS=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
    )
    env.update(overrides)
    return env


def run_check(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )


def test_check_deploy_passes_at_warning_level_in_production():
    result = run_check(production_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


def test_check_deploy_fails_when_production_turns_the_protections_off():
    # The check above can fail: the same command with the redirect and secure cookies off is refused.
    result = run_check(production_env(DJANGO_SECURE_SSL_REDIRECT="false", DJANGO_SESSION_COOKIE_SECURE="false",
                                      DJANGO_SECURE_HSTS_SECONDS="0"))
    assert result.returncode != 0
    for code in ("security.W004", "security.W008", "security.W012"):
        assert code in result.stderr + result.stdout


PROBE = r"""
import json, django
django.setup()
from django.test import Client
from django.conf import settings
client = Client(HTTP_HOST=PROBE_HOST)
out = {}
for path in ("/live", "/ready", "/metrics", "/admin/", "/admin/login/", "/v1/campaigns/", "/"):
    r = client.get(path)
    out[path] = {"status": r.status_code, "location": r.headers.get("Location")}
# Through HAProxy's TLS bind: X-Forwarded-Proto https, so no redirect, HSTS and secure cookies.
r = client.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")
csrf = r.cookies.get("csrftoken")
out["https_login"] = {"status": r.status_code, "hsts": r.headers.get("Strict-Transport-Security"),
                      "csrf_cookie_secure": bool(csrf and csrf["secure"])}
out["session_cookie_secure"] = settings.SESSION_COOKIE_SECURE
print(json.dumps(out))
""".replace("PROBE_HOST", repr(HOST))


def test_plain_http_is_redirected_to_https_except_the_health_probes():
    result = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, env=production_env(),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])

    # Probes inside the network speak plain HTTP: they get their answer, never a redirect.
    assert out["/live"]["status"] == 200
    assert out["/ready"]["status"] in (200, 503)
    assert out["/metrics"]["status"] == 200
    # Everything else over plain HTTP goes to the same URL on https.
    for path in ("/admin/", "/admin/login/", "/v1/campaigns/", "/"):
        assert out[path] == {"status": 301, "location": f"https://{HOST}{path}"}, path

    assert out["https_login"]["status"] == 200
    assert out["https_login"]["hsts"] == "max-age=31536000; includeSubDomains"
    assert out["https_login"]["csrf_cookie_secure"] is True
    assert out["session_cookie_secure"] is True


def test_development_keeps_plain_http():
    # The suite itself (and `make run`) serve plain HTTP with no redirect.
    from django.conf import settings

    assert settings.SECURE_SSL_REDIRECT is False
    assert settings.SECURE_HSTS_SECONDS == 0
    assert not hasattr(settings, "SECURE_PROXY_SSL_HEADER") or settings.SECURE_PROXY_SSL_HEADER is None

# HAProxy's side (it sets X-Forwarded-Proto and drops a client's) runs the real haproxy in
# tests/campaigns/test_docker.py.
