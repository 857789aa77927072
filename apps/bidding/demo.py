"""Demo data for ``manage.py seed_demo``: a live US display campaign whose offers fit the common banner
sizes (300x250, 320x50, 728x90) on site and app traffic, so a newcomer's first bid request gets a bid:

    curl -s -X POST localhost:8081/v1/bid -d '{"id":"r1","imp":[{"id":"1","banner":{"w":300,"h":250}}],
         "device":{"devicetype":4,"geo":{"country":"USA"}},"user":{"id":"demo-reserve-cara"}}'

(the loyalty demo gives ``demo-gold-ben`` and ``demo-reserve-cara`` their tiers: their bids carry the
Gold x1.15 / Reserve x1.30 boost.)

Built through the campaigns services (create, offers, submit, approve, go live), then the offer
snapshot is rebuilt. Idempotent: a demo campaign found by name is left as it is.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import structlog
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from apps.bidding.services import offer_snapshot_refresh
from apps.campaigns import selectors as campaign_selectors
from apps.campaigns import services as campaign_services
from apps.core.roles import Role

log = structlog.get_logger(__name__)

CAMPAIGN_NAME = "Demo: US display (bidding)"
MARKETER = "demo-bid-marketer"
APPROVER = "demo-bid-approver"

OFFERS = [
    # name, width, height, category, max bid CPM, priority, observed CTR
    ("Spring sale medium rectangle", 300, 250, "IAB22-1", Decimal("6.0000"), 8, 0.021),
    ("Spring sale mobile banner", 320, 50, "IAB22-1", Decimal("3.5000"), 7, 0.012),
    ("Spring sale leaderboard", 728, 90, "IAB22-1", Decimal("5.0000"), 6, 0.015),
    ("Loyalty double stars rectangle", 300, 250, "IAB8-1", Decimal("4.5000"), 5, 0.030),
]


def _user(username: str, role: str):
    user, created = get_user_model().objects.get_or_create(username=username, defaults={"is_staff": True})
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    user.groups.add(Group.objects.get(name=role))
    return user


def seed() -> None:
    """Create and launch the demo campaign if it does not exist yet, then rebuild the snapshot."""
    existing = campaign_selectors.campaign_list(search=CAMPAIGN_NAME).filter(name=CAMPAIGN_NAME).first()
    if existing is None:
        marketer = _user(MARKETER, Role.MARKETER)
        approver = _user(APPROVER, Role.APPROVER)
        now = timezone.now()
        campaign = campaign_services.campaign_create(
            actor=marketer, name=CAMPAIGN_NAME, advertiser="Campaign Express Coffee", budget=Decimal("5000.00"),
            channels=["display"], start_at=now - timedelta(minutes=1), end_at=now + timedelta(days=365),
            target_countries=["USA"], target_device_types=[], target_segments=[],
        )
        for name, width, height, category, max_bid, priority, ctr in OFFERS:
            campaign_services.offer_create(
                campaign_id=campaign.pk, actor=marketer, name=name,
                creative_markup=(f'<img src="https://cdn.example.com/demo/{width}x{height}.png" '
                                 f'width="{width}" height="{height}" alt="{name}">'),
                width=width, height=height, landing_url="https://coffee.example.com/spring",
                advertiser_domain="coffee.example.com", category=category, max_bid_cpm=max_bid,
                priority=priority, observed_ctr=ctr,
            )
        campaign_services.campaign_submit(campaign_id=campaign.pk, actor=marketer)
        campaign_services.campaign_approve(campaign_id=campaign.pk, actor=approver)
        campaign_services.campaign_go_live(campaign_id=campaign.pk, actor=marketer)
        log.info("bidding_demo_campaign_live", campaign_id=campaign.pk, offers=len(OFFERS))
    offer_snapshot_refresh()
