"""The dashboard and the live view in headless Chromium against the real web process (uvicorn,
config.asgi: static files, session auth, websocket)."""
from __future__ import annotations

import datetime as dt
import os
import shutil
import sys
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.analytics import events
from apps.campaigns import services as campaign_services
from apps.core import clickhouse as ch
from apps.core.roles import Role
from tests.support.ports import free_port
from tests.support.processes import start_process
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.e2e,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="chromium and chromedriver are needed"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.usefixtures("clickhouse_db"),
]


@pytest.fixture
def web_server(tmp_path):
    """uvicorn serving config.asgi on a free port, on the test database; stopped afterwards."""
    db = settings.DATABASES["default"]
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "ANALYTICS_LIVE_INTERVAL_MS": "300",
    }
    base = f"http://127.0.0.1:{port}"
    with start_process([sys.executable, "-m", "uvicorn", "config.asgi:application", "--host", "127.0.0.1",
                        "--port", str(port)], env=env, ready=f"{base}/live", log_path=tmp_path / "uvicorn.log",
                       timeout=30, name="uvicorn"):
        yield base


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1400,1200"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _wait(predicate, timeout: float = 15.0):
    return wait_until(predicate, timeout, 0.1, message="the page's state")


def test_dashboard_charts_and_live_view_render(web_server, browser, past_window, tmp_path):
    from selenium.webdriver.common.by import By

    user = get_user_model().objects.create_user(username=f"m{uuid.uuid4().hex[:8]}", password="pw-" + "x" * 12, is_staff=True)
    user.groups.add(Group.objects.get(name=Role.MARKETER))
    now = dt.datetime.now(UTC)
    campaign = campaign_services.campaign_create(
        actor=user, name="Browser campaign", advertiser="Example", budget=Decimal("100.00"), channels=["display"],
        start_at=now + dt.timedelta(days=1), end_at=now + dt.timedelta(days=3),
    )
    start = past_window[0]
    rows = []
    for hour in range(12):
        ts = start + dt.timedelta(hours=hour, minutes=1)
        us = int(ts.timestamp()) * 1_000_000
        rows += [events.row_to_insert(events.to_row("bid_response", uuid.uuid4().hex, us, {"campaign_id": str(campaign.pk), "request_id": f"{hour}-{n}", "latency_us": 900 + n * 7})) for n in range(20 + hour)]
        rows += [events.row_to_insert(events.to_row("win", uuid.uuid4().hex, us, {"campaign_id": str(campaign.pk), "win_price": 1200.0})) for _ in range(hour + 2)]
    ch.insert("analytics_events", events.COLUMNS, rows)

    browser.get(f"{web_server}/admin/login/?next=/admin/")
    browser.find_element(By.NAME, "username").send_keys(user.username)
    browser.find_element(By.NAME, "password").send_keys("pw-" + "x" * 12)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    assert _wait(lambda: "/admin/login" not in browser.current_url)

    browser.get(
        f"{web_server}/admin/analytics/dashboard/?campaign={campaign.pk}&granularity=hour"
        f"&from={start:%Y-%m-%dT%H:%M}&to={start + dt.timedelta(hours=12):%Y-%m-%dT%H:%M}"
    )
    assert _wait(lambda: browser.execute_script("return document.body.dataset.chartsReady")) == "3"
    # Chart.js (served from static/vendor) drew something on every canvas
    painted = browser.execute_script(
        """return Array.from(document.querySelectorAll('canvas')).map(c => {
             const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
             let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++; return n; });"""
    )
    assert len(painted) == 3 and all(n > 1000 for n in painted), painted  # latency: the operations page
    assert browser.find_element(By.ID, "report-totals").text.split("\n")[1] == str(sum(20 + h for h in range(12)))
    browser.save_screenshot(str(tmp_path / "dashboard.png"))

    browser.get(f"{web_server}/admin/analytics/dashboard/live/")
    assert _wait(lambda: int(browser.execute_script("return document.body.dataset.livePushes || 0")) >= 2)
    assert browser.find_element(By.ID, "live-status").text == "live"
    browser.save_screenshot(str(tmp_path / "live.png"))
