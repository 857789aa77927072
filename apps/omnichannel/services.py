"""Omnichannel writes (docs/RULES.md §5): ingest, contacts, activations and their sends, stored messages,
provider callbacks. Other slices call these functions, never the models.

Flow of an activation::

    activation_create ──(cascade picks a channel, consent + suppression checked)──▶ Activation queued
        └─ SendLedger row (unique per activation, user, channel) ─ on commit ─▶ send_activation task
    send_execute (worker): claim the ledger row → suppression + consent again → provider call
        ├─ answer 2xx  → sent (delivered later by webhook / status callback / app fetch)
        ├─ retryable   → back to queued, retried with exponential back-off (bounded)
        └─ permanent   → failed (a dead token or number is forgotten)

The claim makes a send happen at most once per ledger row: a worker that dies during the provider
call leaves the row "sending"; the redelivered task sees its own claim and does not send again
(the provider may already have the message), so the row fails with ``outcome_unknown``; a SendGrid
delivery event can still prove it delivered later.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone as dt_timezone
from typing import Any

import structlog
from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone
from prometheus_client import Counter
from rest_framework.exceptions import ValidationError

from apps.core.api import Conflict, NotFound, ServiceError
from apps.core.idempotency import canonical_json, idempotent_call, request_fingerprint

from . import cascade, providers, signatures
from .ingest_schema import IngestEventInput, validate_plain_id
from .models import (
    Activation,
    ActivationStatus,
    ActivationTransition,
    Channel,
    Contact,
    EmailEvent,
    EmailRecipient,
    EmailStats,
    EventType,
    InboxMessage,
    IngestEvent,
    CALLER_MAX_LENGTH,
    LEGACY_CALLER,
    IngestSource,
    Interaction,
    Provider,
    SendGridBatch,
    SendLedger,
    SendStatus,
    Source,
    TriggerRule,
)

log = structlog.get_logger(__name__)

INGEST_EVENTS = Counter("omnichannel_ingest_events_total", "Ingest events by source and outcome",
                        ["source", "transport", "outcome"])
ACTIVATIONS = Counter("omnichannel_activations_total", "Activations created, by chosen channel",
                      ["channel", "trigger_kind"])
SENDS = Counter("omnichannel_sends_total", "Send attempts by channel and outcome", ["channel", "outcome"])
SENDGRID_EVENTS = Counter("omnichannel_sendgrid_events_total", "SendGrid events processed", ["event", "outcome"])


def _emit(event_type: str, **fields: Any) -> None:
    """Analytics never blocks nor breaks a send: emit() queues in memory."""
    from apps.analytics.emitter import emit

    emit(event_type, **{k: v for k, v in fields.items() if v is not None and v != ""})


def _after_commit(fn) -> None:
    transaction.on_commit(fn)


def task_options() -> dict:
    queue = settings.OMNICHANNEL_TASK_QUEUE
    return {"queue": queue} if queue else {}


# =====================================================================================================
# Ingest sources
# =====================================================================================================
def ingest_source_disabled_reason(source: str) -> str | None:
    """Why ``source`` is refused, or None when it is accepted (admin switch and INGEST_DISABLED_SOURCES)."""
    if source in settings.INGEST_DISABLED_SOURCES:
        return f"source {source!r} is disabled by INGEST_DISABLED_SOURCES"
    row = IngestSource.objects.filter(source=source).values_list("enabled", "note").first()
    if row is not None and not row[0]:
        return f"source {source!r} is disabled" + (f": {row[1]}" if row[1] else "")
    return None


def ingest_source_set_enabled(*, source: str, enabled: bool, actor=None, note: str = "") -> IngestSource:
    """Enable or disable an ingest source (admin)."""
    if source not in Source.values:
        raise ServiceError(f"unknown source {source!r}; one of {', '.join(Source.values)}", field="source")
    row, _ = IngestSource.objects.update_or_create(
        source=source, defaults={"enabled": enabled, "note": note[:200], "updated_by": actor if getattr(actor, "pk", None) else None}
    )
    log.info("ingest_source_changed", source=source, enabled=enabled, actor_id=getattr(actor, "pk", None))
    return row


# =====================================================================================================
# Contacts
# =====================================================================================================
CONTACT_FIELDS = (
    "email", "phone", "fcm_token", "apns_token", "consent_email", "consent_sms", "consent_push",
    "consent_in_app", "consent_web", "consent_in_store", "preferred_channel", "present_store_id", "present_until",
)


def _normalise_address(value: str, *, field: str) -> str:
    """An email (lower-cased) or phone (E.164) in the same canonical form the suppression list uses,
    so a contact's address and its suppression entry always compare equal."""
    from apps.suppression.services import normalise_identifier

    if not value:
        return ""
    try:
        normalised = normalise_identifier(value)
    except ServiceError as exc:
        raise ServiceError(exc.message, field=field) from None
    if field == "email" and "@" not in normalised:
        raise ServiceError(f"invalid email address {value!r}", field=field)
    if field == "phone" and not normalised.startswith("+"):
        raise ServiceError(f"invalid phone number {value!r}: write it in E.164, e.g. +14155550100", field=field)
    return normalised


def _clean_token(value: str, field: str) -> str:
    value = (value or "").strip()
    if value and any(ch.isspace() for ch in value):
        raise ServiceError(f"{field} must not contain whitespace", field=field)
    return value


def contact_upsert(*, user_id: str, fields: dict[str, Any]) -> Contact:
    """Create or update the contact record of ``user_id`` with ``fields`` (only the keys given change).

    Emails are lower-cased, phones normalised to E.164; an empty string clears a value.
    """
    user_id = _clean_user_id(user_id)
    unknown = set(fields) - set(CONTACT_FIELDS)
    if unknown:
        raise ServiceError(f"unknown contact field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name in ("email", "phone"):
            values[name] = _normalise_address(value or "", field=name)
        elif name in ("fcm_token", "apns_token"):
            values[name] = _clean_token(value, name)
        elif name == "preferred_channel":
            if value and value not in Channel.values:
                raise ServiceError(f"preferred_channel must be one of {', '.join(Channel.values)}", field=name)
            values[name] = value or ""
        elif name.startswith("consent_"):
            if not isinstance(value, bool):
                raise ServiceError(f"{name} must be true or false", field=name)
            values[name] = value
        elif name == "present_store_id":
            values[name] = (value or "").strip()[:64]
        else:  # present_until
            values[name] = value
    with transaction.atomic():
        contact, created = Contact.objects.select_for_update().get_or_create(user_id=user_id, defaults=values)
        if not created and values:
            for name, value in values.items():
                setattr(contact, name, value)
            contact.save(update_fields=[*values, "updated_at"])
    return contact


def contact_forget_push_token(*, user_id: str, token: str) -> None:
    """Drop a push token the provider called dead (FCM UNREGISTERED, APNs 410 / BadDeviceToken)."""
    Contact.objects.filter(user_id=user_id, fcm_token=token).update(fcm_token="", updated_at=timezone.now())
    Contact.objects.filter(user_id=user_id, apns_token=token).update(apns_token="", updated_at=timezone.now())


def _clean_user_id(user_id: Any, field: str = "user_id") -> str:
    if not isinstance(user_id, str) or not user_id.strip():
        raise ServiceError(f"{field} is required", field=field, code="required")
    user_id = user_id.strip()
    if len(user_id) > 128:
        raise ServiceError(f"{field} must be at most 128 characters", field=field)
    try:
        return validate_plain_id(user_id, what=field)
    except ValidationError:
        raise ServiceError(f"{field} must not contain spaces or control characters", field=field) from None


# =====================================================================================================
# Ingest
# =====================================================================================================
ALWAYS_TRIGGER = {EventType.CART_ABANDON, EventType.PURCHASE, EventType.STORE_VISIT, EventType.LOYALTY_SWIPE,
                  EventType.CHECK_IN}
FRESH_TRIGGER = {EventType.PRODUCT_VIEW, EventType.WISHLIST_ADD}
LOYALTY_RELEVANT = {EventType.PURCHASE, EventType.LOYALTY_SWIPE, EventType.CHECK_IN}
PRESENCE_EVENTS = {EventType.STORE_VISIT, EventType.CHECK_IN}
# How strongly an event says "this user likes this item" (recommendations weigh interactions by it).
INTERACTION_WEIGHT = {
    EventType.PURCHASE: 5.0, EventType.CART_ADD: 3.0, EventType.WISHLIST_ADD: 2.0, EventType.CART_ABANDON: 1.5,
    EventType.PRODUCT_VIEW: 1.0, EventType.FEEDBACK: 1.0, EventType.SEARCH: 0.5, EventType.PAGE_VIEW: 0.5,
}
DEFAULT_INTERACTION_WEIGHT = 0.5
# The loyalty channel a purchase is earned on (channel bonuses are per channel).
LOYALTY_CHANNEL = {
    Source.POS: "in_store", Source.KIOSK: "in_store", Source.MOBILE_APP: "app", Source.WEB: "web",
    Source.CALL_CENTER: "call_center", Source.PARTNER_API: "partner", Source.IOT: "iot",
}
DIGITAL_SOURCES = {Source.MOBILE_APP, Source.WEB}


INGEST_IDEMPOTENCY_SCOPE = "omnichannel.ingest"


@dataclass(frozen=True)
class IngestOutcome:
    status: int  # 201 first time, 200 for a replay of the same event by the same caller
    body: dict[str, Any]


def ingest_caller(*, user=None, subject: str | None = None) -> str:
    """Who sends an event: ``user:<id>`` for an API token's user, ``nats:<subject>`` over NATS.

    An ``event_id`` is unique per (source, caller), so two callers never see each other's events.
    A subject too long to store is refused (400 naming it), never cut: a cut subject could collide."""
    if user is not None:
        return f"user:{user.pk}"
    if not subject:
        raise ServiceError("the caller of an ingest event must be known", field="caller")
    caller = f"nats:{subject}"
    if len(caller) > CALLER_MAX_LENGTH:
        raise ServiceError(f"the subject must be at most {CALLER_MAX_LENGTH - len('nats:')} characters",
                           field="subject")
    return caller


def _trigger_decision(event_type: str, occurred_at: datetime, now: datetime) -> tuple[bool, str]:
    if event_type in ALWAYS_TRIGGER:
        return True, f"{event_type} always triggers"
    if event_type in FRESH_TRIGGER:
        window = timedelta(minutes=settings.INGEST_ACTIVATION_WINDOW_MINUTES)
        age = now - occurred_at
        if age < window:
            return True, f"{event_type} is {int(age.total_seconds())} s old (under {settings.INGEST_ACTIVATION_WINDOW_MINUTES} min)"
        return False, f"{event_type} is older than {settings.INGEST_ACTIVATION_WINDOW_MINUTES} minutes"
    return False, f"{event_type} is not an activation trigger"


def _contact_fields_from_event(data: dict, occurred_at: datetime, now: datetime) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for name in ("email", "phone", "fcm_token", "apns_token"):
        if data.get(name):
            fields[name] = data[name]
    if data["event_type"] in PRESENCE_EVENTS and data.get("store_id"):
        until = occurred_at + timedelta(minutes=settings.OMNICHANNEL_PRESENCE_MINUTES)
        if until > now:  # an old, replayed visit does not make anyone present now
            fields["present_store_id"] = data["store_id"]
            fields["present_until"] = until
    return fields


def _record_interactions(event: IngestEvent, data: dict) -> int:
    items = list(data.get("items") or [])
    if data.get("item_id") and all(item["item_id"] != data["item_id"] for item in items):
        items.insert(0, {"item_id": data["item_id"], "quantity": 1})
    if not items:
        return 0
    subject = event.user_id or f"device:{event.device_id}"
    weight = INTERACTION_WEIGHT.get(event.event_type, DEFAULT_INTERACTION_WEIGHT)
    merged: dict[str, int] = {}
    for item in items:
        merged[item["item_id"]] = merged.get(item["item_id"], 0) + int(item.get("quantity") or 1)
    Interaction.objects.bulk_create([
        Interaction(user_id=subject, item_id=item_id, event_type=event.event_type, basket_id=event.order_id,
                    quantity=quantity, weight=weight, occurred_at=event.occurred_at, ingest_event=event)
        for item_id, quantity in merged.items()
    ])
    return len(merged)


def _earn_stars(event: IngestEvent, data: dict) -> dict[str, Any]:
    from apps.loyalty.services import loyalty_earn

    if not event.user_id:
        return {"relevant": True, "stars_earned": None, "reason": "no user_id: stars are earned by members only"}
    is_digital = data["is_digital"] if data.get("is_digital") is not None else event.source in DIGITAL_SOURCES
    result = loyalty_earn(
        user_id=event.user_id, amount_cents=int(event.amount_cents), channel=LOYALTY_CHANNEL[event.source],
        transaction_id=ingest_transaction_id(event), is_referral=bool(data.get("is_referral")), is_digital=is_digital,
    )
    event.stars_earned = result.stars_earned
    return {"relevant": True, "stars_earned": result.stars_earned, "new_balance": result.new_balance,
            "tier": result.tier, "tier_changed": result.tier_changed}


def ingest_transaction_id(event: IngestEvent) -> str:
    """The loyalty transaction id of a purchase event: ``ingest:<row id>:<event id>`` (at most 128 chars).

    An event id is only unique per caller, so it cannot be the transaction id on its own: two callers'
    purchases with the same id for one member would be credited once (or refused with a 409). The
    row id makes it unique; the event id is there for people reading the ledger."""
    from apps.loyalty.services import TRANSACTION_ID_MAX

    return f"ingest:{event.pk}:{event.event_id}"[:TRANSACTION_ID_MAX]


def _trigger_activation(event: IngestEvent, now: datetime) -> dict[str, Any]:
    triggered, why = _trigger_decision(event.event_type, event.occurred_at, now)
    block: dict[str, Any] = {"triggered": False, "reason": why, "activation_id": None, "status": None, "channel": None}
    if not triggered:
        return block
    if not event.user_id:
        block["reason"] = "anonymous device: no user to reach"
        return block
    rule = TriggerRule.objects.filter(event_type=event.event_type, enabled=True).first()
    if rule is None:
        block["reason"] = f"no enabled trigger rule for {event.event_type}"
        return block
    since = now - timedelta(minutes=rule.cooldown_minutes)
    if Activation.objects.filter(user_id=event.user_id, trigger=event.event_type, created_at__gte=since).exists():
        block["reason"] = f"user already activated for {event.event_type} in the last {rule.cooldown_minutes} min"
        return block
    activation = activation_create(
        user_id=event.user_id, title=rule.title, body=rule.body, url=rule.url, campaign_id=rule.campaign_id,
        offer_id=rule.offer_id, trigger=event.event_type, ingest_event=event,
        data={"event_id": event.event_id, "event_type": event.event_type},
    )
    event.activation_triggered = True
    return {"triggered": True, "reason": why, "activation_id": activation.pk, "status": activation.status,
            "channel": activation.channel or None}


def _ingest_key(*, source: str, caller: str, event_id: str) -> str:
    """The idempotency key of an event: a digest, since a subject or an event id may hold any
    character (the readable triple is on the IngestEvent row)."""
    return request_fingerprint({"source": source, "caller": caller, "event_id": event_id})


def _legacy_replay(*, source: str, event_id: str, payload: dict) -> IngestOutcome | None:
    """The first answer of an event recorded before callers were kept, when ``payload`` is exactly
    its body: a client retrying across the upgrade is answered as a duplicate, not credited twice.
    A different body with that id is another event (no answer of someone else's leaks)."""
    legacy = (IngestEvent.objects.filter(source=source, caller=LEGACY_CALLER, event_id=event_id)
              .values_list("payload", "result").first())
    if legacy is None or canonical_json(legacy[0]) != canonical_json(payload):
        return None
    return IngestOutcome(status=200, body={**legacy[1], "duplicate": True})


def _ingest_record(*, clean: dict, payload: dict, caller: str, transport: str, occurred_at: datetime,
                   now: datetime) -> dict[str, Any]:
    """Record a new event and act on it; runs once per (source, caller, event_id) under the
    idempotency record, in its transaction."""
    source, event_type = clean["source"], clean["event_type"]
    try:
        with transaction.atomic():
            event = IngestEvent.objects.create(
                event_id=clean["event_id"], source=source, caller=caller, event_type=event_type,
                user_id=clean["user_id"], device_id=clean["device_id"], occurred_at=occurred_at, transport=transport,
                store_id=clean["store_id"], order_id=clean["order_id"], amount_cents=clean.get("amount_cents"),
                loyalty_relevant=event_type in LOYALTY_RELEVANT, payload=payload,
            )
    except IntegrityError:
        # Only reachable if an idempotency record was deleted by hand while its event stayed.
        raise Conflict(f"event_id {clean['event_id']!r} is already recorded for this caller",
                       field="event_id", code="idempotency_conflict") from None
    if event.user_id:
        fields = _contact_fields_from_event(clean, occurred_at, now)
        if fields:
            contact_upsert(user_id=event.user_id, fields=fields)
    interactions = _record_interactions(event, clean)
    if event_type == EventType.PURCHASE:
        loyalty = _earn_stars(event, clean)
    else:
        loyalty = {"relevant": event_type in LOYALTY_RELEVANT, "stars_earned": None}
    activation = _trigger_activation(event, now)
    body = {
        "event_id": event.event_id, "accepted": True, "duplicate": False, "source": source,
        "event_type": event_type, "user_id": event.user_id or None, "device_id": event.device_id or None,
        "occurred_at": occurred_at.astimezone(dt_timezone.utc).isoformat().replace("+00:00", "Z"),
        "activation": activation, "loyalty": loyalty, "interactions": interactions,
    }
    event.result = body
    event.save(update_fields=["result", "activation_triggered", "stars_earned"])
    return body


def ingest_event_process(*, data: Any, transport: str, caller: str, subject_source: str | None = None) -> IngestOutcome:
    """Validate, record and act on one ingest event (HTTP and NATS share this).

    Refused (400): invalid fields, a disabled source, no user_id nor device_id, a purchase without
    amount_cents. An event is keyed by ``(source, caller, event_id)`` (``caller`` from
    :func:`ingest_caller`) through :func:`apps.core.idempotency.idempotent_call`: a new event answers
    201; the same caller sending the same body again gets the first answer (200, ``"duplicate":
    true``) and nothing changes; the same id with a different body is a 409. A concurrent duplicate
    waits for the first and then replays it. A refusal leaves nothing behind, so a corrected event may
    be sent under the same id. A purchase earns stars through ``loyalty_earn``
    (:func:`ingest_transaction_id`); triggers create an activation; items become interactions.
    """
    serializer = IngestEventInput(data=data)
    serializer.is_valid(raise_exception=True)
    clean = dict(serializer.validated_data)
    source, event_type, event_id = clean["source"], clean["event_type"], clean["event_id"]
    if subject_source is not None and subject_source != source:
        raise ServiceError(f"source {source!r} does not match the subject's source {subject_source!r}", field="source")
    disabled = ingest_source_disabled_reason(source)
    if disabled:
        INGEST_EVENTS.labels(source, transport, "source_disabled").inc()
        raise ServiceError(disabled, field="source", code="source_disabled")
    if not clean["user_id"] and not clean["device_id"]:
        raise ServiceError("either user_id or device_id is required", field="user_id", code="required")
    if event_type == EventType.PURCHASE and clean.get("amount_cents") is None:
        raise ServiceError("a purchase needs amount_cents (the amount paid, in cents)", field="amount_cents",
                           code="required")
    now = timezone.now()
    occurred_at = clean.get("timestamp") or now
    if occurred_at > now + timedelta(seconds=settings.INGEST_MAX_CLOCK_SKEW_SECONDS):
        raise ServiceError("timestamp is in the future", field="timestamp")
    if clean["phone"]:
        clean["phone"] = _normalise_address(clean["phone"], field="phone")

    # The body as received, in JSON terms: what is stored, and what "the same body" compares.
    payload = json.loads(json.dumps(data, default=str))
    legacy = _legacy_replay(source=source, event_id=event_id, payload=payload)
    if legacy is not None:
        INGEST_EVENTS.labels(source, transport, "duplicate").inc()
        return legacy
    try:
        outcome = idempotent_call(
            scope=INGEST_IDEMPOTENCY_SCOPE,
            key=_ingest_key(source=source, caller=caller, event_id=event_id),
            payload=payload,
            run=lambda: _ingest_record(clean=clean, payload=payload, caller=caller, transport=transport,
                                       occurred_at=occurred_at, now=now),
            success_status=201,
            key_field="event_id",
            keep_refusals=False,
            conflict_detail=f"event_id {event_id!r} was already used by this caller for another {source} event "
                            "(a different body); use a new event_id for a new event",
        )
    except Conflict:
        INGEST_EVENTS.labels(source, transport, "conflict").inc()
        log.info("ingest_conflict", event_id=event_id, source=source, caller=caller, transport=transport)
        raise
    if outcome.replayed:
        INGEST_EVENTS.labels(source, transport, "duplicate").inc()
        log.info("ingest_duplicate", event_id=event_id, source=source, caller=caller, transport=transport)
        return IngestOutcome(status=200, body={**outcome.body, "duplicate": True})
    body = outcome.body
    INGEST_EVENTS.labels(source, transport, "accepted").inc()
    log.info("ingest_accepted", event_id=event_id, source=source, event_type=event_type, caller=caller,
             transport=transport, activation_id=body["activation"]["activation_id"],
             stars=body["loyalty"].get("stars_earned"))
    return IngestOutcome(status=201, body=body)


# =====================================================================================================
# Activations
# =====================================================================================================
ALLOWED_TRANSITIONS = {
    ActivationStatus.QUEUED: {ActivationStatus.SENT, ActivationStatus.FAILED, ActivationStatus.DELIVERED},
    ActivationStatus.SENT: {ActivationStatus.DELIVERED, ActivationStatus.FAILED},
    # A send whose outcome was unknown (worker lost) can still be proven delivered by the provider.
    ActivationStatus.FAILED: {ActivationStatus.DELIVERED},
    ActivationStatus.DELIVERED: set(),
    ActivationStatus.SKIPPED: set(),
}
_ANALYTICS_EVENT = {
    ActivationStatus.SENT: "activation_sent",
    ActivationStatus.DELIVERED: "activation_delivered",
    ActivationStatus.FAILED: "activation_failed",
}


def _activation_transition(activation_id: int, *, to: str, reason: str = "", source: str) -> bool:
    """Move an activation to ``to`` if allowed from its current status (a conditional UPDATE, so two
    callbacks racing cannot both apply), leave an audit row, emit analytics after commit."""
    allowed_from = [status for status, targets in ALLOWED_TRANSITIONS.items() if to in targets]
    now = timezone.now()
    with transaction.atomic():
        current = (Activation.objects.select_for_update().filter(pk=activation_id, status__in=allowed_from)
                   .values("status", "user_id", "channel", "campaign_id", "offer_id").first())
        if current is None:
            return False
        extra: dict[str, Any] = {"status": to, "updated_at": now}
        if to == ActivationStatus.SENT:
            extra["sent_at"] = now
        elif to == ActivationStatus.DELIVERED:
            extra["delivered_at"] = now
        if reason and to == ActivationStatus.FAILED:
            extra["reason"] = reason[:300]
        Activation.objects.filter(pk=activation_id).update(**extra)
        ActivationTransition.objects.create(activation_id=activation_id, from_status=current["status"], to_status=to,
                                            reason=reason[:300], source=source)
        _after_commit(lambda: _emit(_ANALYTICS_EVENT[to], activation_id=activation_id, user_id=current["user_id"],
                                    channel=current["channel"], campaign_id=current["campaign_id"],
                                    offer_id=current["offer_id"], reason=reason[:200] or None))
    log.info("activation_" + to, activation_id=activation_id, channel=current["channel"], source=source, reason=reason)
    return True


def activation_create(*, user_id: str, title: str = "", body: str = "", url: str = "", data: dict | None = None,
                      campaign_id: int | None = None, offer_id: int | None = None, channels: list[str] | None = None,
                      trigger: str = "api", ingest_event: IngestEvent | None = None, actor=None) -> Activation:
    """Create an activation for ``user_id``: pick the channel by the cascade, record the send in the
    ledger and queue it (after commit). When no channel can reach the user the activation is stored
    as ``skipped`` with the cascade's reasons, and nothing is queued.

    ``channels`` limits the cascade to those channels; a campaign limits it to its own channels.
    Title and URL default to the offer's name and landing page.
    """
    from apps.campaigns.models import Campaign, Offer

    user_id = _clean_user_id(user_id)
    campaign = offer = None
    if offer_id is not None:
        offer = Offer.objects.select_related("campaign").filter(pk=offer_id).first()
        if offer is None:
            raise NotFound(f"offer {offer_id} does not exist", field="offer_id")
        if campaign_id is not None and offer.campaign_id != campaign_id:
            raise ServiceError(f"offer {offer_id} does not belong to campaign {campaign_id}", field="offer_id")
        campaign = offer.campaign
    elif campaign_id is not None:
        campaign = Campaign.objects.filter(pk=campaign_id).first()
        if campaign is None:
            raise NotFound(f"campaign {campaign_id} does not exist", field="campaign_id")
    title = (title or (offer.name if offer else "")).strip()
    body = (body or "").strip() or title
    url = url or (offer.landing_url if offer else "")
    if not title:
        raise ServiceError("title is required (or give an offer_id to use the offer's name)", field="title",
                           code="required")
    allowed: set[str] | None = None
    allowed_reason = ""
    if channels:
        unknown = [c for c in channels if c not in Channel.values]
        if unknown:
            raise ServiceError(f"unknown channel(s) {', '.join(unknown)}; one of {', '.join(Channel.values)}",
                               field="channels")
        allowed, allowed_reason = set(channels), "not in the requested channels"
    if campaign is not None and campaign.channels:
        campaign_channels = set(campaign.channels)
        allowed = campaign_channels if allowed is None else allowed & campaign_channels
        allowed_reason = f"not a channel of campaign {campaign.pk} or of the request"

    now = timezone.now()
    contact = Contact.objects.filter(user_id=user_id).first()
    result = cascade.cascade_choose(user_id=user_id, contact=contact, now=now, allowed=allowed,
                                    allowed_reason=allowed_reason)
    choice = result.choice
    with transaction.atomic():
        activation = Activation.objects.create(
            user_id=user_id, campaign=campaign, offer=offer, trigger=trigger, ingest_event=ingest_event,
            channel=choice.channel if choice else "",
            status=ActivationStatus.QUEUED if choice else ActivationStatus.SKIPPED,
            reason="" if choice else result.reason[:300], title=title[:200], body=body, url=url,
            data=data or {}, cascade=result.trail, created_by=actor if getattr(actor, "pk", None) else None,
        )
        ActivationTransition.objects.create(activation=activation, to_status=activation.status,
                                            reason=activation.reason, source="ingest" if ingest_event else "api")
        ACTIVATIONS.labels(choice.channel if choice else "none", "ingest" if ingest_event else "api").inc()
        ids = {"activation_id": activation.pk, "user_id": user_id, "campaign_id": getattr(campaign, "pk", None),
               "offer_id": getattr(offer, "pk", None)}
        if choice is None:
            _after_commit(lambda: _emit("activation_failed", reason="no_reachable_channel", **ids))
            log.info("activation_skipped", activation_id=activation.pk, reason=activation.reason)
            return activation
        send = SendLedger.objects.create(activation=activation, user_id=user_id, channel=choice.channel,
                                         provider=choice.provider, recipient=choice.recipient, next_attempt_at=now)
        if choice.channel == Channel.EMAIL:
            EmailStats.objects.create(activation=activation)
        send_id = send.pk
        _after_commit(lambda: _emit("activation_queued", channel=choice.channel, **ids))
        _after_commit(lambda: send_enqueue(send_id=send_id))
    log.info("activation_queued", activation_id=activation.pk, channel=choice.channel, provider=choice.provider)
    return activation


# =====================================================================================================
# Sends
# =====================================================================================================
FINAL_SEND_STATUSES = {SendStatus.SENT, SendStatus.DELIVERED, SendStatus.FAILED, SendStatus.SUPPRESSED}


@dataclass(frozen=True)
class SendOutcome:
    status: str  # the ledger status after this run
    retry_in: float | None = None  # seconds until the task should run again, or None
    detail: str = ""


def send_enqueue(*, send_id: int, countdown: float | None = None) -> None:
    """Queue the send task for a ledger row (called after commit)."""
    from .tasks import send_activation

    options = task_options()
    if countdown:
        options["countdown"] = countdown
    send_activation.apply_async(args=[send_id], **options)


def _retry_delay(attempts: int) -> float:
    return min(settings.OMNICHANNEL_SEND_RETRY_MAX_SECONDS,
               settings.OMNICHANNEL_SEND_RETRY_BASE_SECONDS * (2 ** max(attempts - 1, 0)))


def _message_for(send: SendLedger) -> providers.OutboundMessage:
    activation = send.activation
    return providers.OutboundMessage(
        activation_id=activation.pk, user_id=send.user_id, title=activation.title, body=activation.body,
        url=activation.url, offer_id=activation.offer_id, campaign_id=activation.campaign_id,
        data=activation.data or {},
    )


def _provider_call(send: SendLedger) -> str:
    message = _message_for(send)
    if send.provider == Provider.SENDGRID:
        if not providers.sendgrid_configured():
            raise providers.ProviderError("SendGrid is no longer configured", provider="sendgrid", retryable=False,
                                          code="not_configured")
        return providers.sendgrid_send(to_email=send.recipient, message=message)
    if send.provider == Provider.TWILIO:
        if not providers.twilio_configured():
            raise providers.ProviderError("Twilio is no longer configured", provider="twilio", retryable=False,
                                          code="not_configured")
        return providers.twilio_send(to_phone=send.recipient, message=message)
    if send.provider == Provider.FCM:
        if not providers.fcm_configured():
            raise providers.ProviderError("FCM is no longer configured", provider="fcm", retryable=False,
                                          code="not_configured")
        return providers.fcm_send(token=send.recipient, message=message)
    if send.provider == Provider.APNS:
        if not providers.apns_configured():
            raise providers.ProviderError("APNs is no longer configured", provider="apns", retryable=False,
                                          code="not_configured")
        return providers.apns_send(token=send.recipient, message=message)
    raise providers.ProviderError(f"no provider call for {send.provider}", provider=send.provider, retryable=False)


def _store_inbox_message(send: SendLedger) -> InboxMessage:
    activation = send.activation
    return InboxMessage.objects.create(
        send=send, activation=activation, user_id=send.user_id, channel=send.channel,
        store_id=send.recipient if send.channel == Channel.IN_STORE else "",
        title=activation.title, body=activation.body, url=activation.url,
        data={**(activation.data or {}), "activation_id": activation.pk, "offer_id": activation.offer_id},
        expires_at=timezone.now() + timedelta(hours=settings.OMNICHANNEL_INBOX_TTL_HOURS),
    )


def _send_finish(send: SendLedger, *, status: str, source: str, error_code: str = "", error: str = "",
                 provider_message_id: str = "") -> None:
    """Record the end of a send (inside the caller's transaction) and move the activation along."""
    now = timezone.now()
    send.status = status
    send.error_code = error_code[:60]
    send.error = error[:500]
    fields = ["status", "error_code", "error", "updated_at"]
    if provider_message_id:
        send.provider_message_id = provider_message_id[:200]
        fields.append("provider_message_id")
    if status == SendStatus.SENT:
        send.sent_at = now
        fields.append("sent_at")
    send.save(update_fields=fields)
    SENDS.labels(send.channel, "outcome_unknown" if error_code == "outcome_unknown" else status).inc()
    if status == SendStatus.SENT:
        if send.channel == Channel.EMAIL:
            EmailStats.objects.filter(activation_id=send.activation_id).update(total_sent=F("total_sent") + 1)
        _activation_transition(send.activation_id, to=ActivationStatus.SENT, source=source)
    elif status in (SendStatus.FAILED, SendStatus.SUPPRESSED):
        reason = error or status
        _activation_transition(send.activation_id, to=ActivationStatus.FAILED, reason=reason, source=source)


def _after_permanent_error(send: SendLedger, exc: providers.ProviderError) -> None:
    if not exc.invalid_recipient:
        return
    if send.channel == Channel.PUSH:
        contact_forget_push_token(user_id=send.user_id, token=send.recipient)
    elif send.channel == Channel.SMS and exc.code == providers.TWILIO_UNSUBSCRIBED:
        _suppress(identifier=send.recipient, channel="sms", reason="unsubscribe", source="twilio:21610")


def send_execute(*, send_id: int, claim_token: str) -> SendOutcome:
    """Run one attempt of a ledger row's send (the worker calls this; safe to call any number of times).

    Suppression and consent are checked again right before sending. Returns the ledger status and,
    for a retryable provider error with attempts left, the delay before the next attempt.
    """
    now = timezone.now()
    with transaction.atomic():
        send = SendLedger.objects.select_for_update().select_related("activation").filter(pk=send_id).first()
        if send is None:
            return SendOutcome(status="missing", detail=f"send {send_id} does not exist")
        if send.status in FINAL_SEND_STATUSES:
            return SendOutcome(status=send.status, detail="already finished")
        if send.status == SendStatus.SENDING:
            claim_age = (now - send.claimed_at).total_seconds() if send.claimed_at else float("inf")
            if send.claim_token == claim_token or claim_age > settings.OMNICHANNEL_SEND_CLAIM_TIMEOUT_SECONDS:
                # This task already claimed the row (its worker died during the provider call), or the claim
                # was abandoned. The provider may have the message: a second call could duplicate it, and
                # the ledger promises one send, so the row ends here.
                _send_finish(send, status=SendStatus.FAILED, source="worker", error_code="outcome_unknown",
                             error="worker lost during the provider call; not resent to avoid a duplicate")
                log.warning("send_outcome_unknown", send_id=send_id, activation_id=send.activation_id)
                return SendOutcome(status=SendStatus.FAILED, detail="outcome_unknown")
            return SendOutcome(status=SendStatus.SENDING, detail="another worker holds the send")
        contact = Contact.objects.filter(user_id=send.user_id).first()
        blocked = cascade.send_blocked_reason(channel=send.channel, user_id=send.user_id, recipient=send.recipient,
                                              contact=contact)
        if blocked:
            status = SendStatus.SUPPRESSED if blocked.startswith("suppressed") else SendStatus.FAILED
            _send_finish(send, status=status, source="worker", error_code="blocked_at_send",
                         error=f"not sent: {blocked}")
            log.info("send_blocked", send_id=send_id, activation_id=send.activation_id, reason=blocked)
            return SendOutcome(status=status, detail=blocked)
        send.attempts += 1
        if send.provider == Provider.INBOX:
            # Our own store: writing the message and marking it sent is one transaction, nothing can duplicate.
            send.save(update_fields=["attempts"])
            _store_inbox_message(send)
            _send_finish(send, status=SendStatus.SENT, source="worker")
            return SendOutcome(status=SendStatus.SENT)
        send.status = SendStatus.SENDING
        send.claim_token = claim_token[:64]
        send.claimed_at = now
        send.save(update_fields=["status", "claim_token", "claimed_at", "attempts", "updated_at"])

    started = time.perf_counter()
    try:
        message_id = _provider_call(send)
    except providers.ProviderError as exc:
        attempts_left = send.attempts < 1 + settings.OMNICHANNEL_SEND_MAX_RETRIES
        with transaction.atomic():
            locked = SendLedger.objects.select_for_update().select_related("activation").get(pk=send_id)
            if locked.status != SendStatus.SENDING or locked.claim_token != send.claim_token:
                return SendOutcome(status=locked.status, detail="claim lost")
            if exc.retryable and attempts_left:
                delay = _retry_delay(locked.attempts)
                locked.status = SendStatus.QUEUED
                locked.claim_token = ""
                locked.error_code = exc.code[:60]
                locked.error = str(exc)[:500]
                locked.next_attempt_at = timezone.now() + timedelta(seconds=delay)
                locked.save(update_fields=["status", "claim_token", "error_code", "error", "next_attempt_at", "updated_at"])
                SENDS.labels(locked.channel, "retry").inc()
                log.warning("send_retry", send_id=send_id, provider=exc.provider, error=str(exc),
                            attempt=locked.attempts, retry_in=delay)
                return SendOutcome(status=SendStatus.QUEUED, retry_in=delay, detail=str(exc))
            why = "retries exhausted: " if exc.retryable else ""
            _send_finish(locked, status=SendStatus.FAILED, source="worker", error_code=exc.code or "error",
                         error=why + str(exc))
            _after_permanent_error(locked, exc)
        log.warning("send_failed", send_id=send_id, provider=exc.provider, error=str(exc), attempts=send.attempts,
                    permanent=not exc.retryable)
        return SendOutcome(status=SendStatus.FAILED, detail=str(exc))
    with transaction.atomic():
        locked = SendLedger.objects.select_for_update().get(pk=send_id)
        if locked.status == SendStatus.SENDING and locked.claim_token == send.claim_token:
            _send_finish(locked, status=SendStatus.SENT, source="worker", provider_message_id=message_id)
    log.info("send_sent", send_id=send_id, activation_id=send.activation_id, provider=send.provider,
             provider_message_id=message_id, ms=round((time.perf_counter() - started) * 1000, 1))
    return SendOutcome(status=SendStatus.SENT)


def send_mark_delivered(*, send: SendLedger, source: str) -> bool:
    """A provider (or the app fetching its message) confirmed delivery."""
    # A row that failed only because its outcome was unknown (worker lost) may still be proven delivered.
    updated = SendLedger.objects.filter(
        Q(status__in=[SendStatus.SENDING, SendStatus.SENT]) | Q(status=SendStatus.FAILED, error_code="outcome_unknown"),
        pk=send.pk,
    ).update(status=SendStatus.DELIVERED, delivered_at=timezone.now(), updated_at=timezone.now())
    if updated:
        _activation_transition(send.activation_id, to=ActivationStatus.DELIVERED, source=source)
    return bool(updated)


def send_mark_failed(*, send: SendLedger, source: str, error_code: str, error: str) -> bool:
    """A provider reported that a message it accepted was not delivered."""
    updated = SendLedger.objects.filter(pk=send.pk, status__in=[SendStatus.SENDING, SendStatus.SENT]).update(
        status=SendStatus.FAILED, error_code=error_code[:60], error=error[:500], updated_at=timezone.now())
    if updated:
        _activation_transition(send.activation_id, to=ActivationStatus.FAILED, reason=error, source=source)
    return bool(updated)


def sends_requeue_stale(*, older_than: timedelta = timedelta(minutes=10)) -> int:
    """Queue again the sends whose task was lost (broker down at commit, worker gone for good)."""
    cutoff = timezone.now() - older_than
    ids = list(SendLedger.objects.filter(status=SendStatus.QUEUED, next_attempt_at__lt=cutoff).values_list("pk", flat=True)[:1000])
    for send_id in ids:
        send_enqueue(send_id=send_id)
    stale_claims = list(SendLedger.objects.filter(
        status=SendStatus.SENDING,
        claimed_at__lt=timezone.now() - timedelta(seconds=settings.OMNICHANNEL_SEND_CLAIM_TIMEOUT_SECONDS),
    ).values_list("pk", flat=True)[:1000])
    for send_id in stale_claims:
        send_enqueue(send_id=send_id)  # the run finds the abandoned claim and closes the row
    if ids or stale_claims:
        log.warning("sends_requeued", queued=len(ids), abandoned_claims=len(stale_claims))
    return len(ids) + len(stale_claims)


# =====================================================================================================
# First-party surfaces: in-app, web, in-store messages
# =====================================================================================================
def inbox_fetch(*, channel: str, user_id: str | None = None, store_id: str | None = None,
                limit: int = 20) -> list[InboxMessage]:
    """Messages for the app (in_app), the web site (web) or a store's screens (in_store), newest first.
    The first fetch of a message is its delivery."""
    now = timezone.now()
    qs = InboxMessage.objects.filter(channel=channel, expires_at__gt=now)
    if channel == Channel.IN_STORE:
        qs = qs.filter(store_id=store_id)
    else:
        qs = qs.filter(user_id=_clean_user_id(user_id))
    messages = list(qs.select_related("send").order_by("-created_at", "-id")[:limit])
    fresh = [m for m in messages if m.fetched_at is None]
    if fresh:
        with transaction.atomic():
            InboxMessage.objects.filter(pk__in=[m.pk for m in fresh], fetched_at__isnull=True).update(fetched_at=now)
            for message in fresh:
                message.fetched_at = now
                send_mark_delivered(send=message.send, source=f"{channel} fetch")
    return messages


# =====================================================================================================
# SendGrid Event Webhook
# =====================================================================================================
class WebhookRejected(ServiceError):
    status_code = 401
    code = "invalid_signature"


def sendgrid_webhook_receive(*, body: bytes, signature: str | None, timestamp: str | None) -> SendGridBatch:
    """Check the signed-webhook signature, store the raw batch and queue its processing after commit.

    Refuses (401) unsigned, otherwise-signed or stale posts. With no verification key configured
    nothing is accepted (403 ``not_configured``, like the Twilio callback): an unsigned event could
    plant a permanent suppression for any address. Only ``SENDGRID_WEBHOOK_ALLOW_UNSIGNED`` (refused
    in production) accepts unsigned events, stored with ``signature_verified=False``."""
    key = settings.SENDGRID_WEBHOOK_VERIFICATION_KEY
    verified = False
    if not key and not settings.SENDGRID_WEBHOOK_ALLOW_UNSIGNED:
        raise ServiceError(
            "SendGrid events are not accepted: SENDGRID_WEBHOOK_VERIFICATION_KEY is not configured",
            code="not_configured", status_code=403,
        )
    if key:
        if not signature or not timestamp:
            raise WebhookRejected(f"missing {signatures.SENDGRID_SIGNATURE_HEADER} / {signatures.SENDGRID_TIMESTAMP_HEADER}")
        try:
            sent_at = int(timestamp)
        except ValueError:
            raise WebhookRejected("timestamp header is not unix seconds") from None
        if abs(time.time() - sent_at) > settings.SENDGRID_WEBHOOK_MAX_AGE_SECONDS:
            raise WebhookRejected(f"timestamp is older than {settings.SENDGRID_WEBHOOK_MAX_AGE_SECONDS} s (or in the future)")
        if not signatures.sendgrid_signature_valid(key_b64=key, payload=body, signature_b64=signature, timestamp=timestamp):
            raise WebhookRejected("signature does not match the body and timestamp")
        verified = True
    try:
        events = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ServiceError("body is not JSON", field="body") from None
    if not isinstance(events, list) or not all(isinstance(e, dict) for e in events):
        raise ServiceError("body must be a JSON array of event objects", field="body")
    with transaction.atomic():
        batch = SendGridBatch.objects.create(body=body.decode(), signature_verified=verified, event_count=len(events))
        batch_id = batch.pk
        _after_commit(lambda: sendgrid_batch_enqueue(batch_id=batch_id))
    return batch


def sendgrid_batch_enqueue(*, batch_id: int) -> None:
    from .tasks import process_sendgrid_batch

    process_sendgrid_batch.apply_async(args=[batch_id], **task_options())


_SUPPRESS_ON = {"unsubscribe": "unsubscribe", "group_unsubscribe": "unsubscribe", "spamreport": "spam_report"}
_COUNTER = {"delivered": "delivered", "open": "opens", "click": "clicks", "bounce": "bounces",
            "spamreport": "spam_reports", "unsubscribe": "unsubscribes", "group_unsubscribe": "unsubscribes",
            "dropped": "dropped", "deferred": "deferred"}
_EMAIL_ANALYTICS = {"delivered": "email_delivered", "open": "email_open", "click": "email_click",
                    "bounce": "email_bounce", "spamreport": "email_spamreport", "unsubscribe": "email_unsubscribe",
                    "group_unsubscribe": "email_unsubscribe"}


def _suppress(*, identifier: str, channel: str, reason: str, source: str) -> None:
    from apps.suppression.services import suppression_add

    try:
        suppression_add(identifier=identifier, channel=channel, reason=reason, source=source)
    except ServiceError as exc:
        log.warning("suppression_add_refused", identifier=identifier, channel=channel, error=exc.message)


def _activation_for_event(event: dict) -> tuple[Activation | None, SendLedger | None]:
    raw = event.get("activation_id")
    activation = None
    if raw is not None:
        try:
            activation = Activation.objects.filter(pk=int(str(raw))).first()
        except ValueError:
            activation = None
    send = None
    if activation is not None:
        send = activation.sends.filter(channel=Channel.EMAIL).first()
    elif event.get("sg_message_id"):
        # sg_message_id starts with the X-Message-Id mail/send answered with.
        prefix = str(event["sg_message_id"]).split(".")[0]
        send = SendLedger.objects.filter(provider=Provider.SENDGRID, provider_message_id=prefix).select_related("activation").first()
        activation = send.activation if send else None
    return activation, send


def _sendgrid_event_apply(event: dict, batch_id: int) -> str:
    """Store and count one SendGrid event (its own transaction). Returns new / duplicate / invalid."""
    kind = str(event.get("event") or "")
    sg_event_id = str(event.get("sg_event_id") or "")
    email = str(event.get("email") or "").strip().lower()
    if not sg_event_id or not kind:
        return "invalid"
    try:
        occurred_at = datetime.fromtimestamp(int(event.get("timestamp")), tz=dt_timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        occurred_at = timezone.now()
    with transaction.atomic():
        activation, send = _activation_for_event(event)
        try:
            with transaction.atomic():
                EmailEvent.objects.create(
                    sg_event_id=sg_event_id[:200], event=kind[:20], email=email[:320], occurred_at=occurred_at,
                    sg_message_id=str(event.get("sg_message_id") or "")[:200], activation=activation,
                    batch_id=batch_id, url=str(event.get("url") or "")[:2000],
                    bounce_type=str(event.get("type") or "")[:20] if kind == "bounce" else "",
                    reason=str(event.get("reason") or event.get("response") or "")[:2000], payload=event,
                )
        except IntegrityError:
            return "duplicate"
        if activation is not None and kind in _COUNTER:
            stats_qs = EmailStats.objects.filter(activation=activation)
            if not stats_qs.exists():
                EmailStats.objects.get_or_create(activation=activation)
            updates = {_COUNTER[kind]: F(_COUNTER[kind]) + 1}
            if kind in ("open", "click") and email:
                EmailRecipient.objects.get_or_create(activation=activation, email=email)
                first = "first_open_at" if kind == "open" else "first_click_at"
                if EmailRecipient.objects.filter(activation=activation, email=email, **{f"{first}__isnull": True}
                                                 ).update(**{first: occurred_at}):
                    unique = "unique_opens" if kind == "open" else "unique_clicks"
                    updates[unique] = F(unique) + 1
            stats_qs.update(**updates)
        if send is not None:
            if kind in ("delivered", "open", "click"):
                send_mark_delivered(send=send, source="sendgrid")
            elif kind in ("bounce", "dropped"):
                send_mark_failed(send=send, source="sendgrid", error_code=kind,
                                 error=f"{kind}: {event.get('reason') or event.get('type') or ''}".strip())
        if email and (kind in _SUPPRESS_ON or (kind == "bounce" and event.get("type", "bounce") == "bounce")):
            _suppress(identifier=email, channel="email", reason=_SUPPRESS_ON.get(kind, "bounce"), source=f"sendgrid:{kind}")
        if kind in _EMAIL_ANALYTICS:
            # Our own record wins; the custom args SendGrid echoes back are the fallback.
            fields = {"user_id": getattr(activation, "user_id", None) or event.get("user_id"),
                      "offer_id": getattr(activation, "offer_id", None) or event.get("offer_id"),
                      "campaign_id": getattr(activation, "campaign_id", None) or event.get("campaign_id"),
                      "activation_id": getattr(activation, "pk", None) or event.get("activation_id"),
                      "channel": "email", "reason": str(event.get("type") or "")[:100] or None}
            fields = {k: (str(v) if isinstance(v, (int, str)) and not isinstance(v, bool) else None) for k, v in fields.items()}
            analytics_type = _EMAIL_ANALYTICS[kind]
            _after_commit(lambda: _emit(analytics_type, **fields))
    return "new"


def sendgrid_batch_process(*, batch_id: int) -> int:
    """Apply every event of a stored batch; idempotent (events already seen are skipped). Returns the
    number of new events."""
    batch = SendGridBatch.objects.filter(pk=batch_id).first()
    if batch is None:
        return 0
    events = json.loads(batch.body)
    new = 0
    for event in events:
        if not isinstance(event, dict):
            continue
        outcome = _sendgrid_event_apply(event, batch_id)
        SENDGRID_EVENTS.labels(str(event.get("event") or "unknown")[:20], outcome).inc()
        new += outcome == "new"
    SendGridBatch.objects.filter(pk=batch_id).update(processed_at=timezone.now(), new_events=F("new_events") + new)
    log.info("sendgrid_batch_processed", batch_id=batch_id, events=len(events), new=new)
    return new


def sendgrid_batches_requeue_unprocessed(*, older_than: timedelta = timedelta(minutes=5)) -> int:
    ids = list(SendGridBatch.objects.filter(processed_at__isnull=True, received_at__lt=timezone.now() - older_than)
               .values_list("pk", flat=True)[:500])
    for batch_id in ids:
        sendgrid_batch_enqueue(batch_id=batch_id)
    return len(ids)


# =====================================================================================================
# Twilio status callback
# =====================================================================================================
TWILIO_DELIVERED = {"delivered", "read"}
TWILIO_FAILED = {"undelivered", "failed"}


def twilio_status_record(*, url: str, params: list[tuple[str, str]], signature: str | None) -> str:
    """Apply one Twilio message status callback after checking ``X-Twilio-Signature``. Returns what happened."""
    token = settings.TWILIO_AUTH_TOKEN
    if not token:
        raise ServiceError("Twilio is not configured", code="not_configured", status_code=403)
    if not signatures.twilio_signature_valid(auth_token=token, url=url, params=params, signature=signature or ""):
        raise WebhookRejected("X-Twilio-Signature does not match")
    form = dict(params)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    status = (form.get("MessageStatus") or form.get("SmsStatus") or "").lower()
    send = SendLedger.objects.filter(provider=Provider.TWILIO, provider_message_id=sid).first() if sid else None
    if send is None:
        log.info("twilio_status_unknown_message", message_sid=sid, status=status)
        return "unknown message"
    error_code = form.get("ErrorCode") or ""
    with transaction.atomic():
        if status in TWILIO_DELIVERED:
            send_mark_delivered(send=send, source="twilio")
        elif status in TWILIO_FAILED:
            send_mark_failed(send=send, source="twilio", error_code=error_code or status,
                             error=f"Twilio reported {status}" + (f" (error {error_code})" if error_code else ""))
            if error_code == providers.TWILIO_UNSUBSCRIBED:
                _suppress(identifier=send.recipient, channel="sms", reason="unsubscribe", source="twilio:21610")
    log.info("twilio_status", message_sid=sid, status=status, send_id=send.pk, error_code=error_code)
    return status
