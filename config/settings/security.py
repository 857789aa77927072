"""Transport security (TLS at HAProxy), staff login throttling and lockout (django-axes), and staff
two-factor authentication (django-otp TOTP). Read through ``config.env``; the README's Environment
table lists the variables, docs/DESIGN.md "Security" says why they are set this way."""
from datetime import timedelta

from config import env

# --- TLS ends at HAProxy -------------------------------------------------------------------------
# docker/haproxy.cfg drops any X-Forwarded-Proto a client sends and sets its own (https on the TLS
# bind, http on the plain one); the web process is reachable only through HAProxy (compose `expose`).
# Trusting the header anywhere else would let a client claim https, so it is on only in production
# unless turned on explicitly.
if env.env_bool("DJANGO_SECURE_PROXY_SSL_HEADER", env.IS_PRODUCTION):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.env_bool("DJANGO_SECURE_SSL_REDIRECT", env.IS_PRODUCTION)
# Probes and scrapes inside the network speak plain HTTP to the web container directly (HAProxy's
# health check, compose's healthcheck, Prometheus): they must get their answer, not a redirect to an
# https:// URL that the container does not serve. Patterns match the path without its leading slash.
SECURE_REDIRECT_EXEMPT = [r"^live$", r"^ready$", r"^metrics$"]
SESSION_COOKIE_SECURE = env.env_bool("DJANGO_SESSION_COOKIE_SECURE", env.IS_PRODUCTION)
CSRF_COOKIE_SECURE = env.env_bool("DJANGO_CSRF_COOKIE_SECURE", env.IS_PRODUCTION)
# HSTS: once a browser has seen it, it refuses plain HTTP for this host for that long. One year in
# production; set a small value (e.g. 3600) while first rolling TLS out, 0 turns it off.
SECURE_HSTS_SECONDS = env.env_int("DJANGO_SECURE_HSTS_SECONDS", 31_536_000 if env.IS_PRODUCTION else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.env_bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env.env_bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SILENCED_SYSTEM_CHECKS = []
if not SECURE_HSTS_PRELOAD:
    # security.W021 asks for the preload flag. Preloading is a decision of the domain's owner (a
    # submission to the browsers' list, hard to undo), not a default a code base can make for every
    # deployment; DJANGO_SECURE_HSTS_PRELOAD=true opts in, and then the check has nothing to say.
    SILENCED_SYSTEM_CHECKS.append("security.W021")

# --- staff login throttling and lockout (django-axes) --------------------------------------------
# Every authentication through django.contrib.auth.authenticate() (the admin login form) is counted
# in Postgres (axes' database handler: AccessAttempt rows, visible and deletable in the admin, shared
# by every web process and safe under ASGI, where the login view runs in a thread). After
# STAFF_LOGIN_FAILURE_LIMIT failures within STAFF_LOGIN_COOLOFF_SECONDS the login is refused with 429
# for the cool-off; a further attempt while locked does not extend it. API tokens never go through
# authenticate() and are not affected.
AXES_ENABLED = env.env_bool("STAFF_LOGIN_LOCKOUT_ENABLED", True)
AXES_FAILURE_LIMIT = env.env_int("STAFF_LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(seconds=env.env_int("STAFF_LOGIN_COOLOFF_SECONDS", 900))
if AXES_FAILURE_LIMIT < 1 or AXES_COOLOFF_TIME.total_seconds() < 1:
    raise env.ImproperlyConfiguredEnv("STAFF_LOGIN_FAILURE_LIMIT and STAFF_LOGIN_COOLOFF_SECONDS must be at least 1")
# Staff login audit rows (apps.core.models.AuthAudit) older than this are purged daily (core.purge_auth_audit).
AUTH_AUDIT_RETENTION_DAYS = env.env_int("AUTH_AUDIT_RETENTION_DAYS", 365, minimum=1)


def _lockout_parameters(raw: str) -> list:
    """``"username+ip_address,username,ip_address"`` → ``[["username", "ip_address"], "username", "ip_address"]``."""
    allowed = {"username", "ip_address", "user_agent"}
    parameters: list = []
    for item in (part.strip() for part in raw.split(",")):
        names = [name.strip() for name in item.split("+") if name.strip()]
        if not names or not set(names) <= allowed:
            raise env.ImproperlyConfiguredEnv(
                f"STAFF_LOGIN_LOCKOUT_BY: {item!r} is not one of {sorted(allowed)} or a '+' combination of them")
        parameters.append(names if len(names) > 1 else names[0])
    return parameters


# A lockout counts per (account, address) pair, per account (a guesser spread over many addresses)
# and per address (one address spraying many accounts); any of the three reaching the limit locks.
# With one limit the pair is implied by either of the others; it is listed so that dropping
# `username` (where locking a known account out on purpose is the bigger worry) still locks the pair.
AXES_LOCKOUT_PARAMETERS = _lockout_parameters(
    env.env_str("STAFF_LOGIN_LOCKOUT_BY", "username+ip_address,username,ip_address"))
# A success does not wipe the failures: the reset deletes every attempt from the address too, so a
# guesser holding any working account could log in with it after each few guesses at another one and
# never reach the limit. Failures expire a cool-off after the last one instead.
AXES_RESET_ON_SUCCESS = False
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
# The address and the username axes counts are the ones our audit trail records (apps.core.auth).
AXES_CLIENT_IP_CALLABLE = "apps.core.auth.client_ip"
AXES_USERNAME_CALLABLE = "apps.core.auth.login_username"
AXES_LOCKOUT_CALLABLE = "apps.core.auth.lockout_response"
AXES_HTTP_RESPONSE_CODE = 429
# AccessLog rows for every success duplicate our audit trail; failures are in AccessAttempt.
AXES_DISABLE_ACCESS_LOG = True
# The password is always masked in what axes stores; so are these.
AXES_SENSITIVE_PARAMETERS = ["otp_token", "csrfmiddlewaretoken"]

# --- staff two-factor (django-otp, TOTP) ---------------------------------------------------------
# Any staff user may enrol an authenticator app (/admin/two-factor/); once enrolled, the admin login
# asks for its 6-digit code. With STAFF_2FA_REQUIRED=true, Admins, Approvers and superusers cannot use
# the admin (or the API through their session) until they have enrolled and logged in with a code.
STAFF_2FA_REQUIRED = env.env_bool("STAFF_2FA_REQUIRED", False)
OTP_TOTP_ISSUER = env.env_str("STAFF_2FA_ISSUER", "Campaign Express")
# The admin lists devices (an Admin deletes a lost one) but never shows another user's secret.
OTP_ADMIN_HIDE_SENSITIVE_DATA = True
