"""The global suppression list (docs/RULES.md §4), its audit trail and CSV imports.

``SuppressionEntry`` holds at most one row per (identifier, channel): the unique index on that pair
is also the index that ``selectors.is_suppressed`` reads, so the check is a single index lookup.
Removing an entry deletes the row and writes a ``SuppressionAudit`` row in the same transaction,
so who un-suppressed whom, when and why stays visible (the audit trail is append-only).
Entries are written only by ``apps.suppression.services``.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from apps.core.channels import SuppressionChannel
from apps.core.file_imports import FileImport

#: What an entry covers: the suppressible subset of the one vocabulary (apps/core/channels.py).
Channel = SuppressionChannel


class Reason(models.TextChoices):
    UNSUBSCRIBE = "unsubscribe", "Unsubscribe"
    BOUNCE = "bounce", "Bounce"
    SPAM_REPORT = "spam_report", "Spam report"
    MANUAL = "manual", "Manual"
    REGULATORY = "regulatory", "Regulatory"


class IdentifierKind(models.TextChoices):
    EMAIL = "email", "Email address"
    PHONE = "phone", "Phone number (E.164)"
    OTHER = "other", "User id / device token"


class SuppressionEntryQuerySet(models.QuerySet):
    def active(self, now=None):
        """Entries in force now: permanent, or expiring in the future."""
        now = now or timezone.now()
        return self.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))

    def expired(self, now=None):
        now = now or timezone.now()
        return self.filter(expires_at__lte=now)


class SuppressionEntry(models.Model):
    # Normalised by services.normalise_identifier: emails lower-cased, phones E.164, others as given.
    identifier = models.CharField(max_length=320)
    identifier_kind = models.CharField(max_length=8, choices=IdentifierKind.choices)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    source = models.CharField(max_length=200, blank=True, default="",
                              help_text='Where it came from, e.g. "sendgrid:unsubscribe" or "csv:list.csv"')
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+", help_text="Empty for automatic entries (webhooks)")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    expires_at = models.DateTimeField(null=True, blank=True, db_index=True, help_text="Empty = permanent")

    objects = SuppressionEntryQuerySet.as_manager()

    class Meta:
        verbose_name = "suppression entry"
        verbose_name_plural = "suppression entries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["identifier", "channel"], name="suppression_entry_identifier_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.identifier} [{self.channel}]"

    @property
    def is_permanent(self) -> bool:
        return self.expires_at is None

    def is_active(self, now=None) -> bool:
        return self.expires_at is None or self.expires_at > (now or timezone.now())


class AuditAction(models.TextChoices):
    ADDED = "added", "Added"
    UPDATED = "updated", "Updated (expiry extended or reason changed)"
    REMOVED = "removed", "Removed (un-suppressed)"
    PURGED = "purged", "Purged after expiry"


class SuppressionAudit(models.Model):
    """One row per change to the list: append-only, written in the same transaction as the change."""

    action = models.CharField(max_length=8, choices=AuditAction.choices)
    identifier = models.CharField(max_length=320, db_index=True)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    source = models.CharField(max_length=200, blank=True, default="")
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Expiry after the change (empty = permanent)")
    previous = models.JSONField(null=True, blank=True,
                                help_text="The entry before the change (reason, source, expires_at, created_at)")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+", help_text="Empty for system changes (webhooks, schedules)")
    note = models.CharField(max_length=500, blank=True, default="", help_text="Why (required for removals by people)")
    at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        verbose_name = "suppression audit record"
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.action} {self.identifier} [{self.channel}] at {self.at:%Y-%m-%d %H:%M}"


class SuppressionImport(FileImport):
    """A CSV upload and its progress; processed in chunks by ``services.suppression_import_run``."""

    content = models.TextField(help_text="The uploaded CSV, decoded as UTF-8")
    source = models.CharField(max_length=200, blank=True, default="")
    added = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(default=0)
    # [[line, reason], ...] — the first SKIP_DETAIL_LIMIT skipped rows; ``skipped`` has the exact count.
    skipped_rows = models.JSONField(default=list, blank=True)

    SKIP_DETAIL_LIMIT = 1000

    def __str__(self) -> str:
        return f"import #{self.pk} {self.filename} ({self.status})"
