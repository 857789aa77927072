"""Campaigns, their offers, the approval rules and votes, and the audit trail of every transition.

The lifecycle (docs/RULES.md §3) is a django-fsm-2 ``FSMField(protected=True)``: the state changes only
through transition methods, and those are called only by ``apps.campaigns.services``. Re-read a
campaign's state with ``Campaign.objects.get(pk=...)`` (``refresh_from_db`` refuses protected fields).
"""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.validators import MinValueValidator
from django.db import models
from django_fsm import FSMField, transition

from apps.core.channels import CampaignChannel


class CampaignStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"
    SCHEDULED = "scheduled", "Scheduled"
    LIVE = "live", "Live"
    PAUSED = "paused", "Paused"
    COMPLETED = "completed", "Completed"
    ARCHIVED = "archived", "Archived"


#: Where a campaign runs: the campaign subset of the one vocabulary (apps/core/channels.py).
Channel = CampaignChannel


class DeviceType(models.TextChoices):
    DESKTOP = "desktop", "Desktop"
    MOBILE = "mobile", "Mobile"
    TABLET = "tablet", "Tablet"
    CTV = "ctv", "Connected TV"


class Campaign(models.Model):
    name = models.CharField("campaign name", max_length=200, help_text="What your team calls it, e.g. Spring sale 2027")
    advertiser = models.CharField(max_length=200, help_text="The brand paying for it")
    budget = models.DecimalField(max_digits=14, decimal_places=2, validators=[MinValueValidator(Decimal("0.01"))],
                                 help_text="The most the whole campaign may spend, in its currency (e.g. 5000.00)")
    currency = models.CharField(max_length=3, default="USD", help_text="Three-letter ISO 4217 code, e.g. USD or EUR")
    # Spend already committed against the budget (win notices). Changed only by atomic updates.
    spent = models.DecimalField(max_digits=18, decimal_places=6, default=Decimal("0"))
    channels = ArrayField(models.CharField(max_length=20, choices=Channel.choices), default=list)
    start_at = models.DateTimeField("starts", help_text="Date and time (UTC) the ads may start showing")
    end_at = models.DateTimeField("ends", help_text="Date and time (UTC) the ads stop; after the start")
    # Targeting; an empty list means "any".
    target_countries = ArrayField(models.CharField(max_length=3), default=list, blank=True,
                                  verbose_name="countries",
                                  help_text="ISO-3166 alpha-3 (OpenRTB geo.country) or alpha-2 codes")
    target_device_types = ArrayField(models.CharField(max_length=10, choices=DeviceType.choices), default=list, blank=True,
                                     verbose_name="devices")
    target_segments = ArrayField(models.PositiveIntegerField(), default=list, blank=True, verbose_name="audience segments")
    max_impressions_per_hour = models.PositiveIntegerField("ads per person per hour", default=10,
                                                           help_text="Frequency cap: impressions per person per hour")
    max_impressions_per_day = models.PositiveIntegerField("ads per person per day", default=50,
                                                          help_text="Frequency cap: impressions per person per day")

    status = FSMField(default=CampaignStatus.DRAFT, choices=CampaignStatus.choices, protected=True, db_index=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="campaigns_created")
    submitted_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                                     related_name="campaigns_submitted")
    submitted_at = models.DateTimeField(null=True, blank=True)
    approval_rule = models.ForeignKey("ApprovalRule", on_delete=models.PROTECT, null=True, blank=True,
                                      help_text="The strictest rule that matched when it was submitted")
    required_approvals = models.PositiveSmallIntegerField(default=0)
    # Bumped on every edit while in review: votes of an older round no longer count.
    review_round = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # The database's backstop for apps.campaigns.validation.schedule_check (which says why).
            models.CheckConstraint(condition=models.Q(end_at__gt=models.F("start_at")), name="campaign_ends_after_start",
                                   violation_error_message="The campaign must end after it starts: move the end "
                                                           "later or the start earlier."),
            models.CheckConstraint(condition=models.Q(budget__gt=0), name="campaign_budget_positive",
                                   violation_error_message="The budget must be more than zero."),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.get_status_display()})"

    @property
    def remaining_budget(self) -> Decimal:
        return max(self.budget - self.spent, Decimal("0"))

    # --- lifecycle (docs/RULES.md §3) -----------------------------------------------------------------
    # The transitions only encode which state may follow which. Who may trigger them, the
    # conditions (start in the future, reason given, enough votes) and the audit row live in
    # ``apps.campaigns.services`` — call those, never these methods directly.

    @transition(field=status, source=CampaignStatus.DRAFT, target=CampaignStatus.IN_REVIEW)
    def submit(self) -> None:
        """draft → in_review"""

    @transition(field=status, source=CampaignStatus.IN_REVIEW, target=CampaignStatus.APPROVED)
    def approve(self) -> None:
        """in_review → approved (once enough approvals of the current round are in)"""

    @transition(field=status, source=CampaignStatus.IN_REVIEW, target=CampaignStatus.REJECTED)
    def reject(self) -> None:
        """in_review → rejected (any rejection)"""

    @transition(field=status, source=CampaignStatus.REJECTED, target=CampaignStatus.DRAFT)
    def revise(self) -> None:
        """rejected → draft"""

    @transition(field=status, source=CampaignStatus.IN_REVIEW, target=CampaignStatus.DRAFT)
    def request_changes(self) -> None:
        """in_review → draft"""

    @transition(field=status, source=CampaignStatus.APPROVED, target=CampaignStatus.SCHEDULED)
    def schedule(self) -> None:
        """approved → scheduled (start in the future)"""

    @transition(field=status, source=[CampaignStatus.SCHEDULED, CampaignStatus.APPROVED], target=CampaignStatus.LIVE)
    def go_live(self) -> None:
        """scheduled → live when the start time comes; approved → live when it has already come"""

    @transition(field=status, source=CampaignStatus.LIVE, target=CampaignStatus.PAUSED)
    def pause(self) -> None:
        """live → paused"""

    @transition(field=status, source=CampaignStatus.PAUSED, target=CampaignStatus.LIVE)
    def resume(self) -> None:
        """paused → live"""

    @transition(field=status, source=CampaignStatus.LIVE, target=CampaignStatus.COMPLETED)
    def complete(self) -> None:
        """live → completed (end time reached or budget spent)"""

    @transition(field=status, source=CampaignStatus.COMPLETED, target=CampaignStatus.ARCHIVED)
    def archive(self) -> None:
        """completed → archived"""


class CreativeFormat(models.TextChoices):
    BANNER = "banner", "Banner"
    VIDEO = "video", "Video"
    NATIVE = "native", "Native"


class Offer(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="offers")
    name = models.CharField(max_length=200)
    creative_markup = models.TextField("creative", help_text="The ad itself: HTML (banner), VAST XML (video) or native JSON")
    width = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="In pixels")
    height = models.PositiveIntegerField(validators=[MinValueValidator(1)], help_text="In pixels")
    format = models.CharField(max_length=10, choices=CreativeFormat.choices, default=CreativeFormat.BANNER)
    landing_url = models.URLField("landing page", max_length=500, help_text="Where a click on the ad goes (https://…)")
    advertiser_domain = models.CharField(max_length=200, help_text="The brand's web domain, e.g. shop.example.com; "
                                                                   "publishers that block it never show the ad")
    category = models.CharField(max_length=20, help_text="IAB content category, e.g. IAB22 (shopping); publishers "
                                                         "that block it never show the ad")
    max_bid_cpm = models.DecimalField(
        "max bid (CPM)", max_digits=10, decimal_places=4, validators=[MinValueValidator(Decimal("0.0001"))],
        help_text="The most you pay per 1,000 ads shown, in the campaign's currency: 2.50 means at most 0.0025 per ad")
    priority = models.PositiveSmallIntegerField(default=5, help_text="Higher goes first when candidates are capped")
    observed_ctr = models.FloatField(default=0.0, help_text="Click-through rate observed so far (a model feature)")
    # The creative imported from a DAM (apps.integrations): where it lives and whether it may be served.
    creative_source = models.CharField(max_length=16, blank=True, default="",
                                       help_text="aem, bynder or aprimo when the creative comes from a DAM")
    creative_connection_id = models.PositiveIntegerField(null=True, blank=True,
                                                         help_text="The integration connection it was imported from")
    creative_asset_id = models.CharField(max_length=200, blank=True, default="")
    creative_asset_url = models.URLField(max_length=1000, blank=True, default="")
    creative_mime = models.CharField(max_length=100, blank=True, default="")
    creative_valid_until = models.DateTimeField(null=True, blank=True, help_text="The DAM's expiry, if any")
    creative_blocked_reason = models.CharField(
        max_length=200, blank=True, default="",
        help_text="Set while the DAM says the asset is expired, withdrawn or unapproved: the offer does not bid")
    creative_checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-priority", "id"]

    def __str__(self) -> str:
        return f"{self.name} {self.width}x{self.height}"


class ApprovalRule(models.Model):
    """Which campaigns need how many approvals (docs/RULES.md §3). The strictest matching rule applies."""

    name = models.CharField(max_length=100, unique=True)
    min_approvals = models.PositiveSmallIntegerField(default=1, validators=[MinValueValidator(1)])
    budget_threshold = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True,
                                           help_text="Matches campaigns whose budget is above this amount")
    channels = ArrayField(models.CharField(max_length=20, choices=Channel.choices), default=list, blank=True,
                          help_text="Matches campaigns using any of these channels")
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["min_approvals", "name"]
        verbose_name = "approval rule"

    def __str__(self) -> str:
        return f"{self.name} (min {self.min_approvals})"


class VoteDecision(models.TextChoices):
    APPROVE = "approve", "Approve"
    REJECT = "reject", "Reject"


class ApprovalVote(models.Model):
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="votes")
    approver = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="approval_votes")
    review_round = models.PositiveIntegerField()
    decision = models.CharField(max_length=10, choices=VoteDecision.choices)
    reason = models.TextField(blank=True)
    voided = models.BooleanField(default=False, help_text="Set when the campaign was edited after this vote")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "approver", "review_round"], name="one_vote_per_approver_per_round"),
        ]

    def __str__(self) -> str:
        return f"{self.approver} {self.decision} {self.campaign_id}"


class CampaignTransition(models.Model):
    """Audit row for every transition and vote: who, when, from, to, why."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="transitions")
    action = models.CharField(max_length=30)
    from_status = models.CharField(max_length=20, choices=CampaignStatus.choices)
    to_status = models.CharField(max_length=20, choices=CampaignStatus.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                              help_text="Empty for the scheduler")
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "status change"

    def __str__(self) -> str:
        return f"{self.action}: {self.from_status} → {self.to_status}"


class EditSource(models.TextChoices):
    API = "api", "API"
    ADMIN = "admin", "Admin"
    TASK = "task", "Task or script"


class EditAction(models.TextChoices):
    CAMPAIGN_UPDATE = "campaign_update", "Campaign changed"
    OFFER_CREATE = "offer_create", "Offer added"
    OFFER_UPDATE = "offer_update", "Offer changed"
    OFFER_DELETE = "offer_delete", "Offer removed"


class CampaignEdit(models.Model):
    """Audit row for every edit of a campaign or one of its offers: who, when, from where, and each
    changed field's old and new value (``{field: {"old": ..., "new": ...}}``, JSON-safe: decimals as
    strings, times as ISO 8601 UTC). Written by ``apps.campaigns.services`` in the edit's transaction;
    lifecycle changes are ``CampaignTransition`` rows. An added offer has only new values, a removed
    one only old values."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="edits")
    # No database constraint: the row outlives a removed offer and keeps its id.
    offer = models.ForeignKey(Offer, on_delete=models.DO_NOTHING, db_constraint=False, null=True, blank=True,
                              related_name="+", help_text="Empty for an edit of the campaign itself")
    action = models.CharField(max_length=20, choices=EditAction.choices)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True,
                              related_name="+", help_text="Empty for a task or script")
    source = models.CharField(max_length=10, choices=EditSource.choices)
    changes = models.JSONField(help_text='{field: {"old": value, "new": value}}')
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "field edit"
        indexes = [models.Index(fields=["campaign", "-created_at"], name="campaign_edit_by_campaign")]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {', '.join(sorted(self.changes))}"


class CampaignComment(models.Model):
    """One message in a campaign's discussion between its marketer and its approvers."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    body = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = "comment"

    def __str__(self) -> str:
        return f"{self.author} on {self.campaign_id}: {self.body[:40]}"


class NotificationKind(models.TextChoices):
    AWAITING_DECISION = "awaiting_decision", "Awaiting your decision"
    DECIDED = "decided", "Your campaign was decided"


class EmailStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENDING = "sending", "Being sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Not sent (no address or email off)"


class Notification(models.Model):
    """A staff notification about a campaign: shown in the admin and emailed once. At most one per
    (campaign, review round = submission, recipient, kind): the unique constraint makes the fan-out
    idempotent, and the email's claim (pending → sending → sent) makes the send happen at most once."""

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="notifications")
    review_round = models.PositiveIntegerField()
    kind = models.CharField(max_length=20, choices=NotificationKind.choices)
    message = models.CharField(max_length=300)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    read_at = models.DateTimeField(null=True, blank=True)
    email_status = models.CharField(max_length=10, choices=EmailStatus.choices, default=EmailStatus.PENDING)
    email_attempts = models.PositiveSmallIntegerField(default=0)
    email_message_id = models.CharField(max_length=100, blank=True)
    email_error = models.CharField(max_length=300, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    # The claim of the attempt in flight ("sending"): who holds it and since when. A claim older than
    # CAMPAIGN_NOTIFICATION_EMAIL_LEASE_SECONDS belongs to a worker that died; the sweep takes it back.
    email_claim_token = models.CharField(max_length=32, blank=True, default="")
    email_claimed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "review_round", "recipient", "kind"],
                                    name="one_notification_per_submission_recipient"),
        ]
        indexes = [models.Index(fields=["recipient", "read_at"], name="notification_unread")]

    def __str__(self) -> str:
        return self.message


class SavedView(models.Model):
    """One user's named view of the campaign list: the list's query string (filters, search, order)."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=2000, blank=True, help_text="The list's query string, e.g. status__exact=live")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "saved view"
        constraints = [models.UniqueConstraint(fields=["user", "name"], name="one_saved_view_name_per_user")]

    def __str__(self) -> str:
        return self.name
