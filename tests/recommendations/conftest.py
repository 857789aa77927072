"""A small shop, through the real services: catalogue items by ``catalog_item_put``, interactions by
omnichannel ingest (``ingest_event_process``), models by ``recommendations_rebuild`` into the test Redis."""
from __future__ import annotations

import itertools
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.omnichannel import services as omni
from apps.recommendations import services, store
from tests.factories import make_user, token_client

_events = itertools.count(1)

SHOP = {
    "shoes": {"name": "Trail Shoes", "category": "running", "tags": ["trail"], "price": "90.00"},
    "socks": {"name": "Running Socks", "category": "running", "tags": ["wool"], "price": "12.00"},
    "bottle": {"name": "Water Bottle", "category": "outdoor", "tags": ["trail"], "price": "20.00"},
    "tent": {"name": "Tent", "category": "camping", "price": "300.00"},
    "lamp": {"name": "Head Lamp", "category": "camping", "price": "35.00"},
}


def interact(user_id: str, items: list[str], *, event_type: str = "purchase", order_id: str = "",
             at: datetime | None = None) -> None:
    body = {"event_id": f"rec-{next(_events)}", "source": "web", "event_type": event_type, "user_id": user_id,
            "items": [{"item_id": item, "quantity": 1} for item in items],
            "timestamp": (at or timezone.now()).isoformat()}
    if order_id:
        body["order_id"] = order_id
    if event_type == "purchase":
        body["amount_cents"] = 1000 * len(items)
    omni.ingest_event_process(data=body, transport="http", caller="user:test")


@pytest.fixture(autouse=True)
def fresh_store(redis_client, settings):
    """Every test starts with no model anywhere, and serving processes look for a newer one on every call."""
    settings.RECS_MODEL_POLL_SECONDS = 0.0
    store._store = None
    yield
    store._store = None


@pytest.fixture
def marketer(db):
    return make_user("Marketer")


@pytest.fixture
def marketer_client(marketer):
    return token_client(marketer)


@pytest.fixture
def integration_client(db):
    return token_client(make_user("Integration", is_staff=False))


@pytest.fixture
def nobody_client(db):
    return token_client(make_user())


@pytest.fixture
def shop(marketer):
    """Five items (created a day apart, the lamp newest), four baskets and one shopper, u9, who bought
    the shoes. Baskets holding each: shoes 3 (u9's included), socks 2, bottle 2, tent 1; shoes+socks together twice."""
    base = timezone.now() - timedelta(days=10)
    for n, (item_id, data) in enumerate(SHOP.items()):
        services.catalog_item_put(item_id=item_id, data={**data, "created_at": (base + timedelta(days=n)).isoformat()},
                                  actor=marketer)
    interact("u1", ["shoes", "socks"], order_id="o1")
    interact("u2", ["shoes", "socks", "bottle"], order_id="o2")
    interact("u3", ["tent", "bottle"], order_id="o3")
    interact("u4", ["bottle"], event_type="product_view")
    interact("u9", ["shoes"], order_id="o9")
    return base
