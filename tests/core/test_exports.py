"""Back-office Excel exports (apps.core.exports): small ones inline, big ones in the background with
progress and a download link; the file opens with openpyxl and holds every row."""
from __future__ import annotations

import io

import openpyxl
import pytest

from apps.core.models import ExportJob, OutboundCall
from tests.factories import make_user

pytestmark = pytest.mark.django_db


@pytest.fixture
def calls():
    OutboundCall.objects.bulk_create([
        OutboundCall(name="jira" if i % 2 else "asana", method="POST", url=f"https://x.example/{i}",
                     status_code=201, outcome="ok", attempt=1, duration_ms=i) for i in range(30)])


@pytest.fixture
def admin_client(client):
    client.force_login(make_user("Admin", username="export-admin"))
    return client


@pytest.fixture
def eager():
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


def _rows(content: bytes) -> list[tuple]:
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True)
    return list(book["Outbound calls"].iter_rows(min_row=2, values_only=True))


def test_a_small_export_is_written_inside_the_request(admin_client, calls, settings):
    settings.EXPORT_INLINE_MAX_ROWS = 100
    answer = admin_client.get("/admin/core/outboundcall/export/", {"name__exact": "jira"})
    assert answer.status_code == 200 and answer["Content-Disposition"] == 'attachment; filename="outbound-calls.xlsx"'
    rows = _rows(answer.content)
    assert len(rows) == 15 and {r[1] for r in rows} == {"jira"}
    assert not ExportJob.objects.exists()
    page = admin_client.get("/admin/core/outboundcall/").content.decode()
    assert 'href="export/?' in page


def test_a_big_export_runs_in_the_background_with_progress_and_a_download(
        admin_client, calls, settings, tmp_path, eager, django_capture_on_commit_callbacks):
    settings.EXPORT_INLINE_MAX_ROWS = 10
    settings.EXPORT_DIR = str(tmp_path)
    with django_capture_on_commit_callbacks(execute=True):
        answer = admin_client.get("/admin/core/outboundcall/export/")
    job = ExportJob.objects.get()
    assert answer.status_code == 302 and answer["Location"] == f"/admin/core/exportjob/{job.pk}/change/"
    assert (job.state, job.rows_total, job.rows_done) == ("done", 30, 30)
    page = admin_client.get(f"/admin/core/exportjob/{job.pk}/change/").content.decode()
    assert "30 of 30 rows (100%)" in page and f"/admin/core/exportjob/{job.pk}/download/" in page
    download = admin_client.get(f"/admin/core/exportjob/{job.pk}/download/")
    assert download.status_code == 200
    assert len(_rows(b"".join(download.streaming_content))) == 30


def test_someone_elses_export_is_not_theirs_to_download(client, calls, settings, tmp_path, eager,
                                                        django_capture_on_commit_callbacks):
    settings.EXPORT_INLINE_MAX_ROWS = 10
    settings.EXPORT_DIR = str(tmp_path)
    from apps.core.exports import export_respond

    owner = make_user("Admin", username="owner")
    with django_capture_on_commit_callbacks(execute=True):
        job = export_respond(kind="outbound_calls", params={}, actor=owner)
    client.force_login(make_user("Marketer", username="someone"))
    assert client.get(f"/admin/core/exportjob/{job.pk}/download/").status_code == 404
