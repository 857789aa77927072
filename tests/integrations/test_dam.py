"""The creative library against local servers speaking AEM Assets', Bynder's and Aprimo's formats:
search, import, and validity from each DAM's own fields; an expired or withdrawn asset stops bidding
until it is valid again."""
from __future__ import annotations

import datetime as dt

import pytest
from rest_framework.authtoken.models import Token

from apps.bidding import services as bidding_services
from apps.campaigns import selectors as campaign_selectors
from apps.campaigns import services as campaign_services
from apps.core.roles import Role
from apps.integrations import services, tasks
from apps.integrations.models import Connection

from .conftest import make_user
from .fakes import (
    AEM_TOKEN,
    APRIMO_CLIENT,
    APRIMO_SECRET,
    BYNDER_TOKEN,
    AEMServer,
    AprimoServer,
    BynderServer,
)

pytestmark = pytest.mark.django_db
UTC = dt.UTC
FUTURE = (dt.datetime.now(UTC) + dt.timedelta(days=30)).replace(microsecond=0)
PAST = (dt.datetime.now(UTC) - dt.timedelta(days=1)).replace(microsecond=0)


@pytest.fixture
def bynder():
    with BynderServer() as server:
        server.add("A1", "spring-hero", limited=1, limitedDate=FUTURE.isoformat().replace("+00:00", "Z"))
        server.add("A2", "spring-old", archive=1)
        yield server


@pytest.fixture
def bynder_connection(bynder):
    return Connection.objects.create(name="Bynder", kind="bynder", base_url=bynder.url,
                                     credentials={"token": BYNDER_TOKEN}, options={"timeout_seconds": 2})


@pytest.fixture
def marketer_api(api_client, marketer):
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=marketer).key}")
    return api_client


def test_no_dam_configured_answers_empty(marketer_api):
    answer = marketer_api.get("/v1/creatives/search", {"q": "spring"})
    assert answer.status_code == 200 and answer.json() == {"items": [], "sources": []}


def test_bynder_search_shows_thumbnail_size_mime_and_validity(marketer_api, bynder, bynder_connection):
    answer = marketer_api.get("/v1/creatives/search", {"q": "spring", "source": "bynder"}).json()
    [request] = bynder.requests
    assert request.path == "/api/v4/media/" and request.query["keyword"] == ["spring"]
    assert request.header("Authorization") == f"Bearer {BYNDER_TOKEN}"
    assert answer["sources"] == [{"connection": "Bynder", "connection_id": bynder_connection.pk, "kind": "bynder",
                                  "ok": True, "count": 2}]
    hero, old = answer["items"]
    assert (hero["name"], hero["thumbnail_url"], hero["size_bytes"], hero["mime"]) == (
        "spring-hero", "https://cdn.bynder.example/A1/thul.png", 48213, "image/png")
    assert hero["valid"] is True and hero["valid_until"] == FUTURE.isoformat().replace("+00:00", "Z")
    assert old["valid"] is False and old["blocked_reason"] == "withdrawn in Bynder (archived)"


def test_a_failing_dam_is_named_and_the_others_still_answer(marketer_api, bynder, bynder_connection):
    Connection.objects.create(name="AEM", kind="aem", base_url=bynder.url.replace(str(bynder.httpd.server_address[1]), "1"),
                              credentials={"token": AEM_TOKEN}, options={"folder": "offers", "timeout_seconds": 1})
    answer = marketer_api.get("/v1/creatives/search", {"q": "spring"}).json()
    assert [(s["connection"], s["ok"]) for s in answer["sources"]] == [("AEM", False), ("Bynder", True)]
    assert "unreachable" in answer["sources"][0]["error"] and len(answer["items"]) == 2
    assert marketer_api.get("/v1/creatives/search", {"source": "dropbox"}).status_code == 400


def test_aem_search_reads_expiry_and_status():
    with AEMServer() as aem:
        aem.add("hero.png", expires=FUTURE.isoformat())
        aem.add("expired.png", expires=PAST.isoformat())
        aem.add("rejected.png", status="rejected")
        Connection.objects.create(name="AEM", kind="aem", base_url=aem.url, credentials={"token": AEM_TOKEN},
                                  options={"folder": "offers"})
        found = services.creative_search(query="")
    by_name = {i["id"]: i for i in found["items"]}
    assert by_name["offers/hero.png"]["valid"] is True and by_name["offers/hero.png"]["mime"] == "image/png"
    assert by_name["offers/expired.png"]["blocked_reason"].startswith("asset expired ")
    assert by_name["offers/rejected.png"]["blocked_reason"] == "not approved in AEM (dam:status rejected)"
    assert [r.path for r in aem.requests] == ["/api/assets/offers.json"]


def test_aprimo_search_uses_its_headers_and_status_only():
    with AprimoServer() as aprimo:
        aprimo.add("r1", "Spring banner")
        aprimo.add("r2", "Spring draft", status="Draft")
        Connection.objects.create(name="Aprimo", kind="aprimo", base_url=aprimo.url,
                                  credentials={"client_id": APRIMO_CLIENT, "client_secret": APRIMO_SECRET},
                                  options={"token_url": aprimo.url + "/login/connect/token"})
        found = services.creative_search(query="spring")
        search = next(r for r in aprimo.requests if r.path == "/api/core/search/records")
    assert search.header("API-VERSION") == "1" and search.header("Accept") == "application/hal+json"
    assert search.header("pageSize") == "20" and search.header("page") == "1"
    assert search.json()["searchExpression"]["parameters"] == ["spring"]
    assert [(i["id"], i["valid"], i["blocked_reason"]) for i in found["items"]] == [
        ("r1", True, ""), ("r2", False, "not approved in Aprimo (status Draft)")]


def _live_campaign_with_asset(marketer, bynder_connection, asset_id="A1"):
    from tests.campaigns.conftest import OFFER_DEFAULTS, campaign_fields

    now = dt.datetime.now(UTC)
    campaign = campaign_services.campaign_create(actor=marketer, **campaign_fields(
        name="DAM campaign", start_at=now - dt.timedelta(hours=1), end_at=now + dt.timedelta(days=3)))
    offer = campaign_services.offer_create(campaign_id=campaign.pk, actor=marketer, **OFFER_DEFAULTS)
    services.creative_import(offer_id=offer.pk, connection_id=bynder_connection.pk, asset_id=asset_id, actor=marketer)
    campaign_services.campaign_submit(campaign_id=campaign.pk, actor=marketer)
    for _ in range(campaign_selectors.campaign_get(campaign_id=campaign.pk).required_approvals):
        campaign_services.campaign_approve(campaign_id=campaign.pk, actor=make_user(Role.APPROVER))
    campaign_services.campaign_go_live(campaign_id=campaign.pk, actor=marketer)
    return campaign, offer


def biddable_offer_ids():
    rows, _ = bidding_services.offer_rows_biddable()
    return {row.offer_id for row in rows}


def test_import_then_an_expired_or_withdrawn_asset_stops_bidding_until_valid_again(
        marketer, bynder, bynder_connection, marketer_api):
    campaign, offer = _live_campaign_with_asset(marketer, bynder_connection)
    offer = campaign_selectors.offer_get_or_none(offer_id=offer.pk)
    assert (offer.creative_source, offer.creative_asset_id, offer.creative_mime) == ("bynder", "A1", "image/png")
    assert offer.creative_asset_url == "https://cdn.bynder.example/A1/spring-hero.png"
    assert 'src="https://cdn.bynder.example/A1/spring-hero.png"' in offer.creative_markup
    assert offer.creative_valid_until == FUTURE and offer.creative_blocked_reason == ""
    assert offer.pk in biddable_offer_ids()

    bynder.media["A1"]["limitedDate"] = PAST.isoformat().replace("+00:00", "Z")  # the DAM expires it
    assert tasks.sync_creative_validity.apply().get() == {"checked": 1, "changed": 1, "errors": 0}
    offer = campaign_selectors.offer_get_or_none(offer_id=offer.pk)
    assert offer.creative_valid_until == PAST and offer.pk not in biddable_offer_ids()
    assert campaign_selectors.offer_creative_blocked(offer).startswith("asset expired ")

    bynder.media["A1"].update(limitedDate=FUTURE.isoformat().replace("+00:00", "Z"), archive=1)  # then withdraws it
    tasks.sync_creative_validity.apply().get()
    offer = campaign_selectors.offer_get_or_none(offer_id=offer.pk)
    assert offer.creative_blocked_reason == "withdrawn in Bynder (archived)" and offer.pk not in biddable_offer_ids()

    bynder.media["A1"]["archive"] = 0  # valid again: back in the snapshot
    tasks.sync_creative_validity.apply().get()
    assert offer.pk in biddable_offer_ids()
    assert tasks.sync_creative_validity.apply().get()["changed"] == 0


def test_a_dam_that_is_down_changes_nothing(marketer, bynder, bynder_connection):
    campaign, offer = _live_campaign_with_asset(marketer, bynder_connection)
    bynder.script(503, {"message": "maintenance", "statuscode": 503}, times=10)
    assert tasks.sync_creative_validity.apply().get()["errors"] == 1
    assert offer.pk in biddable_offer_ids()


def test_import_through_the_api_and_its_refusals(marketer_api, marketer, bynder, bynder_connection, draft_campaign):
    offer = campaign_selectors.offer_list(campaign_id=draft_campaign.pk).first()
    answer = marketer_api.post("/v1/creatives/import", {"offer_id": offer.pk, "connection_id": bynder_connection.pk,
                                                        "asset_id": "A1"}, format="json")
    assert answer.status_code == 200, answer.json()
    assert answer.json()["creative_asset_id"] == "A1" and answer.json()["creative_blocked_reason"] == ""
    missing = marketer_api.post("/v1/creatives/import", {"offer_id": offer.pk, "connection_id": bynder_connection.pk,
                                                         "asset_id": "NOPE"}, format="json")
    assert missing.status_code == 404 and missing.json()["field"] == "asset_id"
    bad = marketer_api.post("/v1/creatives/import", {"offer_id": offer.pk}, format="json")
    assert bad.status_code == 400 and bad.json()["field"] == "connection_id"


def test_the_offer_form_has_a_search_panel_that_imports(client, marketer, bynder, bynder_connection, draft_campaign):
    client.force_login(make_user(Role.ADMIN, username="dam-admin"))
    offer = campaign_selectors.offer_list(campaign_id=draft_campaign.pk).first()
    page = client.get(f"/admin/campaigns/campaign/{draft_campaign.pk}/change/").content.decode()
    assert f'href="/admin/integrations/connection/creatives/{offer.pk}/"' in page
    panel = client.get(f"/admin/integrations/connection/creatives/{offer.pk}/", {"q": "spring"}).content.decode()
    assert "spring-hero" in panel and "https://cdn.bynder.example/A1/thul.png" in panel
    assert "47.1\xa0KB" in panel and "image/png" in panel and "withdrawn in Bynder (archived)" in panel
    answer = client.post(f"/admin/integrations/connection/creatives/{offer.pk}/",
                         {"connection_id": bynder_connection.pk, "asset_id": "A1"})
    assert answer.status_code == 302
    assert campaign_selectors.offer_get_or_none(offer_id=offer.pk).creative_asset_id == "A1"
    page = client.get(f"/admin/campaigns/campaign/{draft_campaign.pk}/change/").content.decode()
    assert "bynder asset A1 (image/png" in page
    client.force_login(make_user(Role.APPROVER, username="not-a-marketer"))
    assert client.get(f"/admin/integrations/connection/creatives/{offer.pk}/").status_code == 403


def test_aem_validity_sync_reads_expiration_and_status_of_the_one_asset(marketer):
    # the beat reads the asset itself (GET /api/assets/<folder>/<name>.json), not a search
    with AEMServer() as aem:
        aem.add("hero.png", expires=FUTURE.isoformat())
        connection = Connection.objects.create(name="AEM", kind="aem", base_url=aem.url,
                                               credentials={"token": AEM_TOKEN}, options={"folder": "offers"})
        campaign, offer = _live_campaign_with_asset(marketer, connection, asset_id="offers/hero.png")
        assert offer.pk in biddable_offer_ids()
        aem.requests.clear()

        aem.assets["hero.png"]["expires"] = PAST.isoformat()  # prism:expirationDate passed
        assert tasks.sync_creative_validity.apply().get() == {"checked": 1, "changed": 1, "errors": 0}
        assert [r.path for r in aem.requests] == ["/api/assets/offers/hero.png.json"]
        assert aem.requests[0].header("Authorization") == f"Bearer {AEM_TOKEN}"
        assert offer.pk not in biddable_offer_ids()

        aem.assets["hero.png"].update(expires=FUTURE.isoformat(), status="rejected")  # dam:status
        tasks.sync_creative_validity.apply().get()
        fresh = campaign_selectors.offer_get_or_none(offer_id=offer.pk)
        assert fresh.creative_blocked_reason == "not approved in AEM (dam:status rejected)"
        assert offer.pk not in biddable_offer_ids()

        aem.assets["hero.png"]["status"] = "approved"
        tasks.sync_creative_validity.apply().get()
        assert offer.pk in biddable_offer_ids()

        del aem.assets["hero.png"]  # deleted in AEM: 404
        tasks.sync_creative_validity.apply().get()
        assert campaign_selectors.offer_get_or_none(offer_id=offer.pk).creative_blocked_reason == \
            "withdrawn: no longer in Adobe AEM Assets"
        assert offer.pk not in biddable_offer_ids()


def test_aprimo_validity_sync_uses_status_only():
    with AprimoServer() as aprimo:
        aprimo.add("r1", "Spring banner")
        connection = Connection.objects.create(
            name="Aprimo", kind="aprimo", base_url=aprimo.url,
            credentials={"client_id": APRIMO_CLIENT, "client_secret": APRIMO_SECRET},
            options={"token_url": aprimo.url + "/login/connect/token"})
        marketer = make_user(Role.MARKETER, username="aprimo-marketer")
        campaign, offer = _live_campaign_with_asset(marketer, connection, asset_id="r1")
        assert offer.pk in biddable_offer_ids()
        aprimo.requests.clear()

        aprimo.records["r1"]["status"] = "Archived"
        assert tasks.sync_creative_validity.apply().get()["changed"] == 1
        [read] = [r for r in aprimo.requests if r.path == "/api/core/record/r1"]
        assert read.header("API-VERSION") == "1" and read.header("Authorization") == "Bearer aprimo-jwt"
        fresh = campaign_selectors.offer_get_or_none(offer_id=offer.pk)
        assert fresh.creative_blocked_reason == "withdrawn in Aprimo (status Archived)" and fresh.creative_valid_until is None
        assert offer.pk not in biddable_offer_ids()

        aprimo.records["r1"]["status"] = "Released"
        tasks.sync_creative_validity.apply().get()
        assert offer.pk in biddable_offer_ids()


def test_the_validity_sync_is_on_the_beat_schedule():
    from config.celery import app

    entry = app.conf.beat_schedule["integrations-sync-creative-validity"]
    assert entry["task"] == "integrations.sync_creative_validity"


def test_test_connection_of_each_dam_says_in_plain_words(bynder, bynder_connection):
    assert services.connection_test(connection_id=bynder_connection.pk) == services.TestResult(
        True, "Connected to Bynder; the asset bank answers.")
    bynder_connection.credentials = {"token": "wrong"}
    bynder_connection.save()
    assert services.connection_test(connection_id=bynder_connection.pk).message == \
        "Bynder refused the credentials (HTTP 401)"
    with AEMServer() as aem:
        aem.add("hero.png")
        ok = Connection.objects.create(name="AEM", kind="aem", base_url=aem.url, credentials={"token": AEM_TOKEN},
                                       options={"folder": "offers"})
        assert services.connection_test(connection_id=ok.pk).message == \
            "Connected to AEM Assets; folder offers holds 1 item(s)."
        missing = Connection.objects.create(name="AEM 2", kind="aem", base_url=aem.url,
                                            credentials={"token": AEM_TOKEN}, options={"folder": "nope"})
        assert services.connection_test(connection_id=missing.pk).message == \
            "AEM Assets does not know folder nope (HTTP 404)"
    with AprimoServer() as aprimo:
        bad = Connection.objects.create(name="Aprimo", kind="aprimo", base_url=aprimo.url,
                                        credentials={"client_id": APRIMO_CLIENT, "client_secret": "wrong"},
                                        options={"token_url": aprimo.url + "/login/connect/token"})
        result = services.connection_test(connection_id=bad.pk)
        assert not result.ok and result.message == "Aprimo refused the client credentials (HTTP 400)"
