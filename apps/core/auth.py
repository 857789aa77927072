"""Staff authentication: login lockout (django-axes), the audit trail of logins, and TOTP two-factor
(django-otp) for the admin.

- **Lockout.** axes counts failed ``authenticate()`` calls in Postgres and refuses a locked account or
  address (config/settings/security.py). This module tells axes which address and username to count
  (:func:`client_ip`, :func:`login_username`) and answers a refused login with a 429 page
  (:func:`lockout_response`).
- **Audit.** Every login success, failure, lockout, logout and two-factor enrolment writes an
  :class:`~apps.core.models.AuthAudit` row with the username, address and user agent (never a
  password or a code), logs a structured event and counts ``staff_auth_events_total{event}`` — the
  counter to alert on.
- **Two-factor.** :class:`StaffAuthenticationForm` is the admin's login form: a user with a confirmed
  TOTP device must also give its current code. With ``STAFF_2FA_REQUIRED`` on, an Admin, Approver or
  superuser whose session was not verified with a code gets only the enrolment page
  (``/admin/two-factor/``) until they have enrolled (:func:`staff_two_factor_middleware`).
"""
from __future__ import annotations

import io
import unicodedata
from base64 import b32encode

import structlog
from asgiref.sync import iscoroutinefunction, sync_to_async
from axes.backends import AxesStandaloneBackend
from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import REDIRECT_FIELD_NAME, logout
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http import HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.utils.decorators import sync_and_async_middleware
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.safestring import mark_safe
from prometheus_client import Counter

from apps.core.models import AuthAudit, AuthEvent
from apps.core.roles import Role, user_has_role

log = structlog.get_logger(__name__)

auth_events_total = Counter(
    "staff_auth_events_total", "Staff authentication events (login success/failure, lockout, logout, 2FA enrolment)",
    ["event"],
)

SETUP_PATH = "/admin/two-factor/"


# --- what axes counts ----------------------------------------------------------------------------
class LockoutBackend(AxesStandaloneBackend):
    """axes' lockout check for every authenticate() that comes with a request (the admin login form;
    DRF's authentication classes pass theirs too). A call without one is not from the network — a
    management command, a shell, a test checking a password — and has no address to count: it is
    let through to the password check instead of failing as axes would."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if request is None:
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)


def client_ip(request) -> str | None:
    """The client's address: the socket peer, which behind HAProxy is the address HAProxy put in
    X-Forwarded-For (uvicorn --proxy-headers; HAProxy replaces a client's own header)."""
    return request.META.get("REMOTE_ADDR") or None


def normalize_username(raw) -> str:
    # As Django's login form cleans it (UsernameField: NFKC, stripped), so " admin" and "admin" are
    # one account to the lockout as they are to authenticate().
    return unicodedata.normalize("NFKC", str(raw or "")).strip()[:150]


def login_username(request, credentials: dict | None) -> str | None:
    """The username axes counts: from the credentials given to authenticate(), else the login form."""
    raw = (credentials or {}).get("username")
    if raw is None and request is not None:
        raw = getattr(request, "POST", {}).get("username")
    return normalize_username(raw) if raw is not None else None


def lockout_response(request, *_args, **_kwargs) -> HttpResponse:
    """429 with Retry-After and a page saying what happened and when to try again (axes calls this
    for a login refused because the account or the address is locked)."""
    cool_off = int(settings.AXES_COOLOFF_TIME.total_seconds())
    minutes = max(1, round(cool_off / 60))
    context = {
        "title": "Too many failed logins",
        "site_header": "Campaign Express",
        "cool_off_seconds": cool_off,
        "cool_off_text": f"{minutes} minute{'s' if minutes != 1 else ''}" if cool_off >= 60 else f"{cool_off} seconds",
        "failure_limit": settings.AXES_FAILURE_LIMIT,
    }
    response = render(request, "admin/staff_locked_out.html", context, status=429)
    response["Retry-After"] = str(cool_off)
    return response


# --- the audit trail -----------------------------------------------------------------------------
def auth_audit_record(*, event: str, request=None, username: str = "", user=None, detail: str = "") -> AuthAudit:
    """Write one audit row for an authentication event (and log and count it)."""
    meta = getattr(request, "META", {}) if request is not None else {}
    row = AuthAudit.objects.create(
        event=event,
        username=normalize_username(username or (user.get_username() if user is not None else "")),
        user=user if user is not None and getattr(user, "pk", None) else None,
        ip_address=client_ip(request) if request is not None else None,
        user_agent=str(meta.get("HTTP_USER_AGENT", ""))[:255],
        path=str(getattr(request, "path", "") or "")[:255],
        detail=detail[:200],
    )
    auth_events_total.labels(event).inc()
    level = log.warning if event in (AuthEvent.LOGIN_FAILED, AuthEvent.LOCKED_OUT) else log.info
    level(f"staff_{event}", username=row.username, ip=row.ip_address, path=row.path, detail=detail or None)
    return row


def auth_audit_purge(*, older_than_days: int | None = None, batch_size: int | None = None) -> int:
    """Delete audit rows older than ``older_than_days`` (default ``AUTH_AUDIT_RETENTION_DAYS``) in
    bounded batches; returns how many went."""
    from datetime import timedelta

    from django.conf import settings
    from django.utils import timezone

    from apps.core.retention import delete_in_batches

    days = settings.AUTH_AUDIT_RETENTION_DAYS if older_than_days is None else older_than_days
    cutoff = timezone.now() - timedelta(days=days)
    return delete_in_batches(AuthAudit.objects.filter(at__lt=cutoff), batch_size=batch_size)


def _user_named(username: str):
    from django.contrib.auth import get_user_model

    return get_user_model()._default_manager.filter(**{get_user_model().USERNAME_FIELD: username}).first()


def _on_login_failed(sender, credentials, request=None, **kwargs) -> None:
    if (request is not None and getattr(request, "axes_locked_out", False)
            and getattr(request, "axes_failures_since_start", None) is None):
        # axes refused this attempt before any password was checked (its backend flags the request;
        # only its failure handler counts failures): its user_locked_out signal writes the row. The
        # attempt that reaches the limit was checked and counted, and is recorded here as a failure.
        return
    username = login_username(request, credentials) or ""
    detail = kwargs.get("reason") or "wrong username or password"
    auth_audit_record(event=AuthEvent.LOGIN_FAILED, request=request, username=username,
                      user=_user_named(username) if username else None, detail=detail)


def _on_locked_out(sender, request=None, username=None, ip_address=None, **kwargs) -> None:
    username = normalize_username(username)
    auth_audit_record(event=AuthEvent.LOCKED_OUT, request=request, username=username,
                      user=_user_named(username) if username else None,
                      detail=f"{settings.AXES_FAILURE_LIMIT} failures: refused for "
                             f"{int(settings.AXES_COOLOFF_TIME.total_seconds())} s")


def _on_logged_in(sender, request, user, **kwargs) -> None:
    verified = getattr(user, "otp_device", None) is not None
    auth_audit_record(event=AuthEvent.LOGIN_SUCCEEDED, request=request, user=user,
                      detail="password and authenticator code" if verified else "password")


def _on_logged_out(sender, request, user, **kwargs) -> None:
    if user is not None:
        auth_audit_record(event=AuthEvent.LOGGED_OUT, request=request, user=user)


def connect_signals() -> None:
    """Called from CoreConfig.ready()."""
    from axes.signals import user_locked_out

    user_login_failed.connect(_on_login_failed, dispatch_uid="core.auth.login_failed")
    user_locked_out.connect(_on_locked_out, dispatch_uid="core.auth.locked_out")
    user_logged_in.connect(_on_logged_in, dispatch_uid="core.auth.logged_in")
    user_logged_out.connect(_on_logged_out, dispatch_uid="core.auth.logged_out")


# --- two-factor ----------------------------------------------------------------------------------
def confirmed_device(user):
    """The user's confirmed TOTP device, or None."""
    from django_otp.plugins.otp_totp.models import TOTPDevice

    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("id").first()


def two_factor_required(user) -> bool:
    """True when STAFF_2FA_REQUIRED is on and the user is an Admin, Approver or superuser."""
    return bool(settings.STAFF_2FA_REQUIRED) and user_has_role(user, Role.APPROVER)


def code_throttled(device) -> bool:
    """True while django-otp's back-off after wrong codes (1 s, 2 s, 4 s, ...) refuses any code."""
    allowed, _ = device.verify_is_allowed()
    return not allowed


def session_meets_two_factor(user, session) -> bool:
    """For code outside Django's middleware (the live-stats websocket): False when the user's role
    requires two-factor and ``session`` was not verified with one of the user's confirmed devices."""
    if not two_factor_required(user):
        return True
    from django_otp import DEVICE_ID_SESSION_KEY
    from django_otp.models import Device

    persistent_id = session.get(DEVICE_ID_SESSION_KEY) if session is not None else None
    device = Device.from_persistent_id(persistent_id) if persistent_id else None
    return device is not None and device.user_id == user.pk and device.confirmed


def verify_code(user, device, token: str):
    """The device if ``token`` is its current code (under the device's row lock, so a code is used once
    and django-otp's throttle counts every wrong one), else None."""
    from django_otp import verify_token

    token = "".join(str(token or "").split())
    if not token.isdigit() or len(token) > 10:
        return None
    return verify_token(user, device.persistent_id, token)


class StaffAuthenticationForm(AdminAuthenticationForm):
    """The admin login: username and password, plus the authenticator code once one is enrolled.

    A wrong code counts as a failed login for the lockout (and the audit trail), exactly like a wrong
    password, so the second factor cannot be guessed either."""

    otp_token = forms.CharField(
        label="Authenticator code", required=False, max_length=12, strip=True,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "size": 8}),
        help_text="The 6-digit code from your authenticator app, if you have set up two-factor authentication.",
    )

    error_messages = {
        **AdminAuthenticationForm.error_messages,
        "invalid_otp": "Enter the current 6-digit code from your authenticator app (two-factor authentication "
                       "is on for this account).",
        "otp_throttled": "Too many wrong authenticator codes: wait a few seconds, then enter the current code.",
    }

    def clean(self):
        cleaned = super().clean()  # authenticate(): axes' lockout check, the password, is_staff
        user = self.user_cache
        if user is None:
            return cleaned
        device = confirmed_device(user)
        if device is None:
            return cleaned
        throttled = code_throttled(device)
        verified = None if throttled else verify_code(user, device, cleaned.get("otp_token"))
        if verified is None:
            self.user_cache = None
            user_login_failed.send(sender=__name__, credentials={"username": user.get_username()},
                                   request=self.request, reason="wrong or missing authenticator code")
            code = "otp_throttled" if throttled else "invalid_otp"
            raise ValidationError(self.error_messages[code], code=code)
        user.otp_device = verified  # django_otp marks the session verified when login() runs
        return cleaned


_EXEMPT_PREFIXES = ("/static/", "/live", "/ready", "/metrics")


def _two_factor_refusal(request, user):
    """None when the request may go on; else the response for a required-2FA user not yet verified."""
    if not two_factor_required(user) or user.is_verified():
        return None
    path = request.path
    if (path.startswith(SETUP_PATH) or path in (reverse("admin:logout"), reverse("admin:login"))
            or path.startswith(_EXEMPT_PREFIXES)):
        return None
    if path.startswith("/v1/") and request.META.get("HTTP_AUTHORIZATION", "").split(" ")[0].lower() == "token":
        # DRF's TokenAuthentication comes first and answers 401 for a bad token: the session is not
        # what authenticates this call. (Any other scheme falls through to the session: checked.)
        return None
    has_device = confirmed_device(user) is not None
    if path.startswith("/v1/"):
        return JsonResponse({"error": "two_factor_required",
                             "detail": "Your role requires two-factor authentication: log in to the admin with your "
                                       "authenticator code" + ("." if has_device else f" after enrolling at {SETUP_PATH}.")},
                            status=403)
    if has_device:
        # A session from before two-factor was required (or from before the device was enrolled):
        # log in again with a code.
        logout(request)
        return HttpResponseRedirect(f"{reverse('admin:login')}?{urlencode({REDIRECT_FIELD_NAME: path})}")
    return HttpResponseRedirect(f"{SETUP_PATH}?{urlencode({REDIRECT_FIELD_NAME: request.get_full_path()})}")


@sync_and_async_middleware
def staff_two_factor_middleware(get_response):
    """Keeps Admins, Approvers and superusers to the enrolment page until their session is verified
    with an authenticator code, when STAFF_2FA_REQUIRED is on. Token-authenticated API calls carry
    no session and are not affected. Costs nothing with the setting off."""
    if iscoroutinefunction(get_response):
        async def middleware(request):
            if settings.STAFF_2FA_REQUIRED:
                user = await request.auser()
                if user.is_authenticated:
                    refusal = await sync_to_async(_two_factor_refusal)(request, user)
                    if refusal is not None:
                        return refusal
            return await get_response(request)
    else:
        def middleware(request):
            if settings.STAFF_2FA_REQUIRED and request.user.is_authenticated:
                refusal = _two_factor_refusal(request, request.user)
                if refusal is not None:
                    return refusal
            return get_response(request)
    return middleware


class CodeForm(forms.Form):
    otp_token = forms.CharField(label="Code from the app", max_length=12, strip=True,
                                widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric",
                                                              "size": 8, "autofocus": True}))


def two_factor_setup(request):
    """Enrol a TOTP authenticator for the signed-in staff user: scan the QR code (or type the key),
    confirm with a current code. One device per user; an Admin deletes a lost one in the admin
    (Platform › TOTP devices), after which the user enrols again."""
    from django.contrib import admin
    from django_otp import login as otp_login
    from django_otp.plugins.otp_totp.models import TOTPDevice
    from django_otp.qr import write_qrcode_image

    user = request.user
    next_url = request.POST.get(REDIRECT_FIELD_NAME) or request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = reverse("admin:index")
    context = {**admin.site.each_context(request), "title": "Two-factor authentication", "next": next_url,
               "required": two_factor_required(user)}

    device = confirmed_device(user)
    if device is not None:
        return render(request, "admin/two_factor_setup.html", {**context, "enrolled": device})

    with transaction.atomic():
        pending = TOTPDevice.objects.select_for_update().filter(user=user, confirmed=False).order_by("id").first()
        if pending is None:
            pending = TOTPDevice.objects.create(user=user, name="authenticator", confirmed=False)
    form = CodeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        if code_throttled(pending):
            form.add_error("otp_token", "Too many wrong codes: wait a few seconds, then type the code the app shows.")
        elif verify_code(user, pending, form.cleaned_data["otp_token"]) is not None:
            TOTPDevice.objects.filter(pk=pending.pk).update(confirmed=True)
            pending.confirmed = True
            otp_login(request, pending)
            auth_audit_record(event=AuthEvent.TWO_FACTOR_ENROLLED, request=request, user=user, detail="TOTP")
            messages.success(request, "Two-factor authentication is on: the admin login now asks for a code.")
            return HttpResponseRedirect(next_url)
        else:
            form.add_error("otp_token", "That code is not the current one. Check that your phone's clock is right "
                                        "and type the code the app shows now.")
    svg = io.BytesIO()
    write_qrcode_image(pending.config_url, svg)
    markup = svg.getvalue().decode()
    markup = markup[markup.find("<svg"):]  # inline: without the XML declaration
    context.update(form=form, qr_svg=mark_safe(markup),  # generated by qrcode from the otpauth URL, no user input
                   secret=b32encode(pending.bin_key).decode())
    return render(request, "admin/two_factor_setup.html", context)
