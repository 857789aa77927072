"""Admin dashboard and the live websocket view."""
from __future__ import annotations

import datetime as dt
import json
import uuid
from decimal import Decimal

import pytest
from asgiref.sync import sync_to_async
from asgiref.testing import ApplicationCommunicator
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.analytics import events
from apps.analytics.consumers import LiveStatsConsumer
from apps.campaigns import services as campaign_services
from apps.core import clickhouse as ch
from apps.core.roles import Role

UTC = dt.timezone.utc
pytestmark = pytest.mark.usefixtures("clickhouse_db")


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


class WebsocketCommunicator(ApplicationCommunicator):
    """channels.testing.WebsocketCommunicator's essentials (importing channels.testing needs daphne,
    which this project does not install)."""

    def __init__(self, application, path: str, headers: list | None = None) -> None:
        super().__init__(application, {
            "type": "websocket", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers or [], "subprotocols": [], "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80),
        })

    async def connect(self, timeout: float = 5):
        await self.send_input({"type": "websocket.connect"})
        response = await self.receive_output(timeout)
        if response["type"] == "websocket.close":
            return False, response.get("code", 1000)
        return True, response.get("subprotocol")

    async def receive_json_from(self, timeout: float = 5):
        response = await self.receive_output(timeout)
        assert response["type"] == "websocket.send", response
        return json.loads(response["text"])

    async def disconnect(self, code: int = 1000, timeout: float = 2) -> None:
        await self.send_input({"type": "websocket.disconnect", "code": code})
        await self.wait(timeout)


def make_user(*roles: str, staff: bool = True):
    user = get_user_model().objects.create_user(username=f"u{uuid.uuid4().hex[:10]}", password="x" * 12, is_staff=staff)
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    return user


def _row(event_type: str, ts: dt.datetime, **fields) -> tuple:
    us = int(ts.timestamp()) * 1_000_000 + ts.microsecond
    return events.row_to_insert(events.to_row(event_type, uuid.uuid4().hex, us, fields))


@pytest.fixture
async def close_thread_connections():
    """Async tests reach the DB from asgiref's worker thread; close that thread's connection so the
    test database can be dropped at the end of the session."""
    yield
    from django.db import connections

    await sync_to_async(connections.close_all)()


@pytest.fixture
def campaign_with_events(db, past_window):
    marketer = make_user(Role.MARKETER)
    now = dt.datetime.now(UTC)
    campaign = campaign_services.campaign_create(
        actor=marketer, name="Dashboard test", advertiser="Example", budget=Decimal("1000.00"),
        channels=["display"], start_at=now + dt.timedelta(days=1), end_at=now + dt.timedelta(days=10),
    )
    start = past_window[0]
    rows = []
    for hour in range(6):
        ts = start + dt.timedelta(hours=hour, minutes=5)
        for n in range(10 + hour):
            rows.append(_row("bid_response", ts, campaign_id=str(campaign.pk), request_id=f"{hour}-{n}", latency_us=500 + 10 * n))
        for _ in range(hour + 1):
            rows.append(_row("win", ts, campaign_id=str(campaign.pk), win_price=1500.0))
        rows.append(_row("click", ts, campaign_id=str(campaign.pk)))
    ch.insert("analytics_events", events.COLUMNS, rows)
    return marketer, campaign, start


def test_dashboard_renders_report_and_chart_data(client, campaign_with_events):
    marketer, campaign, start = campaign_with_events
    client.force_login(marketer)
    response = client.get(
        "/admin/analytics/dashboard/",
        {"campaign": campaign.pk, "from": f"{start:%Y-%m-%dT%H:%M}", "to": f"{start:%Y-%m-%d}T06:00", "granularity": "hour"},
    )
    assert response.status_code == 200
    html = response.content.decode()
    assert response.context["error"] is None, response.context["error"]
    assert "vendor/chartjs/chart.umd.js" in html and 'id="chart-spend"' in html
    assert 'id="chart-latency"' not in html and "µs" not in html  # engineering latency: the operations page
    assert f"#{campaign.pk} Dashboard test" in html
    assert "platform-wide" in html  # requests are every campaign's opportunities, and say so
    rows = response.context["rows"]
    assert rows[0]["label"] == f"{start:%Y-%m-%d} 00:00" and rows[0]["ctr_pct"] == "100.00 %"  # one format, percents
    assert f"/admin/campaigns/campaign/{campaign.pk}/change/" in html  # a link to the campaign
    data = json.loads(html.split('<script id="chart-data" type="application/json">')[1].split("</script>")[0])
    assert data["bids"] == [10, 11, 12, 13, 14, 15]
    assert data["wins"] == [1, 2, 3, 4, 5, 6]
    assert data["spend"] == [1.5, 3.0, 4.5, 6.0, 7.5, 9.0]
    assert data["ctr"][0] == 100.0 and data["p50"][0] == 550
    totals = response.context["report"]["totals"]
    assert totals["bids"] == 75 and totals["wins"] == 21 and totals["clicks"] == 6


def test_dashboard_bad_range_shows_the_error(client, campaign_with_events):
    marketer, campaign, start = campaign_with_events
    client.force_login(marketer)
    day = start.date()
    response = client.get("/admin/analytics/dashboard/", {"campaign": campaign.pk, "from": f"{day.replace(day=day.day + 1)}", "to": f"{day}"})
    assert response.status_code == 200
    assert "from: &#x27;from&#x27; must be earlier" in response.content.decode()


def test_dashboard_without_campaign_shows_the_picker(client, db):
    client.force_login(make_user(Role.APPROVER))
    response = client.get("/admin/analytics/dashboard/")
    assert response.status_code == 200 and b"pick a campaign" in response.content


def test_dashboard_opens_on_the_newest_campaign(client, campaign_with_events):
    marketer, campaign, start = campaign_with_events
    client.force_login(marketer)
    response = client.get("/admin/analytics/dashboard/")
    assert response.status_code == 200
    assert response.context["campaign_id"] == str(campaign.pk)
    assert response.context["report"] is not None and 'id="chart-spend"' in response.content.decode()


def _live_campaign(marketer, name: str):
    from tests.campaigns.conftest import OFFER_DEFAULTS

    now = dt.datetime.now(UTC)
    campaign = campaign_services.campaign_create(
        actor=marketer, name=name, advertiser="Example", budget=Decimal("1000.00"), channels=["display"],
        start_at=now - dt.timedelta(hours=2), end_at=now + dt.timedelta(days=10))
    campaign_services.offer_create(campaign_id=campaign.pk, actor=marketer, **OFFER_DEFAULTS)
    campaign_services.campaign_submit(campaign_id=campaign.pk, actor=marketer)
    campaign_services.campaign_approve(campaign_id=campaign.pk, actor=make_user(Role.APPROVER))
    campaign_services.campaign_go_live(campaign_id=campaign.pk, actor=marketer)
    return campaign


def test_dashboard_opens_on_a_live_campaign_with_data_not_the_newest_draft(client, db, clickhouse_db):
    marketer = make_user(Role.MARKETER)
    live = _live_campaign(marketer, "Live with data")
    now = dt.datetime.now(UTC)
    campaign_services.campaign_create(  # newer, but an empty draft
        actor=marketer, name="Empty draft", advertiser="Example", budget=Decimal("10.00"), channels=["display"],
        start_at=now + dt.timedelta(days=1), end_at=now + dt.timedelta(days=2))
    ch.insert("analytics_events", events.COLUMNS,
              [_row("bid_response", now - dt.timedelta(minutes=30), campaign_id=str(live.pk), request_id=f"r{n}",
                    latency_us=700) for n in range(5)])
    try:
        client.force_login(marketer)
        response = client.get("/admin/analytics/dashboard/")
        assert response.status_code == 200
        assert response.context["campaign_id"] == str(live.pk)
        assert response.context["report"]["totals"]["bids"] >= 5  # (ids restart per test database)
    finally:
        ch.execute("ALTER TABLE analytics_events DELETE WHERE campaign_id = %(cid)s",
                   {"cid": str(live.pk)}, kind="ddl")


def test_dashboard_exports_csv_and_scales_sampled_requests(client, campaign_with_events):
    marketer, campaign, start = campaign_with_events
    ch.insert("analytics_events", events.COLUMNS, [
        _row("bid_request", start + dt.timedelta(minutes=10), request_id=f"s{n}", extra={"sample_rate": 0.01})
        for n in range(3)])
    client.force_login(marketer)
    params = {"campaign": campaign.pk, "from": f"{start:%Y-%m-%dT%H:%M}", "to": f"{start:%Y-%m-%d}T06:00",
              "granularity": "hour"}
    page = client.get("/admin/analytics/dashboard/", params)
    assert page.context["requests_estimate"] == {"sampled": 3, "estimate": 300}
    assert "estimate" in page.content.decode() and "≈ 300" in page.content.decode()
    response = client.get("/admin/analytics/dashboard/", {**params, "export": "csv"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    lines = response.content.decode().splitlines()
    assert lines[0] == "bucket,requests,bids,wins,spend,clicks,ctr,win_rate"
    assert len(lines) == 7 and lines[1].split(",")[2:6] == ["10", "1", "1.5", "1"]


def test_latency_lives_on_the_operations_page_for_admins(client, campaign_with_events):
    marketer, campaign, start = campaign_with_events
    params = {"campaign": campaign.pk, "from": f"{start:%Y-%m-%dT%H:%M}", "to": f"{start:%Y-%m-%d}T06:00"}
    client.force_login(marketer)
    assert client.get("/admin/analytics/dashboard/operations/", params).status_code == 403
    assert b"to-operations" not in client.get("/admin/analytics/dashboard/", params).content
    client.force_login(make_user(Role.ADMIN))
    response = client.get("/admin/analytics/dashboard/operations/", params)
    assert response.status_code == 200 and 'id="chart-latency"' in response.content.decode()
    assert response.context["latency_chart"]["p50"][0] == 550
    assert b"to-operations" in client.get("/admin/analytics/dashboard/", params).content


def test_the_dashboard_and_the_operations_page_share_one_filter_form(client, campaign_with_events):
    """One template (admin/analytics/report_base.html) owns the style, breadcrumbs and filter form of
    both report pages: the same form, the dashboard alone offering "pick a campaign"."""
    _, campaign, start = campaign_with_events
    params = {"campaign": campaign.pk, "from": f"{start:%Y-%m-%dT%H:%M}", "to": f"{start:%Y-%m-%d}T06:00"}
    client.force_login(make_user(Role.ADMIN))
    pages = {name: client.get(url, params) for name, url in
             [("Dashboard", "/admin/analytics/dashboard/"), ("Operations", "/admin/analytics/dashboard/operations/")]}
    for title, response in pages.items():
        assert response.status_code == 200
        assert "admin/analytics/report_base.html" in [t.name for t in response.templates]
        html = response.content.decode()
        assert f"Analytics &rsaquo; {title}</div>" in html
        for field in ('name="campaign"', 'name="from"', 'name="to"', 'name="granularity"', 'id="report-form"'):
            assert html.count(field) == 1, (title, field)
        assert f'<option value="{campaign.pk}" selected>' in html
    assert "— pick a campaign —" in pages["Dashboard"].content.decode()
    assert "— pick a campaign —" not in pages["Operations"].content.decode()


def test_dashboard_is_listed_in_the_admin_for_roles_only(client, db):
    marketer, outsider = make_user(Role.MARKETER), make_user()
    client.force_login(marketer)
    assert b"/admin/analytics/dashboard/" in client.get("/admin/").content
    client.force_login(outsider)
    assert b"/admin/analytics/dashboard/" not in client.get("/admin/").content
    assert client.get("/admin/analytics/dashboard/").status_code == 403
    assert client.get("/admin/analytics/dashboard/live/").status_code == 403
    client.logout()
    assert client.get("/admin/analytics/dashboard/").status_code == 302  # to the login page


def test_live_page_renders(client, db):
    client.force_login(make_user(Role.MARKETER))
    response = client.get("/admin/analytics/dashboard/live/")
    assert response.status_code == 200 and b"/ws/analytics/live/" in response.content


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_live_websocket_pushes_bids_per_second(close_thread_connections):
    user = await sync_to_async(make_user)(Role.MARKETER)
    second = dt.datetime.now(UTC).replace(microsecond=0) - dt.timedelta(seconds=5)
    rows = [_row("bid_response", second, campaign_id="live", latency_us=1000 + n) for n in range(40)]
    await sync_to_async(ch.insert)("analytics_events", events.COLUMNS, rows)

    communicator = WebsocketCommunicator(LiveStatsConsumer.as_asgi(), "/ws/analytics/live/")
    communicator.scope["user"] = user
    connected, _ = await communicator.connect()
    assert connected
    first = await communicator.receive_json_from(timeout=10)
    point = next(p for p in first["points"] if p["t"] == int(second.timestamp()))
    assert point["bids"] >= 40 and point["latency_p50_us"] is not None
    assert len(first["points"]) == 60
    second_push = await communicator.receive_json_from(timeout=5)  # and again a second later
    assert second_push["now"] >= first["now"]
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_live_websocket_refuses_non_staff_and_anonymous(close_thread_connections):
    from django.contrib.auth.models import AnonymousUser

    for user in (AnonymousUser(), await sync_to_async(make_user)(Role.MARKETER, staff=False),
                 await sync_to_async(make_user)()):
        communicator = WebsocketCommunicator(LiveStatsConsumer.as_asgi(), "/ws/analytics/live/")
        communicator.scope["user"] = user
        connected, code = await communicator.connect()
        assert not connected and code == 4403


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
async def test_live_websocket_through_the_web_asgi_app_with_a_session(close_thread_connections):
    """The real ASGI application: routing in apps.core.routing, session auth middleware."""
    from django.test import Client

    from config.asgi import application

    user = await sync_to_async(make_user)(Role.MARKETER)
    client = Client()
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    communicator = WebsocketCommunicator(application, "/ws/analytics/live/", headers=[(b"cookie", cookie)])
    connected, _ = await communicator.connect()
    assert connected
    assert "points" in await communicator.receive_json_from(timeout=10)
    await communicator.disconnect()
