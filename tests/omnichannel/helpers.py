from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone


def make_offer(*, channels=("email", "push", "sms", "in_app", "web", "in_store"), name="Pumpkin latte -20%"):
    """A campaign with one offer (rows written directly: the campaigns slice owns their lifecycle)."""
    from django.contrib.auth.models import User

    from apps.campaigns.models import Campaign, Offer

    owner, _ = User.objects.get_or_create(username="campaign-owner")
    now = timezone.now()
    campaign = Campaign.objects.create(
        name="Autumn", advertiser="Coffee Co", budget=Decimal("1000"), channels=list(channels),
        start_at=now - timedelta(days=1), end_at=now + timedelta(days=30), created_by=owner,
    )
    offer = Offer.objects.create(
        campaign=campaign, name=name, creative_markup="<div>latte</div>", width=300, height=250,
        landing_url="https://coffee.example.com/latte", advertiser_domain="coffee.example.com", category="IAB8",
        max_bid_cpm=Decimal("2.5"),
    )
    return campaign, offer


def reachable_by(user_id: str, **fields):
    """A contact record that opts the user in to exactly the channels whose details are given."""
    from apps.omnichannel.services import contact_upsert

    values = {"consent_in_app": False, "consent_web": False, "consent_in_store": False}
    if "email" in fields:
        values["consent_email"] = True
    if "phone" in fields:
        values["consent_sms"] = True
    if "fcm_token" in fields or "apns_token" in fields:
        values["consent_push"] = True
    values.update(fields)
    return contact_upsert(user_id=user_id, fields=values)


def seed_trigger_rules():
    """Transactional tests empty every table afterwards (data migrations included): put the default
    trigger rules back so a test never depends on which transactional test ran before it."""
    import importlib

    from apps.omnichannel.models import TriggerRule

    seed = importlib.import_module("apps.omnichannel.migrations.0002_sources_triggers_roles")
    for event_type, (title, body, cooldown) in seed.TRIGGER_RULES.items():
        TriggerRule.objects.get_or_create(event_type=event_type,
                                          defaults={"title": title, "body": body, "cooldown_minutes": cooldown})
