"""The catalogue of recommendable items, its bulk imports, and the record of model rebuilds."""
from django.conf import settings
from django.db import models
from django.utils import timezone

from apps.core.file_imports import FileImport


class CatalogItem(models.Model):
    """A product or offer that can be recommended. Interactions may name items not here yet: they
    still count as signal, but only catalogue items that are available are ever recommended."""

    item_id = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=255)
    category = models.CharField(max_length=128, blank=True, db_index=True)
    tags = models.JSONField(default=list, blank=True, help_text="A list of short strings")
    attributes = models.JSONField(default=dict, blank=True, help_text="Numeric attributes: {name: number}")
    price = models.DecimalField(max_digits=12, decimal_places=2, null=True, blank=True)
    available = models.BooleanField(default=True, db_index=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True,
                                      help_text="When the item arrived in the catalogue (new_arrivals)")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "item_id"]
        indexes = [models.Index(fields=["available", "-created_at"], name="recs_item_new_arrivals")]

    def __str__(self) -> str:
        return f"{self.item_id} {self.name}"


class CatalogImport(FileImport):
    """A JSON-lines or CSV upload of catalogue items and its progress (``services.catalog_import_run``)."""

    class Format(models.TextChoices):
        JSONL = "jsonl", "JSON lines"
        CSV = "csv", "CSV"

    format = models.CharField(max_length=5, choices=Format.choices)
    created = models.PositiveIntegerField(default=0)
    refused = models.PositiveIntegerField(default=0)
    # [[line, reason], ...] — the first REFUSED_DETAIL_LIMIT refused rows; ``refused`` has the exact count.
    refused_rows = models.JSONField(default=list, blank=True)

    REFUSED_DETAIL_LIMIT = 5000

    def __str__(self) -> str:
        return f"catalogue import #{self.pk} {self.filename} ({self.status})"


class ModelBuild(models.Model):
    """One rebuild of the recommendation models: when, how long, from how much, and whether it is served."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SERVED = "served", "Served"
        REPLACED = "replaced", "Replaced by a newer build"
        FAILED = "failed", "Failed"

    version = models.CharField(max_length=40, unique=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_seconds = models.FloatField(null=True, blank=True, help_text="Reading, computing and storing")
    interactions = models.PositiveBigIntegerField(default=0)
    users = models.PositiveIntegerField(default=0)
    items = models.PositiveIntegerField(default=0)
    cf_method = models.CharField(max_length=16, blank=True, help_text="ease (small catalogues) or rp3beta")
    size_bytes = models.PositiveBigIntegerField(default=0, help_text="Size of the stored model")
    auto_weight = models.FloatField(null=True, blank=True,
                                    help_text="auto = cf + this × trending, tuned on the newest interactions")
    auto_tuning = models.JSONField(default=dict, blank=True,
                                   help_text="recall@10 on the newest interactions per weight tried ({} = too few)")
    error = models.TextField(blank=True, default="")

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"model {self.version} ({self.status})"


class CatalogAudit(models.Model):
    """Who created or changed a catalogue item, and the old and new values of what changed."""

    item_id = models.CharField(max_length=128, db_index=True)
    action = models.CharField(max_length=8, choices=[("created", "Created"), ("updated", "Updated")])
    changes = models.JSONField(default=dict, help_text="{field: [old, new]}")
    source = models.CharField(max_length=200, blank=True, default="")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="+")
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]

    def __str__(self) -> str:
        return f"{self.item_id} {self.action} at {self.at:%Y-%m-%d %H:%M}"
