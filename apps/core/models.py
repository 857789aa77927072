"""Platform-wide models shared by every slice."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class IdempotencyRecord(models.Model):
    """The stored answer to one idempotent write (see :mod:`apps.core.idempotency`).

    A row is inserted in the same transaction as the change it guards, so either both exist or
    neither does; ``unique (scope, key)`` makes a concurrent duplicate wait for the first
    transaction and then read its answer instead of applying the change a second time.
    """

    scope = models.CharField(max_length=64, help_text="Which operation the key belongs to, e.g. loyalty.redeem")
    key = models.CharField(max_length=255, help_text="The client's Idempotency-Key")
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the canonical request body")
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="core_idempotency_scope_key_uniq")]
        verbose_name = "idempotency record"

    def __str__(self) -> str:
        return f"{self.scope}:{self.key} -> {self.response_status}"


class AuthEvent(models.TextChoices):
    LOGIN_SUCCEEDED = "login_succeeded", "Login succeeded"
    LOGIN_FAILED = "login_failed", "Login failed"
    LOCKED_OUT = "locked_out", "Locked out"
    LOGGED_OUT = "logged_out", "Logged out"
    TWO_FACTOR_ENROLLED = "2fa_enrolled", "Two-factor enrolled"


class AuthAudit(models.Model):
    """One row per staff authentication event (apps.core.auth): append-only, never a password or a code.

    ``username`` is what was typed (it may name no account); ``user`` is set when it does."""

    event = models.CharField(max_length=16, choices=AuthEvent.choices, db_index=True)
    username = models.CharField(max_length=150, db_index=True)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    ip_address = models.GenericIPAddressField(null=True, blank=True, db_index=True)
    user_agent = models.CharField(max_length=255, blank=True, default="")
    path = models.CharField(max_length=255, blank=True, default="")
    detail = models.CharField(max_length=200, blank=True, default="", help_text="Why, e.g. which factor failed")
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "staff login audit record"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} {self.username} from {self.ip_address or '?'} at {self.at:%Y-%m-%d %H:%M:%S}"
