"""Every campaign and offer edit leaves a CampaignEdit row with old and new values (docs/RULES.md §3
"Audit"): through the services, the API and the admin; nothing for a no-op or a refused edit; both of two
concurrent edits; and GET /v1/campaigns/{id}/history/ merging them with the transitions."""
from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from apps.campaigns import services
from apps.campaigns.models import Campaign, CampaignEdit, CampaignTransition
from apps.core.exceptions import Conflict
from apps.core.roles import Role

from .conftest import fresh, make_user
from .test_admin import page_form_data
from .test_api import client_for, offer_payload

pytestmark = pytest.mark.django_db


def only_edit(campaign) -> CampaignEdit:
    edits = list(CampaignEdit.objects.filter(campaign=campaign))
    assert len(edits) == 1, edits
    return edits[0]


# --- services --------------------------------------------------------------------------------------

def test_a_campaign_edit_records_exact_old_and_new_values(make_campaign, marketer):
    campaign = make_campaign("live", budget=Decimal("5000.00"), target_countries=["USA"])
    CampaignEdit.objects.all().delete()  # the factory's offer
    old_end = campaign.end_at
    new_end = datetime(2031, 1, 2, 3, 4, 5, tzinfo=UTC)
    services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=Decimal("6000.5"), end_at=new_end,
                             target_countries=["gb", "USA"], max_impressions_per_day=50)  # the caps are unchanged

    edit = only_edit(campaign)
    assert (edit.action, edit.offer_id, edit.actor, edit.source) == ("campaign_update", None, marketer, "task")
    assert edit.changes == {
        "budget": {"old": "5000.00", "new": "6000.50"},
        "end_at": {"old": old_end.astimezone(UTC).isoformat(), "new": "2031-01-02T03:04:05+00:00"},
        "target_countries": {"old": ["USA"], "new": ["GBR", "USA"]},
    }


def test_offer_edits_record_the_creative_and_max_bid(make_campaign, marketer):
    campaign = make_campaign("draft", offers=0)
    offer = services.offer_create(campaign_id=campaign.pk, actor=marketer, name="Banner", width=300, height=250,
                                  creative_markup="<b>v1</b>", landing_url="https://shop.example.com/",
                                  advertiser_domain="shop.example.com", category="IAB3", max_bid_cpm=Decimal("2.5"))
    created = only_edit(campaign)
    assert (created.action, created.offer_id) == ("offer_create", offer.pk)
    assert created.changes["max_bid_cpm"] == {"old": None, "new": "2.5000"}
    assert created.changes["creative_markup"] == {"old": None, "new": "<b>v1</b>"}
    assert set(created.changes) == set(services.OFFER_FIELDS)

    services.offer_update(offer_id=offer.pk, actor=marketer, creative_markup="<b>v2</b>",
                          max_bid_cpm=Decimal("3.25"), priority=5)  # priority unchanged
    updated = CampaignEdit.objects.filter(campaign=campaign).first()
    assert (updated.action, updated.offer_id) == ("offer_update", offer.pk)
    assert updated.changes == {"creative_markup": {"old": "<b>v1</b>", "new": "<b>v2</b>"},
                               "max_bid_cpm": {"old": "2.5000", "new": "3.2500"}}

    services.offer_delete(offer_id=offer.pk, actor=marketer)
    removed = CampaignEdit.objects.filter(campaign=campaign).first()
    assert (removed.action, removed.offer_id) == ("offer_delete", offer.pk)  # the id outlives the offer
    assert removed.changes["creative_markup"] == {"old": "<b>v2</b>", "new": None}
    assert removed.changes["max_bid_cpm"] == {"old": "3.2500", "new": None}
    assert CampaignEdit.objects.filter(campaign=campaign).count() == 3


def test_a_no_op_edit_writes_nothing(make_campaign, marketer):
    campaign = make_campaign("draft")
    offer = campaign.offers.get()
    before = CampaignEdit.objects.count()
    services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=campaign.budget,
                             target_countries=list(campaign.target_countries), name=campaign.name)
    services.offer_update(offer_id=offer.pk, actor=marketer, max_bid_cpm=offer.max_bid_cpm, name=offer.name)
    assert CampaignEdit.objects.count() == before


def test_a_refused_edit_writes_nothing(make_campaign, marketer):
    campaign = make_campaign("live")
    before = CampaignEdit.objects.count()
    with pytest.raises(Conflict):
        services.campaign_update(campaign_id=campaign.pk, actor=marketer, budget=Decimal("7000"), advertiser="Other")
    with pytest.raises(Conflict):
        services.offer_update(offer_id=campaign.offers.get().pk, actor=marketer, creative_markup="<i>new</i>")
    assert CampaignEdit.objects.count() == before
    assert fresh(campaign).budget == Decimal("5000.00")


def test_an_unknown_source_is_a_programming_error(make_campaign, marketer):
    campaign = make_campaign("draft")
    with pytest.raises(ValueError, match="unknown edit source 'cli'"):
        services.campaign_update(campaign_id=campaign.pk, actor=marketer, source="cli", name="Renamed")
    assert fresh(campaign).name != "Renamed"


# --- API and admin ---------------------------------------------------------------------------------

def test_api_edits_are_recorded_with_source_api(make_campaign, marketer):
    campaign = make_campaign("approved", budget=Decimal("5000.00"))
    offer = campaign.offers.get()
    CampaignEdit.objects.all().delete()
    client = client_for(marketer)
    response = client.patch(f"/v1/campaigns/{campaign.pk}/", {"budget": "5500.00", "targeting": {"countries": ["CA"]}},
                            format="json")
    assert response.status_code == 200, response.content
    response = client.patch(f"/v1/campaigns/{campaign.pk}/offers/{offer.pk}/", {"max_bid_cpm": "4.1"}, format="json")
    assert response.status_code == 200, response.content
    # The same values again: nothing changes, nothing is written.
    assert client.patch(f"/v1/campaigns/{campaign.pk}/", {"budget": "5500.00"}, format="json").status_code == 200

    offer_edit, campaign_edit = CampaignEdit.objects.filter(campaign=campaign)
    assert (campaign_edit.source, campaign_edit.actor, campaign_edit.changes) == ("api", marketer, {
        "budget": {"old": "5000.00", "new": "5500.00"},
        "target_countries": {"old": ["USA"], "new": ["CAN"]},
    })
    assert (offer_edit.source, offer_edit.offer_id, offer_edit.changes) == (
        "api", offer.pk, {"max_bid_cpm": {"old": "2.5000", "new": "4.1000"}})


def test_admin_edits_are_recorded_and_shown_on_the_change_page(make_campaign, marketer, client):
    campaign = make_campaign("live", budget=Decimal("5000.00"))
    offer = campaign.offers.get()
    CampaignEdit.objects.all().delete()
    client.force_login(marketer)
    url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    data = page_form_data(client.get(url))
    response = client.post(url, {**data, "budget": "6500.00", "offers-0-max_bid_cpm": "3.3"})
    assert response.status_code == 302

    offer_edit, campaign_edit = CampaignEdit.objects.filter(campaign=campaign)
    assert (campaign_edit.source, campaign_edit.actor, campaign_edit.changes) == (
        "admin", marketer, {"budget": {"old": "5000.00", "new": "6500.00"}})
    assert (offer_edit.source, offer_edit.offer_id, offer_edit.changes) == (
        "admin", offer.pk, {"max_bid_cpm": {"old": "2.5000", "new": "3.3000"}})

    # Saving the page untouched is no edit.
    client.post(url, page_form_data(client.get(url)))
    assert CampaignEdit.objects.filter(campaign=campaign).count() == 2

    page = client.get(url).content.decode()
    # One readable history on the page: the edit with its labels, old → new.
    assert 'id="campaign-history"' in page
    assert "Campaign changed" in page and "via Admin" in page
    assert "<li><b>Budget</b>: <del>5000.00</del> → <ins>6500.00</ins></li>" in page

    listing = client.get(reverse("admin:campaigns_campaignedit_changelist"), {"source__exact": "admin"})
    assert listing.status_code == 200
    assert sorted(e.pk for e in listing.context["cl"].result_list) == sorted([offer_edit.pk, campaign_edit.pk])
    assert client.get(reverse("admin:campaigns_campaignedit_changelist"), {"source__exact": "api"}).context[
        "cl"].result_count == 0
    assert client.get(reverse("admin:campaigns_campaignedit_add")).status_code == 403


# --- GET /v1/campaigns/{id}/history/ ---------------------------------------------------------------

def test_history_merges_transitions_and_edits_newest_first(make_campaign, marketer, approver):
    client = client_for(marketer)
    response = client.post("/v1/campaigns/", {
        "name": "Spring", "advertiser": "Bloom", "budget": "1000.00", "channels": ["display"],
        "start_at": (timezone.now() + timedelta(days=1)).isoformat(),
        "end_at": (timezone.now() + timedelta(days=9)).isoformat(),
    }, format="json")
    cid = response.json()["id"]
    offer_id = client.post(f"/v1/campaigns/{cid}/offers/", offer_payload(), format="json").json()["id"]
    client.patch(f"/v1/campaigns/{cid}/", {"budget": "1200.00"}, format="json")
    client.post(f"/v1/campaigns/{cid}/submit/", {}, format="json")

    body = client.get(f"/v1/campaigns/{cid}/history/").json()
    assert body["count"] == 4
    assert [(h["kind"], h["action"]) for h in body["results"]] == [
        ("transition", "submit"), ("edit", "campaign_update"), ("edit", "offer_create"), ("transition", "create"),
    ]
    times = [h["created_at"] for h in body["results"]]
    assert times == sorted(times, reverse=True)
    submit, budget, offer, create = body["results"]
    transition_id = CampaignTransition.objects.get(campaign_id=cid, action="submit").pk
    assert submit == {
        "kind": "transition", "id": transition_id, "action": "submit", "created_at": submit["created_at"],
        "actor": "marketer", "from_status": "draft", "to_status": "in_review", "reason": submit["reason"],
        "offer_id": None, "source": None, "changes": None,
    }
    assert budget == {
        "kind": "edit", "id": CampaignEdit.objects.get(campaign_id=cid, action="campaign_update").pk,
        "action": "campaign_update", "created_at": budget["created_at"], "actor": "marketer",
        "from_status": None, "to_status": None, "reason": "", "offer_id": None, "source": "api",
        "changes": {"budget": {"old": "1000.00", "new": "1200.00"}},
    }
    assert (offer["offer_id"], offer["changes"]["max_bid_cpm"]) == (offer_id, {"old": None, "new": "2.5000"})
    assert create["actor"] == "marketer" and create["changes"] is None


def test_history_pages(make_campaign, marketer):
    campaign = make_campaign("draft")
    for i in range(55):
        services.campaign_update(campaign_id=campaign.pk, actor=marketer, name=f"Name {i}")
    client = client_for(marketer)
    first = client.get(f"/v1/campaigns/{campaign.pk}/history/").json()
    assert first["count"] == 57  # create, offer_create and 55 renames
    assert len(first["results"]) == 50 and first["next"].endswith("page=2")
    assert first["results"][0]["changes"] == {"name": {"old": "Name 53", "new": "Name 54"}}
    second = client.get(f"/v1/campaigns/{campaign.pk}/history/", {"page": 2}).json()
    assert [h["action"] for h in second["results"]] == ["campaign_update"] * 5 + ["offer_create", "create"]
    ids = [(h["kind"], h["id"]) for h in first["results"] + second["results"]]
    assert len(set(ids)) == 57
    assert client.get(f"/v1/campaigns/{campaign.pk}/history/", {"page": 3}).status_code == 404


def test_history_is_read_by_every_staff_role_and_nobody_else(make_campaign, approver, outsider, client):
    campaign = make_campaign("draft")
    url = f"/v1/campaigns/{campaign.pk}/history/"
    assert client_for(approver).get(url).status_code == 200
    assert client_for(make_user(Role.ADMIN)).get(url).status_code == 200
    assert client_for(outsider).get(url).status_code == 403
    assert client.get(url).status_code == 401


def test_history_of_a_missing_campaign_is_404(marketer):
    response = client_for(marketer).get("/v1/campaigns/999999/history/")
    assert response.status_code == 404
    assert response.json() == {"error": "not_found", "detail": "Campaign 999999 does not exist."}
    assert not Campaign.objects.filter(pk=999999).exists()
