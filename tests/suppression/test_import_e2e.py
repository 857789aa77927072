"""The large-file CSV import end to end: upload in the admin, a real Celery worker process runs the
task, the status page polls the progress endpoint and then shows the summary.

The worker consumes a queue of its own (routes are switched for the test), so it cannot pick up
messages other tests left on the broker; it is started and stopped by the fixture.
"""
import os
import shutil
import sys
import uuid

import pytest
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client

from apps.suppression.models import SuppressionEntry, SuppressionImport
from tests.support.processes import ManagedProcess
from tests.support.wait import wait_until

IMPORT = "/admin/suppression/suppressionentry/import/"
ROWS = 600


@pytest.fixture
def import_queue():
    """Route the import task to a queue nobody else consumes, for this test only."""
    from config.celery import app

    queue = f"suppression-e2e-{uuid.uuid4().hex[:10]}"
    previous = app.conf.task_routes
    app.conf.task_routes = {"suppression.run_import": {"queue": queue}}
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()
    yield queue
    app.conf.task_routes = previous
    app.amqp.flush_routes()
    app.amqp.router = app.amqp.Router()


@pytest.fixture
def start_worker(import_queue, transactional_db, tmp_path):
    """Returns a function that starts a Celery worker on the test database and the test queue."""
    procs = []
    log_path = tmp_path / "worker.log"

    def start():
        db = connection.settings_dict
        env = {
            **os.environ,
            "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
            "CELERY_BROKER_URL": django_settings.CELERY_BROKER_URL,
            "SUPPRESSION_IMPORT_CHUNK_SIZE": "50",
            "DJANGO_SETTINGS_MODULE": "config.settings",
        }
        proc = ManagedProcess(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", import_queue, "--pool=solo",
             "-n", f"{import_queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
             "--loglevel=INFO"],
            env=env, log_path=log_path, name="celery worker",
        )
        procs.append(proc)
        return proc.start()

    yield start
    for proc in procs:
        proc.stop()


def _csv() -> bytes:
    lines = ["identifier,channel,reason"]
    lines += [f"user{i}@example.com,email,unsubscribe" for i in range(ROWS)]
    lines += ["user7@example.com,email,bounce", "not-an-email@,email,manual"]
    return ("\n".join(lines) + "\n").encode()


@pytest.mark.e2e
def test_large_import_runs_on_a_worker_while_the_page_polls(marketer, settings, start_worker, tmp_path):
    settings.SUPPRESSION_IMPORT_INLINE_MAX_ROWS = 100
    from django.core.files.uploadedfile import SimpleUploadedFile

    client = Client()
    client.force_login(marketer)
    response = client.post(IMPORT, {"file": SimpleUploadedFile("big.csv", _csv(), content_type="text/csv")})
    assert response.status_code == 302
    imp = SuppressionImport.objects.get()
    progress_url = f"{IMPORT}{imp.pk}/progress"
    assert client.get(progress_url).json()["status"] == "queued"  # no worker yet: the message waits

    seen = []

    def finished():
        progress = client.get(progress_url).json()
        seen.append(progress["processed_rows"])
        return progress if progress["finished"] else None

    worker = start_worker()
    final = wait_until(finished, 60, 0.1, message="the worker to finish the import", detail=worker.tail)
    assert (final["status"], final["total_rows"], final["processed_rows"], final["percent"]) == (
        "done", ROWS + 2, ROWS + 2, 100)
    assert (final["added"], final["updated"], final["skipped"]) == (ROWS, 0, 2)
    assert seen == sorted(seen)  # progress only moves forward
    assert SuppressionEntry.objects.count() == ROWS
    page = client.get(f"{IMPORT}{imp.pk}/").content.decode()
    assert f"{ROWS} added, 0 extended, 2 skipped" in page
    assert "<td>602</td><td>duplicate of line 9</td>" in page
    assert "<td>603</td><td>invalid email address &#x27;not-an-email@&#x27;</td>" in page


def _chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    driver_path = shutil.which("chromedriver")
    if not binary or not driver_path:
        pytest.skip("needs chromium and chromedriver (scripts/services.sh installs them with WITH_BROWSER=1)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1280,1000"):
        options.add_argument(arg)
    return webdriver.Chrome(service=Service(driver_path), options=options)


@pytest.mark.e2e
@pytest.mark.browser
def test_import_page_in_a_browser_shows_progress_then_the_summary(marketer, settings, start_worker, live_server,
                                                                   tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    settings.SUPPRESSION_IMPORT_INLINE_MAX_ROWS = 100
    csv_path = tmp_path / "big.csv"
    csv_path.write_bytes(_csv())
    client = Client()
    client.force_login(marketer)
    session_key = client.cookies[django_settings.SESSION_COOKIE_NAME].value

    browser = _chrome()
    try:
        browser.get(f"{live_server.url}/admin/login/")
        browser.add_cookie({"name": django_settings.SESSION_COOKIE_NAME, "value": session_key, "path": "/"})
        browser.get(f"{live_server.url}/admin/suppression/suppressionentry/")
        link = browser.find_element(By.CSS_SELECTOR, f".object-tools a[href=\"{IMPORT}\"]")
        assert link.text.lower() == "import csv"  # the admin CSS upper-cases object tools
        link.click()
        browser.find_element(By.NAME, "file").send_keys(str(csv_path))
        browser.find_element(By.CSS_SELECTOR, "input[type=submit][value=Import]").click()

        # No worker yet: the page shows the queued import and its (empty) progress bar.
        state = WebDriverWait(browser, 10).until(lambda b: b.find_element(By.ID, "import-state"))
        assert state.text == "Queued — waiting for a worker to start it."
        bar = browser.find_element(By.ID, "import-bar")
        assert (bar.get_attribute("max"), bar.get_attribute("value")) == (str(ROWS + 2), "0")

        start_worker()
        summary = WebDriverWait(browser, 60, poll_frequency=0.2).until(
            lambda b: b.find_elements(By.ID, "import-summary") and b.find_element(By.ID, "import-summary"))
        assert summary.text == f"{ROWS} added, 0 extended, 2 skipped of {ROWS + 2} rows in big.csv."
        cells = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "#import-skipped td")]
        assert cells == ["602", "duplicate of line 9", "603", "invalid email address 'not-an-email@'"]
    finally:
        browser.quit()
    assert SuppressionEntry.objects.count() == ROWS
