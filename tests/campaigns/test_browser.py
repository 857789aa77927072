"""One real-browser check of the approval flow: headless Chromium (Debian's) against the live server.

Skipped only where Chromium is not installed (CI installs it: WITH_BROWSER=1 scripts/setup.sh)."""
from __future__ import annotations

import os

import pytest

from .conftest import PASSWORD, fresh

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

pytestmark = [
    pytest.mark.browser,
    # live_server needs real transactions; restore the roles and approval rules of the data migrations
    # that an earlier transactional test's flush removed.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is not installed (WITH_BROWSER=1 scripts/setup.sh)"),
]


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--window-size=1280,1024", f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def test_approver_approves_a_campaign_in_the_browser(live_server, browser, make_campaign, approver):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    campaign = make_campaign("in_review", name="Holiday gift guide")
    wait = WebDriverWait(browser, 20)

    browser.get(f"{live_server.url}/admin/login/?next=/admin/campaigns/campaign/%3Fawaiting%3Dme")
    browser.find_element(By.ID, "id_username").send_keys(approver.username)
    browser.find_element(By.ID, "id_password").send_keys(PASSWORD)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()

    # the campaign is listed under "Awaiting my decision"; open it
    wait.until(EC.element_to_be_clickable((By.PARTIAL_LINK_TEXT, "Holiday gift guide"))).click()
    status = wait.until(EC.presence_of_element_located((By.ID, "campaign-status")))
    assert status.get_attribute("data-status") == "in_review"
    assert status.text == "In review"

    browser.find_element(By.ID, "action-approve").click()

    wait.until(EC.text_to_be_present_in_element_attribute((By.ID, "campaign-status"), "data-status", "approved"))
    assert browser.find_element(By.ID, "campaign-status").text == "Approved"
    assert "is now approved" in browser.find_element(By.CSS_SELECTOR, "ul.messagelist").text
    assert fresh(campaign).status == "approved"
