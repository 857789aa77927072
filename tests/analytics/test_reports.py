"""GET /v1/reports/campaigns/{id}: figures equal an independent computation from the raw rows."""
from __future__ import annotations

import datetime as dt
import random
import uuid
from collections import defaultdict
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.authtoken.models import Token

from apps.analytics import events, selectors
from apps.campaigns import services as campaign_services
from apps.core import clickhouse as ch
from apps.core.roles import Role
from tests.support.ports import free_port

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


@pytest.fixture
def marketer():
    return _user(Role.MARKETER)


@pytest.fixture
def campaign(marketer):
    now = dt.datetime.now(UTC)
    return campaign_services.campaign_create(
        actor=marketer, name="Report test", advertiser="Example", budget=Decimal("1000.00"),
        channels=["display"], start_at=now + dt.timedelta(days=1), end_at=now + dt.timedelta(days=10),
    )


@pytest.fixture
def client_for(api_client):
    def login(user):
        api_client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
        return api_client

    return login


def _row(event_type: str, ts: dt.datetime, **fields) -> tuple:
    us = int(ts.timestamp()) * 1_000_000 + ts.microsecond
    return events.row_to_insert(events.to_row(event_type, uuid.uuid4().hex, us, fields))


@pytest.fixture
def window(past_window):
    return past_window


@pytest.fixture
def traffic(campaign, window):
    """Bids, no-bids, wins and clicks over three days for our campaign and another one; some
    batches inserted twice (the at-least-once delivery the reports must absorb)."""
    rng = random.Random(7)
    start, _ = window
    ours, other = str(campaign.pk), f"other-{uuid.uuid4().hex[:8]}"
    rows = []
    for n in range(1500):
        ts = start + dt.timedelta(seconds=rng.randrange(0, 3 * 86400), microseconds=rng.randrange(0, 10**6))
        req = f"req-{n}"
        kind = rng.random()
        if kind < 0.25:
            rows.append(_row("no_bid", ts, request_id=req, reason="no_candidates", latency_us=rng.randrange(50, 900)))
            continue
        cid = ours if kind < 0.8 else other
        latency = rng.randrange(100, 8000)
        rows.append(_row("bid_response", ts, request_id=req, campaign_id=cid, price=2.0, latency_us=latency))
        if rng.random() < 0.2:  # a second impression in the same request
            rows.append(_row("bid_response", ts, request_id=req, campaign_id=cid, price=2.0, latency_us=latency))
        if rng.random() < 0.4:
            win_ts = ts + dt.timedelta(seconds=rng.randrange(0, 30))
            rows.append(_row("win", win_ts, request_id=req, campaign_id=cid, win_price=round(rng.uniform(0.5, 2.0), 4)))
            if rng.random() < 0.1:
                rows.append(_row("click", win_ts + dt.timedelta(seconds=5), request_id=req, campaign_id=cid))
    # a sampled bid_request stream that must not be counted
    rows += [_row("bid_request", start + dt.timedelta(minutes=i), request_id=f"req-{i}", extra={"sample_rate": 0.01}) for i in range(30)]
    ch.insert("analytics_events", events.COLUMNS, rows)
    ch.insert("analytics_events", events.COLUMNS, rows[:400])  # re-delivered batch
    return ours


def _independent(window, campaign_id: str, granularity: str) -> dict[str, dict]:
    """Per-bucket figures from the raw rows, deduplicated by event_id here in Python."""
    start, end = window
    raw = ch.execute(
        "SELECT event_id, event_type, timestamp, request_id, campaign_id, win_price, latency_us FROM analytics_events "
        "WHERE timestamp >= toDateTime(%(s)s) AND timestamp < toDateTime(%(e)s)",
        {"s": int(start.timestamp()), "e": int(end.timestamp())},
    )
    unique = {row[0]: row for row in raw}
    assert len(unique) < len(raw)  # the duplicates really are in the table
    out: dict[str, dict] = defaultdict(lambda: {"requests_ids": set(), "no_bids": 0, "bids": 0, "wins": 0, "spend": 0.0, "clicks": 0, "lat": []})
    for _, event_type, ts, request_id, cid, win_price, latency in unique.values():
        ts = ts.astimezone(UTC)
        bucket = ts.replace(minute=0, second=0) if granularity == "hour" else ts.replace(hour=0, minute=0, second=0)
        key = bucket.isoformat().replace("+00:00", "Z")
        item = out[key]
        if event_type == "bid_response":
            item["requests_ids"].add(request_id)
        if event_type == "no_bid":
            item["no_bids"] += 1
        if cid != campaign_id:
            continue
        if event_type == "bid_response":
            item["bids"] += 1
            item["lat"].append(latency)
        elif event_type == "win":
            item["wins"] += 1
            item["spend"] += win_price / 1000
        elif event_type == "click":
            item["clicks"] += 1
    result = {}
    for key, item in out.items():
        lat = sorted(item["lat"])
        q = (lambda level, lat=lat: lat[min(len(lat) - 1, int(level * len(lat)))] if lat else None)
        result[key] = {
            "requests": len(item["requests_ids"]) + item["no_bids"],
            "bids": item["bids"], "wins": item["wins"], "spend": item["spend"], "clicks": item["clicks"],
            "ctr": item["clicks"] / item["wins"] if item["wins"] else None,
            "win_rate": item["wins"] / item["bids"] if item["bids"] else None,
            "latency_p50_us": q(0.5), "latency_p95_us": q(0.95), "latency_p99_us": q(0.99),
        }
    return result


@pytest.mark.parametrize("granularity", ["hour", "day"])
def test_report_equals_independent_computation(client_for, marketer, campaign, traffic, window, granularity):
    start, end = window
    response = client_for(marketer).get(
        f"/v1/reports/campaigns/{campaign.pk}",
        {"from": start.isoformat(), "to": end.isoformat().replace("+00:00", "Z"), "granularity": granularity},
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["campaign_id"] == str(campaign.pk) and body["campaign_name"] == "Report test"
    assert body["granularity"] == granularity
    assert len(body["buckets"]) == (72 if granularity == "hour" else 3)
    expected = _independent(window, traffic, granularity)
    totals = defaultdict(float)
    for bucket in body["buckets"]:
        want = expected.get(bucket["bucket"], {"requests": 0, "bids": 0, "wins": 0, "spend": 0.0, "clicks": 0, "ctr": None,
                                               "win_rate": None, "latency_p50_us": None, "latency_p95_us": None, "latency_p99_us": None})
        for name in ("requests", "bids", "wins", "clicks", "latency_p50_us", "latency_p95_us", "latency_p99_us"):
            assert bucket[name] == want[name], (bucket["bucket"], name)
        assert bucket["spend"] == pytest.approx(want["spend"], abs=1e-6)
        for name in ("ctr", "win_rate"):
            assert (bucket[name] is None and want[name] is None) or bucket[name] == pytest.approx(want[name])
        for name in ("requests", "bids", "wins", "clicks", "spend"):
            totals[name] += want[name]
    assert body["totals"]["bids"] == totals["bids"] > 100
    assert body["totals"]["wins"] == totals["wins"] > 50
    assert body["totals"]["clicks"] == totals["clicks"] > 0
    assert body["totals"]["requests"] == totals["requests"]
    assert body["totals"]["spend"] == pytest.approx(totals["spend"], abs=1e-5)
    assert body["totals"]["win_rate"] == pytest.approx(totals["wins"] / totals["bids"])


def test_date_only_range_covers_whole_days(client_for, marketer, campaign, traffic, window):
    start, _ = window
    day = start.date()
    response = client_for(marketer).get(
        f"/v1/reports/campaigns/{campaign.pk}/", {"from": day.isoformat(), "to": day.isoformat(), "granularity": "day"}
    )
    assert response.status_code == 200
    body = response.json()
    assert body["from"] == f"{day.isoformat()}T00:00:00Z"
    assert body["to"] == f"{(day + dt.timedelta(days=1)).isoformat()}T00:00:00Z"
    assert [b["bucket"] for b in body["buckets"]] == [f"{day.isoformat()}T00:00:00Z"]
    assert body["buckets"][0]["bids"] == _independent(window, traffic, "day")[f"{day.isoformat()}T00:00:00Z"]["bids"]


@pytest.mark.parametrize(
    "params, field",
    [
        ({"granularity": "week"}, "granularity"),
        ({"from": "yesterday"}, "from"),
        ({"to": "2024-13-01"}, "to"),
        ({"from": "2024-05-02", "to": "2024-05-01"}, "from"),
        ({"from": "2020-01-01", "to": "2024-01-01", "granularity": "hour"}, "to"),
    ],
)
def test_bad_parameters_are_400_naming_the_parameter(client_for, marketer, campaign, params, field):
    response = client_for(marketer).get(f"/v1/reports/campaigns/{campaign.pk}", params)
    assert response.status_code == 400
    assert response.json()["field"] == field


def test_auth_and_roles(api_client, client_for, campaign):
    url = f"/v1/reports/campaigns/{campaign.pk}"
    assert api_client.get(url).status_code == 401
    assert client_for(_user(Role.APPROVER)).get(url).status_code == 403
    assert client_for(_user(Role.ADMIN)).get(url).status_code == 200


def test_unknown_campaign_is_404(client_for, marketer):
    response = client_for(marketer).get("/v1/reports/campaigns/987654321")
    assert response.status_code == 404 and response.json()["error"] == "not_found"


def test_clickhouse_down_is_503(client_for, marketer, campaign, settings):
    port = free_port()  # nobody listens there
    settings.CLICKHOUSE_URL = f"clickhouse://default@127.0.0.1:{port}/{ch.database()}"
    response = client_for(marketer).get(f"/v1/reports/campaigns/{campaign.pk}")
    assert response.status_code == 503 and response["Retry-After"] == "5"
    assert response.json() == {"error": "unavailable", "detail": "clickhouse is unavailable right now; retry in a few seconds"}


def test_report_is_in_the_openapi_schema(client_for, marketer):
    response = client_for(marketer).get("/v1/schema/", {"format": "json"})
    assert response.status_code == 200
    operation = response.json()["paths"]["/v1/reports/campaigns/{campaign_id}"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"from", "to", "granularity"}


def test_selector_report_without_events_has_empty_buckets(clickhouse_db):
    start = dt.datetime(2000, 3, 1, tzinfo=UTC)
    report = selectors.campaign_report(campaign_id="nothing-here", start=start, end=start + dt.timedelta(hours=3), granularity="hour")
    assert [b["bids"] for b in report["buckets"]] == [0, 0, 0]
    assert report["buckets"][0]["latency_p50_us"] is None and report["totals"]["ctr"] is None


@pytest.mark.parametrize("name", ["granularity", "from", "to"])
def test_empty_parameter_is_400_not_the_default(client_for, marketer, campaign, name):
    response = client_for(marketer).get(f"/v1/reports/campaigns/{campaign.pk}", {name: ""})
    assert response.status_code == 400
    assert response.json()["field"] == name
