"""REST API /v1/campaigns/: token auth, roles, bad input naming the field, and the transitions."""
from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from apps.campaigns.models import ApprovalVote, Campaign, CampaignTransition

from .conftest import OFFER_DEFAULTS, fresh, make_user

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


@pytest.fixture
def as_marketer(marketer):
    return client_for(marketer)


@pytest.fixture
def as_approver(approver):
    return client_for(approver)


def payload(**overrides):
    now = timezone.now()
    body = {
        "name": "Summer sneakers",
        "advertiser": "Stride Shoes",
        "budget": "2500.00",
        "channels": ["display", "email"],
        "start_at": (now + timedelta(days=1)).isoformat(),
        "end_at": (now + timedelta(days=20)).isoformat(),
        "targeting": {"countries": ["US", "CAN"], "device_types": ["mobile"], "segments": [3, 7]},
    }
    body.update(overrides)
    return body


def offer_payload(**overrides):
    body = {**OFFER_DEFAULTS, "max_bid_cpm": "2.5000"}
    body.update(overrides)
    return body


# --- auth and roles ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/v1/campaigns/"), ("post", "/v1/campaigns/"), ("get", "/v1/campaigns/1/"),
     ("post", "/v1/campaigns/1/approve/"), ("get", "/v1/campaigns/1/offers/"), ("get", "/v1/campaigns/awaiting-decision/")],
)
def test_no_token_is_401(method, path):
    response = getattr(APIClient(), method)(path, {}, format="json")
    assert response.status_code == 401
    assert response.json()["error"] == "not_authenticated"


def test_bad_token_is_401():
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert client.get("/v1/campaigns/").status_code == 401


def test_wrong_role_is_403_and_changes_nothing(make_campaign, as_approver, as_marketer, outsider):
    response = as_approver.post("/v1/campaigns/", payload(), format="json")
    assert response.status_code == 403
    assert "Marketer" in response.json()["detail"]
    assert not Campaign.objects.exists()

    campaign = make_campaign("in_review")
    response = as_marketer.post(f"/v1/campaigns/{campaign.pk}/approve/", {}, format="json")
    assert response.status_code == 403
    assert fresh(campaign).status == "in_review"
    assert not ApprovalVote.objects.exists()

    assert as_approver.patch(f"/v1/campaigns/{campaign.pk}/", {"name": "x"}, format="json").status_code == 403
    assert client_for(outsider).get("/v1/campaigns/").status_code == 403


def test_self_approval_through_the_api_is_403(make_campaign):
    from apps.core.roles import Role

    both = make_user(Role.MARKETER, Role.APPROVER)
    campaign = make_campaign("in_review", by=both)
    response = client_for(both).post(f"/v1/campaigns/{campaign.pk}/approve/", {}, format="json")
    assert response.status_code == 403
    assert response.json() == {"error": "self_approval", "detail": "You cannot approve or reject your own submission."}
    assert fresh(campaign).status == "in_review"


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"end_at": (timezone.now() + timedelta(hours=1)).isoformat()}, "end_at"),  # before start
        ({"budget": "-100"}, "budget"),
        ({"budget": "abc"}, "budget"),
        ({"channels": ["display", "carrier-pigeon"]}, "channels"),
        ({"channels": []}, "channels"),
        ({"targeting": {"countries": ["Narnia"]}}, "targeting"),
        ({"targeting": {"device_types": ["fridge"]}}, "targeting"),
        ({"name": ""}, "name"),
        ({"start_at": "tomorrow-ish"}, "start_at"),
        ({"max_impressions_per_hour": 0}, "max_impressions_per_hour"),
    ],
)
def test_bad_input_is_400_naming_the_field(as_marketer, overrides, field):
    response = as_marketer.post("/v1/campaigns/", payload(**overrides), format="json")
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid"
    assert field in body["fields"]
    assert body["detail"].startswith(field)
    assert not Campaign.objects.exists()


def test_countries_are_normalised_by_the_same_rule_as_the_service_and_the_admin(as_marketer):
    response = as_marketer.post("/v1/campaigns/", payload(targeting={"countries": ["us", " gbr", "USA"]}), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["targeting"]["countries"] == ["USA", "GBR"]


@pytest.mark.parametrize("end_offset", [timedelta(0), -timedelta(seconds=1)])
def test_a_window_that_does_not_end_after_it_starts_is_refused_with_the_one_message(as_marketer, make_campaign,
                                                                                  end_offset):
    start = timezone.now() + timedelta(days=1)
    response = as_marketer.post("/v1/campaigns/", payload(start_at=start.isoformat(),
                                                          end_at=(start + end_offset).isoformat()), format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "end_at: end_at must be after start_at."
    assert not Campaign.objects.exists()

    campaign = make_campaign("draft")
    response = as_marketer.patch(f"/v1/campaigns/{campaign.pk}/", {"end_at": campaign.start_at.isoformat()},
                                 format="json")
    assert (response.status_code, response.json()["field"]) == (400, "end_at")
    assert fresh(campaign).end_at != campaign.start_at


def test_missing_fields_are_named(as_marketer):
    response = as_marketer.post("/v1/campaigns/", {}, format="json")
    assert response.status_code == 400
    assert {"name", "advertiser", "budget", "channels", "start_at", "end_at"} <= set(response.json()["fields"])


def test_service_refusals_name_the_api_field(as_marketer, make_campaign):
    # caps are checked across fields by the service; countries are renamed to their API name
    response = as_marketer.post("/v1/campaigns/", payload(max_impressions_per_hour=60, max_impressions_per_day=10),
                                format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "max_impressions_per_day"
    campaign = make_campaign("live")
    response = as_marketer.patch(f"/v1/campaigns/{campaign.pk}/", {"advertiser": "Other Inc"}, format="json")
    assert response.status_code == 409
    assert response.json()["field"] == "advertiser"


def test_reject_without_reason_is_400(make_campaign, as_approver):
    campaign = make_campaign("in_review")
    response = as_approver.post(f"/v1/campaigns/{campaign.pk}/reject/", {}, format="json")
    assert response.status_code == 400
    assert "reason" in response.json()["fields"]
    response = as_approver.post(f"/v1/campaigns/{campaign.pk}/reject/", {"reason": "   "}, format="json")
    assert response.status_code == 400
    assert fresh(campaign).status == "in_review"


def test_transition_from_the_wrong_state_is_409(make_campaign, as_approver, as_marketer):
    campaign = make_campaign("draft")
    response = as_approver.post(f"/v1/campaigns/{campaign.pk}/approve/", {}, format="json")
    assert response.status_code == 409
    assert response.json()["field"] == "status"
    assert "it is draft" in response.json()["detail"]
    assert as_marketer.post(f"/v1/campaigns/{campaign.pk}/archive/", {}, format="json").status_code == 409
    assert fresh(campaign).status == "draft"


def test_unknown_campaign_is_404(as_marketer):
    assert as_marketer.get("/v1/campaigns/999999/").status_code == 404
    assert as_marketer.post("/v1/campaigns/999999/submit/", {}, format="json").status_code == 404


# --- idempotent create ---------------------------------------------------------------------------

def test_create_with_an_idempotency_key_creates_once(as_marketer, marketer):
    body = payload(name="Retried")
    first = as_marketer.post("/v1/campaigns/", body, format="json", HTTP_IDEMPOTENCY_KEY="create-1")
    assert first.status_code == 201 and "Idempotent-Replayed" not in first
    # the client lost the answer and retries: the same campaign, not a second one
    retry = as_marketer.post("/v1/campaigns/", body, format="json", HTTP_IDEMPOTENCY_KEY="create-1")
    assert retry.status_code == 201 and retry["Idempotent-Replayed"] == "true"
    assert retry.json()["id"] == first.json()["id"]
    assert Campaign.objects.filter(name="Retried").count() == 1
    assert CampaignTransition.objects.filter(campaign_id=first.json()["id"], action="create").count() == 1
    # the same key with another body is refused, and nothing is created
    other = as_marketer.post("/v1/campaigns/", payload(name="Other"), format="json", HTTP_IDEMPOTENCY_KEY="create-1")
    assert other.status_code == 409
    assert other.json()["error"] == "idempotency_conflict" and other.json()["field"] == "Idempotency-Key"
    assert not Campaign.objects.filter(name="Other").exists()
    # a new key is a new campaign; no key keeps the old behaviour (every call creates)
    assert as_marketer.post("/v1/campaigns/", body, format="json", HTTP_IDEMPOTENCY_KEY="create-2").json()["id"] \
        != first.json()["id"]
    as_marketer.post("/v1/campaigns/", body, format="json")
    assert Campaign.objects.filter(name="Retried").count() == 3


def test_create_idempotency_keys_belong_to_the_user(as_marketer):
    other = client_for(make_user("Marketer", username="marketer-2"))
    mine = as_marketer.post("/v1/campaigns/", payload(name="Mine"), format="json", HTTP_IDEMPOTENCY_KEY="k")
    theirs = other.post("/v1/campaigns/", payload(name="Theirs"), format="json", HTTP_IDEMPOTENCY_KEY="k")
    assert mine.status_code == theirs.status_code == 201 and mine.json()["id"] != theirs.json()["id"]


def test_a_refused_create_is_refused_again_on_retry(as_marketer):
    bad = payload(max_impressions_per_hour=60, max_impressions_per_day=10)  # refused by the service
    first = as_marketer.post("/v1/campaigns/", bad, format="json", HTTP_IDEMPOTENCY_KEY="bad-1")
    assert first.status_code == 400 and first.json()["field"] == "max_impressions_per_day", first.json()
    retry = as_marketer.post("/v1/campaigns/", bad, format="json", HTTP_IDEMPOTENCY_KEY="bad-1")
    assert retry.status_code == 400 and retry.json() == first.json()
    assert not Campaign.objects.exists()


@pytest.mark.parametrize("key", ["", "   ", "k" * 256, "clé"])
def test_an_unusable_idempotency_key_is_a_400(as_marketer, key):
    response = as_marketer.post("/v1/campaigns/", payload(), format="json", HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400 and response.json()["field"] == "Idempotency-Key", response.json()
    assert not Campaign.objects.exists()


# --- happy paths ---------------------------------------------------------------------------------

def test_create_read_update(as_marketer, marketer):
    response = as_marketer.post("/v1/campaigns/", payload(status="live"), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "draft"  # status is read-only
    assert body["targeting"] == {"countries": ["USA", "CAN"], "device_types": ["mobile"], "segments": [3, 7]}
    assert body["budget"] == "2500.00" and body["currency"] == "USD" and body["created_by"] == "marketer"
    assert body["offers"] == []

    cid = body["id"]
    response = as_marketer.patch(f"/v1/campaigns/{cid}/", {"budget": "3000.50", "targeting": {"countries": ["GB"]}},
                                 format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["budget"] == "3000.50"
    assert body["targeting"] == {"countries": ["GBR"], "device_types": ["mobile"], "segments": [3, 7]}
    assert as_marketer.get(f"/v1/campaigns/{cid}/").json() == body


def test_offers_sub_resource(as_marketer, make_campaign):
    campaign = make_campaign("draft", offers=0)
    base = f"/v1/campaigns/{campaign.pk}/offers/"
    response = as_marketer.post(base, offer_payload(), format="json")
    assert response.status_code == 201, response.content
    offer_id = response.json()["id"]
    assert as_marketer.get(base).json()["results"][0]["id"] == offer_id
    response = as_marketer.patch(f"{base}{offer_id}/", {"max_bid_cpm": "3.2500"}, format="json")
    assert response.status_code == 200 and response.json()["max_bid_cpm"] == "3.2500"
    response = as_marketer.post(base, offer_payload(landing_url="ftp://x"), format="json")
    assert response.status_code == 400 and "landing_url" in response.json()["fields"]
    response = as_marketer.post(base, offer_payload(category="shoes"), format="json")
    assert response.status_code == 400 and response.json()["field"] == "category"
    assert as_marketer.delete(f"{base}{offer_id}/").status_code == 204
    assert not campaign.offers.exists()


def test_lifecycle_through_the_api(as_marketer, as_approver, approver):
    start = timezone.now() + timedelta(days=2)
    response = as_marketer.post("/v1/campaigns/", payload(start_at=start.isoformat()), format="json")
    cid = response.json()["id"]
    as_marketer.post(f"/v1/campaigns/{cid}/offers/", offer_payload(), format="json")

    steps = [
        (as_marketer, "submit", {}, "in_review"),
        (as_approver, "approve", {"reason": "fine"}, "approved"),
        (as_marketer, "schedule", {}, "scheduled"),
    ]
    for client, action, body, expected in steps:
        response = client.post(f"/v1/campaigns/{cid}/{action}/", body, format="json")
        assert response.status_code == 200, (action, response.content)
        assert response.json()["status"] == expected
    assert as_approver.get("/v1/campaigns/awaiting-decision/").json()["count"] == 0

    history = as_marketer.get(f"/v1/campaigns/{cid}/history/").json()["results"]
    assert [(h["action"], h["actor"]) for h in history] == [
        ("schedule", "marketer"), ("approve", "approver"), ("vote_approve", "approver"),
        ("submit", "marketer"), ("offer_create", "marketer"), ("create", "marketer"),
    ]


def test_pause_resume_complete_archive(make_campaign, as_marketer):
    campaign = make_campaign("live")
    for action, body, expected in [("pause", {"reason": "budget review"}, "paused"), ("resume", {}, "live"),
                                   ("complete", {"reason": "done"}, "completed"), ("archive", {}, "archived")]:
        response = as_marketer.post(f"/v1/campaigns/{campaign.pk}/{action}/", body, format="json")
        assert response.status_code == 200, response.content
        assert response.json()["status"] == expected
    assert CampaignTransition.objects.filter(campaign=campaign, action="pause").get().reason == "budget review"


def test_reject_and_revise(make_campaign, as_approver, as_marketer):
    campaign = make_campaign("in_review")
    response = as_approver.post(f"/v1/campaigns/{campaign.pk}/reject/", {"reason": "Claims need a source"}, format="json")
    assert response.json()["status"] == "rejected"
    assert as_marketer.post(f"/v1/campaigns/{campaign.pk}/revise/", {}, format="json").json()["status"] == "draft"


def test_request_changes(make_campaign, as_approver):
    campaign = make_campaign("in_review")
    response = as_approver.post(f"/v1/campaigns/{campaign.pk}/request-changes/", {"reason": "Shorter headline"},
                                format="json")
    assert response.status_code == 200 and response.json()["status"] == "draft"


def test_list_filters(make_campaign, as_approver):
    draft = make_campaign("draft", channels=["email"], advertiser="Acme")
    review = make_campaign("in_review", channels=["display"], advertiser="Globex")
    assert [c["id"] for c in as_approver.get("/v1/campaigns/?status=in_review").json()["results"]] == [review.pk]
    assert [c["id"] for c in as_approver.get("/v1/campaigns/?channel=email").json()["results"]] == [draft.pk]
    assert [c["id"] for c in as_approver.get("/v1/campaigns/?advertiser=acme").json()["results"]] == [draft.pk]
    assert [c["id"] for c in as_approver.get("/v1/campaigns/?search=glob").json()["results"]] == [review.pk]
    assert [c["id"] for c in as_approver.get("/v1/campaigns/awaiting-decision/").json()["results"]] == [review.pk]


def test_budget_is_decimal_end_to_end(as_marketer):
    response = as_marketer.post("/v1/campaigns/", payload(budget="1234.56"), format="json")
    assert Campaign.objects.get(pk=response.json()["id"]).budget == Decimal("1234.56")


def test_schema_documents_the_campaign_endpoints(as_marketer):
    response = as_marketer.get("/v1/schema/", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json() if response["content-type"].startswith("application/json") else None
    if schema is None:
        import yaml

        schema = yaml.safe_load(response.content)
    paths = schema["paths"]
    for action in ("submit", "approve", "reject", "revise", "schedule", "pause", "resume", "archive"):
        operation = paths[f"/v1/campaigns/{{id}}/{action}/"]["post"]
        assert operation["summary"]
        assert "409" in operation["responses"]
    assert "/v1/campaigns/{campaign_pk}/offers/" in paths


def test_comment_thread_through_the_api(make_campaign, as_marketer, as_approver, outsider):
    campaign = make_campaign("in_review")
    url = f"/v1/campaigns/{campaign.pk}/comments/"
    created = as_approver.post(url, {"body": "  Can you use the new logo?  "}, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["author"], created.json()["body"]) == ("approver", "Can you use the new logo?")
    assert as_marketer.post(url, {"body": "Done."}, format="json").status_code == 201
    listing = as_marketer.get(url)
    assert [(c["author"], c["body"]) for c in listing.json()["results"]] == [
        ("approver", "Can you use the new logo?"), ("marketer", "Done.")]
    blank = as_marketer.post(url, {"body": "   "}, format="json")
    assert blank.status_code == 400 and blank.json()["field"] == "body"
    assert as_marketer.post(url, {"body": "x" * 4001}, format="json").status_code == 400
    assert client_for(outsider).post(url, {"body": "hi"}, format="json").status_code == 403
    assert APIClient().get(url).status_code in (401, 403)
    assert as_marketer.get("/v1/campaigns/999999/comments/").status_code == 404
    assert campaign.comments.count() == 2
