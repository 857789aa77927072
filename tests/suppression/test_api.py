from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.suppression import selectors, services
from apps.suppression.models import SuppressionAudit, SuppressionEntry
from tests.factories import token_client

pytestmark = pytest.mark.django_db

LIST = "/v1/suppression/"
BULK_ADD = "/v1/suppression/bulk-add"
BULK_REMOVE = "/v1/suppression/bulk-remove"
CHECK = "/v1/suppression/check"
HISTORY = "/v1/suppression/history"


# --- auth ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, url", [
    ("get", LIST), ("post", LIST), ("post", BULK_ADD), ("post", BULK_REMOVE), ("get", CHECK), ("get", HISTORY),
])
def test_every_endpoint_needs_a_token(method, url):
    response = getattr(APIClient(), method)(url, {}, format="json") if method == "post" else APIClient().get(url)
    assert response.status_code == 401
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")
    assert getattr(bad, method)(url).status_code == 401


def test_roles(marketer, approver, admin_user, nobody):
    row = {"identifier": "a@example.com", "channel": "email", "reason": "manual"}
    remove = {"entries": [{"identifier": "a@example.com", "channel": "email"}], "note": "test"}
    # no role: nothing
    client = token_client(nobody)
    assert client.get(LIST).status_code == 403
    assert client.get(CHECK, {"identifier": "a@example.com", "channel": "email"}).status_code == 403
    assert client.post(LIST, row, format="json").status_code == 403
    # approver: reads only
    client = token_client(approver)
    assert client.get(LIST).status_code == 200
    assert client.get(CHECK, {"identifier": "a@example.com", "channel": "email"}).status_code == 200
    assert client.post(LIST, row, format="json").status_code == 403
    assert client.post(BULK_ADD, {"entries": [row]}, format="json").status_code == 403
    # marketer: reads and adds, cannot remove
    client = token_client(marketer)
    assert client.post(LIST, row, format="json").status_code == 201
    assert client.post(BULK_REMOVE, remove, format="json").status_code == 403
    assert selectors.is_suppressed(identifier="a@example.com", channel="email") is True
    # admin: removes
    response = token_client(admin_user).post(BULK_REMOVE, remove, format="json")
    assert response.status_code == 200
    assert response.json() == {"removed": 1, "skipped": []}
    assert selectors.is_suppressed(identifier="a@example.com", channel="email") is False


# --- add one -------------------------------------------------------------------------------------

def test_post_one_then_again_is_idempotent(marketer):
    client = token_client(marketer)
    response = client.post(LIST, {"identifier": " +1 (415) 555-0100", "channel": "sms", "reason": "unsubscribe",
                                  "source": "support ticket 77"}, format="json")
    assert response.status_code == 201
    body = response.json()
    assert {k: body[k] for k in ("identifier", "identifier_kind", "channel", "reason", "source", "created_by",
                                 "expires_at", "active")} == {
        "identifier": "+14155550100", "identifier_kind": "phone", "channel": "sms", "reason": "unsubscribe",
        "source": "support ticket 77", "created_by": "marketer", "expires_at": None, "active": True}
    again = client.post(LIST, {"identifier": "+14155550100", "channel": "sms", "reason": "unsubscribe",
                               "expires_at": "2999-01-01"}, format="json")
    assert again.status_code == 200
    assert again.json()["id"] == body["id"]
    assert again.json()["expires_at"] is None  # permanent is not shortened
    assert SuppressionEntry.objects.count() == 1


@pytest.mark.parametrize("payload, field, detail", [
    ({"identifier": "bob@", "channel": "email", "reason": "manual"}, "identifier", "invalid email address 'bob@'"),
    ({"identifier": "+1 555", "channel": "sms", "reason": "manual"}, "identifier",
     "invalid phone number '+1 555': it is too short"),
    ({"identifier": "bob@example.com", "channel": "fax", "reason": "manual"}, "channel",
     "unknown channel 'fax' (expected one of: email, sms, push, in_app, all)"),
    ({"identifier": "bob@example.com", "channel": "email", "reason": "bored"}, "reason",
     "unknown reason 'bored' (expected one of: unsubscribe, bounce, spam_report, manual, regulatory)"),
    ({"identifier": "bob@example.com", "channel": "email", "reason": "manual", "expires_at": "2000-01-01T00:00:00Z"},
     "expires_at", "expires_at 2000-01-01T00:00:00+00:00 is in the past"),
    ({"identifier": "bob@example.com", "channel": "email", "reason": "manual", "expires_at": "next week"},
     "expires_at", "expires_at 'next week' is not an ISO 8601 date or datetime (e.g. 2027-01-31 or 2027-01-31T12:00:00Z)"),
])
def test_post_one_400_names_the_field(marketer, payload, field, detail):
    response = token_client(marketer).post(LIST, payload, format="json")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid", "detail": detail, "field": field}
    assert SuppressionEntry.objects.count() == 0


def test_post_one_missing_field_is_400_naming_it(marketer):
    response = token_client(marketer).post(LIST, {"identifier": "bob@example.com", "reason": "manual"}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid"
    assert body["detail"] == "channel: This field is required."
    assert list(body["fields"]) == ["channel"]


# --- bulk ----------------------------------------------------------------------------------------

def test_bulk_add_reports_skips(marketer):
    services.suppression_add(identifier="old@example.com", channel="email", reason="bounce")
    response = token_client(marketer).post(BULK_ADD, {"source": "crm", "entries": [
        {"identifier": "a@example.com", "channel": "email", "reason": "unsubscribe"},
        {"identifier": "A@example.com", "channel": "email", "reason": "unsubscribe"},
        {"identifier": "old@example.com", "channel": "email", "reason": "manual"},
        {"identifier": "device-token-1", "channel": "push", "reason": "manual", "expires_at": "2999-06-01"},
    ]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"added": 2, "updated": 0, "skipped": [
        {"row": 1, "reason": "duplicate of row 0"},
        {"row": 2, "reason": "already suppressed (bounce, permanent)"},
    ]}
    assert SuppressionEntry.objects.get(identifier="device-token-1").expires_at.isoformat() == "2999-06-01T00:00:00+00:00"
    assert SuppressionEntry.objects.get(identifier="a@example.com").source == "crm"
    response = token_client(marketer).post(BULK_ADD, {"entries": [
        {"identifier": "z@example.com", "channel": "email", "reason": "manual"}]}, format="json")
    assert response.json()["added"] == 1
    assert SuppressionEntry.objects.get(identifier="z@example.com").source == "api:bulk-add"
    token_client(marketer).post(LIST, {"identifier": "y@example.com", "channel": "email", "reason": "manual"},
                                format="json")
    assert SuppressionEntry.objects.get(identifier="y@example.com").source == "api"


def test_bulk_add_malformed_row_refuses_everything(marketer):
    response = token_client(marketer).post(BULK_ADD, {"entries": [
        {"identifier": "a@example.com", "channel": "email", "reason": "unsubscribe"},
        {"identifier": "b@example.com", "channel": "email", "reason": "unsubscribe"},
        {"identifier": "not an email@", "channel": "email", "reason": "unsubscribe"},
    ]}, format="json")
    assert response.status_code == 400
    assert response.json() == {"error": "invalid", "field": "entries[2].identifier",
                               "detail": "row 2: invalid email address 'not an email@'"}
    assert SuppressionEntry.objects.count() == 0
    assert SuppressionAudit.objects.count() == 0


@pytest.mark.parametrize("payload, detail", [
    ({}, "entries: This field is required."),
    ({"entries": []}, "entries: This list may not be empty."),
    ({"entries": ["a@example.com"]}, 'entries.0: Expected a dictionary of items but got type "str".'),
])
def test_bulk_add_shape_errors(marketer, payload, detail):
    response = token_client(marketer).post(BULK_ADD, payload, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == detail


def test_bulk_add_row_limit(marketer, settings):
    rows = [{"identifier": f"u-{i}", "channel": "push", "reason": "manual"} for i in range(10_001)]
    response = token_client(marketer).post(BULK_ADD, {"entries": rows}, format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "entries: Ensure this field has no more than 10000 elements."
    assert SuppressionEntry.objects.count() == 0


def test_bulk_remove(admin_user):
    services.suppression_add(identifier="a@example.com", channel="email", reason="unsubscribe")
    services.suppression_add(identifier="+442079460958", channel="sms", reason="unsubscribe")
    client = token_client(admin_user)
    response = client.post(BULK_REMOVE, {"note": "consent renewed", "entries": [
        {"identifier": "a@example.com", "channel": "email"},
        {"identifier": "0044 20 7946 0958", "channel": "sms"},
        {"identifier": "nobody@example.com", "channel": "email"},
    ]}, format="json")
    assert response.status_code == 200
    assert response.json() == {"removed": 2, "skipped": [{"row": 2, "reason": "not suppressed"}]}
    assert SuppressionEntry.objects.count() == 0
    history = client.get(HISTORY, {"identifier": "a@example.com"}).json()["results"]
    assert [(h["action"], h["actor"], h["note"]) for h in history] == [
        ("removed", "admin", "consent renewed"), ("added", None, "")]


def test_bulk_remove_needs_a_note_and_valid_rows(admin_user):
    services.suppression_add(identifier="a@example.com", channel="email", reason="unsubscribe")
    client = token_client(admin_user)
    response = client.post(BULK_REMOVE, {"entries": [{"identifier": "a@example.com", "channel": "email"}]},
                           format="json")
    assert response.status_code == 400 and response.json()["detail"] == "note: This field is required."
    response = client.post(BULK_REMOVE, {"note": "  ", "entries": [{"identifier": "a@example.com", "channel": "email"}]},
                           format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "note: This field may not be blank."
    response = client.post(BULK_REMOVE, {"note": "x", "entries": [
        {"identifier": "a@example.com", "channel": "email"}, {"identifier": "a@example.com", "channel": "carrier pigeon"}]},
        format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "entries[1].channel"
    assert SuppressionEntry.objects.count() == 1


# --- check and list --------------------------------------------------------------------------------

def test_check(approver):
    services.suppression_add(identifier="bob@example.com", channel="all", reason="regulatory", source="legal")
    services.suppression_add(identifier="bob@example.com", channel="email", reason="unsubscribe")
    services.suppression_add(identifier="bob@example.com", channel="push", reason="manual")
    client = token_client(approver)
    body = client.get(CHECK, {"identifier": " Bob@Example.com", "channel": "email"}).json()
    assert (body["identifier"], body["channel"], body["suppressed"]) == ("bob@example.com", "email", True)
    assert [(e["channel"], e["reason"]) for e in body["entries"]] == [("all", "regulatory"), ("email", "unsubscribe")]
    body = client.get(CHECK, {"identifier": "bob@example.com"}).json()
    assert [e["channel"] for e in body["entries"]] == ["all", "email", "push"]
    body = client.get(CHECK, {"identifier": "carol@example.com", "channel": "sms"}).json()
    assert body == {"identifier": "carol@example.com", "channel": "sms", "suppressed": False, "entries": []}


def test_check_ignores_expired_entries(approver):
    services.suppression_add(identifier="u-1", channel="push", reason="manual", expires_at=timezone.now() + timedelta(hours=1))
    SuppressionEntry.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    body = token_client(approver).get(CHECK, {"identifier": "u-1", "channel": "push"}).json()
    assert (body["suppressed"], body["entries"]) == (False, [])


@pytest.mark.parametrize("params, field", [
    ({"channel": "email"}, None),
    ({"identifier": "bob@", "channel": "email"}, "identifier"),
    ({"identifier": "bob@example.com", "channel": "fax"}, "channel"),
])
def test_check_400(approver, params, field):
    response = token_client(approver).get(CHECK, params)
    assert response.status_code == 400
    if field:
        assert response.json()["field"] == field
    else:
        assert response.json()["detail"] == "identifier: This field is required."


def test_list_filters(approver):
    services.suppression_add(identifier="a@example.com", channel="email", reason="unsubscribe")
    services.suppression_add(identifier="b@example.com", channel="email", reason="bounce")
    services.suppression_add(identifier="+14155550100", channel="sms", reason="unsubscribe")
    services.suppression_add(identifier="old@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(hours=1))
    SuppressionEntry.objects.filter(identifier="old@example.com").update(expires_at=timezone.now() - timedelta(seconds=1))
    client = token_client(approver)

    def ids(params):
        response = client.get(LIST, params)
        assert response.status_code == 200, response.json()
        return sorted(e["identifier"] for e in response.json()["results"])

    assert ids({}) == ["+14155550100", "a@example.com", "b@example.com", "old@example.com"]
    assert ids({"channel": "sms"}) == ["+14155550100"]
    assert ids({"reason": "unsubscribe"}) == ["+14155550100", "a@example.com"]
    assert ids({"active": "true"}) == ["+14155550100", "a@example.com", "b@example.com"]
    assert ids({"active": "false"}) == ["old@example.com"]
    assert ids({"search": "EXAMPLE.com", "channel": "email", "active": "true"}) == ["a@example.com", "b@example.com"]
    assert ids({"identifier": "+1 (415) 555-0100"}) == ["+14155550100"]
    response = client.get(LIST, {"active": "maybe"})
    assert response.status_code == 400 and response.json()["field"] == "active"
    response = client.get(LIST, {"reason": "boredom"})
    assert response.status_code == 400 and response.json()["field"] == "reason"
    assert client.get(LIST).json()["count"] == 4


def test_history_requires_identifier(approver):
    response = token_client(approver).get(HISTORY)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid", "detail": "identifier: This field is required.", "field": "identifier"}


def test_schema_documents_the_endpoints(admin_user):
    client = APIClient()
    client.force_login(admin_user)
    response = client.get("/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for path in ("/v1/suppression/", "/v1/suppression/bulk-add", "/v1/suppression/bulk-remove",
                 "/v1/suppression/check", "/v1/suppression/history"):
        assert path in paths
    assert paths["/v1/suppression/check"]["get"]["summary"] == "Is this identifier suppressed?"


# --- query parameters are validated (issue 16, defect 7) -----------------------------------------

@pytest.mark.parametrize("url, params, field", [
    (LIST, {"channel": "AAA"}, "channel"),
    (LIST, {"channel": ""}, "channel"),
    (LIST, {"reason": "whim"}, "reason"),
    (LIST, {"active": "maybe"}, "active"),
    (LIST, {"active": ""}, "active"),
    (LIST, {"search": ""}, "search"),
    (LIST, {"identifier": ""}, "identifier"),
    (CHECK, {"identifier": "a@example.com", "channel": "carrier pigeon"}, "channel"),
    (CHECK, {"channel": "email"}, "identifier"),
    (HISTORY, {}, "identifier"),
    (HISTORY, {"identifier": ""}, "identifier"),
])
def test_bad_query_parameters_are_400_naming_them(admin_user, url, params, field):
    response = token_client(admin_user).get(url, params)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid" and body["field"] == field and body["detail"].startswith(f"{field}:")


def test_bodies_are_json_only_in_the_api_and_the_schema(admin_user):
    client = token_client(admin_user)
    response = client.post(BULK_REMOVE, {"note": "x", "entries": "a"}, format="multipart")
    assert response.status_code == 415
    schema = client.get("/v1/schema/", {"format": "json"}).json()
    for path in (LIST, BULK_ADD, BULK_REMOVE):
        assert list(schema["paths"][path]["post"]["requestBody"]["content"]) == ["application/json"], path
    params = {p["name"]: p for p in schema["paths"][LIST]["get"]["parameters"]}
    assert set(params["channel"]["schema"]["enum"]) >= {"email", "sms", "all"}
    assert params["active"]["schema"]["type"] == "boolean"
