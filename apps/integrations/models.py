"""Connections to the vendors marketers already use (Asana, Jira Cloud, AEM Assets, Bynder, Aprimo,
Power BI) and what we keep of the items we create there.

A ``Connection`` is one vendor account: base URL, credentials (encrypted, ``apps.core.outbound``),
options (project, workspace, mappings...), enabled. Off unless configured: with no enabled connection
of a kind nothing is called. ``ExternalTask`` is the approval task/issue made for one submission of a
campaign (unique per connection, campaign and review round: exactly once per submission).
"""
from __future__ import annotations

from django.db import models
from django.utils import timezone

from apps.core.outbound.crypto import EncryptedJSONField


class ConnectionKind(models.TextChoices):
    ASANA = "asana", "Asana"
    JIRA = "jira", "Jira Cloud"
    AEM = "aem", "Adobe AEM Assets"
    BYNDER = "bynder", "Bynder"
    APRIMO = "aprimo", "Aprimo DAM"
    POWERBI = "powerbi", "Power BI"


TASK_KINDS = (ConnectionKind.ASANA, ConnectionKind.JIRA)


class Connection(models.Model):
    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=16, choices=ConnectionKind.choices, db_index=True)
    base_url = models.URLField(max_length=300, help_text="e.g. https://app.asana.com/api/1.0, https://acme.atlassian.net")
    credentials = EncryptedJSONField(help_text="Stored encrypted; never shown back")
    options = models.JSONField(default=dict, blank=True,
                               help_text="Project, workspace, folder, dataset, status and user mappings (see README)")
    enabled = models.BooleanField(default=True)
    rate_per_second = models.FloatField(null=True, blank=True,
                                        help_text="Our own limit for this account; empty = the kind's default, "
                                                  "within the vendor's published limit")
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_ok = models.BooleanField(null=True, blank=True)
    last_test_message = models.CharField(max_length=300, blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["kind", "name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"


class ExternalTaskState(models.TextChoices):
    CREATING = "creating", "Being created"
    CREATED = "created", "Created"
    FAILED = "failed", "Failed (not retried)"
    SKIPPED = "skipped", "Skipped (no longer in review)"


class ExternalTask(models.Model):
    """The Asana task / Jira issue asking for one submission's approval."""

    connection = models.ForeignKey(Connection, on_delete=models.PROTECT, related_name="tasks")
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="+")
    review_round = models.PositiveIntegerField()
    state = models.CharField(max_length=10, choices=ExternalTaskState.choices, default=ExternalTaskState.CREATING)
    external_id = models.CharField(max_length=100, blank=True, default="", help_text="Asana gid / Jira id")
    external_key = models.CharField(max_length=100, blank=True, default="", help_text="Jira key, e.g. OPS-24")
    url = models.URLField(max_length=500, blank=True, default="")
    external_status = models.CharField(max_length=100, blank=True, default="")
    external_status_at = models.DateTimeField(null=True, blank=True)
    # What the status sync last cast ("approve:Done") and the platform decision pushed back.
    decision_cast = models.CharField(max_length=120, blank=True, default="")
    decision_pushed = models.CharField(max_length=20, blank=True, default="")
    open = models.BooleanField(default=True, help_text="Still polled by the status sync")
    note = models.CharField(max_length=500, blank=True, default="", help_text="Last thing worth knowing")
    attempts = models.PositiveSmallIntegerField(default=0)
    # A create that is under way (claimed) or may have reached the vendor without an answer.
    claimed_at = models.DateTimeField(null=True, blank=True)
    maybe_created = models.BooleanField(default=False)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["connection", "campaign", "review_round"],
                                               name="integrations_one_task_per_submission")]
        indexes = [models.Index(fields=["open", "state"], name="integrations_task_open")]

    def __str__(self) -> str:
        return f"{self.connection.kind} {self.external_key or self.external_id or '?'} for campaign {self.campaign_id}"

    @property
    def marker(self) -> str:
        """Written into the item (Jira label, Asana notes) so a retry can find what an earlier attempt made."""
        return f"ce-campaign-{self.campaign_id}-round-{self.review_round}"


class PowerBIPush(models.Model):
    """Where a Power BI connection's push dataset stands: made once, then closed hours appended in
    order behind ``cursor`` (the first hour not yet pushed)."""

    connection = models.OneToOneField(Connection, on_delete=models.CASCADE, related_name="powerbi_push")
    dataset_id = models.CharField(max_length=64, blank=True, default="")
    cursor = models.DateTimeField(null=True, blank=True, help_text="First hour (UTC) not fully pushed yet")
    cursor_offset = models.PositiveIntegerField(default=0, help_text="Rows of the cursor hour already pushed")
    # A batch whose POST may have reached Power BI without an answer: never re-sent blindly (push
    # datasets cannot delete single rows and take no idempotency key); a person checks the table for
    # those hours and resumes here: "arrived" moves the cursor past the batch, "not there" sends it again.
    uncertain_from = models.DateTimeField(null=True, blank=True, help_text="First hour of the unconfirmed batch")
    uncertain_to = models.DateTimeField(null=True, blank=True, help_text="Last hour of the unconfirmed batch")
    uncertain_rows = models.PositiveIntegerField(default=0, help_text="Rows in the unconfirmed batch")
    uncertain_next = models.DateTimeField(null=True, blank=True, help_text="The cursor after the batch")
    uncertain_next_offset = models.PositiveIntegerField(default=0)
    rows_pushed = models.PositiveBigIntegerField(default=0)
    last_push_at = models.DateTimeField(null=True, blank=True)
    note = models.CharField(max_length=500, blank=True, default="")

    class Meta:
        verbose_name = "Power BI push dataset"

    def __str__(self) -> str:
        return f"{self.connection.name}: up to {self.cursor:%Y-%m-%d %H:00}" if self.cursor else self.connection.name
