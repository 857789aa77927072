"""Published bid-model versions as the admin sees them, and the audit trail of roll-backs.

The registry (``apps.inference.registry``: ``colanet-<version>.npz`` files in the model directory)
stays the truth — the bidders read only the files. ``ModelVersion`` mirrors it: one row per version
file, refreshed from the directory by ``services.model_versions_sync`` (every time the admin list is
opened, and after a roll-back), with what the trainer stored in the file (metrics on the time
holdout, data window, decision, feature-layout version). ``in_service`` is the version every bidder
loads: the most recently published file that loads (``InferenceRuntime.load``'s choice).
``ModelVersionAudit`` is one row per roll-back: who, when, from which version, to which, why.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models


class ModelVersion(models.Model):
    version = models.CharField(max_length=64, unique=True)
    present = models.BooleanField(default=True, help_text="The file is in the model directory")
    published_at = models.DateTimeField(null=True, blank=True, db_index=True,
                                        help_text="Last publication (the file's modification time)")
    file_mtime_ns = models.BigIntegerField(default=0)
    file_size = models.BigIntegerField(default=0)
    layout_version = models.PositiveIntegerField(null=True, blank=True, help_text="Feature layout (none in the file: 1)")
    loadable = models.BooleanField(default=True, help_text="Bidders of this code can load it")
    load_error = models.TextField(blank=True, default="")
    in_service = models.BooleanField(default=False, db_index=True, help_text="The version every bidder scores with")
    trained_at = models.DateTimeField(null=True, blank=True)
    data_since = models.DateTimeField(null=True, blank=True)
    data_until = models.DateTimeField(null=True, blank=True)
    holdout_rows = models.PositiveIntegerField(null=True, blank=True)
    holdout_clicks = models.PositiveIntegerField(null=True, blank=True)
    log_loss = models.FloatField(null=True, blank=True, help_text="CTR head on the time holdout")
    log_loss_half_width = models.FloatField(null=True, blank=True, help_text="Half-width of its bootstrap 95 % interval")
    auc = models.FloatField(null=True, blank=True, help_text="CTR head on the time holdout")
    auc_half_width = models.FloatField(null=True, blank=True,
                                       help_text="Half-width of its bootstrap 95 % interval (files trained before: none)")
    champion_version = models.CharField(max_length=64, blank=True, default="")
    champion_log_loss = models.FloatField(null=True, blank=True)
    champion_auc = models.FloatField(null=True, blank=True)
    decision = models.CharField(max_length=16, blank=True, default="", db_index=True,
                                help_text="published / better / not better (empty: not trained here)")
    decision_reason = models.TextField(blank=True, default="")
    metadata = models.JSONField(null=True, blank=True)
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-published_at", "-id"]
        verbose_name = "bid model version"

    def __str__(self) -> str:
        return self.version


class ModelVersionAction(models.TextChoices):
    ROLLBACK = "rollback", "Rolled back"


class ModelVersionAudit(models.Model):
    """Audit row for every roll-back: who, when, from which version, to which, why."""

    action = models.CharField(max_length=16, choices=ModelVersionAction.choices)
    from_version = models.CharField(max_length=64, blank=True, default="", help_text="In service before (empty: none)")
    to_version = models.CharField(max_length=64)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+", help_text="Empty for a task or script")
    reason = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "bid model roll-back"

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.from_version or '-'} → {self.to_version}"
