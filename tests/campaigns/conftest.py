"""Factories for the campaigns tests: users holding each role, and campaigns built through the
real services (so every fixture has the audit trail a real campaign has)."""
from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.campaigns import services
from apps.core.roles import Role
from tests import factories

_seq = itertools.count(1)
PASSWORD = "correct horse battery staple"


def make_user(*roles: str, username: str | None = None, **extra):
    """A staff user with a password (admin and browser tests log in with it)."""
    return factories.make_user(*roles, username=username, password=PASSWORD, **extra)


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # PBKDF2 at its production cost takes ~250 ms per user; these tests create many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def marketer(db):
    return make_user(Role.MARKETER, username="marketer")


@pytest.fixture
def approver(db):
    return make_user(Role.APPROVER, username="approver")


@pytest.fixture
def approver2(db):
    return make_user(Role.APPROVER, username="approver2")


@pytest.fixture
def outsider(db):
    """A signed-in staff user without any role."""
    return make_user(username="outsider")


OFFER_DEFAULTS = dict(
    name="Spring sale 300x250",
    creative_markup='<a href="https://shop.example.com/spring"><img src="https://cdn.example.com/s.png" width="300" height="250"></a>',
    width=300,
    height=250,
    landing_url="https://shop.example.com/spring",
    advertiser_domain="shop.example.com",
    category="IAB22",
    max_bid_cpm=Decimal("2.5000"),
)


def campaign_fields(**overrides):
    now = timezone.now()
    fields = dict(
        name=f"Campaign {next(_seq)}",
        advertiser="Example Shop",
        budget=Decimal("5000.00"),
        channels=["display"],
        start_at=now + timedelta(days=1),
        end_at=now + timedelta(days=30),
        target_countries=["USA"],
    )
    fields.update(overrides)
    return fields


@pytest.fixture
def make_campaign(marketer):
    """``make_campaign(status="in_review", budget=...)`` — a campaign walked to ``status`` through the services."""

    def factory(status: str = "draft", *, by=None, approvers=(), offers: int = 1, **overrides):
        actor = by or marketer
        if status in ("live", "paused", "completed", "archived") and "start_at" not in overrides:
            overrides["start_at"] = timezone.now() - timedelta(hours=1)
        campaign = services.campaign_create(actor=actor, **campaign_fields(**overrides))
        for i in range(offers):
            services.offer_create(campaign_id=campaign.pk, actor=actor, **{**OFFER_DEFAULTS, "name": f"Offer {i}"})
        if status == "draft":
            return fresh(campaign)
        services.campaign_submit(campaign_id=campaign.pk, actor=actor)
        if status == "in_review":
            return fresh(campaign)
        if status == "rejected":
            services.campaign_reject(campaign_id=campaign.pk, actor=_approvers(approvers, 1)[0], reason="Off brand")
            return fresh(campaign)
        needed = fresh(campaign).required_approvals
        for user in _approvers(approvers, needed):
            services.campaign_approve(campaign_id=campaign.pk, actor=user)
        if status == "approved":
            return fresh(campaign)
        if status == "scheduled":
            services.campaign_schedule(campaign_id=campaign.pk, actor=actor)
            return fresh(campaign)
        services.campaign_go_live(campaign_id=campaign.pk, actor=actor)
        if status == "paused":
            services.campaign_pause(campaign_id=campaign.pk, actor=actor)
        if status in ("completed", "archived"):
            services.campaign_complete(campaign_id=campaign.pk, actor=actor, reason="test")
        if status == "archived":
            services.campaign_archive(campaign_id=campaign.pk, actor=actor)
        return fresh(campaign)

    return factory


def _approvers(given, needed):
    users = list(given)
    while len(users) < needed:
        users.append(make_user(Role.APPROVER))
    return users


def fresh(campaign):
    """Re-read a campaign (``refresh_from_db`` refuses the protected FSM field)."""
    from apps.campaigns.models import Campaign

    return Campaign.objects.get(pk=campaign.pk)


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory):
    """HAProxy's TLS certificate (a throwaway self-signed one): docker/haproxy.cfg refuses to start without it."""
    from scripts.dev_cert import write_self_signed_pem

    return write_self_signed_pem(tmp_path_factory.mktemp("certs") / "site.pem")


SENDGRID_KEY = "SG.notifications-test"
SENDGRID_FROM = "noreply@campaign-express.example"


@pytest.fixture
def sendgrid(settings):
    """A local server speaking SendGrid's v3 mail/send, with the settings that send staff emails to it."""
    from tests.omnichannel.fakes import SendGridServer

    server = SendGridServer(SENDGRID_KEY).start()
    settings.SENDGRID_API_URL = server.url
    settings.SENDGRID_API_KEY = SENDGRID_KEY
    settings.SENDGRID_FROM_EMAIL = SENDGRID_FROM
    settings.PUBLIC_BASE_URL = "https://ce.example.com"
    try:
        yield server
    finally:
        server.stop()
