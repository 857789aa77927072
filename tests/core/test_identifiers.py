"""The one user-id rule (apps.core.identifiers) and the read-only report of stored ids that break it."""
from __future__ import annotations

import importlib
import logging
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.loader import MigrationLoader
from django.utils import timezone

from apps.core.exceptions import ServiceError
from apps.core.identifiers import USER_ID_MAX_LENGTH, USER_ID_PATTERN, clean_user_id, user_id_problem
from apps.core.migration_helpers import log_user_id_report, user_id_report

VALID = ["u1", "u-42", "USER_0001", "josé", "用户42", "a+b@shop", "ünïcödé.ñ", "🙂", "x" * 128, "'\"<>&;|$`"]

# (value, what the message says)
INVALID = [
    ("john smith", "contains whitespace (U+0020 SPACE at position 4)"),
    ("a\tb", "contains whitespace (U+0009"),
    ("a\nb", "contains whitespace (U+000A"),
    ("a\u00a0b", "contains whitespace (U+00A0 NO-BREAK SPACE"),
    ("a\u3000b", "contains whitespace (U+3000 IDEOGRAPHIC SPACE"),
    ("a\u2028b", "contains whitespace (U+2028 LINE SEPARATOR"),
    ("a\x00b", "contains a control character (U+0000"),
    ("a\x7fb", "contains a control character (U+007F"),
    ("a\x85b", "contains whitespace (U+0085"),  # NEL: a C1 control Python counts as whitespace
    ("a\x9bb", "contains a control character (U+009B"),
    ("a\u200bb", "contains an invisible or unassigned character (U+200B ZERO WIDTH SPACE"),
    ("a\u202eb", "contains an invisible or unassigned character (U+202E RIGHT-TO-LEFT OVERRIDE"),
    ("a\ufeffb", "contains an invisible or unassigned character (U+FEFF ZERO WIDTH NO-BREAK SPACE"),
    ("a\ue000b", "contains an invisible or unassigned character (U+E000"),  # private use
    ("a\u0378b", "contains an invisible or unassigned character (U+0378"),  # unassigned
    ("a\ud800b", "contains an invisible or unassigned character (U+D800"),  # a lone surrogate (JSON "\ud800")
    ("x" * 129, "is longer than 128 characters (129)"),
]


@pytest.mark.parametrize("value", VALID)
def test_printable_ids_of_any_script_are_user_ids(value):
    assert clean_user_id(value) == value
    assert user_id_problem(value) is None


def test_surrounding_whitespace_is_trimmed_as_the_slices_did():
    assert clean_user_id("  u1\n") == "u1"
    assert clean_user_id("\t" + "x" * 128 + " ") == "x" * 128  # the limit counts the trimmed id


@pytest.mark.parametrize("value, problem", INVALID, ids=[repr(v)[:24] for v, _ in INVALID])
def test_whitespace_control_invisible_and_too_long_are_refused_naming_the_problem(value, problem):
    with pytest.raises(ServiceError) as raised:
        clean_user_id(value)
    error = raised.value
    assert (error.field, error.code, error.status_code) == ("user_id", "invalid", 400)
    assert error.message.startswith(f"user_id {problem}"), error.message
    assert "1-128 characters without whitespace or control characters" in error.message


@pytest.mark.parametrize("value", [None, "", "   ", "\t\n"])
def test_a_missing_user_id_is_required(value):
    with pytest.raises(ServiceError) as raised:
        clean_user_id(value)
    assert (raised.value.code, raised.value.message) == ("required", "user_id is required.")


@pytest.mark.parametrize("value, name", [(42, "int"), (4.2, "float"), (True, "bool"), (b"u1", "bytes"),
                                         (["u1"], "list"), ({"id": "u1"}, "dict")])
def test_only_strings_are_user_ids(value, name):
    with pytest.raises(ServiceError) as raised:
        clean_user_id(value)
    assert raised.value.message == f"user_id must be a string, got {name}."


def test_the_field_name_is_the_callers():
    with pytest.raises(ServiceError) as raised:
        clean_user_id("a b", field="entries[2].user_id")
    assert raised.value.field == "entries[2].user_id" and raised.value.message.startswith("entries[2].user_id contains")


def test_the_schema_pattern_never_admits_what_the_rule_refuses():
    pattern = re.compile(USER_ID_PATTERN)
    for value in VALID:
        assert pattern.match(value), value
    refused_by_pattern = [value for value, _ in INVALID if not pattern.match(value)]
    assert len(refused_by_pattern) >= 9  # whitespace and controls: what a schema can state
    for value in refused_by_pattern:
        with pytest.raises(ServiceError):
            clean_user_id(value)
    assert USER_ID_MAX_LENGTH == 128


# --- the report ------------------------------------------------------------------------------------

def _rows(models):
    """Rows in every scanned column: good ids, and ids that break the rule."""
    now = timezone.now()
    Account = models.get_model("loyalty", "LoyaltyAccount")
    Contact = models.get_model("omnichannel", "Contact")
    IngestEvent = models.get_model("omnichannel", "IngestEvent")
    Interaction = models.get_model("omnichannel", "Interaction")
    Activation = models.get_model("omnichannel", "Activation")
    for user_id in ["good-1", "john smith", "jane doe", "tab\there"]:
        Account.objects.create(user_id=user_id, qualifying_period_end=now + timedelta(days=365))
    Contact.objects.create(user_id="good-1")
    Contact.objects.create(user_id="zero\u200bwidth")
    event = IngestEvent.objects.create(event_id="e1", source="web", caller="user:1", event_type="page_view", user_id="",
                                       device_id="d 1", occurred_at=now, transport="http", payload={})
    for index, user_id in enumerate(["device:d 1", "good-1"]):  # a device row is not a user id
        Interaction.objects.create(user_id=user_id, item_id=f"i{index}", event_type="page_view", weight=1.0,
                                   occurred_at=now, ingest_event=event)
    for _ in range(3):
        Activation.objects.create(user_id="john smith", status="skipped", title="t", body="b")


def _snapshot():
    with connection.cursor() as cursor:
        cursor.execute("SELECT user_id FROM loyalty_loyaltyaccount ORDER BY user_id")
        accounts = cursor.fetchall()
        cursor.execute("SELECT user_id FROM omnichannel_contact ORDER BY user_id")
        return accounts, cursor.fetchall()


def _historical_apps():
    """The models as migration core 0004 sees them."""
    loader = MigrationLoader(connection)
    return loader.project_state(("core", "0004_report_user_ids")).apps


@pytest.mark.django_db
def test_the_migration_reports_bad_ids_and_alters_nothing(caplog):
    historical = _historical_apps()
    _rows(historical)
    before = _snapshot()
    migration = importlib.import_module("apps.core.migrations.0004_report_user_ids")
    with caplog.at_level(logging.WARNING, logger="apps.core.identifiers"):
        migration.report(historical, None)
    assert _snapshot() == before

    warnings = [r.msg for r in caplog.records if r.name == "apps.core.identifiers" and r.levelno == logging.WARNING]
    by_model = {w["model"]: w for w in warnings}
    assert set(by_model) == {"loyalty.LoyaltyAccount", "omnichannel.Contact", "omnichannel.Activation"}
    account = by_model["loyalty.LoyaltyAccount"]
    assert (account["event"], account["table"], account["column"], account["rows"], account["values"]) == (
        "user_ids_break_the_rule", "loyalty_loyaltyaccount", "user_id", 3, 3)
    assert account["examples"] == [
        ("jane doe", "contains whitespace (U+0020 SPACE at position 4)"),
        ("john smith", "contains whitespace (U+0020 SPACE at position 4)"),
        ("tab\there", "contains whitespace (U+0009 at position 3)"),
    ]
    assert (by_model["omnichannel.Activation"]["rows"], by_model["omnichannel.Activation"]["values"]) == (3, 1)
    assert by_model["omnichannel.Contact"]["examples"] == [
        ("zero\u200bwidth", "contains an invisible or unassigned character (U+200B ZERO WIDTH SPACE at position 4)")]


@pytest.mark.django_db
def test_the_report_is_silent_on_an_empty_or_clean_database(caplog):
    from django.apps import apps

    with caplog.at_level(logging.WARNING, logger="apps.core.identifiers"):
        assert log_user_id_report(_historical_apps()) == []
        apps.get_model("omnichannel", "Contact").objects.create(user_id="fine")
        assert log_user_id_report(apps) == []
    assert not [r for r in caplog.records if r.name == "apps.core.identifiers"]


@pytest.mark.django_db
def test_the_report_skips_apps_that_are_not_installed():
    from django.apps import apps

    columns = (("nothere", "Model", "user_id", {}), ("omnichannel", "Contact", "user_id", {}))
    apps.get_model("omnichannel", "Contact").objects.create(user_id="a b")
    assert [r["model"] for r in user_id_report(apps, columns=columns)] == ["omnichannel.Contact"]


@pytest.mark.django_db
def test_the_command_lists_bad_ids_and_fails_until_they_are_fixed(capsys):
    from django.apps import apps

    _rows(apps)
    with pytest.raises(CommandError, match="^7 rows in 3 columns hold user ids that break the rule$"):
        call_command("report_user_ids")
    out = capsys.readouterr().out
    assert "loyalty.LoyaltyAccount.user_id: 3 rows, 3 distinct values" in out
    assert "  'john smith' contains whitespace (U+0020 SPACE at position 4)" in out

    apps.get_model("loyalty", "LoyaltyAccount").objects.exclude(user_id="good-1").delete()
    apps.get_model("omnichannel", "Contact").objects.exclude(user_id="good-1").delete()
    apps.get_model("omnichannel", "Activation").objects.all().delete()
    call_command("report_user_ids")
    assert capsys.readouterr().out.strip() == "All stored user ids follow the rule."
