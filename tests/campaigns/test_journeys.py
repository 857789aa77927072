"""The marketer's and the approver's journeys in the admin, through the Django test client: the
decision at the top of the page, one readable history, the approval inbox with approve / reject &
next, comments, notifications, guided creation and plain-language errors."""
from __future__ import annotations

import html as html_lib
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.campaigns import services
from apps.campaigns.models import Campaign, CampaignComment, Notification, Offer
from apps.core.roles import Role

from .conftest import fresh, make_user

pytestmark = pytest.mark.django_db

INBOX = reverse("admin:campaigns_campaign_inbox")
GUIDED = reverse("admin:campaigns_campaign_guided")


def review_url(campaign):
    return reverse("admin:campaigns_campaign_review", args=[campaign.pk])


def change_url(campaign):
    return reverse("admin:campaigns_campaign_change", args=[campaign.pk])


def text_of(response) -> str:
    return html_lib.unescape(re.sub(r"\s+", " ", response.content.decode()))


def test_rejected_campaign_shows_decision_reason_and_who_at_the_top(client, make_campaign, marketer, approver):
    campaign = make_campaign("in_review", name="Black Friday")
    services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=Decimal("6000.00"))
    services.campaign_reject(campaign_id=campaign.pk, actor=approver, reason="The discount claim needs a source")
    client.force_login(marketer)
    page = client.get(change_url(campaign))
    body = page.content.decode()
    header = body[body.index('id="campaign-header"'):body.index('id="content-main"') if 'id="content-main"' in body
                  else body.index("<form")]
    assert 'data-status="rejected"' in header and 'data-decision="reject"' in header
    assert "The discount claim needs a source" in header and ">approver<" in header
    # Above the form, not 2,000 px below it.
    assert body.index('id="campaign-decision"') < body.index('id="campaign_form"')
    content = page.content.decode()
    history = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", content[content.index('id="campaign-history"'):]))
    history = html_lib.unescape(history).replace(" :", ":")
    assert "Rejected (in review → rejected): The discount claim needs a source" in history
    assert "Campaign changed via Admin" not in history  # the edit came from a task, and says so
    assert "Campaign changed via Task or script" in history and "Budget: 5000.00 → 6000.00" in history
    assert "Submitted for approval (draft → in review)" in history


def test_plain_errors_on_the_field_they_concern(client, marketer):
    client.force_login(marketer)
    add = reverse("admin:campaigns_campaign_add")
    now = timezone.now()
    response = client.post(add, {
        "name": "Bad dates", "advertiser": "Shop", "budget": "-5", "currency": "EUR", "channels": ["display"],
        "start_at_0": (now + timedelta(days=5)).strftime("%Y-%m-%d"), "start_at_1": "10:00:00",
        "end_at_0": (now + timedelta(days=2)).strftime("%Y-%m-%d"), "end_at_1": "10:00:00",
        "max_impressions_per_hour": 10, "max_impressions_per_day": 50,
        "offers-TOTAL_FORMS": 0, "offers-INITIAL_FORMS": 0,
    })
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert "Constraint" not in text_of(response)
    assert form.errors["budget"] == ["“Budget” must be at least 0.01 EUR."]
    response = client.post(add, {
        "name": "Bad dates", "advertiser": "Shop", "budget": "100", "currency": "EUR", "channels": ["display"],
        "start_at_0": (now + timedelta(days=5)).strftime("%Y-%m-%d"), "start_at_1": "10:00:00",
        "end_at_0": (now + timedelta(days=2)).strftime("%Y-%m-%d"), "end_at_1": "10:00:00",
        "max_impressions_per_hour": 10, "max_impressions_per_day": 50,
        "offers-TOTAL_FORMS": 0, "offers-INITIAL_FORMS": 0,
    })
    form = response.context["adminform"].form
    assert form.errors == {"end_at": ["“Ends” must be after “Starts”."]}, form.errors
    assert "campaign_ends_after_start" not in text_of(response)
    assert Campaign.objects.count() == 0


def test_inbox_lists_what_awaits_me_oldest_first_with_rule_and_votes(client, make_campaign, marketer, approver,
                                                                    approver2):
    older = make_campaign("in_review", name="Older")
    newer = make_campaign("in_review", name="Newer", budget=Decimal("20000"))  # the high-budget rule: 2 approvals
    services.campaign_approve(campaign_id=newer.pk, actor=approver2)
    voted = make_campaign("in_review", name="Voted", budget=Decimal("20000"))
    services.campaign_approve(campaign_id=voted.pk, actor=approver)
    both = make_user(Role.MARKETER, Role.APPROVER)
    mine = make_campaign("in_review", name="Mine", by=both)
    make_campaign("draft", name="Draft")
    client.force_login(both)
    assert mine.pk not in [c.pk for c in client.get(INBOX).context["campaigns"]]
    client.force_login(approver)
    page = client.get(INBOX)
    assert page.status_code == 200
    assert [c.name for c in page.context["campaigns"]] == ["Older", "Newer", "Mine"]
    rows = re.findall(r'<tr data-campaign="(\d+)">(.*?)</tr>', page.content.decode(), re.S)
    assert [int(pk) for pk, _ in rows] == [older.pk, newer.pk, mine.pk]
    newer_row = re.sub(r"<[^>]+>", "|", rows[1][1])
    assert "1 of 2" in newer_row and fresh(newer).approval_rule.name in newer_row
    client.force_login(marketer)
    assert client.get(INBOX).status_code == 403


def test_approve_and_next_then_reject_and_next_needs_a_reason(client, make_campaign, approver):
    first = make_campaign("in_review", name="First")
    second = make_campaign("in_review", name="Second")
    client.force_login(approver)
    response = client.post(review_url(first), {"decision": "approve", "approve-reason": ""})
    assert response.status_code == 302 and response.url == review_url(second)
    assert fresh(first).status == "approved"

    response = client.post(review_url(second), {"decision": "reject", "reject-reason": "  "})
    assert response.status_code == 400
    assert response.context["reject_form"].errors == {
        "reason": ["Say why it is rejected: the marketer sees this reason."]}
    assert fresh(second).status == "in_review"

    response = client.post(review_url(second), {"decision": "reject", "reject-reason": "Logo is too small"})
    assert response.status_code == 302 and response.url == INBOX
    assert fresh(second).status == "rejected"
    page = client.get(INBOX)
    assert 'id="inbox-empty"' in page.content.decode()


def test_review_page_refuses_a_second_vote_and_own_campaign(client, make_campaign, approver):
    campaign = make_campaign("in_review", budget=Decimal("20000"))
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    client.force_login(approver)
    page = client.get(review_url(campaign))
    assert 'id="not-awaiting"' in page.content.decode() and 'id="approve-next"' not in page.content.decode()
    response = client.post(review_url(campaign), {"decision": "approve"})
    assert response.status_code == 400
    assert "already voted" in " ".join(response.context["approve_form"].non_field_errors())
    assert fresh(campaign).votes.count() == 1


def test_comment_thread(client, make_campaign, marketer, approver, outsider):
    campaign = make_campaign("in_review")
    client.force_login(approver)
    url = reverse("admin:campaigns_campaign_comment", args=[campaign.pk])
    response = client.post(url, {"body": "Can you use the new logo?", "next": review_url(campaign)})
    assert response.status_code == 302 and response.url == review_url(campaign) + "#campaign-comments"
    client.force_login(marketer)
    client.post(url, {"body": "Done, see offer 2."})
    client.post(url, {"body": "   "})
    assert list(CampaignComment.objects.filter(campaign=campaign).values_list("author__username", "body")) == [
        ("approver", "Can you use the new logo?"), ("marketer", "Done, see offer 2.")]
    page = text_of(client.get(change_url(campaign)))
    assert page.index("Can you use the new logo?") < page.index("Done, see offer 2.")
    client.force_login(outsider)
    client.post(url, {"body": "Not my business"})
    assert CampaignComment.objects.filter(campaign=campaign).count() == 2
    # an open redirect through "next" is refused
    client.force_login(marketer)
    assert client.post(url, {"body": "x", "next": "https://evil.example/"}).url == change_url(campaign) + "#campaign-comments"


def test_notifications_one_per_submission_and_recipient(client, make_campaign, marketer, approver, approver2):
    campaign = make_campaign("in_review")
    rows = Notification.objects.filter(campaign=campaign)
    assert sorted(rows.values_list("recipient__username", "kind", "review_round")) == [
        ("approver", "awaiting_decision", 1), ("approver2", "awaiting_decision", 1)]
    # Fanning out again for the same submission (a retried task, a double click) adds nothing.
    assert services.notify_awaiting_decision(campaign_id=campaign.pk) == []
    assert rows.count() == 2
    services.campaign_reject(campaign_id=campaign.pk, actor=approver, reason="Wrong landing page")
    decided = Notification.objects.get(campaign=campaign, kind="decided")
    assert (decided.recipient, decided.message) == (
        marketer, f"“{campaign.name}” was rejected by approver: Wrong landing page")
    # a new submission is a new round: notified again
    services.campaign_revise(campaign_id=campaign.pk, actor=marketer)
    services.campaign_submit(campaign_id=campaign.pk, actor=marketer)
    assert rows.filter(kind="awaiting_decision").count() == 4

    client.force_login(marketer)
    page = client.get(reverse("admin:index"))
    assert re.search(r'id="notifications-unread">1<', page.content.decode())
    listing = client.get(reverse("admin:campaigns_campaign_notifications"))
    assert "Wrong landing page" in text_of(listing)
    client.post(reverse("admin:campaigns_campaign_notifications"), {"notification": [str(decided.pk)]})
    assert Notification.objects.get(pk=decided.pk).read_at is not None
    assert 'id="notifications-unread"' not in client.get(reverse("admin:index")).content.decode()
    # opening the campaign reads what is about it: the approver's new "awaiting" goes once they review it
    client.force_login(approver)
    assert Notification.objects.filter(recipient=approver, read_at__isnull=True).count() == 2
    client.get(review_url(campaign))
    assert Notification.objects.filter(recipient=approver, read_at__isnull=True).count() == 0


def _guided_data(**overrides):
    data = {
        "name": "Spring sale", "advertiser": "Example Shop", "budget": "5000", "currency": "USD",
        "start": "", "end": (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d %H:%M"),
        "channels": ["display"], "countries": "US, ca", "size": "300x250",
        "creative": '<a href="https://shop.example.com"><img src="https://shop.example.com/a.png"></a>',
        "landing_url": "https://www.shop.example.com/spring", "category": "iab22", "max_bid_cpm": "2.50",
        "save_submit": "Save and submit",
    }
    data.update(overrides)
    return data


def test_guided_creation_saves_and_submits_with_eight_required_fields(client, marketer):
    client.force_login(marketer)
    page = client.get(GUIDED)
    assert page.status_code == 200
    assert page.context["required_fields"] == ["name", "advertiser", "budget", "end", "creative", "landing_url",
                                               "category", "max_bid_cpm"]
    response = client.post(GUIDED, _guided_data())
    campaign = Campaign.objects.get()
    assert response.status_code == 302 and response.url == change_url(campaign)
    assert (campaign.status, campaign.target_countries, campaign.channels, campaign.submitted_by) == (
        "in_review", ["USA", "CAN"], ["display"], marketer)
    offer = Offer.objects.get()
    assert (offer.name, offer.width, offer.height, offer.advertiser_domain, offer.category, offer.max_bid_cpm) == (
        "Spring sale 300x250", 300, 250, "shop.example.com", "IAB22", Decimal("2.5000"))


def test_guided_creation_errors_are_plain_and_leave_nothing_behind(client, marketer):
    client.force_login(marketer)
    start = timezone.now() + timedelta(days=10)
    response = client.post(GUIDED, _guided_data(
        currency="EUR", budget="12,50", start=start.strftime("%Y-%m-%d %H:%M"),
        end=(start - timedelta(days=1)).strftime("%Y-%m-%d %H:%M"), max_bid_cpm="0", category="food"))
    assert response.status_code == 400
    errors = response.context["form"].errors
    assert errors["budget"] == ["Enter the budget as an amount in EUR, e.g. 5000.00 (digits and one dot)."]
    assert errors["end"] == [f"The campaign must end after it starts ({start:%Y-%m-%d %H:%M} UTC)."]
    assert errors["max_bid_cpm"] == ["The max bid must be more than 0 EUR per 1,000 ads shown."]
    assert response.context["start_step"] == 1
    # the service's refusal lands on its field too (the category rule lives in the services)
    response = client.post(GUIDED, _guided_data(category="food"))
    assert response.context["form"].errors == {
        "category": ["“Category” must be an IAB content category such as IAB3 or IAB3-1."]}
    assert response.context["start_step"] == 3
    assert Campaign.objects.count() == 0 and Offer.objects.count() == 0


def test_guided_creation_is_for_marketers(client, approver):
    client.force_login(approver)
    assert client.get(GUIDED).status_code == 403
    assert client.post(GUIDED, _guided_data()).status_code == 403
    assert Campaign.objects.count() == 0


def test_an_edit_in_review_starts_a_new_round_and_the_approvers_hear_of_it(make_campaign, marketer, approver,
                                                                          approver2):
    campaign = make_campaign("in_review", budget=Decimal("20000"))
    services.campaign_approve(campaign_id=campaign.pk, actor=approver)
    services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=Decimal("21000"))
    rounds = Notification.objects.filter(campaign=campaign, kind="awaiting_decision", recipient=approver)
    assert sorted(rounds.values_list("review_round", flat=True)) == [1, 2]


def test_the_front_page_starts_each_journey(client, marketer, approver):
    client.force_login(marketer)
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="start-guided"' in page and f'href="{GUIDED}"' in page and "<title>" in page
    assert "Campaign Express" in page[page.index("<title>"):page.index("</title>")]
    client.force_login(approver)
    page = client.get(reverse("admin:index")).content.decode()
    assert 'id="start-guided"' not in page and f'href="{INBOX}"' in page


def test_the_classic_form_explains_cpm_and_dates_in_plain_words(client, make_campaign, marketer):
    from .test_admin import page_form_data

    campaign = make_campaign("draft", currency="EUR")
    client.force_login(marketer)
    data = page_form_data(client.get(change_url(campaign)))
    data.update({"offers-0-max_bid_cpm": "two euros", "start_at_0": "2027-13-45", "budget": "lots"})
    response = client.post(change_url(campaign), data)
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert form.errors["budget"] == ["Enter the budget as an amount in EUR, e.g. 5000.00 (digits and one dot)."]
    assert form.errors.get("start_at") == ["Write the date as YYYY-MM-DD, e.g. 2027-03-01."], form.errors
    offer_form = response.context["inline_admin_formsets"][0].formset.forms[0]
    assert offer_form.errors["max_bid_cpm"] == [
        "Enter the max bid per 1,000 ads shown (CPM) as an amount in EUR, e.g. 2.50 (digits and one dot)."]
    assert fresh(campaign).budget == Decimal("5000.00")
    # a start after the end: the constraint's message, once, on the end date
    data = page_form_data(client.get(change_url(campaign)))
    data.update({"start_at_0": "2099-01-01", "budget": "lots"})
    form = client.post(change_url(campaign), data).context["adminform"].form
    assert form.errors["end_at"] == ["The campaign must end after it starts: move the end later or the start earlier."]
    assert "__all__" not in form.errors
