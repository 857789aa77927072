"""The offer form's creative library panel in headless Chromium (Debian's) against the live server and
a local server speaking Bynder's format (``/api/v4/media/``, the Bearer token) that also serves the
thumbnails and the asset, so the browser really loads them: search, see thumbnail, name, size, MIME
type and validity, import one asset as the offer's creative, save the campaign, and the offer holds
the asset's source, id, URL, MIME type and validity.

Skipped only where Chromium is not installed (CI installs it: WITH_BROWSER=1 scripts/setup.sh)."""
from __future__ import annotations

import datetime as dt
import re
import struct
import zlib

import pytest

from apps.campaigns import selectors as campaign_selectors
from apps.integrations.models import Connection
from tests.campaigns.conftest import PASSWORD
from tests.support.browser import HAVE_CHROMIUM, chromium, screenshot
from tests.support.wait import wait_until

from .fakes import BYNDER_TOKEN, BynderServer

pytestmark = [
    pytest.mark.browser,
    # live_server needs real transactions; restore the roles of the data migrations a flush removed
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
    pytest.mark.skipif(not HAVE_CHROMIUM, reason="chromium and chromedriver are needed (WITH_BROWSER=1 scripts/setup.sh)"),
]

UTC = dt.UTC
VALID_UNTIL = (dt.datetime.now(UTC) + dt.timedelta(days=30)).replace(microsecond=0)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A real PNG of one colour (the browser decodes it: naturalWidth is ``width``)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


class BynderWithCDN(BynderServer):
    """Bynder's media API plus its CDN on the same local server: thumbnails and originals are PNGs."""

    def add_served(self, media_id: str, name: str, **fields) -> dict:
        return self.add(media_id, name, original=f"{self.url}/cdn/{media_id}/{name}.png",
                        thumbnails={"mini": f"{self.url}/cdn/{media_id}/mini.png",
                                    "thul": f"{self.url}/cdn/{media_id}/thul.png",
                                    "webimage": f"{self.url}/cdn/{media_id}/web.png"}, **fields)

    def answer(self, r):
        if r.method == "GET" and (m := re.fullmatch(r"/cdn/(\w+)/(.+)\.png", r.path)):
            size = (300, 250) if m[2] not in ("mini", "thul") else (64, 53)
            return 200, {"Content-Type": "image/png", "Cache-Control": "no-store"}, png(*size, (200, 40, 40))
        return super().answer(r)


@pytest.fixture
def dam():
    with BynderWithCDN() as server:
        server.add_served("A1", "spring-hero", limited=1,
                          limitedDate=VALID_UNTIL.isoformat().replace("+00:00", "Z"))
        server.add_served("A2", "spring-old", archive=1)
        server.add_served("B1", "winter-hero")
        yield server


@pytest.fixture
def dam_connection(dam):
    return Connection.objects.create(name="Brand Bynder", kind="bynder", base_url=dam.url,
                                     credentials={"token": BYNDER_TOKEN}, options={"timeout_seconds": 2})


def _wait(predicate, what: str):
    """Poll ``predicate``; an element of the page being replaced (a click that submits) goes stale or
    missing mid-read, which counts as "not yet", not as a failure."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException

    return wait_until(predicate, 20.0, 0.05, message=what, ignore=(StaleElementReferenceException, NoSuchElementException))


def test_a_marketer_searches_the_dam_imports_an_asset_and_the_saved_offer_holds_it(
        live_server, marketer, draft_campaign, dam, dam_connection, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    offer = campaign_selectors.offer_list(campaign_id=draft_campaign.pk).first()
    change_url = f"/admin/campaigns/campaign/{draft_campaign.pk}/change/"
    with chromium(width=1440, height=900, profile=tmp_path / "profile") as driver:
        driver.get(f"{live_server.url}/admin/login/?next={change_url}")
        driver.find_element(By.ID, "id_username").send_keys(marketer.username)
        driver.find_element(By.ID, "id_password").send_keys(PASSWORD + Keys.ENTER)
        _wait(lambda: driver.current_url.endswith(change_url), "the campaign page after login")

        # the offer form's creative library field links to the panel for this offer
        driver.find_element(By.PARTIAL_LINK_TEXT, "Search the creative library").click()
        _wait(lambda: f"/admin/integrations/connection/creatives/{offer.pk}/" in driver.current_url, "the panel")
        query = driver.find_element(By.CSS_SELECTOR, "form.creative-search input[name=q]")
        query.send_keys("spring" + Keys.ENTER)
        _wait(lambda: len(driver.find_elements(By.CSS_SELECTOR, "table.creative-results tbody tr")) == 2,
              "two matches for 'spring' (winter-hero is not one)")
        search = [r for r in dam.requests if r.path == "/api/v4/media/"][-1]  # the panel opened with everything
        assert search.query["keyword"] == ["spring"] and search.header("Authorization") == f"Bearer {BYNDER_TOKEN}"

        rows = {row.find_elements(By.TAG_NAME, "td")[1].text: row
                for row in driver.find_elements(By.CSS_SELECTOR, "table.creative-results tbody tr")}
        assert set(rows) == {"spring-hero", "spring-old"}
        hero = [td.text for td in rows["spring-hero"].find_elements(By.TAG_NAME, "td")]
        assert hero[2:7] == ["Brand Bynder", "47.1 KB", "image/png", VALID_UNTIL.isoformat().replace("+00:00", "Z"),
                             "valid"]
        old = [td.text for td in rows["spring-old"].find_elements(By.TAG_NAME, "td")]
        assert old[6] == "withdrawn in Bynder (archived)"
        thumb = rows["spring-hero"].find_element(By.TAG_NAME, "img")
        assert thumb.get_attribute("src") == f"{dam.url}/cdn/A1/thul.png"
        # the thumbnail is really shown: fetched from the DAM's CDN and decoded
        _wait(lambda: driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", thumb) == 64,
              "the thumbnail loaded")
        assert thumb.is_displayed()
        screenshot(driver, "creative-library-search")

        rows["spring-hero"].find_element(By.XPATH, ".//button[normalize-space()='Use for this offer']").click()
        _wait(lambda: driver.current_url.endswith(change_url), "back on the campaign page")
        assert "now comes from the DAM" in driver.find_element(By.CSS_SELECTOR, "ul.messagelist").text
        library = driver.find_element(By.CSS_SELECTOR, ".field-creative_library").text
        assert "bynder asset A1 (image/png, valid until" in library and "valid" in library

        # save the campaign form (the offer inline with it): the import survives the save
        driver.find_element(By.NAME, "_continue").click()
        _wait(lambda: "was changed successfully" in driver.find_element(By.CSS_SELECTOR, "ul.messagelist").text
              or "changed successfully" in driver.page_source, "the campaign saved")
        assert not driver.find_elements(By.CSS_SELECTOR, ".errornote, .errorlist")
        screenshot(driver, "creative-library-imported")

    saved = campaign_selectors.offer_get_or_none(offer_id=offer.pk)
    assert (saved.creative_source, saved.creative_connection_id, saved.creative_asset_id) == (
        "bynder", dam_connection.pk, "A1")
    assert saved.creative_asset_url == f"{dam.url}/cdn/A1/spring-hero.png"
    assert (saved.creative_mime, saved.creative_valid_until, saved.creative_blocked_reason) == (
        "image/png", VALID_UNTIL, "")
    assert f'src="{dam.url}/cdn/A1/spring-hero.png"' in saved.creative_markup  # an image: the banner markup
