"""Omnichannel state (docs/RULES.md §5): ingest events and the interactions they leave, contacts,
activations with their send ledger and audit trail, stored in-app / web / in-store messages, and
SendGrid events with the per-activation email counters.

Invariants kept by the database rather than by Python:

* ``IngestEvent (source, caller, event_id)`` is unique: a replayed event is accepted once, and an
  event id is the caller's own (another caller reusing it records another event).
* ``SendLedger (activation, user_id, channel)`` is unique: an activation reaches a user on a channel
  at most once, whatever the retries.
* ``EmailEvent.sg_event_id`` is unique: a replayed SendGrid batch counts once.
* ``EmailRecipient (activation, email)`` is unique and its ``first_open_at`` / ``first_click_at`` are
  set by a conditional UPDATE: a unique open or click is counted exactly once per recipient.

Rows are written only by ``apps.omnichannel.services``.
"""
from __future__ import annotations

from django.conf import settings
from django.db import models

from apps.core.channels import DeliveryChannel


class Source(models.TextChoices):
    MOBILE_APP = "mobile_app", "Mobile app"
    POS = "pos", "Point of sale"
    KIOSK = "kiosk", "Kiosk"
    WEB = "web", "Web"
    CALL_CENTER = "call_center", "Call center"
    PARTNER_API = "partner_api", "Partner API"
    IOT = "iot", "IoT"


class EventType(models.TextChoices):
    PURCHASE = "purchase", "Purchase"
    PRODUCT_VIEW = "product_view", "Product view"
    CART_ADD = "cart_add", "Cart add"
    CART_ABANDON = "cart_abandon", "Cart abandon"
    APP_OPEN = "app_open", "App open"
    PAGE_VIEW = "page_view", "Page view"
    SEARCH = "search", "Search"
    WISHLIST_ADD = "wishlist_add", "Wishlist add"
    STORE_VISIT = "store_visit", "Store visit"
    LOYALTY_SWIPE = "loyalty_swipe", "Loyalty swipe"
    CHECK_IN = "check_in", "Check-in"
    FEEDBACK = "feedback", "Feedback"


class Transport(models.TextChoices):
    HTTP = "http", "HTTP"
    NATS = "nats", "NATS"


#: Activation channels, in the order of the cascade (docs/RULES.md §5): the delivery subset of the one
#: vocabulary (apps/core/channels.py).
Channel = DeliveryChannel


class IngestSource(models.Model):
    """A source of ingest events and whether it is accepted (``INGEST_DISABLED_SOURCES`` also disables)."""

    source = models.CharField(max_length=20, choices=Source.choices, unique=True)
    enabled = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True, help_text="Why it was disabled, for the next person")
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")

    class Meta:
        ordering = ["source"]

    def __str__(self) -> str:
        return f"{self.get_source_display()} ({'enabled' if self.enabled else 'disabled'})"


LEGACY_CALLER = "legacy"
CALLER_MAX_LENGTH = 255


class IngestEvent(models.Model):
    event_id = models.CharField(max_length=128, db_index=True, help_text="The caller's id of the event")
    source = models.CharField(max_length=20, choices=Source.choices, db_index=True)
    caller = models.CharField(
        max_length=CALLER_MAX_LENGTH,
        help_text='Who sent it: "user:<id>" (the API token\'s user), "nats:<subject>", or '
                  f'"{LEGACY_CALLER}" for events recorded before callers were kept',
    )
    event_type = models.CharField(max_length=20, choices=EventType.choices, db_index=True)
    user_id = models.CharField(max_length=128, blank=True, db_index=True)
    device_id = models.CharField(max_length=128, blank=True, db_index=True)
    occurred_at = models.DateTimeField(help_text="The event's own timestamp")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    transport = models.CharField(max_length=4, choices=Transport.choices)
    store_id = models.CharField(max_length=64, blank=True)
    order_id = models.CharField(max_length=128, blank=True, help_text="Order or basket id")
    amount_cents = models.BigIntegerField(null=True, blank=True)
    activation_triggered = models.BooleanField(default=False)
    loyalty_relevant = models.BooleanField(default=False)
    stars_earned = models.IntegerField(null=True, blank=True)
    payload = models.JSONField(help_text="The event as received")
    result = models.JSONField(default=dict, help_text="The answer given (replayed for a duplicate event_id)")

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "caller", "event_id"], name="omni_ingest_event_once_per_caller"),
        ]

    def __str__(self) -> str:
        return f"{self.event_id} {self.source}/{self.event_type}"


class Interaction(models.Model):
    """One user–item interaction, the input of recommendations (docs/RULES.md §7)."""

    user_id = models.CharField(max_length=140, db_index=True,
                               help_text='The user id, or "device:<device id>" for anonymous devices')
    item_id = models.CharField(max_length=128, db_index=True)
    event_type = models.CharField(max_length=20, choices=EventType.choices)
    basket_id = models.CharField(max_length=128, blank=True, db_index=True, help_text="Order or basket id")
    quantity = models.PositiveIntegerField(default=1)
    weight = models.FloatField(help_text="Strength of the signal (purchase > cart > wishlist > view)")
    occurred_at = models.DateTimeField(db_index=True)
    ingest_event = models.ForeignKey(IngestEvent, on_delete=models.CASCADE, related_name="interactions")

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["ingest_event", "item_id"], name="omni_interaction_event_item"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id} {self.event_type} {self.item_id}"


class Contact(models.Model):
    """What we know about reaching a user, and what they agreed to."""

    user_id = models.CharField(max_length=128, unique=True)
    email = models.EmailField(max_length=320, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +14155550100")
    fcm_token = models.CharField(max_length=512, blank=True)
    apns_token = models.CharField(max_length=200, blank=True)
    # Outbound marketing needs an opt-in; first-party surfaces (the user's own app session, our web
    # site, a kiosk in the store they are in) are on unless the user turned them off.
    consent_email = models.BooleanField(default=False)
    consent_sms = models.BooleanField(default=False)
    consent_push = models.BooleanField(default=False)
    consent_in_app = models.BooleanField(default=True)
    consent_web = models.BooleanField(default=True)
    consent_in_store = models.BooleanField(default=True)
    preferred_channel = models.CharField(max_length=12, choices=Channel.choices, blank=True)
    present_store_id = models.CharField(max_length=64, blank=True)
    present_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id"]

    def __str__(self) -> str:
        return self.user_id

    def consents_to(self, channel: str) -> bool:
        return bool(getattr(self, f"consent_{channel}", False))


class TriggerRule(models.Model):
    """What an ingest trigger sends: one rule per triggering event type, editable in the admin."""

    event_type = models.CharField(max_length=20, choices=EventType.choices, unique=True)
    enabled = models.BooleanField(default=True)
    title = models.CharField(max_length=200)
    body = models.TextField()
    url = models.URLField(max_length=500, blank=True)
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    offer = models.ForeignKey("campaigns.Offer", on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    cooldown_minutes = models.PositiveIntegerField(
        default=60, help_text="At most one activation per user from this rule within this many minutes")

    class Meta:
        ordering = ["event_type"]

    def __str__(self) -> str:
        return f"{self.get_event_type_display()} → {self.title}"


class ActivationStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped (no reachable channel)"


class Activation(models.Model):
    user_id = models.CharField(max_length=128, db_index=True)
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="activations")
    offer = models.ForeignKey("campaigns.Offer", on_delete=models.SET_NULL, null=True, blank=True,
                              related_name="activations")
    trigger = models.CharField(max_length=20, default="api", db_index=True,
                               help_text='"api" for POST /v1/channels/activate, else the ingest event type')
    ingest_event = models.OneToOneField(IngestEvent, on_delete=models.SET_NULL, null=True, blank=True,
                                        related_name="activation")
    channel = models.CharField(max_length=12, choices=Channel.choices, blank=True, db_index=True)
    status = models.CharField(max_length=10, choices=ActivationStatus.choices, default=ActivationStatus.QUEUED,
                              db_index=True)
    reason = models.CharField(max_length=300, blank=True, help_text="Why it failed or was skipped")
    title = models.CharField(max_length=200)
    body = models.TextField()
    url = models.URLField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True, help_text="Extra key/values passed to the app")
    cascade = models.JSONField(default=list, blank=True, help_text="Each channel considered and why it was (not) chosen")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"activation {self.pk} → {self.user_id} [{self.channel or '-'}] {self.status}"


class ActivationTransition(models.Model):
    """Audit row for every status change of an activation: when, from, to, why, and who said so."""

    activation = models.ForeignKey(Activation, on_delete=models.CASCADE, related_name="transitions")
    from_status = models.CharField(max_length=10, blank=True)
    to_status = models.CharField(max_length=10, choices=ActivationStatus.choices)
    reason = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=40, help_text="api, ingest, worker, sendgrid, twilio, app fetch, …")
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.activation_id}: {self.from_status or '∅'} → {self.to_status}"


class Provider(models.TextChoices):
    SENDGRID = "sendgrid", "SendGrid"
    TWILIO = "twilio", "Twilio"
    FCM = "fcm", "Firebase Cloud Messaging"
    APNS = "apns", "Apple Push Notification service"
    INBOX = "inbox", "Stored for the app / web / kiosk to fetch"


class SendStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending (claimed by a worker)"
    SENT = "sent", "Sent"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Suppressed at send time"


class SendLedger(models.Model):
    """One send of an activation to a user on a channel — never two (unique constraint)."""

    activation = models.ForeignKey(Activation, on_delete=models.CASCADE, related_name="sends")
    user_id = models.CharField(max_length=128)
    channel = models.CharField(max_length=12, choices=Channel.choices)
    provider = models.CharField(max_length=10, choices=Provider.choices)
    recipient = models.CharField(max_length=512, help_text="Email, phone, push token, or the user / store id")
    status = models.CharField(max_length=10, choices=SendStatus.choices, default=SendStatus.QUEUED, db_index=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    claim_token = models.CharField(max_length=64, blank=True, help_text="The task run that holds the send")
    claimed_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True, db_index=True)
    provider_message_id = models.CharField(max_length=200, blank=True, db_index=True)
    error_code = models.CharField(max_length=60, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["activation", "user_id", "channel"], name="omni_one_send_per_channel"),
        ]

    def __str__(self) -> str:
        return f"send {self.pk} {self.channel} → {self.recipient} {self.status}"


class InboxMessage(models.Model):
    """An offer stored for a first-party surface to fetch: the app (in_app), the web site (web) or a
    kiosk / signage screen of a store (in_store)."""

    send = models.OneToOneField(SendLedger, on_delete=models.CASCADE, related_name="inbox_message")
    activation = models.ForeignKey(Activation, on_delete=models.CASCADE, related_name="inbox_messages")
    user_id = models.CharField(max_length=128)
    channel = models.CharField(max_length=12, choices=Channel.choices)
    store_id = models.CharField(max_length=64, blank=True)
    title = models.CharField(max_length=200)
    body = models.TextField()
    url = models.URLField(max_length=500, blank=True)
    data = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField(db_index=True)
    fetched_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["user_id", "channel", "-created_at"], name="omni_inbox_user_channel"),
            models.Index(fields=["store_id", "channel", "-created_at"], name="omni_inbox_store_channel"),
        ]

    def __str__(self) -> str:
        return f"{self.channel} message for {self.user_id}: {self.title}"


class SendGridBatch(models.Model):
    """One POST of SendGrid's Event Webhook, stored raw before it is processed by a task."""

    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    body = models.TextField(help_text="The raw JSON array, exactly as signed")
    signature_verified = models.BooleanField(default=False)
    event_count = models.PositiveIntegerField(default=0)
    processed_at = models.DateTimeField(null=True, blank=True, db_index=True)
    new_events = models.PositiveIntegerField(default=0, help_text="Events not seen before (by sg_event_id)")
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        verbose_name = "SendGrid webhook batch"
        verbose_name_plural = "SendGrid webhook batches"

    def __str__(self) -> str:
        return f"batch {self.pk} ({self.event_count} events)"


class EmailEvent(models.Model):
    """One SendGrid event, stored once (unique ``sg_event_id``)."""

    sg_event_id = models.CharField(max_length=200, unique=True)
    event = models.CharField(max_length=20, db_index=True)
    email = models.CharField(max_length=320)
    occurred_at = models.DateTimeField()
    sg_message_id = models.CharField(max_length=200, blank=True, db_index=True)
    activation = models.ForeignKey(Activation, on_delete=models.SET_NULL, null=True, blank=True,
                                   related_name="email_events")
    batch = models.ForeignKey(SendGridBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    url = models.URLField(max_length=2000, blank=True)
    bounce_type = models.CharField(max_length=20, blank=True, help_text='For bounces: "bounce" or "blocked"')
    reason = models.TextField(blank=True)
    payload = models.JSONField()

    class Meta:
        ordering = ["-occurred_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event} {self.email}"


class EmailStats(models.Model):
    """Email counters of one activation, changed only by ``F()`` updates (docs/RULES.md §5)."""

    activation = models.OneToOneField(Activation, on_delete=models.CASCADE, primary_key=True, related_name="email_stats")
    total_sent = models.PositiveIntegerField(default=0)
    delivered = models.PositiveIntegerField(default=0)
    opens = models.PositiveIntegerField(default=0)
    unique_opens = models.PositiveIntegerField(default=0)
    clicks = models.PositiveIntegerField(default=0)
    unique_clicks = models.PositiveIntegerField(default=0)
    bounces = models.PositiveIntegerField(default=0)
    spam_reports = models.PositiveIntegerField(default=0)
    unsubscribes = models.PositiveIntegerField(default=0)
    dropped = models.PositiveIntegerField(default=0)
    deferred = models.PositiveIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "email analytics"
        verbose_name_plural = "email analytics"

    def __str__(self) -> str:
        return f"email stats of activation {self.activation_id}"


class EmailRecipient(models.Model):
    """First open / click of one recipient of one activation (unique opens and clicks)."""

    activation = models.ForeignKey(Activation, on_delete=models.CASCADE, related_name="email_recipients")
    email = models.CharField(max_length=320)
    first_open_at = models.DateTimeField(null=True, blank=True)
    first_click_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["activation", "email"], name="omni_email_recipient_once"),
        ]

    def __str__(self) -> str:
        return f"{self.email} of activation {self.activation_id}"
