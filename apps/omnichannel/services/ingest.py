"""Ingest (docs/RULES.md §5): sources, then one event validated, recorded once per caller and acted on
(contact details, interactions, loyalty stars, an activation trigger)."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from prometheus_client import Counter

from apps.core.exceptions import Conflict, InvalidInput, ServiceError
from apps.core.idempotency import canonical_json, idempotency_purge, idempotent_call, request_fingerprint

from ..ingest_schema import IngestEventInput
from ..models import (
    CALLER_MAX_LENGTH,
    LEGACY_CALLER,
    Activation,
    EventType,
    IngestEvent,
    IngestSource,
    Interaction,
    Source,
    TriggerRule,
)
from .activations import activation_create
from .contacts import _normalise_address, contact_upsert

log = structlog.get_logger(__name__)

INGEST_EVENTS = Counter("omnichannel_ingest_events_total", "Ingest events by source and outcome",
                        ["source", "transport", "outcome"])


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


def ingest_source_set_enabled(*, source: str, enabled: bool, actor: AbstractBaseUser | None = None,
                              note: str = "") -> IngestSource:
    """Enable or disable an ingest source (admin)."""
    if source not in Source.values:
        raise ServiceError(f"unknown source {source!r}; one of {', '.join(Source.values)}", field="source")
    row, _ = IngestSource.objects.update_or_create(
        source=source, defaults={"enabled": enabled, "note": note[:200], "updated_by": actor if getattr(actor, "pk", None) else None}
    )
    log.info("ingest_source_changed", source=source, enabled=enabled, actor_id=getattr(actor, "pk", None))
    return row


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


class InvalidIngestEvent(InvalidInput):
    """The event does not match the ingest schema (400): ``errors`` holds every field's problems as the
    schema reports them; the answer names the first (``items.1.item_id: ...``) and lists them all."""


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


# First key of the per-user trigger locks (the two-key form of pg_advisory_xact_lock, so they cannot
# collide with the one-key locks other slices take): "TRIG".
TRIGGER_LOCK_NAMESPACE = 0x54524947


def _lock_user_triggers(user_id: str) -> None:
    """Hold the user's trigger lock until the transaction ends (docs/RULES.md §5, trigger cooldown).

    An advisory lock on a 32-bit digest of the user id rather than a row lock: a user who triggers need
    not have a contact row, and creating one only to lock it would change what the admin shows. Two
    users sharing a digest only take turns."""
    digest = hashlib.blake2b(user_id.encode(), digest_size=4).digest()
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)",
                       [TRIGGER_LOCK_NAMESPACE, int.from_bytes(digest, "big", signed=True)])


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
    with transaction.atomic():
        # Check and act as one step per user: a concurrent event of the same user waits here until this
        # transaction commits, then sees this activation and stays inside the cooldown.
        _lock_user_triggers(event.user_id)
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


def _stored_replay(*, source: str, caller: str, event_id: str, payload: dict) -> IngestOutcome | None:
    """The first answer of an event already recorded, read from its IngestEvent row, when ``payload``
    is exactly its body: an event recorded before callers were kept (a client retrying across the
    upgrade), or one whose idempotency record was purged (``OMNICHANNEL_IDEMPOTENCY_RETENTION_DAYS``)
    is answered as a duplicate, not credited twice. A different body with that id is another event
    (no answer of someone else's leaks; this caller's own is a 409 from the idempotency record or
    the event's unique constraint). One indexed read, as before records could be purged."""
    rows = (IngestEvent.objects.filter(source=source, caller__in=[LEGACY_CALLER, caller], event_id=event_id)
            .values_list("payload", "result"))
    wanted = canonical_json(payload)
    for stored, result in rows:
        if canonical_json(stored) == wanted and result:
            return IngestOutcome(status=200, body={**result, "duplicate": True})
    return None


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

    Refused (400): invalid fields (:class:`InvalidIngestEvent`), a disabled source, no user_id nor device_id, a purchase without
    amount_cents. An event is keyed by ``(source, caller, event_id)`` (``caller`` from
    :func:`ingest_caller`) through :func:`apps.core.idempotency.idempotent_call`: a new event answers
    201; the same caller sending the same body again gets the first answer (200, ``"duplicate":
    true``) and nothing changes; the same id with a different body is a 409. A concurrent duplicate
    waits for the first and then replays it. A refusal leaves nothing behind, so a corrected event may
    be sent under the same id. A purchase earns stars through ``loyalty_earn``
    (:func:`ingest_transaction_id`); triggers create an activation; items become interactions.
    """
    serializer = IngestEventInput(data=data)
    if not serializer.is_valid():
        raise InvalidIngestEvent(json.loads(json.dumps(serializer.errors)))
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
    stored = _stored_replay(source=source, caller=caller, event_id=event_id, payload=payload)
    if stored is not None:
        INGEST_EVENTS.labels(source, transport, "duplicate").inc()
        log.info("ingest_duplicate", event_id=event_id, source=source, caller=caller, transport=transport)
        return stored
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


def omnichannel_purge_idempotency_records() -> int:
    """Delete the idempotency records of omnichannel writes (ingest events, activations) older than
    ``OMNICHANNEL_IDEMPOTENCY_RETENTION_DAYS``, in bounded batches. An ingest event replayed after
    that is still answered as a duplicate from its IngestEvent row (:func:`_stored_replay`)."""
    return idempotency_purge(scope_prefix="omnichannel.",
                             older_than=timedelta(days=settings.OMNICHANNEL_IDEMPOTENCY_RETENTION_DAYS))
