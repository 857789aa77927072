"""The overview across campaigns (admin › Campaigns › Overview): its figures for a period equal the
report API's for the same period, compared with the previous period, with a leaderboard that drills
down to the dashboard; and the report API's spend to date is the campaign list's number."""
from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from apps.analytics import events
from apps.bidding.wins import spend_total_key
from apps.campaigns import services as campaign_services
from apps.core import clickhouse as ch
from apps.core.roles import Role

UTC = dt.timezone.utc
pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clickhouse_db")]


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def _user(*roles: str):
    user = get_user_model().objects.create_user(username=f"u{uuid.uuid4().hex[:10]}", password="x" * 12, is_staff=True)
    for role in roles:
        user.groups.add(Group.objects.get(name=role))
    return user


def _row(event_type: str, ts: dt.datetime, **fields) -> tuple:
    us = int(ts.timestamp()) * 1_000_000 + ts.microsecond
    return events.row_to_insert(events.to_row(event_type, uuid.uuid4().hex, us, fields))


def _campaign(marketer, name: str):
    now = dt.datetime.now(UTC)
    return campaign_services.campaign_create(
        actor=marketer, name=name, advertiser="Example", budget=Decimal("1000.00"), channels=["display"],
        start_at=now + dt.timedelta(days=1), end_at=now + dt.timedelta(days=10))


def _events(cid: str, day: dt.datetime, *, bids: int, wins: int, clicks: int, price: float) -> list[tuple]:
    rows = [_row("bid_response", day + dt.timedelta(hours=1, minutes=n % 50), campaign_id=cid, request_id=f"{cid}-{day:%d}-{n}",
                 latency_us=800) for n in range(bids)]
    rows += [_row("win", day + dt.timedelta(hours=2, minutes=n % 50), campaign_id=cid, win_price=price) for n in range(wins)]
    rows += [_row("click", day + dt.timedelta(hours=3, minutes=n % 50), campaign_id=cid) for n in range(clicks)]
    return rows


def test_overview_equals_the_report_api_and_compares_with_the_previous_period(client, api_client, past_window):
    marketer = _user(Role.MARKETER)
    first, second = _campaign(marketer, "Leader"), _campaign(marketer, "Runner-up")
    day1, day2 = past_window[0], past_window[0] + dt.timedelta(days=1)
    a, b = str(first.pk), str(second.pk)
    rows = _events(a, day1, bids=10, wins=4, clicks=1, price=1000.0)
    rows += _events(a, day2, bids=30, wins=12, clicks=3, price=2500.0)
    rows += _events(b, day2, bids=20, wins=5, clicks=2, price=1200.0)
    rows += [_row("activation_sent", day2 + dt.timedelta(hours=4), campaign_id=a, channel="sms"),
             _row("email_open", day2 + dt.timedelta(hours=5), campaign_id=a)]
    rows += _events(a, day2 + dt.timedelta(days=1), bids=99, wins=9, clicks=9, price=9000.0)  # after the period
    ch.insert("analytics_events", events.COLUMNS, rows)

    client.force_login(marketer)
    period = {"from": f"{day2:%Y-%m-%d}", "to": f"{day2:%Y-%m-%d}"}
    response = client.get("/admin/campaigns/campaign/overview/", period)
    assert response.status_code == 200, response.content.decode()[:500]
    board = [row for row in response.context["rows"] if row["id"] in (a, b)]
    assert [row["id"] for row in board] == [a, b]  # leaderboard by spend

    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=marketer).key}")
    for row in board:
        api = api_client.get(f"/v1/reports/campaigns/{row['id']}", {**period, "granularity": "day"})
        assert api.status_code == 200, api.content
        totals = api.json()["totals"]
        for key in ("bids", "wins", "clicks"):
            assert row[key] == totals[key], (key, row, totals)
        assert row["spend"] == pytest.approx(totals["spend"], abs=1e-6)
        assert row["ctr"] == pytest.approx(totals["ctr"])
        assert row["win_rate"] == pytest.approx(totals["win_rate"])
    leader = board[0]
    assert (leader["bids"], leader["wins"], leader["clicks"], leader["spend"]) == (30, 12, 3, 30.0)
    assert leader["spend_change"] == pytest.approx((30.0 - 4.0) / 4.0)  # vs day 1, the previous period
    assert board[1]["spend_change"] is None  # nothing before: new
    assert leader["messages"] == {"sms": {"activation_sent": 1}, "email": {"email_open": 1}}
    html = response.content.decode()
    assert f"campaign={a}&granularity=day" in html and "back=overview" in html  # drill down, and back
    dashboard = client.get("/admin/analytics/dashboard/", {"campaign": a, "back": "overview"})
    assert 'id="to-overview"' in dashboard.content.decode() and "Back to the overview" in dashboard.content.decode()
    assert client.get("/admin/campaigns/campaign/overview/", {"from": "2027-02-30", "to": "2027-03-01"}).status_code == 400
    assert client.get("/admin/campaigns/campaign/overview/", {"period": "1y"}).status_code == 400


def test_report_api_spend_to_date_is_the_lists_number(api_client, redis_client):
    marketer = _user(Role.MARKETER)
    campaign = _campaign(marketer, "Spend")
    redis_client.set(spend_total_key(campaign.pk), 2_500_000)
    api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=marketer).key}")
    body = api_client.get(f"/v1/reports/campaigns/{campaign.pk}").json()
    assert body["spend_to_date"] == {"spent": "2.500000", "recorded": "0.000000", "pending": "0.000000",
                                     "in_sync": False, "reconciled_at": None}
