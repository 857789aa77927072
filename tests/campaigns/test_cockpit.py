"""The campaign list as a cockpit (issue 19): columns, pacing, filters, saved views, CSV export, clone,
all-or-nothing bulk actions, one number for spend, and the calendar."""
from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse
from django.utils import timezone

from apps.bidding import services as bidding_services
from apps.bidding.wins import spend_pending_key, spend_total_key
from apps.campaigns import services
from apps.campaigns.admin_overview import calendar_bars, calendar_period
from apps.campaigns.cockpit import pacing
from apps.campaigns.models import Campaign, CampaignStatus, Offer, SavedView
from apps.core.roles import Role
from tests.support.admin import changelist

from .conftest import fresh, make_user

pytestmark = pytest.mark.django_db
LIST = "/admin/campaigns/campaign/"
UTC = dt.timezone.utc


def _messages(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


# --- pacing -----------------------------------------------------------------------------------------

def test_pacing_flags_over_and_under_past_the_configured_margin(settings):
    start = dt.datetime(2027, 3, 1, tzinfo=UTC)
    end = start + dt.timedelta(days=10)
    half = start + dt.timedelta(days=5)
    on_pace = pacing(budget=Decimal("1000"), spent=Decimal("540"), start_at=start, end_at=end, now=half)
    assert (round(on_pace.budget_share, 2), on_pace.flight_share, on_pace.flag) == (0.54, 0.5, "")
    assert pacing(budget=Decimal("1000"), spent=Decimal("700"), start_at=start, end_at=end, now=half).flag == "over"
    assert pacing(budget=Decimal("1000"), spent=Decimal("100"), start_at=start, end_at=end, now=half).flag == "under"
    settings.CAMPAIGN_PACING_MARGIN_PCT = 2.0  # read from config at call time
    assert pacing(budget=Decimal("1000"), spent=Decimal("540"), start_at=start, end_at=end, now=half).flag == "over"
    before = pacing(budget=Decimal("1000"), spent=Decimal("0"), start_at=start, end_at=end, now=start - dt.timedelta(1))
    assert before.flag == "" and before.flight_share == 0.0


# --- the list ---------------------------------------------------------------------------------------

def test_list_shows_every_cockpit_column_and_the_owner_and_flight_filters(client, marketer, approver, make_campaign,
                                                                          redis_client):
    live = make_campaign("live", name="Live one", budget=Decimal("1000.00"), approvers=[approver])
    other = make_user(Role.MARKETER, username="other-marketer")
    theirs = make_campaign("draft", by=other, name="Theirs", advertiser="Other brand", start_at=timezone.now() + dt.timedelta(days=60),
                           end_at=timezone.now() + dt.timedelta(days=70))
    client.force_login(approver)  # sees every filter, "awaiting my decision" too
    cl = changelist(client.get(LIST), expect_rows=True)
    html = client.get(LIST).content.decode()
    for header in ("Campaign", "Status", "Owner", "Flight (UTC)", "Budget", "Spent", "Pacing", "Approvals"):
        assert f">{header}<" in html or f">{header}</a>" in html, header
    assert f"{live.start_at:%Y-%m-%d} → {live.end_at:%Y-%m-%d}" in html
    assert "1,000.00 USD" in html and 'data-flag="' in html
    paths = {getattr(s, "field_path", None) or getattr(s, "parameter_name", None) for s in cl.filter_specs}
    assert {"status", "created_by", "channel", "flight"} <= paths
    mine = changelist(client.get(LIST, {"created_by__id__exact": marketer.pk}))
    assert set(mine.result_list) == {live}
    later = changelist(client.get(LIST, {"flight_from": f"{timezone.now() + dt.timedelta(days=59):%Y-%m-%d}"}))
    assert set(later.result_list) == {theirs}
    running = changelist(client.get(LIST, {"flight": "now"}))
    assert set(running.result_list) == {live}
    client.force_login(marketer)
    assert client.get(LIST, {"flight_from": "not-a-date"}).status_code in (200, 302)  # the admin's ?e=1, not a 500


def test_spent_is_the_redis_total_and_says_when_postgres_last_caught_up(client, marketer, approver, make_campaign,
                                                                         redis_client):
    live = make_campaign("live", budget=Decimal("100.00"), approvers=[approver])
    redis_client.set(spend_total_key(live.pk), 12_340_000)  # 12.34 counted by the win path
    redis_client.set(spend_pending_key(live.pk), 12_340_000)
    client.force_login(marketer)
    html = client.get(LIST).content.decode()
    assert 'data-spent="12.340000"' in html and "reconciled —" in html  # not yet flushed: says so
    redis_client.sadd("spend:dirty", live.pk)
    bidding_services.spend_flush(client=redis_client)
    assert fresh(live).spent == Decimal("12.34")
    html = client.get(LIST).content.decode()
    assert 'data-spent="12.340000"' in html and "reconciled" not in html  # one number, in sync
    report = client.get(reverse("admin:campaigns_campaign_export_csv")).content.decode()
    row = next(r for r in csv.DictReader(io.StringIO(report)) if r["id"] == str(live.pk))
    assert row["spent"] == row["spent_recorded"] == "12.340000" and row["reconciled_at"]


def test_csv_export_is_the_filtered_list(client, marketer, approver, make_campaign):
    live = make_campaign("live", name="Export me, please", approvers=[approver])
    make_campaign("draft", name="Not this one")
    client.force_login(marketer)
    response = client.get(reverse("admin:campaigns_campaign_export_csv"), {"status__exact": "live"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert [r["name"] for r in rows] == ["Export me, please"]
    assert rows[0]["owner"] == marketer.username and rows[0]["status"] == "live" and rows[0]["id"] == str(live.pk)
    xlsx = client.get(reverse("admin:campaigns_campaign_export_xlsx"), {"status__exact": "live"})
    assert xlsx.status_code == 200 and xlsx.content[:2] == b"PK"
    import zipfile

    sheet = zipfile.ZipFile(io.BytesIO(xlsx.content)).read("xl/worksheets/sheet1.xml").decode()
    assert "Export me, please" in sheet and "Not this one" not in sheet
    selected = client.post(LIST, {"action": "export_selected_csv", "_selected_action": [live.pk]})
    assert selected.status_code == 302 and f"id__in={live.pk}" in selected["Location"]


def test_saved_views_belong_to_their_user(client, marketer, make_campaign):
    client.force_login(marketer)
    response = client.post(reverse("admin:campaigns_campaign_view_save"), {"name": "Live ones", "query": "status__exact=live"})
    assert response.status_code == 302 and response["Location"].endswith("?status__exact=live")
    view = SavedView.objects.get(user=marketer)
    assert 'data-view="Live ones"' in client.get(LIST).content.decode()
    assert "Give the view a name" in " ".join(_messages(client.post(reverse("admin:campaigns_campaign_view_save"),
                                                                    {"name": " ", "query": ""})))
    other = make_user(Role.MARKETER, username="someone-else")
    client.force_login(other)
    assert 'data-view="Live ones"' not in client.get(LIST).content.decode()
    client.post(reverse("admin:campaigns_campaign_view_delete", args=[view.pk]))
    assert SavedView.objects.filter(pk=view.pk).exists()  # not theirs to delete
    client.force_login(marketer)
    client.post(reverse("admin:campaigns_campaign_view_delete", args=[view.pk]))
    assert not SavedView.objects.filter(pk=view.pk).exists()


def test_clone_makes_a_draft_with_copies_of_the_offers(client, marketer, approver, make_campaign):
    source = make_campaign("live", name="Summer", offers=2, approvers=[approver])
    client.force_login(marketer)
    response = client.post(reverse("admin:campaigns_campaign_clone", args=[source.pk]))
    clone = Campaign.objects.exclude(pk=source.pk).get(name="Copy of Summer")
    assert response.status_code == 302 and response["Location"].endswith(f"/{clone.pk}/change/")
    assert clone.status == CampaignStatus.DRAFT and clone.spent == 0 and clone.created_by == marketer
    assert clone.start_at > timezone.now() and clone.end_at - clone.start_at == source.end_at - source.start_at
    assert sorted(Offer.objects.filter(campaign=clone).values_list("name", flat=True)) == ["Offer 0", "Offer 1"]
    assert fresh(source).status == CampaignStatus.LIVE
    client.force_login(approver)
    client.post(reverse("admin:campaigns_campaign_clone", args=[source.pk]))
    assert Campaign.objects.filter(name="Copy of Summer").count() == 1  # approvers do not create campaigns


# --- bulk: all or nothing ---------------------------------------------------------------------------

def test_bulk_pause_refuses_the_whole_batch_and_lists_each_refusal(client, marketer, approver, make_campaign):
    live = make_campaign("live", name="Running", approvers=[approver])
    draft = make_campaign("draft", name="Not started")
    done = make_campaign("completed", name="Finished", approvers=[approver])
    client.force_login(marketer)
    response = client.post(LIST, {"action": "pause_selected", "_selected_action": [live.pk, draft.pk, done.pk]},
                           follow=True)
    text = " ".join(_messages(response))
    assert "Nothing was changed: 2 campaign(s) cannot pause" in text
    assert "Not started:" in text and "Finished:" in text and "Running:" not in text
    assert fresh(live).status == CampaignStatus.LIVE  # nothing half-done
    with pytest.raises(services.BulkRefused) as refused:
        services.campaign_bulk_transition(campaign_ids=[live.pk, draft.pk, 999_999], action="pause", actor=marketer)
    assert [r.campaign_id for r in refused.value.refusals] == [draft.pk, 999_999]
    assert fresh(live).status == CampaignStatus.LIVE


def test_bulk_pause_then_resume_through_the_lifecycle_services(client, marketer, approver, make_campaign):
    first, second = (make_campaign("live", approvers=[approver]) for _ in range(2))
    client.force_login(marketer)
    response = client.post(LIST, {"action": "pause_selected", "_selected_action": [first.pk, second.pk]}, follow=True)
    assert "Paused: 2 campaign(s)." in _messages(response)
    assert {fresh(first).status, fresh(second).status} == {CampaignStatus.PAUSED}
    assert first.transitions.filter(action="pause", actor=marketer).exists()  # the audit row of the service
    client.post(LIST, {"action": "resume_selected", "_selected_action": [first.pk, second.pk]})
    assert {fresh(first).status, fresh(second).status} == {CampaignStatus.LIVE}
    client.force_login(approver)
    response = client.post(LIST, {"action": "pause_selected", "_selected_action": [first.pk]}, follow=True)
    assert fresh(first).status == CampaignStatus.LIVE  # the service's role check holds in bulk too


# --- calendar ---------------------------------------------------------------------------------------

def test_calendar_places_campaigns_on_their_dates(client, marketer, make_campaign):
    march = dt.datetime(2031, 3, 1, tzinfo=UTC)
    inside = make_campaign("draft", name="Mid March", start_at=march + dt.timedelta(days=10),
                           end_at=march + dt.timedelta(days=20))
    across = make_campaign("draft", name="Feb to mid March", start_at=march - dt.timedelta(days=10),
                           end_at=march + dt.timedelta(days=15, hours=12))
    make_campaign("draft", name="April", start_at=march + dt.timedelta(days=35), end_at=march + dt.timedelta(days=40))
    start, end, scale = calendar_period({"month": "2031-03"})
    assert (start, end, scale) == (march, march + dt.timedelta(days=31), "month")
    bars = {bar["campaign"].name: bar for bar in calendar_bars([inside, across], start=start, end=end)}
    assert bars["Mid March"]["left"] == round(100 * 10 / 31, 3) and bars["Mid March"]["width"] == round(100 * 10 / 31, 3)
    assert bars["Feb to mid March"]["left"] == 0 and bars["Feb to mid March"]["starts_before"]
    client.force_login(marketer)
    html = client.get(reverse("admin:campaigns_campaign_calendar"), {"month": "2031-03"}).content.decode()
    assert f'data-campaign="{inside.pk}"' in html and f'data-campaign="{across.pk}"' in html and "April" not in html
    assert f'href="/admin/campaigns/campaign/{inside.pk}/change/"' in html and 'data-status="draft"' in html
    filtered = client.get(reverse("admin:campaigns_campaign_calendar"), {"month": "2031-03", "q": "Feb to"})
    assert filtered.status_code == 200
    assert f'data-campaign="{inside.pk}"' not in filtered.content.decode()  # filtered like the list
    week = client.get(reverse("admin:campaigns_campaign_calendar"), {"scale": "week", "week": "2031-03-12"})
    assert week.context["start"] == dt.datetime(2031, 3, 10, tzinfo=UTC) and len(week.context["days"]) == 7
    bad = client.get(reverse("admin:campaigns_campaign_calendar"), {"month": "2031-13"})
    assert bad.status_code == 400 and "month" in bad.content.decode()
