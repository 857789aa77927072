"""Fixtures for the loyalty tests: API clients per role and small factories.

Accounts made by ``make_account`` start with a zero balance (so ``balance == ledger sum`` holds);
give them stars through ``loyalty_earn`` or ``loyalty_adjust`` like production does.
"""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.loyalty import rules
from apps.loyalty.models import ChannelBonus, LoyaltyAccount, Promotion
from tests.factories import make_user, token_client


def _client_for(username: str, *groups: str) -> APIClient:
    return token_client(make_user(*groups, username=username, is_staff=bool(groups)))


@pytest.fixture
def integration_client(db) -> APIClient:
    return _client_for("pos-service", "Integration")


@pytest.fixture
def marketer_client(db) -> APIClient:
    return _client_for("mia-marketer", "Marketer")


@pytest.fixture
def admin_user(db):
    return make_user(username="root", superuser=True)


@pytest.fixture
def make_account(db):
    def make(user_id: str, *, tier: str = "green", qualifying: int = 0, **fields) -> LoyaltyAccount:
        now = timezone.now()
        start = fields.pop("qualifying_period_start", now - timedelta(days=30))
        return LoyaltyAccount.objects.create(
            user_id=user_id, tier=tier, qualifying_stars=qualifying, qualifying_period_start=start,
            qualifying_period_end=fields.pop("qualifying_period_end", rules.period_end(start)), **fields,
        )

    return make


@pytest.fixture
def make_promotion(db):
    def make(multiplier: str, *, name: str = "Promo", starts: timedelta = timedelta(days=-1),
             ends: timedelta = timedelta(days=1), is_active: bool = True) -> Promotion:
        now = timezone.now()
        return Promotion.objects.create(name=name, multiplier=Decimal(multiplier), starts_at=now + starts,
                                        ends_at=now + ends, is_active=is_active)

    return make


@pytest.fixture
def make_bonus(db):
    def make(channel: str, multiplier: str, *, valid_for: timedelta = timedelta(days=1), is_active: bool = True) -> ChannelBonus:
        return ChannelBonus.objects.create(channel=channel, multiplier=Decimal(multiplier),
                                           valid_until=timezone.now() + valid_for, is_active=is_active)

    return make
