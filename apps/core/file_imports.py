"""What every file import of the back office shares (suppression lists, the recommendation catalogue):
its status and an abstract model for the upload and its progress. Outside ``models.py`` because
slices never import another slice's ``models`` (tests/core/test_slice_boundaries.py)."""
from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ImportStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class FileImport(models.Model):
    """An uploaded file processed in chunks, and its progress: what every import of the back office
    shares (suppression lists, the recommendation catalogue). Each adds its own counts and refusals."""

    filename = models.CharField(max_length=255)
    content = models.TextField(help_text="The uploaded file, decoded as UTF-8")
    status = models.CharField(max_length=8, choices=ImportStatus.choices, default=ImportStatus.QUEUED)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, default="")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True
        ordering = ["-created_at", "-id"]

    @property
    def percent(self) -> int:
        if not self.total_rows:
            return 100 if self.status == ImportStatus.DONE else 0
        return min(100, self.processed_rows * 100 // self.total_rows)
