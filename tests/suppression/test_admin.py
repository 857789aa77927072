import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone

from apps.core.file_imports import ImportStatus
from apps.suppression import selectors, services
from apps.suppression.models import SuppressionAudit, SuppressionEntry, SuppressionImport
from apps.suppression.tasks import run_suppression_import
from tests.support.admin import changelist

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/suppression/suppressionentry/"
IMPORT = "/admin/suppression/suppressionentry/import/"

MIXED_CSV = (
    "identifier,channel,reason,expires_at\n"
    "a@example.com,email,unsubscribe,\n"              # line 2: added
    "+1 (415) 555-0100,sms,unsubscribe,\n"            # line 3: added (+14155550100)
    "token-abc,push,manual,2999-01-01\n"              # line 4: added, expiring
    "\n"                                              # line 5: blank, ignored
    "bob@,email,bounce,\n"                            # line 6: invalid email
    "c@example.com,fax,manual,\n"                     # line 7: unknown channel
    "A@Example.com,email,unsubscribe,\n"              # line 8: duplicate of line 2
    "old@example.com,email,bounce,\n"                 # line 9: already suppressed
    "temp@example.com,email,manual,\n"                # line 10: extends to permanent
    "d@example.com,email,annoyed,\n"                  # line 11: unknown reason
    "e@example.com,email,manual,2001-01-01\n"         # line 12: expiry in the past
    "f@example.com,email,manual,,extra\n"             # line 13: too many values
)


class _SummaryParser(HTMLParser):
    """Pulls the summary paragraph and the skipped-rows table out of the status page."""

    def __init__(self):
        super().__init__()
        self.summary, self.rows, self._in, self._cell, self._row = "", [], None, None, None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id") == "import-summary":
            self._in = "summary"
        elif attrs.get("id") == "import-skipped":
            self._in = "table"
        elif self._in == "table" and tag == "tr":
            self._row = []
        elif self._in == "table" and tag == "td":
            self._cell = ""

    def handle_endtag(self, tag):
        if self._in == "summary" and tag == "p":
            self._in = None
        elif self._in == "table" and tag == "td":
            self._row.append(self._cell)
            self._cell = None
        elif self._in == "table" and tag == "tr":
            if self._row:
                self.rows.append(tuple(self._row))
            self._row = None
        elif self._in == "table" and tag == "table":
            self._in = None

    def handle_data(self, data):
        if self._in == "summary":
            self.summary += data
        elif self._cell is not None:
            self._cell += data


def _summary(html: str) -> tuple[str, list[tuple[str, str]]]:
    parser = _SummaryParser()
    parser.feed(html)
    return " ".join(parser.summary.split()), parser.rows


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _upload(client, content: str | bytes, name="list.csv", **extra):
    data = content.encode() if isinstance(content, str) else content
    return client.post(IMPORT, {"file": SimpleUploadedFile(name, data, content_type="text/csv"), **extra})


# --- CSV import ---------------------------------------------------------------------------------

def test_changelist_links_the_import_page(marketer, approver):
    response = _client(marketer).get(CHANGELIST)
    assert response.status_code == 200
    assert f'<a href="{IMPORT}">Import CSV</a>' in response.content.decode()
    response = _client(approver).get(CHANGELIST)
    assert response.status_code == 200
    assert "Import CSV" not in response.content.decode()
    assert _client(approver).get(IMPORT).status_code == 403


def test_csv_import_summary(marketer):
    services.suppression_add(identifier="old@example.com", channel="email", reason="bounce")
    services.suppression_add(identifier="temp@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(days=2))
    client = _client(marketer)
    form = client.get(IMPORT)
    assert form.status_code == 200 and 'type="file" name="file"' in form.content.decode()
    response = _upload(client, MIXED_CSV)
    assert response.status_code == 302
    imp = SuppressionImport.objects.get()
    assert response["Location"] == f"{IMPORT}{imp.pk}/"
    page = client.get(response["Location"])
    summary, rows = _summary(page.content.decode())
    assert summary == "3 added, 1 extended, 7 skipped of 11 rows in list.csv."
    assert rows == [
        ("6", "invalid email address 'bob@'"),
        ("7", "unknown channel 'fax' (expected one of: email, sms, push, in_app, all)"),
        ("8", "duplicate of line 2"),
        ("9", "already suppressed (bounce, permanent)"),
        ("11", "unknown reason 'annoyed' (expected one of: unsubscribe, bounce, spam_report, manual, regulatory)"),
        ("12", "expires_at 2001-01-01T00:00:00+00:00 is in the past"),
        ("13", "has 5 values but the header has 4 columns"),
    ]
    entries = {(e.identifier, e.channel): e for e in SuppressionEntry.objects.all()}
    assert set(entries) == {("a@example.com", "email"), ("+14155550100", "sms"), ("token-abc", "push"),
                            ("old@example.com", "email"), ("temp@example.com", "email")}
    assert entries[("token-abc", "push")].expires_at.isoformat() == "2999-01-01T00:00:00+00:00"
    assert entries[("temp@example.com", "email")].expires_at is None
    assert entries[("a@example.com", "email")].source == "csv:list.csv"
    assert entries[("a@example.com", "email")].created_by == marketer
    imp.refresh_from_db()
    assert (imp.status, imp.total_rows, imp.processed_rows, imp.added, imp.updated, imp.skipped) == (
        ImportStatus.DONE, 11, 11, 3, 1, 7)


def test_csv_import_with_source_column_and_custom_source(marketer):
    csv_text = "Identifier, Channel ,REASON,source\nx@example.com,email,unsubscribe,sendgrid:unsubscribe\ny@example.com,all,manual,\n"
    client = _client(marketer)
    response = _upload(client, csv_text, source="crm sync")
    summary, rows = _summary(client.get(response["Location"]).content.decode())
    assert summary == "2 added, 0 extended, 0 skipped of 2 rows in list.csv."
    assert rows == []
    assert dict(SuppressionEntry.objects.values_list("identifier", "source")) == {
        "x@example.com": "sendgrid:unsubscribe", "y@example.com": "crm sync"}


@pytest.mark.parametrize("content, error", [
    ("identifier,channel\na@example.com,email\n",
     "bad header line — missing column(s): reason (expected identifier,channel,reason[,expires_at][,source])"),
    ("identifier,channel,reason,expiry\n",
     "bad header line — unknown column(s): &#x27;expiry&#x27; (expected identifier,channel,reason[,expires_at][,source])"),
    ("identifier,channel,reason\n\n", "the file has a header but no data rows"),
    ("", "The submitted file is empty."),
    ("\n", "bad header line — missing column(s): identifier, channel, reason"),
    ("identifier,channel,reason\nb\xe9b@example.com,email,manual\n".encode("latin-1"),
     "the file is not UTF-8 text; save the CSV as UTF-8"),
])
def test_csv_import_refuses_unusable_files(marketer, content, error):
    response = _upload(_client(marketer), content)
    assert response.status_code == 200
    html = response.content.decode()
    assert error in html
    assert SuppressionImport.objects.count() == 0
    assert SuppressionEntry.objects.count() == 0


def test_csv_import_handles_bom_and_crlf(marketer):
    content = "\ufeffidentifier,channel,reason\r\nbom@example.com,email,manual\r\n".encode()
    client = _client(marketer)
    response = _upload(client, content)
    summary, _ = _summary(client.get(response["Location"]).content.decode())
    assert summary == "1 added, 0 extended, 0 skipped of 1 row in list.csv."
    assert selectors.is_suppressed(identifier="bom@example.com", channel="email")


def test_large_import_runs_as_a_task_and_reports_progress(marketer, settings, django_capture_on_commit_callbacks):
    settings.SUPPRESSION_IMPORT_INLINE_MAX_ROWS = 4
    settings.SUPPRESSION_IMPORT_CHUNK_SIZE = 2
    rows = "".join(f"user{i}@example.com,email,unsubscribe\n" for i in range(6))
    client = _client(marketer)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        response = _upload(client, "identifier,channel,reason\n" + rows + "user0@example.com,email,manual\n")
    assert len(callbacks) == 1  # the task is enqueued after commit
    imp = SuppressionImport.objects.get()
    status_url = response["Location"]
    page = client.get(status_url).content.decode()
    assert "Queued — waiting for a worker to start it." in page
    assert '<progress class="import-progress" id="import-bar" max="7" value="0"></progress>' in page
    assert f"{IMPORT}{imp.pk}/progress" in page
    progress_url = f"{IMPORT}{imp.pk}/progress"
    assert client.get(progress_url).json() == {
        "id": imp.pk, "status": "queued", "total_rows": 7, "processed_rows": 0, "percent": 0, "added": 0,
        "updated": 0, "skipped": 0, "finished": False, "error": ""}

    seen = []
    services.suppression_import_run(
        import_id=imp.pk, progress=lambda n: seen.append(client.get(progress_url).json()))
    assert [(p["status"], p["processed_rows"], p["percent"], p["added"]) for p in seen] == [
        ("running", 2, 28, 2), ("running", 4, 57, 4), ("running", 6, 85, 6), ("running", 7, 100, 6)]
    final = client.get(progress_url).json()
    assert (final["status"], final["finished"], final["added"], final["skipped"]) == ("done", True, 6, 1)
    summary, rows_ = _summary(client.get(status_url).content.decode())
    assert summary == "6 added, 0 extended, 1 skipped of 7 rows in list.csv."
    assert rows_ == [("8", "duplicate of line 2")]


def test_import_task_is_idempotent(marketer, settings):
    settings.SUPPRESSION_IMPORT_CHUNK_SIZE = 2
    imp = services.suppression_import_create(
        filename="t.csv", created_by=marketer,
        data=b"identifier,channel,reason\na@x.com,email,manual\nb@x.com,email,manual\nc@x.com,email,manual\n")
    run_suppression_import.apply(args=[imp.pk])
    run_suppression_import.apply(args=[imp.pk])  # redelivery: nothing more happens
    imp.refresh_from_db()
    assert (imp.status, imp.processed_rows, imp.added, imp.skipped) == ("done", 3, 3, 0)
    assert SuppressionAudit.objects.filter(action="added").count() == 3


def test_import_resumes_after_the_last_committed_chunk(marketer, settings):
    settings.SUPPRESSION_IMPORT_CHUNK_SIZE = 2
    imp = services.suppression_import_create(
        filename="t.csv", created_by=marketer,
        data=b"identifier,channel,reason\na@x.com,email,manual\nb@x.com,email,manual\nc@x.com,email,manual\n")
    # a worker died after committing the first chunk
    services.suppression_add(identifier="a@x.com", channel="email", reason="manual", created_by=marketer)
    services.suppression_add(identifier="b@x.com", channel="email", reason="manual", created_by=marketer)
    SuppressionImport.objects.filter(pk=imp.pk).update(status="running", processed_rows=2, added=2)
    imp = services.suppression_import_run(import_id=imp.pk)
    assert (imp.status, imp.processed_rows, imp.added, imp.skipped) == ("done", 3, 3, 0)


def test_run_here_button_processes_a_queued_import(marketer, settings, django_capture_on_commit_callbacks):
    settings.SUPPRESSION_IMPORT_INLINE_MAX_ROWS = 1
    client = _client(marketer)
    with django_capture_on_commit_callbacks(execute=False):
        response = _upload(client, "identifier,channel,reason\na@x.com,email,manual\nb@x.com,sms,manual\n")
    imp = SuppressionImport.objects.get()
    page = client.get(response["Location"]).content.decode()
    assert "Run the import here" in page
    response = client.post(f"{IMPORT}{imp.pk}/run")
    assert response.status_code == 302
    summary, rows = _summary(client.get(response["Location"]).content.decode())
    assert summary == "1 added, 0 extended, 1 skipped of 2 rows in list.csv."
    assert rows == [("3", "an email address cannot be suppressed on the sms channel (use email or all)")]


# --- list, search, add ----------------------------------------------------------------------------

def test_changelist_filters_and_search(approver):
    services.suppression_add(identifier="+14155550100", channel="sms", reason="unsubscribe")
    services.suppression_add(identifier="a@example.com", channel="email", reason="bounce")
    services.suppression_add(identifier="gone@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(hours=1))
    SuppressionEntry.objects.filter(identifier="gone@example.com").update(expires_at=timezone.now() - timedelta(seconds=1))
    client = _client(approver)

    def listed(params):
        response = client.get(CHANGELIST, params)
        assert response.status_code == 200
        return sorted(set(re.findall(r'class="field-identifier"><a [^>]*>([^<]+)</a>', response.content.decode())))

    assert listed({}) == ["+14155550100", "a@example.com", "gone@example.com"]
    assert listed({"status": "active"}) == ["+14155550100", "a@example.com"]
    assert listed({"status": "expired"}) == ["gone@example.com"]
    assert listed({"channel__exact": "sms"}) == ["+14155550100"]
    assert listed({"reason__exact": "bounce"}) == ["a@example.com"]
    assert listed({"q": "+1 (415) 555-0100"}) == ["+14155550100"]
    assert listed({"q": "EXAMPLE"}) == ["a@example.com", "gone@example.com"]


def test_add_through_the_admin_form_uses_the_service(marketer):
    client = _client(marketer)
    response = client.post(f"{CHANGELIST}add/", {
        "identifier": " Carol@Example.com ", "channel": "email", "reason": "manual", "source": "phone call"})
    assert response.status_code == 302
    entry = SuppressionEntry.objects.get()
    assert (entry.identifier, entry.source, entry.created_by) == ("carol@example.com", "phone call", marketer)
    assert SuppressionAudit.objects.get().action == "added"
    response = client.post(f"{CHANGELIST}add/", {"identifier": "carol@", "channel": "email", "reason": "manual"})
    assert response.status_code == 200
    assert "invalid email address &#x27;carol@&#x27;" in response.content.decode()
    response = client.post(f"{CHANGELIST}add/", {"identifier": "+14155550100", "channel": "email", "reason": "manual"})
    assert response.status_code == 200
    assert "a phone number cannot be suppressed on the email channel (use sms or all)" in response.content.decode()
    assert SuppressionEntry.objects.count() == 1


def test_roles_in_the_admin(approver, nobody):
    assert _client(nobody).get(CHANGELIST).status_code == 403
    client = _client(approver)
    assert changelist(client.get(CHANGELIST)).model is SuppressionEntry  # approvers may look
    assert client.get(f"{CHANGELIST}add/").status_code == 403


# --- actions --------------------------------------------------------------------------------------

def _action(client, action, ids, **extra):
    return client.post(CHANGELIST, {"action": action, "_selected_action": [str(i) for i in ids], **extra})


def test_remove_selected_asks_why_and_audits(admin_user):
    a = services.suppression_add(identifier="a@example.com", channel="email", reason="unsubscribe")
    b = services.suppression_add(identifier="b@example.com", channel="email", reason="unsubscribe")
    keep = services.suppression_add(identifier="c@example.com", channel="email", reason="unsubscribe")
    client = _client(admin_user)
    page = _action(client, "remove_selected", [a.pk, b.pk])
    assert page.status_code == 200
    assert "These 2 entries will be removed" in page.content.decode()
    assert "admin/action_form.html" in [t.name for t in page.templates]  # one page for every asking action
    assert "<li>a@example.com — Email (Unsubscribe)</li>" in page.content.decode()
    assert 'value="Remove 2 entries"' in page.content.decode()
    assert SuppressionEntry.objects.count() == 3
    page = _action(client, "remove_selected", [a.pk, b.pk], apply="1", note="")
    assert page.status_code == 200 and SuppressionEntry.objects.count() == 3  # a note is required
    response = _action(client, "remove_selected", [a.pk, b.pk], apply="1", note="consent renewed by phone")
    assert response.status_code == 302
    assert list(SuppressionEntry.objects.values_list("pk", flat=True)) == [keep.pk]
    assert sorted(SuppressionAudit.objects.filter(action="removed").values_list("identifier", "note", "actor")) == [
        ("a@example.com", "consent renewed by phone", admin_user.pk),
        ("b@example.com", "consent renewed by phone", admin_user.pk)]


def test_marketer_cannot_remove(marketer):
    a = services.suppression_add(identifier="a@example.com", channel="email", reason="unsubscribe")
    client = _client(marketer)
    assert 'value="remove_selected"' not in client.get(CHANGELIST).content.decode()
    _action(client, "remove_selected", [a.pk], apply="1", note="please")
    assert SuppressionEntry.objects.count() == 1


def test_extend_expiry_action(marketer):
    soon = services.suppression_add(identifier="a@example.com", channel="email", reason="manual",
                                    expires_at=timezone.now() + timedelta(days=1))
    forever = services.suppression_add(identifier="b@example.com", channel="email", reason="manual")
    client = _client(marketer)
    page = _action(client, "extend_expiry", [soon.pk, forever.pk])
    assert "Lengthen the expiry" in page.content.decode()
    assert "admin/action_form.html" in [t.name for t in page.templates]
    assert "<li>b@example.com — Email: permanent</li>" in page.content.decode()
    response = _action(client, "extend_expiry", [soon.pk, forever.pk], apply="1", until="2999-12-31 00:00:00")
    assert response.status_code == 302
    assert SuppressionEntry.objects.get(pk=soon.pk).expires_at.isoformat() == "2999-12-31T00:00:00+00:00"
    assert SuppressionEntry.objects.get(pk=forever.pk).expires_at is None
    response = _action(client, "extend_expiry", [soon.pk], apply="1", make_permanent="on")
    assert response.status_code == 302
    assert SuppressionEntry.objects.get(pk=soon.pk).expires_at is None
    page = _action(client, "extend_expiry", [soon.pk], apply="1", until="2001-01-01 00:00:00")
    assert "is in the past" in page.content.decode()


def test_audit_trail_is_read_only(admin_user):
    services.suppression_add(identifier="a@example.com", channel="email", reason="unsubscribe")
    client = _client(admin_user)
    response = client.get("/admin/suppression/suppressionaudit/", {"identifier": "a@example.com"})
    assert response.status_code == 200
    assert "a@example.com" in response.content.decode()
    audit = SuppressionAudit.objects.get()
    assert client.get(f"/admin/suppression/suppressionaudit/{audit.pk}/delete/").status_code == 403
    assert client.post(f"/admin/suppression/suppressionaudit/{audit.pk}/change/", {}).status_code == 403


def test_select_all_removes_more_entries_than_a_form_may_carry(admin_user, marketer, settings):
    """1,500 entries (over DATA_UPLOAD_MAX_NUMBER_FIELDS=1,000) removed through "Select all": the
    confirmation page posts select_across, not a hidden field per row; the filter is kept."""
    assert settings.DATA_UPLOAD_MAX_NUMBER_FIELDS == 1000
    services.suppression_bulk_add(entries=[{"identifier": f"u{i}@example.com", "channel": "email",
                                            "reason": "unsubscribe"} for i in range(1500)], created_by=marketer)
    keep = services.suppression_add(identifier="+14155550100", channel="sms", reason="unsubscribe")
    client = _client(admin_user)
    url = f"{CHANGELIST}?channel__exact=email"
    first_page = list(SuppressionEntry.objects.filter(channel="email").values_list("pk", flat=True)[:100])
    data = {"action": "remove_selected", "select_across": "1", "index": "0",
            "_selected_action": [str(pk) for pk in first_page]}
    page = client.post(url, data)
    assert page.status_code == 200
    html = page.content.decode()
    assert "These 1500 entries will be removed" in html and "… and 1450 more" in html
    # What the browser posts back from that page: few fields, whatever the number of rows.
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', html))
    assert hidden["select_across"] == "1" and len(re.findall(r'name="_selected_action"', html)) == 1
    response = client.post(url, {**hidden, "note": "list cleaned after a consent audit"})
    assert response.status_code == 302, response.content.decode()[:500]
    assert list(SuppressionEntry.objects.values_list("pk", flat=True)) == [keep.pk]
    assert SuppressionAudit.objects.filter(action="removed").count() == 1500


def test_a_form_over_the_field_limit_gets_a_plain_answer(admin_user):
    client = _client(admin_user)
    response = client.post(CHANGELIST, {"action": "remove_selected", "_selected_action": [str(i) for i in range(1200)]})
    assert response.status_code == 400
    body = response.content.decode()
    assert "more than 1,000 fields" in body and "Select all" in body and "Campaign Express" in body


def test_import_template_dry_run_and_skipped_rows_download(marketer):
    client = _client(marketer)
    template = client.get("/admin/suppression/suppressionentry/import/template.csv")
    assert template.status_code == 200 and template["Content-Type"] == "text/csv; charset=utf-8"
    assert template.content.decode().splitlines()[0] == "identifier,channel,reason,expires_at,source"
    # the template itself imports cleanly (dry run): 3 rows, nothing skipped, nothing written
    page = client.post(IMPORT, {"file": SimpleUploadedFile("t.csv", template.content), "dry_run": "on"})
    assert page.status_code == 200
    assert "3 rows: 3 would be added, 0 extended, 0 skipped" in page.content.decode()
    assert SuppressionEntry.objects.count() == 0 and SuppressionAudit.objects.count() == 0

    services.suppression_add(identifier="jane@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(days=1))
    csv_text = ("identifier,channel,reason,expires_at\n"
                "jane@example.com,email,unsubscribe,\n"   # extends to permanent
                "new@example.com,email,bounce,\n"
                "not an address,email,bounce,\n"
                "x@example.com,fax,bounce,\n")
    page = client.post(IMPORT, {"file": SimpleUploadedFile("list.csv", csv_text.encode()), "dry_run": "on"})
    body = page.content.decode()
    assert "4 rows: 1 would be added, 1 extended, 2 skipped" in body
    assert re.search(r'<td>4</td><td>[^<]+</td>', body) and re.search(r'<td>5</td><td>[^<]*fax', body)
    assert 'id="dry-run-errors"' in body and "data:text/csv" in body
    assert SuppressionEntry.objects.count() == 1
    assert SuppressionEntry.objects.get().expires_at is not None  # the dry run extended nothing

    # the real import, then its skipped rows as a CSV file
    response = client.post(IMPORT, {"file": SimpleUploadedFile("list.csv", csv_text.encode())})
    imp = SuppressionImport.objects.get()
    assert response.status_code == 302 and (imp.added, imp.updated, imp.skipped) == (1, 1, 2)
    status = client.get(f"{IMPORT}{imp.pk}/").content.decode()
    assert f'href="{IMPORT}{imp.pk}/skipped.csv"' in status
    download = client.get(f"{IMPORT}{imp.pk}/skipped.csv")
    assert download["Content-Disposition"] == f'attachment; filename="import-{imp.pk}-skipped-rows.csv"'
    lines = download.content.decode().splitlines()
    assert lines[0] == "line,problem" and [line.split(",")[0] for line in lines[1:]] == ["4", "5"]
