"""The campaign lifecycle (docs/RULES.md §3) through the services: every legal transition, every illegal
one refused without side effects, approval rules, votes, edits in review, and the audit trail."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from apps.campaigns import selectors, services
from apps.campaigns.models import ApprovalRule, ApprovalVote, Campaign, CampaignTransition
from apps.core.exceptions import Conflict, Forbidden, NotFound, ServiceError
from apps.core.roles import Role

from .conftest import OFFER_DEFAULTS, campaign_fields, fresh, make_user

pytestmark = pytest.mark.django_db

STATES = ["draft", "in_review", "approved", "rejected", "scheduled", "live", "paused", "completed", "archived"]
LEGAL = {
    "submit": {"draft"},
    "approve": {"in_review"},
    "reject": {"in_review"},
    "request_changes": {"in_review"},
    "revise": {"rejected"},
    "schedule": {"approved"},
    "go_live": {"approved", "scheduled"},
    "pause": {"live"},
    "resume": {"paused"},
    "complete": {"live"},
    "archive": {"completed"},
}


def call(action, campaign, *, marketer, approver):
    cid = campaign.pk
    return {
        "submit": lambda: services.campaign_submit(campaign_id=cid, actor=marketer),
        "approve": lambda: services.campaign_approve(campaign_id=cid, actor=approver),
        "reject": lambda: services.campaign_reject(campaign_id=cid, actor=approver, reason="Not on brand"),
        "request_changes": lambda: services.campaign_request_changes(campaign_id=cid, actor=approver, reason="Fix copy"),
        "revise": lambda: services.campaign_revise(campaign_id=cid, actor=marketer),
        "schedule": lambda: services.campaign_schedule(campaign_id=cid, actor=marketer),
        "go_live": lambda: services.campaign_go_live(campaign_id=cid, actor=marketer),
        "pause": lambda: services.campaign_pause(campaign_id=cid, actor=marketer),
        "resume": lambda: services.campaign_resume(campaign_id=cid, actor=marketer),
        "complete": lambda: services.campaign_complete(campaign_id=cid, actor=marketer, reason="ended early"),
        "archive": lambda: services.campaign_archive(campaign_id=cid, actor=marketer),
    }[action]()


def audit(campaign):
    return list(
        CampaignTransition.objects.filter(campaign_id=campaign.pk)
        .order_by("id")
        .values_list("action", "from_status", "to_status")
    )


# --- legal transitions -----------------------------------------------------------------------------

def test_create_makes_a_draft_with_an_audit_row(marketer):
    campaign = services.campaign_create(actor=marketer, **campaign_fields(target_countries=["us", "GBR", "USA"]))
    campaign = fresh(campaign)
    assert campaign.status == "draft"
    assert campaign.created_by == marketer
    assert campaign.target_countries == ["USA", "GBR"]  # alpha-2 normalised to OpenRTB's alpha-3, deduplicated
    assert audit(campaign) == [("create", "draft", "draft")]


def test_full_lifecycle_writes_one_audit_row_per_step(make_campaign, marketer, approver):
    campaign = make_campaign("draft")
    services.campaign_submit(campaign_id=campaign.pk, actor=marketer)
    assert fresh(campaign).status == "in_review"
    services.campaign_approve(campaign_id=campaign.pk, actor=approver, reason="Looks good")
    assert fresh(campaign).status == "approved"
    services.campaign_schedule(campaign_id=campaign.pk, actor=marketer)
    assert fresh(campaign).status == "scheduled"
    Campaign.objects.filter(pk=campaign.pk).update(start_at=timezone.now() - timedelta(seconds=1))  # time passes
    services.campaign_go_live(campaign_id=campaign.pk, actor=None)
    assert fresh(campaign).status == "live"
    services.campaign_pause(campaign_id=campaign.pk, actor=marketer, reason="creative refresh")
    assert fresh(campaign).status == "paused"
    services.campaign_resume(campaign_id=campaign.pk, actor=marketer)
    assert fresh(campaign).status == "live"
    services.campaign_complete(campaign_id=campaign.pk, actor=marketer, reason="ended early")
    assert fresh(campaign).status == "completed"
    services.campaign_archive(campaign_id=campaign.pk, actor=marketer)
    assert fresh(campaign).status == "archived"

    assert audit(campaign) == [
        ("create", "draft", "draft"),
        ("submit", "draft", "in_review"),
        ("vote_approve", "in_review", "in_review"),
        ("approve", "in_review", "approved"),
        ("schedule", "approved", "scheduled"),
        ("go_live", "scheduled", "live"),
        ("pause", "live", "paused"),
        ("resume", "paused", "live"),
        ("complete", "live", "completed"),
        ("archive", "completed", "archived"),
    ]
    rows = {row.action: row for row in CampaignTransition.objects.filter(campaign_id=campaign.pk)}
    assert rows["approve"].actor == approver
    assert rows["approve"].reason == "1 of 1 approval(s) (Standard)"
    assert rows["vote_approve"].reason == "Looks good"
    assert rows["go_live"].actor is None and rows["go_live"].reason == "start time reached"
    assert rows["pause"].reason == "creative refresh"
    assert rows["complete"].actor == marketer and rows["complete"].reason == "ended early"


def test_approved_goes_live_directly_when_start_has_come(make_campaign, marketer):
    campaign = make_campaign("approved", start_at=timezone.now() - timedelta(minutes=5))
    services.campaign_go_live(campaign_id=campaign.pk, actor=marketer)
    assert fresh(campaign).status == "live"
    assert audit(campaign)[-1] == ("go_live", "approved", "live")


def test_reject_then_revise_then_resubmit_opens_a_new_round(make_campaign, marketer, approver):
    campaign = make_campaign("in_review")
    services.campaign_reject(campaign_id=campaign.pk, actor=approver, reason="Landing page is broken")
    rejected = fresh(campaign)
    assert rejected.status == "rejected"
    assert audit(campaign)[-2:] == [("vote_reject", "in_review", "in_review"), ("reject", "in_review", "rejected")]
    assert CampaignTransition.objects.filter(campaign=campaign, action="reject").get().reason == "Landing page is broken"
    services.campaign_revise(campaign_id=campaign.pk, actor=marketer)
    assert fresh(campaign).status == "draft"
    services.campaign_submit(campaign_id=campaign.pk, actor=marketer)
    resubmitted = fresh(campaign)
    assert resubmitted.status == "in_review"
    assert resubmitted.review_round == rejected.review_round + 1
    # the old rejection belongs to the old round: the same approver may decide again
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    assert fresh(campaign).status == "approved"


def test_request_changes_sends_back_to_draft_with_the_note(make_campaign, approver):
    campaign = make_campaign("in_review")
    services.campaign_request_changes(campaign_id=campaign.pk, actor=approver, reason="Use the new logo")
    assert fresh(campaign).status == "draft"
    row = CampaignTransition.objects.filter(campaign=campaign).first()
    assert (row.action, row.from_status, row.to_status, row.reason, row.actor) == (
        "request_changes", "in_review", "draft", "Use the new logo", approver)


# --- illegal transitions ----------------------------------------------------------------------------

ILLEGAL = [(state, action) for action, sources in LEGAL.items() for state in STATES if state not in sources]


@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=[f"{a}-from-{s}" for s, a in ILLEGAL])
def test_illegal_transition_is_refused_and_changes_nothing(make_campaign, marketer, state, action):
    deciding_approver = make_user(Role.APPROVER)
    campaign = make_campaign(state)
    before = fresh(campaign)
    rows_before = audit(campaign)
    votes_before = ApprovalVote.objects.filter(campaign=campaign).count()

    with pytest.raises(Conflict) as excinfo:
        call(action, campaign, marketer=marketer, approver=deciding_approver)

    assert excinfo.value.field == "status"
    assert f"it is {before.get_status_display().lower()}" in excinfo.value.message
    after = fresh(campaign)
    assert after.status == state
    assert after.review_round == before.review_round
    assert audit(campaign) == rows_before
    assert ApprovalVote.objects.filter(campaign=campaign).count() == votes_before


def test_the_matrix_covers_every_state_and_action():
    assert len(ILLEGAL) == len(STATES) * len(LEGAL) - sum(len(s) for s in LEGAL.values())


def test_schedule_needs_a_start_in_the_future(make_campaign, marketer):
    campaign = make_campaign("approved", start_at=timezone.now() - timedelta(minutes=1))
    with pytest.raises(ServiceError) as excinfo:
        services.campaign_schedule(campaign_id=campaign.pk, actor=marketer)
    assert excinfo.value.field == "start_at"
    assert fresh(campaign).status == "approved"


def test_go_live_before_the_start_is_refused(make_campaign, marketer):
    campaign = make_campaign("approved")  # starts tomorrow
    with pytest.raises(ServiceError) as excinfo:
        services.campaign_go_live(campaign_id=campaign.pk, actor=marketer)
    assert excinfo.value.field == "start_at"
    assert fresh(campaign).status == "approved"


def test_reject_requires_a_reason(make_campaign, approver):
    campaign = make_campaign("in_review")
    with pytest.raises(ServiceError) as excinfo:
        services.campaign_reject(campaign_id=campaign.pk, actor=approver, reason="   ")
    assert excinfo.value.field == "reason"
    assert fresh(campaign).status == "in_review"
    assert not ApprovalVote.objects.filter(campaign=campaign).exists()


def test_submit_needs_an_offer(make_campaign, marketer):
    campaign = make_campaign("draft", offers=0)
    with pytest.raises(ServiceError) as excinfo:
        services.campaign_submit(campaign_id=campaign.pk, actor=marketer)
    assert excinfo.value.field == "offers"
    assert fresh(campaign).status == "draft"


def test_unknown_campaign_is_not_found(marketer):
    with pytest.raises(NotFound):
        services.campaign_submit(campaign_id=987654, actor=marketer)


@pytest.mark.parametrize("action", ["submit", "revise", "schedule", "pause", "resume", "archive"])
def test_marketer_actions_refuse_an_approver(make_campaign, approver, action):
    state = next(iter(LEGAL[action]))
    campaign = make_campaign(state)
    with pytest.raises(Forbidden):
        call(action, campaign, marketer=approver, approver=approver)
    assert fresh(campaign).status == state


def test_resume_after_the_end_completes_at_once(make_campaign, marketer):
    campaign = make_campaign("paused")
    Campaign.objects.filter(pk=campaign.pk).update(end_at=timezone.now() - timedelta(seconds=1))
    services.campaign_resume(campaign_id=campaign.pk, actor=marketer)
    assert fresh(campaign).status == "completed"
    assert audit(campaign)[-2:] == [("resume", "paused", "live"), ("complete", "live", "completed")]


# --- approval rules and votes ----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("budget", "channels", "rule", "required"),
    [
        ("5000.00", ["display"], "Standard", 1),
        ("10000.00", ["display", "email"], "Standard", 1),  # "above" the threshold: 10,000 itself is standard
        ("10000.01", ["display"], "High Budget", 2),
        ("500.00", ["email", "sms"], "Regulated Channel", 2),
        ("500.00", ["whatsapp"], "Regulated Channel", 2),
    ],
)
def test_rule_is_chosen_by_attributes(make_campaign, budget, channels, rule, required):
    campaign = make_campaign("in_review", budget=Decimal(budget), channels=channels)
    assert campaign.approval_rule.name == rule
    assert campaign.required_approvals == required
    assert audit(campaign)[-1] == ("submit", "draft", "in_review")
    assert CampaignTransition.objects.filter(campaign=campaign, action="submit").get().reason == (
        f"needs {required} approval(s): {rule}")


def test_strictest_matching_rule_applies(make_campaign):
    ApprovalRule.objects.create(name="Very High Budget", min_approvals=3, budget_threshold=Decimal("50000"))
    ApprovalRule.objects.create(name="Inactive", min_approvals=5, budget_threshold=Decimal("1"), is_active=False)
    campaign = make_campaign("in_review", budget=Decimal("60000"), channels=["sms", "display"])
    # Standard (1), High Budget (2), Regulated (2) and Very High Budget (3) match; the inactive one is ignored
    assert (campaign.approval_rule.name, campaign.required_approvals) == ("Very High Budget", 3)


def test_a_rule_edited_in_admin_is_used_for_the_next_submission(make_campaign):
    ApprovalRule.objects.filter(name="High Budget").update(budget_threshold=Decimal("1000"))
    campaign = make_campaign("in_review", budget=Decimal("2000"))
    assert (campaign.approval_rule.name, campaign.required_approvals) == ("High Budget", 2)


def test_two_approvals_are_needed_for_high_budget(make_campaign, approver, approver2):
    campaign = make_campaign("in_review", budget=Decimal("25000"))
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    assert fresh(campaign).status == "in_review"
    services.campaign_approve(campaign_id=campaign.pk, actor=approver2)
    assert fresh(campaign).status == "approved"
    assert audit(campaign)[-3:] == [
        ("vote_approve", "in_review", "in_review"),
        ("vote_approve", "in_review", "in_review"),
        ("approve", "in_review", "approved"),
    ]


def test_any_rejection_rejects_even_after_an_approval(make_campaign, approver, approver2):
    campaign = make_campaign("in_review", channels=["sms"])
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    services.campaign_reject(campaign_id=campaign.pk, actor=approver2, reason="Missing opt-out text")
    assert fresh(campaign).status == "rejected"


def test_self_approval_is_refused(make_campaign):
    both = make_user(Role.MARKETER, Role.APPROVER)
    campaign = make_campaign("in_review", by=both)
    for attempt in (
        lambda: services.campaign_approve(campaign_id=campaign.pk, actor=both),
        lambda: services.campaign_reject(campaign_id=campaign.pk, actor=both, reason="x"),
    ):
        with pytest.raises(Forbidden) as excinfo:
            attempt()
        assert excinfo.value.code == "self_approval"
    assert fresh(campaign).status == "in_review"
    assert not ApprovalVote.objects.filter(campaign=campaign).exists()


def test_an_approver_votes_once(make_campaign, approver):
    campaign = make_campaign("in_review", budget=Decimal("20000"))
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    with pytest.raises(Conflict) as excinfo:
        services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    assert excinfo.value.code == "already_voted"
    with pytest.raises(Conflict):
        services.campaign_reject(campaign_id=campaign.pk, actor=approver, reason="changed my mind")
    assert ApprovalVote.objects.filter(campaign=campaign).count() == 1
    assert fresh(campaign).status == "in_review"


def test_only_approvers_vote(make_campaign, marketer, outsider):
    campaign = make_campaign("in_review")
    other_marketer = make_user(Role.MARKETER)
    for user in (other_marketer, outsider):
        with pytest.raises(Forbidden):
            services.campaign_approve(campaign_id=campaign.pk, actor=user)
    with pytest.raises(Forbidden):
        services.campaign_approve(campaign_id=campaign.pk, actor=None)
    assert not ApprovalVote.objects.filter(campaign=campaign).exists()


def test_admin_role_may_approve_but_not_its_own(make_campaign):
    admin_user = make_user(Role.ADMIN)
    campaign = make_campaign("in_review")
    services.campaign_approve(campaign_id=campaign.pk, actor=admin_user)
    assert fresh(campaign).status == "approved"


def test_editing_in_review_voids_the_votes(make_campaign, marketer, approver, approver2):
    campaign = make_campaign("in_review", budget=Decimal("20000"))
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    round_before = fresh(campaign).review_round

    services.campaign_update(campaign_id=campaign.pk, actor=marketer, name="Renamed")

    campaign = fresh(campaign)
    assert campaign.review_round == round_before + 1
    vote = ApprovalVote.objects.get(campaign=campaign)
    assert vote.voided is True
    row = CampaignTransition.objects.filter(campaign=campaign).first()
    assert (row.action, row.from_status, row.to_status, row.actor) == ("votes_voided", "in_review", "in_review", marketer)
    assert row.reason == "1 vote(s) voided: name changed while in review"
    assert selectors.campaign_approval_count(campaign=campaign) == 0
    # the voided vote no longer counts and its approver may vote again; two fresh approvals needed
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    assert fresh(campaign).status == "in_review"
    services.campaign_approve(campaign_id=campaign.pk, actor=approver2)
    assert fresh(campaign).status == "approved"


def test_editing_an_offer_in_review_voids_the_votes(make_campaign, marketer, approver):
    campaign = make_campaign("in_review", budget=Decimal("20000"))
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    offer = campaign.offers.get()
    services.offer_update(offer_id=offer.pk, actor=marketer, max_bid_cpm=Decimal("3.1"))
    assert ApprovalVote.objects.get(campaign=campaign).voided is True
    assert fresh(campaign).review_round == campaign.review_round + 1
    assert audit(campaign)[-1] == ("votes_voided", "in_review", "in_review")


def test_a_no_op_edit_in_review_keeps_the_votes(make_campaign, marketer, approver):
    campaign = make_campaign("in_review", budget=Decimal("20000"))
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    services.campaign_update(campaign_id=campaign.pk, actor=marketer, name=campaign.name)
    assert ApprovalVote.objects.get(campaign=campaign).voided is False


def test_raising_the_budget_in_review_applies_the_stricter_rule(make_campaign, marketer, approver):
    campaign = make_campaign("in_review", budget=Decimal("5000"))
    services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=Decimal("15000"))
    campaign = fresh(campaign)
    assert (campaign.approval_rule.name, campaign.required_approvals) == ("High Budget", 2)
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    assert fresh(campaign).status == "in_review"


def test_awaiting_decision_lists_what_the_approver_may_still_decide(make_campaign, approver, approver2):
    mine_to_decide = make_campaign("in_review", budget=Decimal("20000"))
    already_voted = make_campaign("in_review", budget=Decimal("20000"))
    services.campaign_approve(campaign_id=already_voted.pk, actor=approver)
    make_campaign("draft")
    make_campaign("approved", approvers=[approver2])
    own = make_campaign("in_review", by=make_user(Role.MARKETER, Role.APPROVER))

    assert set(selectors.campaign_list_awaiting_decision(user=approver)) == {mine_to_decide, own}
    assert set(selectors.campaign_list_awaiting_decision(user=approver2)) == {mine_to_decide, already_voted, own}
    assert own not in selectors.campaign_list_awaiting_decision(user=own.created_by)


# --- edits ----------------------------------------------------------------------------------------

def test_live_campaign_accepts_operational_edits_only(make_campaign, marketer):
    campaign = make_campaign("live")
    services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=Decimal("6000"),
                             target_countries=["CA"], max_impressions_per_hour=5)
    campaign = fresh(campaign)
    assert (campaign.budget, campaign.target_countries, campaign.max_impressions_per_hour) == (
        Decimal("6000.00"), ["CAN"], 5)
    for field, value in (("advertiser", "Someone Else"), ("channels", ["email"]), ("start_at", timezone.now())):
        with pytest.raises(Conflict) as excinfo:
            services.campaign_update(campaign_id=campaign.pk, actor=marketer, **{field: value})
        assert excinfo.value.field == field
    offer = campaign.offers.get()
    with pytest.raises(Conflict) as excinfo:
        services.offer_update(offer_id=offer.pk, actor=marketer, creative_markup="<b>new</b>")
    assert excinfo.value.field == "creative_markup"
    with pytest.raises(Conflict):
        services.offer_create(campaign_id=campaign.pk, actor=marketer, **OFFER_DEFAULTS)
    with pytest.raises(Conflict):
        services.offer_delete(offer_id=offer.pk, actor=marketer)
    services.offer_update(offer_id=offer.pk, actor=marketer, max_bid_cpm=Decimal("4"), priority=9)
    assert campaign.offers.get().max_bid_cpm == Decimal("4.0000")


def test_budget_cannot_outgrow_the_approval_it_got(make_campaign, marketer):
    campaign = make_campaign("live", budget=Decimal("9000"))
    with pytest.raises(Conflict) as excinfo:
        services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=Decimal("10000.01"))
    assert excinfo.value.field == "budget"
    assert "needs 2 approvals (High Budget)" in excinfo.value.message
    assert fresh(campaign).budget == Decimal("9000.00")


def test_budget_cannot_go_below_spend(make_campaign, marketer):
    campaign = make_campaign("live", budget=Decimal("100"))
    services.campaign_add_spend(campaign_id=campaign.pk, amount=Decimal("60"))
    with pytest.raises(ServiceError) as excinfo:
        services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=Decimal("50"))
    assert excinfo.value.field == "budget"


def test_completed_campaign_is_frozen(make_campaign, marketer):
    campaign = make_campaign("completed")
    with pytest.raises(Conflict):
        services.campaign_update(campaign_id=campaign.pk, actor=marketer, name="x")
    rejected = make_campaign("rejected")
    with pytest.raises(Conflict) as excinfo:
        services.campaign_update(campaign_id=rejected.pk, actor=marketer, name="x")
    assert "Revise it first" in excinfo.value.message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"budget": Decimal("-5")}, "budget"),
        ({"budget": Decimal("0")}, "budget"),
        ({"budget": Decimal("1.234")}, "budget"),
        ({"channels": ["display", "fax"]}, "channels"),
        ({"channels": []}, "channels"),
        ({"target_countries": ["Atlantis"]}, "target_countries"),
        ({"target_device_types": ["watch"]}, "target_device_types"),
        ({"target_segments": [-1]}, "target_segments"),
        ({"currency": "dollars"}, "currency"),
        ({"name": "  "}, "name"),
        ({"end_at": timezone.now() - timedelta(days=400)}, "end_at"),
        ({"max_impressions_per_hour": 0}, "max_impressions_per_hour"),
        ({"max_impressions_per_hour": 60, "max_impressions_per_day": 50}, "max_impressions_per_day"),
    ],
)
def test_bad_campaign_input_names_the_field(marketer, overrides, field):
    with pytest.raises(ServiceError) as excinfo:
        services.campaign_create(actor=marketer, **campaign_fields(**overrides))
    assert excinfo.value.field == field
    assert not Campaign.objects.exists()


def test_end_before_start_is_refused(marketer):
    now = timezone.now()
    with pytest.raises(ServiceError) as excinfo:
        services.campaign_create(actor=marketer, **campaign_fields(start_at=now + timedelta(days=5),
                                                                    end_at=now + timedelta(days=2)))
    assert (excinfo.value.field, excinfo.value.message) == ("end_at", "end_at must be after start_at.")


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"width": 0}, "width"),
        ({"landing_url": "javascript:alert(1)"}, "landing_url"),
        ({"advertiser_domain": "https://shop.example.com/"}, "advertiser_domain"),
        ({"category": "shoes"}, "category"),
        ({"max_bid_cpm": Decimal("0")}, "max_bid_cpm"),
        ({"format": "hologram"}, "format"),
        ({"observed_ctr": 1.5}, "observed_ctr"),
    ],
)
def test_bad_offer_input_names_the_field(make_campaign, marketer, overrides, field):
    campaign = make_campaign("draft", offers=0)
    with pytest.raises(ServiceError) as excinfo:
        services.offer_create(campaign_id=campaign.pk, actor=marketer, **{**OFFER_DEFAULTS, **overrides})
    assert excinfo.value.field == field
    assert not campaign.offers.exists()


def test_only_marketers_create(approver):
    with pytest.raises(Forbidden):
        services.campaign_create(actor=approver, **campaign_fields())
    assert not Campaign.objects.exists()


# --- spend, scheduler ------------------------------------------------------------------------------

def test_add_spend_is_exact_decimal(make_campaign):
    campaign = make_campaign("live", budget=Decimal("10"))
    for _ in range(3):
        services.campaign_add_spend(campaign_id=campaign.pk, amount=Decimal("0.0012345"))
    assert fresh(campaign).spent == Decimal("0.003705")  # each rounded half-up to 6 places: 0.001235 × 3
    with pytest.raises(TypeError):
        services.campaign_add_spend(campaign_id=campaign.pk, amount=0.1)
    with pytest.raises(ServiceError):
        services.campaign_add_spend(campaign_id=campaign.pk, amount=Decimal("-1"))
    with pytest.raises(NotFound):
        services.campaign_add_spend(campaign_id=987654, amount=Decimal("1"))


def test_beat_puts_scheduled_campaigns_live_when_their_time_comes(make_campaign):
    from apps.campaigns import tasks

    due = make_campaign("scheduled")
    not_yet = make_campaign("scheduled")
    Campaign.objects.filter(pk=due.pk).update(start_at=timezone.now() - timedelta(seconds=1))

    assert tasks.campaigns_go_live_due.apply().get() == [due.pk]
    assert fresh(due).status == "live"
    assert fresh(not_yet).status == "scheduled"
    row = CampaignTransition.objects.filter(campaign=due).first()
    assert (row.action, row.actor, row.reason) == ("go_live", None, "start time reached")
    assert tasks.campaigns_go_live_due.apply().get() == []  # idempotent


def test_beat_completes_at_the_end_time(make_campaign):
    from apps.campaigns import tasks

    ending = make_campaign("live")
    running = make_campaign("live")
    paused = make_campaign("paused")
    Campaign.objects.filter(pk__in=[ending.pk, paused.pk]).update(end_at=timezone.now() - timedelta(seconds=1))

    assert tasks.campaigns_complete_due.apply().get() == [ending.pk]
    assert fresh(ending).status == "completed"
    assert fresh(running).status == "live"
    assert fresh(paused).status == "paused"  # only live campaigns complete (docs/RULES.md §3)
    row = CampaignTransition.objects.filter(campaign=ending).first()
    assert (row.action, row.from_status, row.to_status, row.actor, row.reason) == (
        "complete", "live", "completed", None, "end time reached")
    assert tasks.campaigns_complete_due.apply().get() == []


def test_beat_completes_when_the_budget_is_spent(make_campaign):
    from apps.campaigns import tasks

    campaign = make_campaign("live", budget=Decimal("50"))
    services.campaign_add_spend(campaign_id=campaign.pk, amount=Decimal("49.999999"))
    assert tasks.campaigns_complete_due.apply().get() == []
    assert campaign.pk in [c.pk for c in selectors.campaign_list_biddable()]
    services.campaign_add_spend(campaign_id=campaign.pk, amount=Decimal("0.000001"))
    assert campaign.pk not in [c.pk for c in selectors.campaign_list_biddable()]
    assert tasks.campaigns_complete_due.apply().get() == [campaign.pk]
    assert CampaignTransition.objects.filter(campaign=campaign).first().reason == "budget spent"


def test_beat_schedule_is_declared():
    from apps.campaigns.schedules import BEAT_SCHEDULE
    from config.celery import app
    from tests.support.beat import min_period_seconds

    for name, entry in BEAT_SCHEDULE.items():
        assert entry["task"] in app.tasks, name
        # the due scans every 10-30 s; the purge of stored create answers hourly; the sweep of pending
        # notification emails every minute
        period = min_period_seconds(entry["schedule"])
        assert 10 <= period <= 30 or (name, period) in {("campaigns-purge-idempotency-records", 3600),
                                                        ("campaigns-notification-emails-pending", 60)}
        assert entry["options"]["expires"] < period
        assert app.conf.beat_schedule[name] == entry


def test_purge_deletes_only_old_campaign_create_answers(marketer):
    from apps.campaigns.tasks import campaigns_purge_idempotency_records
    from apps.core.models import IdempotencyRecord

    body = {"name": "K", "advertiser": "A", "budget": Decimal("10"), "channels": ["display"],
            "start_at": timezone.now() + timedelta(days=1), "end_at": timezone.now() + timedelta(days=2)}
    services.campaign_create_once(actor=marketer, idempotency_key="old", **body)
    services.campaign_create_once(actor=marketer, idempotency_key="new", **body)
    IdempotencyRecord.objects.create(scope="loyalty.redeem", key="old", fingerprint="f", response_status=200)
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(days=8))
    assert campaigns_purge_idempotency_records() == 1
    assert sorted(IdempotencyRecord.objects.values_list("scope", "key")) == [
        (f"campaigns.create.{marketer.pk}", "new"), ("loyalty.redeem", "old")]


# --- selectors, snapshot hook ----------------------------------------------------------------------

def test_biddable_lists_live_campaigns_in_window_with_budget(make_campaign, django_assert_num_queries):
    live = make_campaign("live", offers=2)
    make_campaign("paused")
    make_campaign("approved")
    ended = make_campaign("live")
    Campaign.objects.filter(pk=ended.pk).update(end_at=timezone.now() - timedelta(seconds=1))
    spent = make_campaign("live", budget=Decimal("10"))
    services.campaign_add_spend(campaign_id=spent.pk, amount=Decimal("10"))

    with django_assert_num_queries(2):  # campaigns + prefetched offers
        biddable = list(selectors.campaign_list_biddable())
        offers = [offer.pk for campaign in biddable for offer in campaign.offers.all()]
    assert [c.pk for c in biddable] == [live.pk]
    assert sorted(offers) == sorted(live.offers.values_list("pk", flat=True))


@pytest.fixture
def snapshot_calls(monkeypatch):
    """The bidding slice's snapshot refresh, recorded instead of run (the bidding tests run it for real)."""
    from apps.bidding import services as bidding_services

    calls: list[str] = []
    monkeypatch.setattr(bidding_services, "offer_snapshot_refresh", lambda: calls.append("refresh"))
    return calls


def test_snapshot_refresh_runs_after_commit_for_bidding_changes(make_campaign, marketer, snapshot_calls,
                                                                 django_capture_on_commit_callbacks):
    campaign = make_campaign("approved", start_at=timezone.now() - timedelta(minutes=1))
    assert snapshot_calls == []
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_go_live(campaign_id=campaign.pk, actor=marketer)
    assert snapshot_calls == ["refresh"]
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_update(campaign_id=campaign.pk, actor=marketer, target_device_types=["mobile"])
    with django_capture_on_commit_callbacks(execute=True):
        services.offer_update(offer_id=campaign.offers.get().pk, actor=marketer, priority=7)
    with django_capture_on_commit_callbacks(execute=True):
        services.campaign_pause(campaign_id=campaign.pk, actor=marketer)
    assert snapshot_calls == ["refresh"] * 4


def test_snapshot_refresh_is_not_announced_for_changes_that_do_not_bid(make_campaign, marketer, approver,
                                                                       snapshot_calls,
                                                                       django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        campaign = make_campaign("scheduled")
        services.campaign_update(campaign_id=campaign.pk, actor=marketer, name="Renamed")
    # Only the notification emails of the submission and the decision are queued after commit (and the
    # decisions slice's note that a campaign changed: its cached default candidates, apps/rl/candidates.py).
    from apps.campaigns.services import collaboration

    queued = [getattr(c, "func", c) for c in callbacks]
    assert [f for f in queued if getattr(f, "__module__", "") != "apps.rl.candidates"] == [collaboration._enqueue_emails] * 2
    assert snapshot_calls == []


def test_snapshot_refresh_is_not_queued_on_a_refused_change(make_campaign, marketer, snapshot_calls,
                                                            django_capture_on_commit_callbacks):
    campaign = make_campaign("live")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Conflict):
            services.campaign_update(campaign_id=campaign.pk, actor=marketer, advertiser="Other")
    assert callbacks == [] and snapshot_calls == []


# --- the time window, stated once in apps.campaigns.validation -------------------------------------

def test_the_window_is_start_inclusive_end_exclusive():
    from apps.campaigns import validation

    now = timezone.now()
    assert validation.schedule_has_started(start_at=now, now=now)
    assert not validation.schedule_has_started(start_at=now + timedelta(microseconds=1), now=now)
    assert validation.schedule_has_ended(end_at=now, now=now)
    assert not validation.schedule_has_ended(end_at=now + timedelta(microseconds=1), now=now)
    validation.schedule_check(start_at=now, end_at=now + timedelta(microseconds=1))
    with pytest.raises(ServiceError, match="^end_at must be after start_at.$") as refused:
        validation.schedule_check(start_at=now, end_at=now)
    assert refused.value.field == "end_at"


def test_selectors_use_the_same_window(make_campaign):
    now = timezone.now()
    starts_now = make_campaign("live", start_at=now)
    ends_now = make_campaign("live", start_at=now - timedelta(days=1))
    Campaign.objects.filter(pk=ends_now.pk).update(end_at=now)
    assert [c.pk for c in selectors.campaign_list_biddable(now=now)] == [starts_now.pk]
    assert selectors.campaign_ids_due_to_complete(now=now) == [(ends_now.pk, "end time reached")]
