"""Staff logins (issue 16, defect 10): lockout per account, per address and per pair (django-axes),
the audit trail of every login, and TOTP two-factor for the admin (django-otp), through the real
admin login form, Postgres and the Django test client. The ASGI end-to-end run is in
test_staff_auth_e2e.py."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from apps.core.models import AuthAudit, AuthEvent
from apps.core.roles import Role
from tests.factories import make_user
from tests.support.wait import pause

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery staple"
WRONG = "Tr0ub4dor&3"
LOGIN = "/admin/login/"


@pytest.fixture(autouse=True)
def _fast_hashing_and_defaults(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    # The production defaults, whatever the environment running the suite says.
    settings.AXES_FAILURE_LIMIT = 5
    settings.AXES_COOLOFF_TIME = timedelta(minutes=15)
    settings.STAFF_2FA_REQUIRED = False


@pytest.fixture
def admin_account(db):
    return make_user(Role.ADMIN, username="admin", password=PASSWORD)


@pytest.fixture
def approver(db):
    return make_user(Role.APPROVER, username="approver", password=PASSWORD)


def login(client, username, password, ip="10.0.0.1", otp_token=None, **extra):
    data = {"username": username, "password": password, "next": "/admin/"}
    if otp_token is not None:
        data["otp_token"] = otp_token
    return client.post(LOGIN, data, REMOTE_ADDR=ip, HTTP_USER_AGENT="pytest-agent/1.0", **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


def events(*kinds):
    return list(AuthAudit.objects.filter(event__in=kinds).order_by("id"))


# --- lockout -------------------------------------------------------------------------------------
def test_forty_wrong_passwords_lock_the_account_and_the_right_one_is_then_refused(client, admin_account):
    statuses = [login(client, "admin", f"{WRONG}{n}").status_code for n in range(40)]

    # The first four are the login form again; the fifth reaches the limit and every later one is refused.
    assert statuses[:4] == [200] * 4
    assert statuses[4:] == [429] * 36
    right = login(client, "admin", PASSWORD)
    assert right.status_code == 429
    assert right["Retry-After"] == "900"
    assert "Too many failed logins" in right.content.decode()
    assert "Try again in 15 minutes" in right.content.decode()
    assert not logged_in(client)
    assert client.get("/admin/").status_code == 302  # to the login page

    # Audit: five failed logins, then one locked-out row per refused attempt; no success.
    assert len(events(AuthEvent.LOGIN_FAILED)) == 5
    assert len(events(AuthEvent.LOCKED_OUT)) == 37
    assert events(AuthEvent.LOGIN_SUCCEEDED) == []
    failed = events(AuthEvent.LOGIN_FAILED)[0]
    assert (failed.username, failed.user, failed.ip_address, failed.user_agent, failed.path) == (
        "admin", admin_account, "10.0.0.1", "pytest-agent/1.0", LOGIN)
    # A lock does not grow while the attacker keeps trying: the refused attempts are not counted.
    assert sum(a.failures_since_start for a in AccessAttempt.objects.all()) == 5


def test_the_lock_is_per_account_per_address_and_per_pair(client, admin_account, approver):
    for n in range(5):
        login(client, "admin", f"{WRONG}{n}", ip="10.0.0.1")

    # Another account from another address: not locked.
    other = login(client, "approver", PASSWORD, ip="10.0.0.2")
    assert other.status_code == 302 and other["Location"] == "/admin/"
    assert logged_in(client)
    client.logout()
    # The locked account from another address (a guesser spread over many addresses): refused.
    assert login(client, "admin", PASSWORD, ip="10.0.0.3").status_code == 429
    # Another account from the locked address (one address spraying accounts): refused.
    assert login(client, "approver", PASSWORD, ip="10.0.0.1").status_code == 429
    assert not logged_in(client)


def test_username_variants_count_as_one_account(client, admin_account):
    for n, variant in enumerate(["admin", " admin", "admin ", "ａｄｍｉｎ", "admin"]):  # NFKC folds the wide letters
        login(client, variant, f"{WRONG}{n}", ip=f"10.0.1.{n}")
    assert login(client, "admin", PASSWORD, ip="10.0.1.99").status_code == 429


def test_the_lock_lifts_after_the_cool_off(client, admin_account, settings):
    settings.AXES_FAILURE_LIMIT = 3
    settings.AXES_COOLOFF_TIME = timedelta(seconds=2)
    assert [login(client, "admin", WRONG).status_code for _ in range(3)] == [200, 200, 429]
    refused = login(client, "admin", PASSWORD)
    assert refused.status_code == 429 and refused["Retry-After"] == "2"
    assert "Try again in 2 seconds" in refused.content.decode()

    pause(2.2, "the 2 s cool-off must pass before the lock lifts")
    ok = login(client, "admin", PASSWORD)
    assert ok.status_code == 302 and logged_in(client)
    assert len(events(AuthEvent.LOGIN_SUCCEEDED)) == 1


def test_a_success_does_not_wipe_the_failures_of_its_address(client, admin_account, approver):
    # Otherwise a guesser holding one working account could log in with it between guesses.
    for n in range(4):
        login(client, "admin", f"{WRONG}{n}")
    assert login(client, "approver", PASSWORD).status_code == 302
    client.logout()
    assert login(client, "admin", WRONG).status_code == 429


def test_every_login_and_logout_is_audited_and_no_secret_is_stored(client, admin_account):
    login(client, "nobody-here", WRONG, ip="10.0.0.7")
    login(client, "admin", WRONG, ip="10.0.0.7")
    assert login(client, "admin", PASSWORD, ip="10.0.0.8").status_code == 302
    client.post("/admin/logout/", REMOTE_ADDR="10.0.0.8")

    rows = [(r.event, r.username, r.user_id, r.ip_address, r.detail) for r in AuthAudit.objects.order_by("id")]
    assert rows == [
        ("login_failed", "nobody-here", None, "10.0.0.7", "wrong username or password"),
        ("login_failed", "admin", admin_account.pk, "10.0.0.7", "wrong username or password"),
        ("login_succeeded", "admin", admin_account.pk, "10.0.0.8", "password"),
        ("logged_out", "admin", admin_account.pk, "10.0.0.8", ""),
    ]
    stored = " ".join(str(v) for r in AuthAudit.objects.values() for v in r.values())
    stored += " ".join(a.post_data + a.get_data for a in AccessAttempt.objects.all())
    assert WRONG not in stored and PASSWORD not in stored


def test_api_tokens_are_not_affected_by_a_locked_account(client, admin_account):
    from tests.factories import token_client

    for n in range(5):
        login(client, "admin", f"{WRONG}{n}", ip="127.0.0.1")
    api = token_client(admin_account)
    assert api.get("/v1/campaigns/").status_code == 200


def test_lockout_parameters_come_from_the_environment():
    from config import env
    from config.settings.security import _lockout_parameters

    assert _lockout_parameters("username+ip_address,username,ip_address") == [
        ["username", "ip_address"], "username", "ip_address"]
    assert _lockout_parameters("ip_address, username+ip_address") == ["ip_address", ["username", "ip_address"]]
    with pytest.raises(env.ImproperlyConfiguredEnv, match="'email' is not one of"):
        _lockout_parameters("username,email")


# --- two-factor ----------------------------------------------------------------------------------
def code_for(device, offset_steps: int = 0) -> str:
    """The device's TOTP code, computed from its key as the phone would (offset: steps ahead)."""
    device.refresh_from_db()
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time() + offset_steps * device.step
    return f"{totp.token():0{device.digits}d}"


def enrolled(user) -> TOTPDevice:
    return TOTPDevice.objects.create(user=user, name="phone", confirmed=True)


def test_required_two_factor_blocks_an_approver_without_a_device_until_enrolled(client, approver, settings):
    settings.STAFF_2FA_REQUIRED = True
    response = login(client, "approver", PASSWORD)
    assert response.status_code == 302 and logged_in(client)

    # Blocked from the back office and from the API through the session, sent to the enrolment page.
    for path in ("/admin/", "/admin/campaigns/campaign/"):
        blocked = client.get(path)
        assert blocked.status_code == 302
        assert blocked["Location"].startswith("/admin/two-factor/?next=")
    api = client.get("/v1/campaigns/")
    assert api.status_code == 403 and api.json()["error"] == "two_factor_required"
    # Another authorization scheme does not let the session through; a real API token works as always.
    assert client.get("/v1/campaigns/", HTTP_AUTHORIZATION="Bearer x").status_code == 403
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=approver)
    assert client.get("/v1/campaigns/", HTTP_AUTHORIZATION=f"Token {token.key}").status_code == 200

    page = client.get("/admin/two-factor/")
    assert page.status_code == 200
    device = TOTPDevice.objects.get(user=approver, confirmed=False)
    assert page.context["secret"] and "<svg" in page.content.decode()
    wrong = client.post("/admin/two-factor/", {"otp_token": "000000", "next": "/admin/"})
    assert wrong.status_code == 200 and "not the current one" in wrong.content.decode()
    assert client.get("/admin/").status_code == 302
    pause(1.1, "django-otp's back-off after a wrong code (1 s, then 2 s, 4 s, ...)")

    done = client.post("/admin/two-factor/", {"otp_token": code_for(device), "next": "/admin/"})
    assert done.status_code == 302 and done["Location"] == "/admin/"
    assert TOTPDevice.objects.get(pk=device.pk).confirmed
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/campaigns/campaign/").status_code == 200
    assert [r.event for r in AuthAudit.objects.order_by("id")] == ["login_succeeded", "2fa_enrolled"]


def test_an_enrolled_approver_logs_in_only_with_a_valid_code(client, approver, settings):
    settings.STAFF_2FA_REQUIRED = True
    device = enrolled(approver)

    no_code = login(client, "approver", PASSWORD)
    assert no_code.status_code == 200 and not logged_in(client)
    assert "current 6-digit code" in no_code.content.decode()
    bad_code = login(client, "approver", PASSWORD, otp_token="123456")
    assert bad_code.status_code == 200 and not logged_in(client)
    # Right after a wrong code django-otp's back-off (1 s, then 2 s, 4 s, ...) refuses even the right one.
    throttled = login(client, "approver", PASSWORD, otp_token=code_for(device))
    assert throttled.status_code == 200 and "wait a few seconds" in throttled.content.decode()
    pause(1.1, "django-otp's 1 s back-off after the wrong code")

    ok = login(client, "approver", PASSWORD, otp_token=code_for(device))
    assert ok.status_code == 302 and ok["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    assert client.get("/admin/campaigns/campaign/").status_code == 200
    rows = [(r.event, r.detail) for r in AuthAudit.objects.order_by("id")]
    assert rows == [
        ("login_failed", "wrong or missing authenticator code"),
        ("login_failed", "wrong or missing authenticator code"),
        ("login_failed", "wrong or missing authenticator code"),
        ("login_succeeded", "password and authenticator code"),
    ]


def test_a_code_is_accepted_once(client, approver, settings):
    settings.STAFF_2FA_REQUIRED = True
    device = enrolled(approver)
    code = code_for(device)
    assert login(client, "approver", PASSWORD, otp_token=code).status_code == 302
    client.logout()
    assert login(client, "approver", PASSWORD, otp_token=code).status_code == 200  # replayed
    assert not logged_in(client)


def test_wrong_codes_count_towards_the_lockout(client, approver, settings):
    settings.STAFF_2FA_REQUIRED = True
    device = enrolled(approver)
    statuses = [login(client, "approver", PASSWORD, otp_token=f"{n:06d}").status_code for n in range(5)]
    assert statuses == [200, 200, 200, 200, 429]
    assert login(client, "approver", PASSWORD, otp_token=code_for(device)).status_code == 429
    assert not logged_in(client)


def test_a_session_without_a_code_is_sent_back_to_the_login(client, approver, settings):
    # A session from before two-factor was required, for a user who has a device: log in again.
    enrolled(approver)
    client.force_login(approver)
    settings.STAFF_2FA_REQUIRED = True
    response = client.get("/admin/campaigns/campaign/")
    assert response.status_code == 302
    assert response["Location"] == "/admin/login/?next=%2Fadmin%2Fcampaigns%2Fcampaign%2F"
    assert not logged_in(client)


def test_a_marketer_needs_no_second_factor_even_when_required(client, settings):
    settings.STAFF_2FA_REQUIRED = True
    make_user(Role.MARKETER, username="marketer", password=PASSWORD)
    assert login(client, "marketer", PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200


def test_two_factor_is_optional_by_default(client, approver):
    # Not required: an approver without a device uses the admin with the password alone ...
    assert login(client, "approver", PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200
    # ... may enrol, and from then on the login asks for the code.
    client.get("/admin/two-factor/")
    device = TOTPDevice.objects.get(user=approver)
    assert client.post("/admin/two-factor/", {"otp_token": code_for(device)}).status_code == 302
    assert client.get("/admin/two-factor/").context["enrolled"] == TOTPDevice.objects.get(user=approver)
    client.logout()
    assert login(client, "approver", PASSWORD).status_code == 200
    assert login(client, "approver", PASSWORD, otp_token=code_for(device, offset_steps=1)).status_code == 302


def test_the_admin_lists_the_audit_trail_to_admins_only(client, admin_account, approver):
    login(client, "approver", WRONG)
    client.force_login(admin_account)
    page = client.get("/admin/core/authaudit/")
    assert page.status_code == 200 and "approver" in page.content.decode()
    client.force_login(approver)
    assert client.get("/admin/core/authaudit/").status_code == 403


def test_the_live_websocket_applies_the_same_two_factor_rule(approver, settings):
    # The websocket skips Django's middleware; apps.analytics.consumers checks the session itself.
    from django_otp import DEVICE_ID_SESSION_KEY

    from apps.analytics.consumers import _allowed

    settings.STAFF_2FA_REQUIRED = True
    assert not _allowed(approver, {})
    device = enrolled(approver)
    assert _allowed(approver, {DEVICE_ID_SESSION_KEY: device.persistent_id})
    other = enrolled(make_user(Role.APPROVER, username="someone-else"))
    assert not _allowed(approver, {DEVICE_ID_SESSION_KEY: other.persistent_id})
    settings.STAFF_2FA_REQUIRED = False
    assert _allowed(approver, {})
