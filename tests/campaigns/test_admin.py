"""The campaigns admin through the Django test client: buttons call the services, reject asks for a
reason, crafted POSTs cannot approve, change status, or skip the rules; saves go through services."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django import forms
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from apps.campaigns.models import ApprovalRule, ApprovalVote, Campaign, CampaignTransition
from apps.core.roles import Role

from .conftest import fresh, make_user

pytestmark = pytest.mark.django_db


def change_url(campaign):
    return reverse("admin:campaigns_campaign_change", args=[campaign.pk])


def action_url(campaign, action):
    return reverse("admin:campaigns_campaign_action", args=[campaign.pk, action])


def page_form_data(response) -> dict:
    """What a browser would post back from an admin add/change page, untouched."""
    data: dict = {}

    def add(form):
        for name, field in form.fields.items():
            key, value, widget = form.add_prefix(name), form[name].value(), field.widget
            if isinstance(widget, forms.MultiWidget):
                parts = value if isinstance(value, (list, tuple)) else widget.decompress(value)
                for i, (sub, part) in enumerate(zip(widget.widgets, parts, strict=True)):
                    if part is not None:
                        data[f"{key}_{i}"] = sub.format_value(part)
            elif isinstance(widget, forms.CheckboxInput):
                if value:
                    data[key] = "on"
            elif isinstance(value, (list, tuple)):
                data[key] = [str(v) for v in value]
            elif value is not None:
                data[key] = value

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


def messages_of(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def marketer_client(client, marketer):
    client.force_login(marketer)
    return client


@pytest.fixture
def approver_client(client, approver):
    client.force_login(approver)
    return client


# --- approver ------------------------------------------------------------------------------------

def test_approver_approves_with_the_admin_button(make_campaign, approver_client, approver):
    campaign = make_campaign("in_review")
    page = approver_client.get(change_url(campaign))
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="campaign-status" data-status="in_review"' in html
    assert f'action="{action_url(campaign, "approve")}"' in html
    assert 'id="action-reject"' in html

    response = approver_client.post(action_url(campaign, "approve"))
    assert response.status_code == 302 and response.url == change_url(campaign)
    assert fresh(campaign).status == "approved"
    vote = ApprovalVote.objects.get(campaign=campaign)
    assert (vote.approver, vote.decision) == (approver, "approve")
    assert CampaignTransition.objects.filter(campaign=campaign).first().action == "approve"
    page = approver_client.get(change_url(campaign))
    assert 'data-status="approved"' in page.content.decode()
    assert "is now approved" in " ".join(messages_of(page))


def test_reject_form_requires_a_reason(make_campaign, approver_client):
    campaign = make_campaign("in_review")
    form_page = approver_client.get(action_url(campaign, "reject"))
    assert form_page.status_code == 200
    assert b'id="reason-form"' in form_page.content

    response = approver_client.post(action_url(campaign, "reject"), {"reason": "   "})
    assert response.status_code == 200
    assert response.context["form"].errors == {"reason": ["This field is required."]}
    assert fresh(campaign).status == "in_review"
    assert not ApprovalVote.objects.filter(campaign=campaign).exists()

    response = approver_client.post(action_url(campaign, "reject"), {"reason": "Prices are not substantiated"})
    assert response.status_code == 302
    assert fresh(campaign).status == "rejected"
    assert CampaignTransition.objects.filter(campaign=campaign).first().reason == "Prices are not substantiated"


def test_awaiting_my_decision_filter(make_campaign, approver_client, approver):
    waiting = make_campaign("in_review", name="Waiting for me")
    voted = make_campaign("in_review", name="Already voted", budget=Decimal("20000"))
    from apps.campaigns import services

    services.campaign_approve(campaign_id=voted.pk, actor=approver)
    make_campaign("draft", name="Still a draft")
    url = reverse("admin:campaigns_campaign_changelist")
    response = approver_client.get(url, {"awaiting": "me"})
    assert response.status_code == 200
    assert [c.pk for c in response.context["cl"].result_list] == [waiting.pk]
    assert b"Awaiting my decision" in approver_client.get(url).content


def test_approver_cannot_edit_the_campaign(make_campaign, approver_client):
    campaign = make_campaign("in_review")
    data = page_form_data(approver_client.get(change_url(campaign)))
    response = approver_client.post(change_url(campaign), {**data, "name": "Hijacked"})
    assert response.status_code == 403
    assert fresh(campaign).name != "Hijacked"


# --- marketer ------------------------------------------------------------------------------------

def test_marketer_cannot_approve_by_crafted_post(make_campaign, marketer_client):
    campaign = make_campaign("in_review")
    page = marketer_client.get(change_url(campaign))
    assert 'id="action-approve"' not in page.content.decode()  # no button…
    response = marketer_client.post(action_url(campaign, "approve"), follow=True)  # …and no way around it
    assert "Only users with the Approver role can decide on campaigns." in messages_of(response)
    assert fresh(campaign).status == "in_review"
    assert not ApprovalVote.objects.exists()


def test_self_approval_by_crafted_post_is_refused(make_campaign, client):
    both = make_user(Role.MARKETER, Role.APPROVER)
    campaign = make_campaign("in_review", by=both)
    client.force_login(both)
    assert 'id="action-approve"' not in client.get(change_url(campaign)).content.decode()
    response = client.post(action_url(campaign, "approve"), follow=True)
    assert "You cannot approve or reject your own submission." in messages_of(response)
    assert fresh(campaign).status == "in_review"


def test_status_is_never_editable(make_campaign, marketer_client):
    campaign = make_campaign("draft")
    page = marketer_client.get(change_url(campaign))
    assert "status" not in page.context["adminform"].form.fields
    data = page_form_data(page)
    response = marketer_client.post(change_url(campaign), {**data, "status": "live", "name": "Renamed"})
    assert response.status_code == 302
    campaign = fresh(campaign)
    assert (campaign.status, campaign.name) == ("draft", "Renamed")


def test_submit_button_and_get_is_refused(make_campaign, marketer_client):
    campaign = make_campaign("draft")
    assert marketer_client.get(action_url(campaign, "submit")).status_code == 405
    response = marketer_client.post(action_url(campaign, "submit"))
    assert response.status_code == 302
    assert fresh(campaign).status == "in_review"


def test_marketer_creates_a_campaign_with_an_inline_offer(marketer_client, marketer):
    page = marketer_client.get(reverse("admin:campaigns_campaign_add"))
    assert page.status_code == 200
    data = page_form_data(page)
    start, end = timezone.now() + timedelta(days=1), timezone.now() + timedelta(days=10)
    data.update({
        "name": "Winter coats", "advertiser": "North Wear", "budget": "1500.00", "currency": "USD",
        "channels": ["display"], "start_at_0": start.strftime("%Y-%m-%d"), "start_at_1": "09:00:00",
        "end_at_0": end.strftime("%Y-%m-%d"), "end_at_1": "09:00:00", "target_countries": "us,CA",
        "offers-0-name": "Coat 300x250", "offers-0-width": "300", "offers-0-height": "250",
        "offers-0-creative_markup": "<div>Warm coats</div>", "offers-0-landing_url": "https://northwear.example.com/",
        "offers-0-advertiser_domain": "northwear.example.com", "offers-0-category": "IAB18",
        "offers-0-max_bid_cpm": "1.75",
    })
    response = marketer_client.post(reverse("admin:campaigns_campaign_add"), data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    campaign = Campaign.objects.get(name="Winter coats")
    assert (campaign.status, campaign.created_by, campaign.target_countries) == ("draft", marketer, ["USA", "CAN"])
    assert list(campaign.offers.values_list("name", "max_bid_cpm")) == [("Coat 300x250", Decimal("1.7500"))]
    assert CampaignTransition.objects.filter(campaign=campaign, action="create").exists()


def test_admin_form_shows_the_service_refusal_next_to_the_field(make_campaign, marketer_client):
    campaign = make_campaign("live", budget=Decimal("9000"))
    data = page_form_data(marketer_client.get(change_url(campaign)))
    response = marketer_client.post(change_url(campaign), {**data, "budget": "50000.00"})
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "needs 2 approvals (High Budget)" in errors["budget"][0]
    assert fresh(campaign).budget == Decimal("9000.00")


def test_live_campaign_locks_approved_fields_even_in_a_crafted_post(make_campaign, marketer_client):
    campaign = make_campaign("live", advertiser="Original Advertiser")
    page = marketer_client.get(change_url(campaign))
    form_fields = page.context["adminform"].form.fields
    assert "advertiser" not in form_fields and "channels" not in form_fields and "budget" in form_fields
    data = page_form_data(page)
    offer = campaign.offers.get()
    response = marketer_client.post(change_url(campaign), {
        **data, "advertiser": "Sneaky", "budget": "7000.00",
        "offers-0-creative_markup": "<script>bad()</script>", "offers-0-max_bid_cpm": "3.3",
    })
    assert response.status_code == 302
    campaign = fresh(campaign)
    assert (campaign.advertiser, campaign.budget) == ("Original Advertiser", Decimal("7000.00"))
    offer.refresh_from_db()
    assert offer.creative_markup != "<script>bad()</script>"
    assert offer.max_bid_cpm == Decimal("3.3000")


def test_editing_in_review_through_the_admin_voids_votes(make_campaign, marketer_client, approver):
    from apps.campaigns import services

    campaign = make_campaign("in_review", budget=Decimal("20000"))
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    page = marketer_client.get(change_url(campaign))
    assert b"Saving a change now voids the 1 approval(s)" in page.content
    data = page_form_data(page)
    response = marketer_client.post(change_url(campaign), {**data, "name": "Reworded"})
    assert response.status_code == 302
    assert ApprovalVote.objects.get(campaign=campaign).voided is True
    assert CampaignTransition.objects.filter(campaign=campaign).first().action == "votes_voided"


def test_inline_offer_delete_goes_through_the_service(make_campaign, marketer_client):
    campaign = make_campaign("draft", offers=2)
    data = page_form_data(marketer_client.get(change_url(campaign)))
    data["offers-0-DELETE"] = "on"
    response = marketer_client.post(change_url(campaign), data)
    assert response.status_code == 302
    assert campaign.offers.count() == 1


def test_changelist_filters_and_search(make_campaign, marketer_client):
    email = make_campaign("draft", channels=["email"], name="Newsletter push", advertiser="Acme")
    make_campaign("in_review", channels=["display"], name="Banner burst", advertiser="Globex")
    url = reverse("admin:campaigns_campaign_changelist")
    assert [c.pk for c in marketer_client.get(url, {"channel": "email"}).context["cl"].result_list] == [email.pk]
    assert [c.pk for c in marketer_client.get(url, {"status__exact": "draft"}).context["cl"].result_list] == [email.pk]
    assert [c.pk for c in marketer_client.get(url, {"q": "newsletter"}).context["cl"].result_list] == [email.pk]
    assert [c.pk for c in marketer_client.get(url, {"advertiser": "Acme"}).context["cl"].result_list] == [email.pk]


def test_bulk_submit_reports_refusals(make_campaign, marketer_client):
    ready = make_campaign("draft")
    empty = make_campaign("draft", offers=0)
    response = marketer_client.post(reverse("admin:campaigns_campaign_changelist"), {
        "action": "submit_selected", "_selected_action": [ready.pk, empty.pk],
    }, follow=True)
    assert fresh(ready).status == "in_review"
    assert fresh(empty).status == "draft"
    assert any("Add at least one offer" in m for m in messages_of(response))


def test_only_admins_edit_approval_rules(client, marketer):
    rule = ApprovalRule.objects.get(name="High Budget")
    url = reverse("admin:campaigns_approvalrule_change", args=[rule.pk])
    client.force_login(marketer)
    assert client.get(url).status_code == 200  # view only
    assert client.post(url, {"name": "High Budget", "min_approvals": 1}).status_code == 403
    admin_user = make_user(Role.ADMIN)
    client.force_login(admin_user)
    response = client.post(url, {"name": "High Budget", "min_approvals": 3, "budget_threshold": "20000.00",
                                 "is_active": "on"})
    assert response.status_code == 302
    rule = ApprovalRule.objects.get(pk=rule.pk)
    assert (rule.min_approvals, rule.budget_threshold) == (3, Decimal("20000.00"))


def test_changelist_shows_approvals_so_far_even_when_search_joins_offers(make_campaign, marketer_client, approver):
    from apps.campaigns import services

    campaign = make_campaign("in_review", budget=Decimal("20000"), offers=3, name="Three creatives")
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    url = reverse("admin:campaigns_campaign_changelist")
    for params in ({}, {"q": "Offer"}):  # every offer is named "Offer <n>": the search joins three rows
        rows = marketer_client.get(url, params).context["cl"].result_list
        assert [(c.pk, c.approvals_so_far) for c in rows] == [(campaign.pk, 1)]
    assert b"1 of 2" in marketer_client.get(url).content
