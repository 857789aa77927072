from pathlib import Path

from config import env

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env.SECRET_KEY
DEBUG = env.DEBUG
ALLOWED_HOSTS = env.ALLOWED_HOSTS
CSRF_TRUSTED_ORIGINS = env.env_list("DJANGO_CSRF_TRUSTED_ORIGINS", ["http://127.0.0.1:8080", "http://localhost:8080"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "channels",
    "django_fsm",
    # staff two-factor: TOTP devices (config/settings/security.py)
    "django_otp",
    "django_otp.plugins.otp_totp",
    # ours: one vertical slice each
    "apps.core",
    "apps.campaigns",
    "apps.bidding",
    "apps.inference",
    "apps.loyalty",
    "apps.suppression",
    "apps.omnichannel",
    "apps.analytics",
    "apps.training",
    "apps.integrations",
    "apps.rl",
    "apps.recommendations",
    # staff login lockout (config/settings/security.py, apps.core.auth)
    "axes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "apps.core.auth.staff_two_factor_middleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # last, as axes asks: turns a login refused for lockout into the 429 page
    "axes.middleware.AxesMiddleware",
]

# axes refuses an authenticate() for a locked-out account or address before any password is checked;
# it authenticates nobody itself. DRF token authentication never calls authenticate().
AUTHENTICATION_BACKENDS = [
    "apps.core.auth.LockoutBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "var" / "staticfiles"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LOGIN_URL = "/admin/login/"

PUBLIC_BASE_URL = env.PUBLIC_BASE_URL
BID_PUBLIC_BASE_URL = env.BID_PUBLIC_BASE_URL
NODE_ID = env.NODE_ID
