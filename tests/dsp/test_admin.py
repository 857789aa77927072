"""DSP admin: platforms list and edit (credentials write-only), per-platform hourly charts."""
from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from apps.analytics import testing
from apps.analytics.emitter import emit
from apps.dsp import services
from apps.dsp.models import Platform
from tests.factories import make_user
from tests.support.admin import changelist

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    client.force_login(make_user(superuser=True))
    return client


def test_platform_list_filters_and_never_shows_credentials(admin_client):
    services.platform_save(platform=Platform(name="meta-x", kind="meta", endpoint_url="http://127.0.0.1:1/meta",
                                             credentials={"app_secret": "do-not-show"}))
    response = admin_client.get("/admin/dsp/platform/")
    changelist(response, expect_rows=True)
    assert 'id="dsp-stats-link"' in response.content.decode()
    page = admin_client.get(f"/admin/dsp/platform/{Platform.objects.get(name='meta-x').pk}/change/").content.decode()
    assert "do-not-show" not in response.content.decode() and "do-not-show" not in page
    assert 'name="credentials__app_secret"' in page and "<strong>set</strong>" in page


def test_an_admin_edit_keeps_credentials_unless_new_ones_are_given(admin_client):
    row = services.platform_save(platform=Platform(name="amz", kind="amazon", endpoint_url="http://127.0.0.1:1/a",
                                                   credentials={"bearer_token": "t0"}))
    form = {"name": "amz", "kind": "amazon", "endpoint_url": "http://127.0.0.1:1/a", "enabled": "on", "params": "{}",
            "timeout_ms": "150", "qps_cap": "0", "hourly_budget": "10", "bid_adjustment": "1", "currency": "USD",
            "credentials__bearer_token": "", "changes-TOTAL_FORMS": "0", "changes-INITIAL_FORMS": "0"}
    response = admin_client.post(f"/admin/dsp/platform/{row.pk}/change/", form)
    assert response.status_code == 302, response.content.decode()[:3000]
    row.refresh_from_db()
    assert row.timeout_ms == 150 and row.credentials == {"bearer_token": "t0"} and row.hourly_budget == Decimal("10")
    form["credentials__bearer_token"] = "t1"
    admin_client.post(f"/admin/dsp/platform/{row.pk}/change/", form)
    row.refresh_from_db()
    assert row.credentials == {"bearer_token": "t1"}
    assert row.changes.count() == 3


def test_hourly_charts_show_requests_timeouts_errors_latency_and_wins(admin_client):
    testing.clickhouse_schema()
    name = f"stats-{uuid.uuid4().hex[:8]}"
    services.platform_save(platform=Platform(name=name, kind="openrtb", endpoint_url="http://127.0.0.1:1/x",
                                             hourly_budget=Decimal("5")))
    for ms in (10, 20, 30, 40):
        emit("dsp_bid", request_id=f"r{ms}", platform=name, reason="bid", latency_us=ms * 1000, price=1.0)
    emit("dsp_bid", request_id="r-nb", platform=name, reason="no_bid", latency_us=5000)
    emit("dsp_timeout", request_id="r-t", platform=name, latency_us=200_000)
    emit("dsp_error", request_id="r-e", platform=name, reason="http_500", latency_us=3000)
    emit("dsp_win", request_id="r10", platform=name, bid_id="b", imp_id="1", price=1.0, win_price=0.9)
    testing.flush_and_consume()
    response = admin_client.get("/admin/dsp/platform/stats/", {"hours": 2})
    assert response.status_code == 200 and response.context["error"] is None
    rows = [r for r in response.context["report"]["rows"] if r["platform"] == name]
    assert len(rows) == 1
    row = rows[0]
    assert (row["requests"], row["bids"], row["timeouts"], row["errors"], row["wins"]) == (7, 4, 1, 1, 1)
    assert row["bid_rate"] == pytest.approx(4 / 7)
    assert row["latency_p50_ms"] == 20 and row["latency_p99_ms"] == 200
    assert row["budget"] == 5.0
    assert name in response.context["chart_data"]["series"]
    assert 'id="chart-latency"' in response.content.decode()
