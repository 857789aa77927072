"""Staff logins end to end (issue 16, defect 10) through the real web process: uvicorn serving
config.asgi with --proxy-headers as docker/compose.yaml runs it, so the client address comes from
X-Forwarded-For as HAProxy sets it, and the lockout, its 429 page and the two-factor middleware run on
Django's async middleware path. The test logs in with httpx exactly as a browser posts the form."""
from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from django.conf import settings
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.core.models import AuthAudit
from apps.core.roles import Role
from tests.factories import make_user
from tests.support.wait import pause, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True),
              pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
COOL_OFF = 4


def _free_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


@pytest.fixture
def web(tmp_path):
    db = settings.DATABASES["default"]
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "STAFF_LOGIN_FAILURE_LIMIT": "3",
        "STAFF_LOGIN_COOLOFF_SECONDS": str(COOL_OFF),
        "STAFF_2FA_REQUIRED": "true",
    }
    log = open(tmp_path / "uvicorn.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1", "--port", str(port),
         "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1", "--no-access-log"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: proc.poll() is None and httpx.get(f"{base}/live", timeout=1).status_code == 200,
                   timeout=30, ignore=(httpx.HTTPError,), message="uvicorn answering /live",
                   detail=lambda: (tmp_path / "uvicorn.log").read_text())
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def browser(base: str, address: str) -> httpx.Client:
    """A client whose requests arrive as HAProxy forwards them from ``address``."""
    return httpx.Client(base_url=base, headers={"X-Forwarded-For": address, "User-Agent": "e2e-browser"}, timeout=10)


def post_login(client: httpx.Client, username: str, password: str, otp_token: str = "") -> httpx.Response:
    page = client.get("/admin/login/?next=/admin/")
    assert page.status_code == 200
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return client.post("/admin/login/?next=/admin/", data={
        "csrfmiddlewaretoken": csrf, "username": username, "password": password, "otp_token": otp_token,
        "next": "/admin/"})


def current_code(device: TOTPDevice) -> str:
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def test_lockout_audit_and_two_factor_through_the_asgi_web_process(web):
    make_user(Role.ADMIN, username="admin-e2e", password=PASSWORD)
    approver = make_user(Role.APPROVER, username="approver-e2e", password=PASSWORD)

    # Three wrong passwords from one address: the third is answered with the lockout page.
    attacker = browser(web, "203.0.113.5")
    statuses = [post_login(attacker, "admin-e2e", f"guess-{n}").status_code for n in range(3)]
    assert statuses == [200, 200, 429]
    refused = post_login(attacker, "admin-e2e", PASSWORD)
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == str(COOL_OFF)
    assert "Too many failed logins" in refused.text
    assert attacker.get("/admin/").headers.get("location", "").startswith("/admin/login/")

    # An approver from another address is not locked; two-factor is required, so the password alone
    # leads only to the enrolment page, and a code from the app confirms it.
    staff = browser(web, "198.51.100.7")
    response = post_login(staff, "approver-e2e", PASSWORD)
    assert response.status_code == 302 and response.headers["location"] == "/admin/"
    blocked = staff.get("/admin/")
    assert blocked.status_code == 302 and blocked.headers["location"] == "/admin/two-factor/?next=%2Fadmin%2F"
    assert staff.get("/v1/campaigns/").status_code == 403
    setup = staff.get("/admin/two-factor/")
    assert setup.status_code == 200 and "<svg" in setup.text
    device = TOTPDevice.objects.get(user=approver, confirmed=False)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', setup.text).group(1)
    confirmed = staff.post("/admin/two-factor/", data={"csrfmiddlewaretoken": csrf, "otp_token": current_code(device),
                                                        "next": "/admin/"})
    assert confirmed.status_code == 302 and confirmed.headers["location"] == "/admin/"
    assert staff.get("/admin/").status_code == 200  # (model pages need the role's permissions, which
    # an earlier transactional test's flush may have removed: this test does not restore them)

    # After the cool-off the locked account logs in again (it has no device and is an Admin: enrolment next).
    pause(COOL_OFF + 0.5, "the lockout's cool-off must pass")
    again = post_login(attacker, "admin-e2e", PASSWORD)
    assert again.status_code == 302

    rows = [(r.event, r.username, r.ip_address) for r in AuthAudit.objects.order_by("id")]
    # (Within the attempt that reaches the limit, the failure and the lockout rows come in the order
    # the signal receivers run.)
    assert sorted(rows[:5]) == sorted([
        ("login_failed", "admin-e2e", "203.0.113.5"),
        ("login_failed", "admin-e2e", "203.0.113.5"),
        ("login_failed", "admin-e2e", "203.0.113.5"),
        ("locked_out", "admin-e2e", "203.0.113.5"),
        ("locked_out", "admin-e2e", "203.0.113.5"),
    ])
    assert rows[5:] == [
        ("login_succeeded", "approver-e2e", "198.51.100.7"),
        ("2fa_enrolled", "approver-e2e", "198.51.100.7"),
        ("login_succeeded", "admin-e2e", "203.0.113.5"),
    ]
