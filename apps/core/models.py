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


class OutboundOutcome(models.TextChoices):
    OK = "ok", "OK"
    REJECTED = "rejected", "Rejected (4xx, not retried)"
    RETRYABLE = "retryable", "Retryable answer (5xx, 408, 429)"
    TIMEOUT = "timeout", "Timed out"
    NETWORK = "network", "Network error"
    BREAKER_OPEN = "breaker_open", "Circuit breaker open"
    RATE_LIMITED = "rate_limited", "Rate limited (our bucket)"


class OutboundCall(models.Model):
    """One attempt of an outbound vendor call (``apps.core.outbound``): never a body, never a header,
    query secrets masked. Purged after ``OUTBOUND_CALL_LOG_RETENTION_DAYS``."""

    name = models.CharField(max_length=64, db_index=True, help_text="The client's name, e.g. jira or asana")
    connection = models.CharField(max_length=100, blank=True, default="",
                                  help_text="The integration connection the call was made for, when tagged")
    method = models.CharField(max_length=10)
    url = models.CharField(max_length=1000, help_text="Without userinfo; secret-looking query values masked")
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    outcome = models.CharField(max_length=16, choices=OutboundOutcome.choices, db_index=True)
    attempt = models.PositiveSmallIntegerField(default=1)
    duration_ms = models.PositiveIntegerField(default=0)
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "outbound call"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["connection", "-created_at"], name="core_outbound_conn_recent")]

    def __str__(self) -> str:
        status = self.status_code or self.outcome
        return f"{self.name} {self.method} {self.url} -> {status}"


class ExportState(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class ExportJob(models.Model):
    """A back-office ``.xlsx`` export too big to write inside a request (``apps.core.exports``): the
    admin shows its progress and, when done, a download link (the requester's, or an Admin's)."""

    kind = models.CharField(max_length=64, help_text="Which registered export, e.g. outbound_calls")
    params = models.JSONField(default=dict, blank=True)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                     related_name="+")
    state = models.CharField(max_length=10, choices=ExportState.choices, default=ExportState.QUEUED, db_index=True)
    rows_total = models.PositiveIntegerField(null=True, blank=True)
    rows_done = models.PositiveIntegerField(default=0)
    file_name = models.CharField(max_length=200, blank=True, default="")
    error = models.CharField(max_length=500, blank=True, default="")
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = "export"
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.state})"

