"""System checks of platform-wide configuration (``manage.py check --deploy`` runs the deploy ones)."""
from __future__ import annotations

from django.core import checks

from config import env


@checks.register(checks.Tags.security, deploy=True)
def outbound_secret_keys(app_configs, **kwargs) -> list[checks.CheckMessage]:
    """Production stores vendor credentials under keys of its own, never ones derived from DJANGO_SECRET_KEY."""
    from apps.core.outbound.crypto import SecretKeyMissing, _current

    if not env.OUTBOUND_SECRET_KEYS and env.IS_PRODUCTION:
        return [checks.Error("OUTBOUND_SECRET_KEYS is not set: vendor credentials cannot be stored or read",
                             hint="Set it to one or more Fernet keys, comma-separated (README, Environment).",
                             id="core.E001")]
    try:
        _current()
    except SecretKeyMissing as exc:
        return [checks.Error(str(exc), id="core.E002")]
    return []
