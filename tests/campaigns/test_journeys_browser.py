"""The marketer's and the approver's journeys in headless Chromium against the live server, at a
desktop (1440 px) and a phone (390 px) width: no horizontal scroll, screenshots kept as artifacts
(tests/support/browser.py), every click counted. Plus the API docs page served without a CDN."""
from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.utils import timezone

from apps.campaigns.models import Campaign
from tests.support.browser import HAVE_CHROMIUM, chromium, horizontal_overflow, in_first_screen, screenshot
from tests.support.wait import wait_until

from .conftest import PASSWORD, fresh

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not HAVE_CHROMIUM, reason="chromium and chromedriver are needed (WITH_BROWSER=1 scripts/setup.sh)"),
]

VIEWPORTS = [pytest.param((1440, 900), id="1440px"), pytest.param((390, 844), id="390px")]


class Clicks:
    """Every click of the test goes through here, so the count is the journey's."""

    def __init__(self, driver):
        self.driver, self.count = driver, 0

    def __call__(self, element) -> None:
        self.count += 1
        element.click()


def _wait(predicate, what: str, timeout: float = 20.0):
    return wait_until(predicate, timeout, 0.05, message=what)


def _login(driver, base: str, user, next_path: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    driver.delete_all_cookies()
    driver.get(f"{base}/admin/login/?next={next_path}")
    driver.find_element(By.ID, "id_username").send_keys(user.username)
    driver.find_element(By.ID, "id_password").send_keys(PASSWORD + Keys.ENTER)  # typing, not a click
    _wait(lambda: "/admin/login/" not in driver.current_url, "the login")


def _visible(driver, by, value):
    from selenium.webdriver.support import expected_conditions as EC
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, 20).until(EC.visibility_of_element_located((by, value)))


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_marketer_creates_and_submits_in_five_clicks_with_a_live_preview(live_server, marketer, approver, tmp_path,
                                                                         viewport):
    from selenium.webdriver.common.by import By

    width, height = viewport
    end = (timezone.now() + timedelta(days=30)).strftime("%Y-%m-%d %H:%M")
    with chromium(width=width, height=height, profile=tmp_path / "profile") as driver:
        _login(driver, live_server.url, marketer, "/admin/campaigns/campaign/")
        click = Clicks(driver)
        assert "Campaign Express" in driver.find_element(By.ID, "site-name").text

        click(_visible(driver, By.ID, "guided-create"))                                  # 1
        _wait(lambda: driver.execute_script("return document.body.dataset.guidedReady") == "1", "the guide")
        assert driver.execute_script("return document.querySelectorAll('#guided-form [required]').length") == 8
        _visible(driver, By.ID, "id_name").send_keys("Spring sale")
        driver.find_element(By.ID, "id_advertiser").send_keys("Example Shop")
        driver.find_element(By.ID, "id_budget").send_keys("5000")
        driver.find_element(By.ID, "id_end").send_keys(end)
        assert horizontal_overflow(driver) == 0
        screenshot(driver, f"marketer-basics-{width}")
        click(driver.find_element(By.ID, "guided-next"))                                 # 2: audience
        assert _visible(driver, By.ID, "step-2").is_displayed()
        assert driver.find_element(By.CSS_SELECTOR, "#id_channels input[value=display]").is_selected()
        click(driver.find_element(By.ID, "guided-next"))                                 # 3: offer and creative
        creative = _visible(driver, By.ID, "id_creative")
        creative.send_keys('<div id="ad" style="width:300px;height:250px;background:#ffd43b">Spring sale: 20% off</div>')
        driver.find_element(By.ID, "id_landing_url").send_keys("https://www.shop.example.com/spring")
        driver.find_element(By.ID, "id_category").send_keys("IAB22")
        driver.find_element(By.ID, "id_max_bid_cpm").send_keys("2.50")
        # The live preview shows the creative as it was typed, sandboxed.
        frame = driver.find_element(By.ID, "creative-preview")
        assert "Spring sale: 20% off" in frame.get_attribute("srcdoc")
        assert frame.get_attribute("sandbox") == ""
        driver.switch_to.frame(frame)
        assert driver.find_element(By.ID, "ad").text == "Spring sale: 20% off"
        driver.switch_to.default_content()
        assert horizontal_overflow(driver) == 0
        screenshot(driver, f"marketer-offer-preview-{width}")
        click(driver.find_element(By.ID, "guided-next"))                                 # 4: review
        review = _visible(driver, By.ID, "guided-review").text
        assert "5000 USD" in review and "2.50 USD per 1,000 ads shown" in review and "as soon as approved" in review
        screenshot(driver, f"marketer-review-{width}")
        click(driver.find_element(By.ID, "guided-submit"))                               # 5: save and submit

        status = _visible(driver, By.ID, "campaign-status")
        assert status.get_attribute("data-status") == "in_review"
        assert in_first_screen(driver, status)
        assert "saved and submitted for approval" in driver.find_element(By.CSS_SELECTOR, "ul.messagelist").text
        assert horizontal_overflow(driver) == 0
        screenshot(driver, f"marketer-submitted-{width}")
        assert click.count == 5

    campaign = Campaign.objects.get()
    assert (campaign.name, campaign.status, campaign.submitted_by) == ("Spring sale", "in_review", marketer)
    assert campaign.offers.get().max_bid_cpm == 2.5


@pytest.mark.parametrize("viewport", VIEWPORTS)
def test_approver_approves_and_rejects_from_the_inbox_and_the_marketer_sees_it_on_top(
        live_server, make_campaign, marketer, approver, tmp_path, viewport):
    from selenium.webdriver.common.by import By

    width, height = viewport
    first = make_campaign("in_review", name="Holiday gift guide")
    second = make_campaign("in_review", name="Winter boots")
    with chromium(width=width, height=height, profile=tmp_path / "profile") as driver:
        _login(driver, live_server.url, approver, "/admin/")
        click = Clicks(driver)
        # the notification in the header leads to the inbox's campaigns
        assert driver.find_element(By.ID, "notifications-unread").text == "2"
        click(driver.find_element(By.ID, "notifications-link"))
        assert "awaits your decision" in _visible(driver, By.ID, "notifications").text
        driver.get(f"{live_server.url}/admin/campaigns/campaign/inbox/")
        rows = driver.find_elements(By.CSS_SELECTOR, "#inbox-table tbody tr")
        assert [r.get_attribute("data-campaign") for r in rows] == [str(first.pk), str(second.pk)]
        assert horizontal_overflow(driver) == 0
        screenshot(driver, f"approver-inbox-{width}")

        click(driver.find_element(By.ID, "start-review"))
        assert "Holiday gift guide" in _visible(driver, By.ID, "campaign-summary").text
        assert driver.find_element(By.ID, "inbox-position").text == "1 of 2 awaiting you"
        assert horizontal_overflow(driver) == 0
        screenshot(driver, f"approver-review-{width}")
        click(driver.find_element(By.ID, "approve-next"))

        _wait(lambda: urlsplit(driver.current_url).path == f"/admin/campaigns/campaign/inbox/{second.pk}/",
              "the next campaign")
        assert "Winter boots" in _visible(driver, By.ID, "campaign-summary").text
        assert "You approved “Holiday gift guide”." in driver.find_element(By.CSS_SELECTOR, "ul.messagelist").text
        # reject needs a reason: the button alone is stopped on the empty, required field (the server
        # refuses it too: test_journeys.py)
        click(driver.find_element(By.ID, "reject-next"))
        assert driver.execute_script("return document.getElementById('id_reject-reason').validity.valueMissing")
        assert "Winter boots" in driver.find_element(By.ID, "campaign-summary").text
        assert fresh(second).status == "in_review"
        driver.find_element(By.ID, "id_reject-reason").send_keys("The boots photo is not the product sold")
        click(driver.find_element(By.ID, "reject-next"))
        _wait(lambda: urlsplit(driver.current_url).path == "/admin/campaigns/campaign/inbox/", "the inbox")
        assert _visible(driver, By.ID, "inbox-empty").is_displayed()
        assert fresh(first).status == "approved" and fresh(second).status == "rejected"

        # the marketer sees the decision, its reason and who made it at the top of the page
        _login(driver, live_server.url, marketer, f"/admin/campaigns/campaign/{second.pk}/change/")
        decision = _visible(driver, By.ID, "campaign-decision")
        assert driver.find_element(By.ID, "campaign-status").get_attribute("data-status") == "rejected"
        assert driver.find_element(By.ID, "campaign-decision-reason").text == "The boots photo is not the product sold"
        assert driver.find_element(By.ID, "campaign-decision-by").text == "approver"
        assert in_first_screen(driver, decision)
        history = driver.find_element(By.ID, "campaign-history").text
        assert "Rejected (in review → rejected)" in history and "Voted to reject" in history
        assert horizontal_overflow(driver) == 0
        screenshot(driver, f"marketer-sees-decision-{width}")


def test_api_docs_load_every_asset_from_us_and_render_operations(live_server, tmp_path):
    from selenium.webdriver.common.by import By

    with chromium(width=1440, height=900, profile=tmp_path / "profile") as driver:
        driver.get(f"{live_server.url}/v1/docs/")
        _wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, ".opblock")) > 10, "Swagger UI's operations")
        resources = driver.execute_script(
            "return performance.getEntriesByType('resource').map(e => [e.name, e.responseStatus]);")
        assert resources, "no assets loaded"
        ours = urlsplit(live_server.url).netloc
        assert {urlsplit(name).netloc for name, _ in resources} == {ours}, resources
        assert all(status == 200 for _, status in resources), resources
        assert any(name.endswith("swagger-ui-bundle.js") for name, _ in resources)
        # a realistic example (no invented negative bids) in the offer create operation
        schema = driver.execute_script("return fetch('/v1/schema/?format=json').then(r => r.json())")
        offer_post = schema["paths"]["/v1/campaigns/{campaign_pk}/offers/"]["post"]
        example = next(iter(offer_post["requestBody"]["content"]["application/json"]["examples"].values()))
        assert example["value"]["max_bid_cpm"] == "2.5000"
        screenshot(driver, "api-docs-1440")
