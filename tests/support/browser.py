"""Headless Chromium for browser tests: a driver at a given window size, screenshots kept as test
artifacts (var/test-artifacts/browser/, or $TEST_ARTIFACTS_DIR), and the page checks the journeys
share (no horizontal scroll, element in the first screen)."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
HAVE_CHROMIUM = bool(CHROMIUM and CHROMEDRIVER)


def artifacts_dir() -> Path:
    path = Path(os.environ.get("TEST_ARTIFACTS_DIR") or ROOT / "var" / "test-artifacts") / "browser"
    path.mkdir(parents=True, exist_ok=True)
    return path


@contextmanager
def chromium(*, width: int, height: int, profile: Path):
    """A headless Chromium whose viewport is ``width`` × ``height`` CSS pixels (mobile widths too)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--no-first-run", "--hide-scrollbars", f"--user-data-dir={profile}"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        # The viewport, not the window: set it through DevTools so 390 px means 390 CSS px of page.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 768})
        yield driver
    finally:
        driver.quit()


def screenshot(driver, name: str) -> Path:
    path = artifacts_dir() / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def horizontal_overflow(driver) -> int:
    """How many CSS pixels the page is wider than the viewport (0: no horizontal scroll)."""
    return int(driver.execute_script(
        "return Math.max(document.documentElement.scrollWidth, document.body.scrollWidth) - window.innerWidth"))


def in_first_screen(driver, element) -> bool:
    """True when ``element`` is visible without scrolling (its top inside the first viewport)."""
    return bool(driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return window.scrollY === 0 && r.top >= 0 && r.top < window.innerHeight && r.height > 0;", element))
