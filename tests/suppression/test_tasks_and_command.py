from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.suppression import selectors, services
from apps.suppression.models import SuppressionAudit, SuppressionEntry, SuppressionImport
from apps.suppression.schedules import BEAT_SCHEDULE
from apps.suppression.tasks import purge_expired_suppressions

pytestmark = pytest.mark.django_db


def test_purge_task_removes_only_expired_entries():
    services.suppression_add(identifier="old@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(hours=1))
    services.suppression_add(identifier="later@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(hours=1))
    services.suppression_add(identifier="forever@example.com", channel="all", reason="regulatory")
    SuppressionEntry.objects.filter(identifier="old@example.com").update(expires_at=timezone.now() - timedelta(seconds=1))
    assert purge_expired_suppressions.apply().get() == 1
    assert sorted(SuppressionEntry.objects.values_list("identifier", flat=True)) == [
        "forever@example.com", "later@example.com"]
    assert list(SuppressionAudit.objects.filter(action="purged").values_list("identifier", flat=True)) == [
        "old@example.com"]
    assert purge_expired_suppressions.apply().get() == 0


def test_purge_is_scheduled_hourly_with_an_expiry():
    from config.celery import app

    entry = BEAT_SCHEDULE["suppression-purge-expired"]
    assert entry["task"] == "suppression.purge_expired" == purge_expired_suppressions.name
    assert entry["options"]["expires"] == 3300
    assert entry["schedule"].minute == {7} and len(entry["schedule"].hour) == 24
    assert app.conf.beat_schedule["suppression-purge-expired"] is entry


def _csv(tmp_path, text: str, name="list.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_import_command(tmp_path, marketer):
    services.suppression_add(identifier="old@example.com", channel="email", reason="bounce")
    path = _csv(tmp_path, "identifier,channel,reason,expires_at\n"
                          "a@example.com,email,unsubscribe,\n"
                          "0044 20 7946 0958,sms,unsubscribe,\n"
                          "oops,fax,manual,\n"
                          "old@example.com,email,manual,\n"
                          "a@example.com,email,bounce,\n")
    out, err = StringIO(), StringIO()
    call_command("import_suppressions", str(path), "--user", "marketer", stdout=out, stderr=err)
    imp = SuppressionImport.objects.get()
    summary = out.getvalue().strip()
    assert summary.startswith("list.csv: 2 added, 0 extended, 3 skipped of 5 rows in ")
    assert summary.endswith(f"s (import #{imp.pk})")
    assert len(summary.splitlines()) == 1
    errors = err.getvalue()
    assert "line 4: unknown channel 'fax' (expected one of: email, sms, push, in_app, all)\n" in errors
    assert "line 5: already suppressed (bounce, permanent)\n" in errors
    assert "line 6: duplicate of line 2\n" in errors
    assert "5/5" in errors  # the tqdm bar reached the end
    assert selectors.is_suppressed(identifier="+442079460958", channel="sms")
    assert SuppressionEntry.objects.get(identifier="a@example.com").created_by == marketer
    assert SuppressionEntry.objects.get(identifier="a@example.com").source == "csv:list.csv"


def test_import_command_without_progress_bar_and_user(tmp_path):
    path = _csv(tmp_path, "identifier,channel,reason\nu-1,push,manual\n")
    out, err = StringIO(), StringIO()
    call_command("import_suppressions", str(path), "--no-progress", "--source", "legacy-db", stdout=out, stderr=err)
    assert out.getvalue().startswith("list.csv: 1 added, 0 extended, 0 skipped of 1 rows in ")
    assert err.getvalue() == ""
    entry = SuppressionEntry.objects.get()
    assert (entry.source, entry.created_by) == ("legacy-db", None)


@pytest.mark.parametrize("content, message", [
    ("", "list.csv: the file is empty"),
    ("identifier,channel\n", "list.csv: bad header line — missing column(s): reason "
                             "(expected identifier,channel,reason[,expires_at][,source])"),
])
def test_import_command_refuses_bad_files(tmp_path, content, message):
    path = _csv(tmp_path, content)
    with pytest.raises(CommandError) as exc:
        call_command("import_suppressions", str(path), stdout=StringIO(), stderr=StringIO())
    assert str(exc.value).endswith(message)
    assert SuppressionImport.objects.count() == 0


def test_import_command_checks_user_and_file(tmp_path, approver):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_suppressions", str(tmp_path / "missing.csv"))
    path = _csv(tmp_path, "identifier,channel,reason\nu-1,push,manual\n")
    with pytest.raises(CommandError, match="no user named 'ghost'"):
        call_command("import_suppressions", str(path), "--user", "ghost")
    with pytest.raises(CommandError, match="Adding suppression entries requires the Marketer or Admin role."):
        call_command("import_suppressions", str(path), "--user", "approver")
    assert SuppressionEntry.objects.count() == 0


def test_import_command_lists_the_first_20_skipped_rows(tmp_path):
    rows = "".join(f"bad{i}@,email,manual\n" for i in range(25))
    path = _csv(tmp_path, "identifier,channel,reason\n" + rows)
    out, err = StringIO(), StringIO()
    call_command("import_suppressions", str(path), "--no-progress", stdout=out, stderr=err)
    lines = err.getvalue().splitlines()
    assert lines[0] == "line 2: invalid email address 'bad0@'"
    assert lines[19] == "line 21: invalid email address 'bad19@'"
    assert lines[20] == ("… and 5 more skipped rows (-v 2 lists up to 1000; the admin import page shows them too)")
    assert len(lines) == 21
    err = StringIO()
    call_command("import_suppressions", str(path), "--no-progress", "-v", "2", stdout=StringIO(), stderr=err)
    assert len(err.getvalue().splitlines()) == 25
