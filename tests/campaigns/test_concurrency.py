"""Races the services must win: concurrent spend, concurrent votes, a duplicate vote. Each worker thread
has its own database connection (real transactions, real row locks)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from apps.campaigns import services
from apps.campaigns.models import ApprovalVote, Campaign, CampaignTransition
from apps.core.exceptions import Conflict, ServiceError
from apps.core.roles import Role
from tests.support.threads import run_together

from .conftest import make_user

# serialized_rollback: the flush after a transactional test also removes the roles and approval
# rules the data migrations created; restore them for this test.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


def run_in_threads(*targets):
    """Each target at once in its own thread; its result or refusal (a ``ServiceError``), in order.
    Any other exception, or a thread that does not finish, fails the test."""
    return run_together(list(targets), expected=(ServiceError,))


def test_concurrent_spend_loses_nothing(make_campaign):
    campaign = make_campaign("live", budget=Decimal("5000"))

    def add_many():
        for _ in range(25):
            services.campaign_add_spend(campaign_id=campaign.pk, amount=Decimal("0.010001"))

    outcomes = run_in_threads(add_many, add_many, add_many, add_many)
    assert outcomes == [None] * 4
    assert Campaign.objects.get(pk=campaign.pk).spent == Decimal("1.000100")


def test_concurrent_approvals_approve_exactly_once(make_campaign):
    campaign = make_campaign("in_review", budget=Decimal("20000"))  # needs 2
    approvers = [make_user(Role.APPROVER) for _ in range(3)]

    outcomes = run_in_threads(*[
        (lambda user=user: services.campaign_approve(campaign_id=campaign.pk, actor=user)) for user in approvers
    ])

    # The row lock serialises them: two votes approve it, the third finds it approved already.
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], Conflict) and refused[0].field == "status"
    assert Campaign.objects.get(pk=campaign.pk).status == "approved"
    assert ApprovalVote.objects.filter(campaign=campaign).count() == 2
    assert CampaignTransition.objects.filter(campaign=campaign, action="approve").count() == 1


def test_a_double_click_counts_one_vote(make_campaign):
    campaign = make_campaign("in_review", budget=Decimal("20000"))
    approver = make_user(Role.APPROVER)

    outcomes = run_in_threads(*[lambda: services.campaign_approve(campaign_id=campaign.pk, actor=approver)] * 2)

    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(refused) == 1 and isinstance(refused[0], Conflict) and refused[0].code == "already_voted"
    assert ApprovalVote.objects.filter(campaign=campaign, approver=approver).count() == 1
    assert Campaign.objects.get(pk=campaign.pk).status == "in_review"


def test_concurrent_edits_are_both_recorded(make_campaign):
    from apps.campaigns.models import CampaignEdit

    campaign = make_campaign("live", budget=Decimal("5000"))
    marketer = campaign.created_by
    outcomes = run_in_threads(
        lambda: services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=Decimal("6000")),
        lambda: services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=Decimal("7000")),
    )
    assert all(isinstance(outcome, Campaign) for outcome in outcomes), outcomes
    first, second = (edit.changes["budget"] for edit in
                     CampaignEdit.objects.filter(campaign=campaign, action="campaign_update").order_by("id"))
    # The campaign's row lock serialised them: the second saw the first's value as its old value.
    assert first["old"] == "5000.00" and second["old"] == first["new"]
    assert {first["new"], second["new"]} == {"6000.00", "7000.00"}
    assert Campaign.objects.get(pk=campaign.pk).budget == Decimal(second["new"])
