"""Demo omnichannel data for ``manage.py seed_demo``: contact records for the demo members and a day
of ingest events (views, baskets, a store visit) — interactions for recommendations, and the
activations their triggers create.

Idempotent: events have fixed ids under the caller ``demo:seed``, so seeding again finds them
(their timestamps are relative to now, so the body differs and ingest answers 409: already seeded,
counted as ``duplicate``) and changes nothing; contacts are upserted.
"""
from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from apps.core.exceptions import Conflict
from apps.omnichannel import services
from apps.omnichannel.models import Transport

CALLER = "demo:seed"

CONTACTS = {
    "demo-green-ana": {"email": "ana@example.com", "consent_email": True, "preferred_channel": "in_app"},
    "demo-gold-ben": {"email": "ben@example.com", "phone": "+14155550123", "consent_email": True,
                      "consent_sms": True, "fcm_token": "demo-fcm-token-ben", "consent_push": True},
    "demo-reserve-cara": {"email": "cara@example.com", "consent_email": True, "preferred_channel": "email"},
}

# (event id, minutes ago, event fields)
EVENTS = [
    ("demo-evt-1", 600, {"source": "web", "event_type": "product_view", "user_id": "demo-green-ana", "item_id": "sku-latte"}),
    ("demo-evt-2", 590, {"source": "web", "event_type": "cart_add", "user_id": "demo-green-ana", "item_id": "sku-muffin"}),
    ("demo-evt-3", 580, {"source": "web", "event_type": "cart_abandon", "user_id": "demo-green-ana",
                         "items": [{"item_id": "sku-muffin"}]}),
    ("demo-evt-4", 300, {"source": "pos", "event_type": "purchase", "user_id": "demo-gold-ben", "amount_cents": 1150,
                         "order_id": "demo-order-1", "store_id": "store-001",
                         "items": [{"item_id": "sku-latte"}, {"item_id": "sku-croissant"}]}),
    ("demo-evt-5", 200, {"source": "mobile_app", "event_type": "purchase", "user_id": "demo-reserve-cara",
                         "amount_cents": 2380, "order_id": "demo-order-2",
                         "items": [{"item_id": "sku-latte"}, {"item_id": "sku-muffin", "quantity": 2}]}),
    ("demo-evt-6", 20, {"source": "mobile_app", "event_type": "wishlist_add", "user_id": "demo-reserve-cara",
                        "item_id": "sku-cold-brew"}),
    ("demo-evt-7", 5, {"source": "kiosk", "event_type": "store_visit", "user_id": "demo-gold-ben", "store_id": "store-001"}),
    ("demo-evt-8", 15, {"source": "iot", "event_type": "page_view", "device_id": "demo-screen-7", "item_id": "sku-cold-brew"}),
]


def seed() -> dict:
    for user_id, fields in CONTACTS.items():
        services.contact_upsert(user_id=user_id, fields=fields)
    now = timezone.now()
    outcomes = {"accepted": 0, "duplicate": 0}
    for event_id, minutes_ago, fields in EVENTS:
        payload = {"event_id": event_id, "timestamp": (now - timedelta(minutes=minutes_ago)).isoformat(), **fields}
        try:
            outcome = services.ingest_event_process(data=payload, transport=Transport.HTTP, caller=CALLER)
        except Conflict:  # seeded before, at another time of day
            outcomes["duplicate"] += 1
            continue
        outcomes["duplicate" if outcome.body.get("duplicate") else "accepted"] += 1
    return {"contacts": len(CONTACTS), **outcomes}
