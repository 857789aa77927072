"""POST /v1/channels/ingest — docs/RULES.md §5 ingest rules."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.omnichannel import selectors, services
from apps.omnichannel.models import Activation, Contact, IngestEvent, Interaction

pytestmark = pytest.mark.django_db

URL = "/v1/channels/ingest"


def event(**overrides):
    body = {"event_id": "evt-1", "source": "pos", "event_type": "app_open", "user_id": "u-1"}
    body.update(overrides)
    return body


def test_requires_the_integration_role(plain_client, marketer_client):
    assert plain_client.post(URL, event(), format="json").status_code == 403
    assert marketer_client.post(URL, event(), format="json").status_code == 403
    assert IngestEvent.objects.count() == 0


def test_accepts_an_event_and_answers_what_happened(integration_client):
    response = integration_client.post(URL, event(timestamp="2026-11-26T10:00:00Z"), format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["event_id"] == "evt-1"
    assert body["accepted"] is True and body["duplicate"] is False
    assert body["occurred_at"] == "2026-11-26T10:00:00Z"
    assert body["activation"]["triggered"] is False
    assert body["activation"]["reason"] == "app_open is not an activation trigger"
    assert body["loyalty"] == {"relevant": False, "stars_earned": None}
    row = IngestEvent.objects.get(event_id="evt-1")
    assert (row.source, row.event_type, row.user_id, row.transport) == ("pos", "app_open", "u-1", "http")


@pytest.mark.parametrize("missing", ["event_id", "source", "event_type"])
def test_required_fields_are_named(integration_client, missing):
    body = event()
    del body[missing]
    response = integration_client.post(URL, body, format="json")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid"
    assert missing in response.json()["fields"]
    assert IngestEvent.objects.count() == 0


def test_the_service_refuses_an_invalid_event_with_a_service_error_and_http_keeps_its_envelope(integration_client):
    """ingest_event_process raises a ServiceError (never a DRF error) naming the first invalid field and
    carrying all of them; the HTTP answer is the validation envelope it always was."""
    from rest_framework.exceptions import APIException

    body = event(event_id="", items=[{"item_id": "latte"}, {"item_id": "flat white"}])
    with pytest.raises(services.InvalidIngestEvent) as exc:
        services.ingest_event_process(data=body, transport="http", caller="user:1")
    assert not isinstance(exc.value, APIException)
    assert (exc.value.status_code, exc.value.code, exc.value.field) == (400, "invalid", "event_id")
    assert exc.value.message == "event_id: This field may not be blank."
    assert exc.value.errors == {"event_id": ["This field may not be blank."],
                                "items": {"1": {"item_id": ["item_id must not contain spaces or control characters."]}}}
    response = integration_client.post(URL, body, format="json")
    assert (response.status_code, response.json()) == (400, {
        "error": "invalid", "detail": "event_id: This field may not be blank.", "field": "event_id",
        "fields": exc.value.errors})
    only_items = integration_client.post(URL, {**body, "event_id": "evt-9"}, format="json").json()
    assert (only_items["field"], only_items["detail"]) == (
        "items.1.item_id", "items.1.item_id: item_id must not contain spaces or control characters.")
    with pytest.raises(services.InvalidIngestEvent) as exc:
        services.ingest_event_process(data={**body, "event_id": "evt-9"}, transport="http", caller="user:1")
    assert (exc.value.field, exc.value.message) == (only_items["field"], only_items["detail"])
    assert IngestEvent.objects.count() == 0


def test_unknown_source_and_event_type_are_refused(integration_client):
    response = integration_client.post(URL, event(source="fax"), format="json")
    assert response.status_code == 400 and "source" in response.json()["fields"]
    response = integration_client.post(URL, event(event_type="teleport"), format="json")
    assert response.status_code == 400 and "event_type" in response.json()["fields"]


def test_neither_user_nor_device_is_a_400(integration_client):
    response = integration_client.post(URL, event(user_id=""), format="json")
    assert response.status_code == 400
    assert response.json() == {"error": "required", "detail": "either user_id or device_id is required",
                               "field": "user_id"}
    assert IngestEvent.objects.count() == 0


def test_device_only_events_are_accepted(integration_client):
    response = integration_client.post(URL, event(user_id="", device_id="dev-9", event_type="product_view",
                                                  item_id="sku-1"), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["activation"]["reason"] == "anonymous device: no user to reach"
    assert list(Interaction.objects.values_list("user_id", "item_id")) == [("device:dev-9", "sku-1")]


def test_source_disabled_in_the_admin_is_refused(integration_client):
    services.ingest_source_set_enabled(source="kiosk", enabled=False, note="kiosks being replaced")
    response = integration_client.post(URL, event(source="kiosk"), format="json")
    assert response.status_code == 400
    assert response.json() == {"error": "source_disabled", "detail": "source 'kiosk' is disabled: kiosks being replaced",
                               "field": "source"}
    assert IngestEvent.objects.count() == 0
    assert integration_client.post(URL, event(source="pos"), format="json").status_code == 201


def test_source_disabled_by_environment_is_refused(integration_client, settings):
    settings.INGEST_DISABLED_SOURCES = ["iot"]
    response = integration_client.post(URL, event(source="iot"), format="json")
    assert response.status_code == 400
    assert response.json()["detail"] == "source 'iot' is disabled by INGEST_DISABLED_SOURCES"
    assert {row["source"]: row["enabled"] for row in selectors.ingest_sources()}["iot"] is False


# --- idempotency: (source, caller, event_id) ---------------------------------------------------------------
def test_a_replay_of_the_same_event_answers_the_first_result_and_changes_nothing(integration_client):
    first = integration_client.post(URL, event(event_type="cart_add", item_id="sku-1"), format="json")
    again = integration_client.post(URL, event(event_type="cart_add", item_id="sku-1"), format="json")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["duplicate"] is False
    assert again.json() == {**first.json(), "duplicate": True}
    row = IngestEvent.objects.get()
    assert (row.event_id, row.source, row.caller) == ("evt-1", "pos", f"user:{integration_client.user.pk}")
    assert list(Interaction.objects.values_list("item_id", flat=True)) == ["sku-1"]


def test_the_same_event_id_with_another_body_is_a_409_and_changes_nothing(integration_client):
    first = integration_client.post(URL, event(event_type="cart_add", item_id="sku-1"), format="json")
    other = integration_client.post(URL, event(event_type="cart_add", item_id="sku-2"), format="json")
    assert (first.status_code, other.status_code) == (201, 409)
    assert other.json() == {
        "error": "idempotency_conflict", "field": "event_id",
        "detail": "event_id 'evt-1' was already used by this caller for another pos event (a different body); "
                  "use a new event_id for a new event"}
    assert IngestEvent.objects.count() == 1
    assert list(Interaction.objects.values_list("item_id", flat=True)) == ["sku-1"]
    # The first event is still the one a replay answers.
    again = integration_client.post(URL, event(event_type="cart_add", item_id="sku-1"), format="json")
    assert (again.status_code, again.json()) == (200, {**first.json(), "duplicate": True})


def test_another_caller_reusing_an_event_id_records_its_own_event(integration_client):
    from tests.factories import make_user, token_client

    other_client = token_client(make_user("Integration", username="kiosk-terminal", is_staff=False))
    mine = integration_client.post(URL, event(event_type="cart_add", user_id="u-1", item_id="sku-1"), format="json")
    theirs = other_client.post(URL, event(event_type="page_view", user_id="u-2"), format="json")
    assert (mine.status_code, theirs.status_code) == (201, 201)
    assert theirs.json()["duplicate"] is False
    assert (theirs.json()["user_id"], theirs.json()["event_type"]) == ("u-2", "page_view")  # nothing of u-1's
    assert sorted(IngestEvent.objects.values_list("caller", "user_id")) == sorted([
        (f"user:{integration_client.user.pk}", "u-1"), (f"user:{other_client.user.pk}", "u-2")])
    # The same id under another source is another event too.
    web = integration_client.post(URL, event(source="web", event_type="page_view"), format="json")
    assert web.status_code == 201 and IngestEvent.objects.count() == 3


def test_two_callers_purchases_with_one_event_id_are_each_credited(integration_client):
    from apps.loyalty.models import LedgerEntry
    from apps.loyalty.selectors import loyalty_balance
    from tests.factories import make_user, token_client

    other_client = token_client(make_user("Integration", username="store-2-pos", is_staff=False))
    purchase = event(event_id="order-1", event_type="purchase", amount_cents=1250)
    first = integration_client.post(URL, purchase, format="json")
    second = other_client.post(URL, purchase, format="json")
    assert (first.status_code, second.status_code) == (201, 201)
    assert (first.json()["loyalty"]["stars_earned"], second.json()["loyalty"]["stars_earned"]) == (13, 13)
    assert (first.json()["loyalty"]["new_balance"], second.json()["loyalty"]["new_balance"]) == (13, 26)
    assert loyalty_balance(user_id="u-1").balance == 26
    rows = {row.caller: row.pk for row in IngestEvent.objects.all()}
    assert sorted(LedgerEntry.objects.filter(kind="earn").values_list("transaction_id", flat=True)) == sorted(
        f"ingest:{pk}:order-1" for pk in rows.values())


def test_the_caller_is_the_token_user_or_the_subject():
    from apps.core.exceptions import ServiceError

    class User:
        pk = 7

    assert services.ingest_caller(user=User()) == "user:7"
    assert services.ingest_caller(subject="ingest.pos.purchase") == "nats:ingest.pos.purchase"
    assert len(services.ingest_caller(subject="s" * 250)) == 255
    with pytest.raises(ServiceError) as exc:  # never cut: a cut subject could collide with another
        services.ingest_caller(subject="s" * 251)
    assert (exc.value.field, exc.value.message) == ("subject", "the subject must be at most 250 characters")


def test_a_replayed_purchase_with_a_trigger_applies_once(integration_client):
    from apps.loyalty.selectors import loyalty_balance
    from apps.omnichannel.models import SendLedger

    purchase = event(event_id="order-2", event_type="purchase", amount_cents=1250, item_id="sku-1")
    first = integration_client.post(URL, purchase, format="json")
    replays = [integration_client.post(URL, purchase, format="json") for _ in range(3)]
    assert first.status_code == 201 and first.json()["activation"]["triggered"] is True
    assert [(r.status_code, r.json()) for r in replays] == [(200, {**first.json(), "duplicate": True})] * 3
    assert loyalty_balance(user_id="u-1").balance == 13
    assert (IngestEvent.objects.count(), Activation.objects.count(), SendLedger.objects.count(),
            Interaction.objects.count()) == (1, 1, 1, 1)


def test_a_refused_event_leaves_nothing_so_the_corrected_event_keeps_its_id(integration_client):
    from apps.core.models import IdempotencyRecord

    refused = integration_client.post(URL, event(event_type="purchase", amount_cents=0), format="json")
    assert refused.status_code == 400
    assert refused.json() == {"error": "invalid", "detail": "amount_cents must be at least 1.", "field": "amount_cents"}
    assert (IngestEvent.objects.count(), IdempotencyRecord.objects.count()) == (0, 0)
    fixed = integration_client.post(URL, event(event_type="purchase", amount_cents=250), format="json")
    assert fixed.status_code == 201 and fixed.json()["loyalty"]["stars_earned"] == 3


def test_a_resend_of_an_event_recorded_before_callers_were_kept_is_a_duplicate(integration_client):
    """Events from before the upgrade have caller "legacy"; a client retrying one across the upgrade
    (exactly the same body) gets its first answer, a different body is a new event of its own."""
    body = event(event_id="old-1", event_type="cart_add", item_id="sku-1")
    stored = {**body, "accepted": True, "duplicate": False}  # an answer as the old code stored it
    IngestEvent.objects.create(event_id="old-1", source="pos", caller="legacy", event_type="cart_add", user_id="u-1",
                               occurred_at=timezone.now(), transport="http", payload=body, result=stored)
    again = integration_client.post(URL, body, format="json")
    assert (again.status_code, again.json()) == (200, {**stored, "duplicate": True})
    assert IngestEvent.objects.count() == 1 and Interaction.objects.count() == 0
    other = integration_client.post(URL, {**body, "item_id": "sku-9"}, format="json")
    assert other.status_code == 201 and other.json()["user_id"] == "u-1"
    assert IngestEvent.objects.filter(event_id="old-1").count() == 2


def test_future_timestamps_are_refused(integration_client):
    future = (timezone.now() + timedelta(hours=1)).isoformat()
    response = integration_client.post(URL, event(timestamp=future), format="json")
    assert response.status_code == 400 and response.json()["field"] == "timestamp"


def test_unix_timestamps_are_understood(integration_client):
    response = integration_client.post(URL, event(timestamp=1_764_151_200), format="json")
    assert response.json()["occurred_at"] == "2025-11-26T10:00:00Z"
    response = integration_client.post(URL, event(event_id="evt-ms", timestamp=1_764_151_200_500), format="json")
    assert response.json()["occurred_at"] == "2025-11-26T10:00:00.500000Z"


# --- activation triggers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("event_type", ["cart_abandon", "purchase", "store_visit", "loyalty_swipe", "check_in"])
def test_always_triggering_events_activate(integration_client, event_type):
    old = (timezone.now() - timedelta(hours=5)).isoformat()
    response = integration_client.post(URL, event(event_type=event_type, timestamp=old, amount_cents=500), format="json")
    assert response.status_code == 201, response.content
    activation = response.json()["activation"]
    assert activation["triggered"] is True
    row = Activation.objects.get(pk=activation["activation_id"])
    assert (row.user_id, row.trigger, row.ingest_event.event_id) == ("u-1", event_type, "evt-1")
    assert row.channel == activation["channel"] == "in_app"  # no contact data: the in-app inbox


@pytest.mark.parametrize("event_type", ["product_view", "wishlist_add"])
def test_views_and_wishlist_trigger_only_under_30_minutes(integration_client, event_type):
    fresh = (timezone.now() - timedelta(minutes=29)).isoformat()
    stale = (timezone.now() - timedelta(minutes=31)).isoformat()
    response = integration_client.post(URL, event(event_id="fresh", event_type=event_type, timestamp=fresh), format="json")
    assert response.json()["activation"]["triggered"] is True
    response = integration_client.post(URL, event(event_id="stale", user_id="u-2", event_type=event_type,
                                                  timestamp=stale), format="json")
    assert response.json()["activation"] == {
        "triggered": False, "reason": f"{event_type} is older than 30 minutes",
        "activation_id": None, "status": None, "channel": None,
    }
    assert Activation.objects.filter(user_id="u-2").count() == 0


@pytest.mark.parametrize("event_type", ["cart_add", "app_open", "page_view", "search", "feedback"])
def test_other_events_never_trigger(integration_client, event_type):
    response = integration_client.post(URL, event(event_type=event_type), format="json")
    assert response.json()["activation"]["triggered"] is False
    assert Activation.objects.count() == 0


def test_trigger_cooldown_keeps_one_activation_per_window(integration_client):
    integration_client.post(URL, event(event_id="a", event_type="cart_abandon"), format="json")
    response = integration_client.post(URL, event(event_id="b", event_type="cart_abandon"), format="json")
    assert response.json()["activation"]["triggered"] is False
    assert "already activated" in response.json()["activation"]["reason"]
    assert Activation.objects.filter(user_id="u-1").count() == 1


def test_disabled_trigger_rule_means_no_activation(integration_client):
    from apps.omnichannel.models import TriggerRule

    TriggerRule.objects.filter(event_type="cart_abandon").update(enabled=False)
    response = integration_client.post(URL, event(event_type="cart_abandon"), format="json")
    assert response.json()["activation"]["reason"] == "no enabled trigger rule for cart_abandon"
    assert Activation.objects.count() == 0


# --- presence and contact data ----------------------------------------------------------------------------
def test_store_visit_sets_presence_and_activates_in_store(integration_client):
    response = integration_client.post(URL, event(event_type="store_visit", store_id="store-7"), format="json")
    assert response.json()["activation"]["channel"] == "in_store"
    contact = Contact.objects.get(user_id="u-1")
    assert contact.present_store_id == "store-7"
    assert timedelta(minutes=59) < contact.present_until - timezone.now() <= timedelta(minutes=60)
    assert selectors.contact_is_present(user_id="u-1", store_id="store-7")


def test_an_old_check_in_does_not_make_anyone_present(integration_client):
    old = (timezone.now() - timedelta(hours=3)).isoformat()
    integration_client.post(URL, event(event_type="check_in", store_id="store-7", timestamp=old), format="json")
    assert not selectors.contact_is_present(user_id="u-1")


def test_events_carry_contact_details(integration_client):
    integration_client.post(URL, event(email=" Ann@Example.COM", phone="+1 (415) 555-0100", fcm_token="fcm-abc"),
                            format="json")
    contact = Contact.objects.get(user_id="u-1")
    assert (contact.email, contact.phone, contact.fcm_token) == ("ann@example.com", "+14155550100", "fcm-abc")
    assert contact.consent_email is False  # an address is not an opt-in


def test_a_bad_phone_is_named(integration_client):
    response = integration_client.post(URL, event(phone="555-01"), format="json")
    assert response.status_code == 400 and response.json()["field"] == "phone"
    assert IngestEvent.objects.count() == 0


# --- loyalty -----------------------------------------------------------------------------------------------
def test_purchase_needs_an_amount(integration_client):
    response = integration_client.post(URL, event(event_type="purchase"), format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "amount_cents"


def test_purchase_earns_stars_once(integration_client):
    from apps.loyalty.selectors import loyalty_balance

    body = event(event_type="purchase", amount_cents=1250, order_id="o-1")
    first = integration_client.post(URL, body, format="json")
    assert first.status_code == 201, first.content
    loyalty = first.json()["loyalty"]
    # ceil(1250 / 100) = 13 base stars at Green 1.0, POS is not digital
    assert loyalty == {"relevant": True, "stars_earned": 13, "new_balance": 13, "tier": "green", "tier_changed": False}
    replay = integration_client.post(URL, body, format="json")
    assert replay.status_code == 200 and replay.json()["loyalty"]["stars_earned"] == 13
    assert loyalty_balance(user_id="u-1").balance == 13
    assert IngestEvent.objects.get(event_id="evt-1").stars_earned == 13


def test_app_purchases_are_digital(integration_client):
    response = integration_client.post(URL, event(source="mobile_app", event_type="purchase", amount_cents=1250),
                                       format="json")
    assert response.json()["loyalty"]["stars_earned"] == 16  # ceil(13 x 1.2)


def test_anonymous_purchase_earns_nothing(integration_client):
    response = integration_client.post(URL, event(user_id="", device_id="d-1", event_type="purchase",
                                                  amount_cents=900), format="json")
    assert response.json()["loyalty"]["stars_earned"] is None


def test_loyalty_swipe_and_check_in_are_loyalty_relevant(integration_client):
    response = integration_client.post(URL, event(event_type="loyalty_swipe"), format="json")
    assert response.json()["loyalty"] == {"relevant": True, "stars_earned": None}


# --- interactions ------------------------------------------------------------------------------------------
def test_purchases_become_interactions_for_recommendations(integration_client):
    integration_client.post(URL, event(event_type="purchase", amount_cents=700, order_id="o-9",
                                       items=[{"item_id": "latte", "quantity": 2}, {"item_id": "muffin"}]),
                            format="json")
    integration_client.post(URL, event(event_id="evt-2", event_type="product_view", item_id="scone"), format="json")
    rows = list(selectors.interaction_rows(user_id="u-1"))
    assert sorted((r.item_id, r.event_type, r.basket_id, r.quantity, r.weight) for r in rows) == [
        ("latte", "purchase", "o-9", 2, 5.0), ("muffin", "purchase", "o-9", 1, 5.0), ("scone", "product_view", "", 1, 1.0),
    ]
    assert selectors.interaction_user_items(user_id="u-1") == {"latte", "muffin", "scone"}
    assert selectors.interaction_baskets() == {"o-9": {"latte", "muffin"}}
