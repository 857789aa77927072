from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.exceptions import Forbidden, ServiceError
from apps.suppression import selectors, services
from apps.suppression.models import AuditAction, SuppressionAudit, SuppressionEntry

pytestmark = pytest.mark.django_db


def _expire(identifier: str, channel: str, *, ago: timedelta = timedelta(minutes=1)) -> None:
    """Move an entry's expiry into the past (services refuse past expiries, so tests do it directly)."""
    SuppressionEntry.objects.filter(identifier=identifier, channel=channel).update(expires_at=timezone.now() - ago)


# --- is_suppressed ---------------------------------------------------------------------------------

def test_is_suppressed_on_own_channel_only():
    services.suppression_add(identifier="bob@example.com", channel="email", reason="unsubscribe")
    assert selectors.is_suppressed(identifier="bob@example.com", channel="email") is True
    assert selectors.is_suppressed(identifier="bob@example.com", channel="sms") is False
    assert selectors.is_suppressed(identifier="bob@example.com", channel="push") is False
    assert selectors.is_suppressed(identifier="alice@example.com", channel="email") is False


def test_all_channel_entry_suppresses_every_channel():
    services.suppression_add(identifier="+1 (415) 555-0100", channel="all", reason="regulatory")
    for channel in ("email", "sms", "push", "in_app", "all"):
        assert selectors.is_suppressed(identifier="+14155550100", channel=channel) is True


def test_channel_all_query_counts_only_all_entries():
    services.suppression_add(identifier="bob@example.com", channel="email", reason="unsubscribe")
    assert selectors.is_suppressed(identifier="bob@example.com", channel="all") is False


def test_is_suppressed_normalises_the_identifier():
    services.suppression_add(identifier="Bob@Example.com", channel="email", reason="bounce")
    assert selectors.is_suppressed(identifier="  BOB@example.COM ", channel="email") is True
    services.suppression_add(identifier="0044 20 7946 0958", channel="sms", reason="unsubscribe")
    assert selectors.is_suppressed(identifier="+44 20 7946 0958", channel="sms") is True


def test_expired_entry_does_not_suppress():
    services.suppression_add(identifier="bob@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(days=1))
    assert selectors.is_suppressed(identifier="bob@example.com", channel="email") is True
    _expire("bob@example.com", "email")
    assert selectors.is_suppressed(identifier="bob@example.com", channel="email") is False


def test_expired_all_entry_does_not_suppress_but_channel_entry_still_does():
    services.suppression_add(identifier="u-1", channel="all", reason="manual", expires_at=timezone.now() + timedelta(hours=1))
    services.suppression_add(identifier="u-1", channel="push", reason="unsubscribe")
    _expire("u-1", "all")
    assert selectors.is_suppressed(identifier="u-1", channel="push") is True
    assert selectors.is_suppressed(identifier="u-1", channel="email") is False


def test_removed_entry_does_not_suppress():
    services.suppression_add(identifier="bob@example.com", channel="email", reason="unsubscribe")
    assert services.suppression_remove(identifier="bob@example.com", channel="email", note="asked to resubscribe") == 1
    assert selectors.is_suppressed(identifier="bob@example.com", channel="email") is False


def test_is_suppressed_refuses_unknown_channel_and_garbage():
    with pytest.raises(ServiceError) as exc:
        selectors.is_suppressed(identifier="bob@example.com", channel="fax")
    assert exc.value.field == "channel"
    assert exc.value.message == "unknown channel 'fax' (expected one of: email, sms, push, in_app, all)"
    with pytest.raises(ServiceError) as exc:
        selectors.is_suppressed(identifier="bob@", channel="email")
    assert exc.value.field == "identifier"


def test_is_suppressed_is_a_single_query(django_assert_num_queries):
    services.suppression_add(identifier="bob@example.com", channel="all", reason="unsubscribe")
    with django_assert_num_queries(1):
        assert selectors.is_suppressed(identifier="bob@example.com", channel="email") is True


def test_is_suppressed_query_uses_the_identifier_channel_index():
    from django.db import connection

    from apps.suppression.selectors import _IS_SUPPRESSED_SQL

    services.suppression_add(identifier="bob@example.com", channel="email", reason="unsubscribe")
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")  # a tiny test table would otherwise be scanned
        cursor.execute("EXPLAIN " + _IS_SUPPRESSED_SQL, ["bob@example.com", "email", "all", timezone.now()])
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("SET enable_seqscan = on")
    assert "Index Scan using suppression_entry_identifier_channel" in plan


# --- add: idempotent, never shortened --------------------------------------------------------------

def test_add_is_idempotent():
    first = services.suppression_add(identifier="bob@example.com", channel="email", reason="unsubscribe",
                                     source="sendgrid:unsubscribe")
    second = services.suppression_add(identifier=" BOB@example.com", channel="email", reason="unsubscribe",
                                      source="sendgrid:unsubscribe")
    assert first.pk == second.pk
    assert SuppressionEntry.objects.count() == 1
    assert list(SuppressionAudit.objects.values_list("action", flat=True)) == [AuditAction.ADDED]
    entry = SuppressionEntry.objects.get()
    assert (entry.identifier, entry.identifier_kind, entry.channel, entry.reason, entry.source, entry.expires_at) == (
        "bob@example.com", "email", "email", "unsubscribe", "sendgrid:unsubscribe", None)


def test_same_identifier_on_other_channel_is_a_separate_entry():
    services.suppression_add(identifier="bob@example.com", channel="email", reason="unsubscribe")
    services.suppression_add(identifier="bob@example.com", channel="all", reason="manual")
    assert sorted(SuppressionEntry.objects.values_list("channel", flat=True)) == ["all", "email"]


def test_permanent_entry_is_not_shortened_by_a_later_expiring_one():
    services.suppression_add(identifier="bob@example.com", channel="email", reason="unsubscribe")
    entry = services.suppression_add(identifier="bob@example.com", channel="email", reason="manual",
                                     expires_at=timezone.now() + timedelta(days=7))
    assert entry.expires_at is None
    assert entry.reason == "unsubscribe"
    assert SuppressionEntry.objects.get().expires_at is None
    assert SuppressionAudit.objects.count() == 1


def test_expiring_entry_is_lengthened_not_shortened():
    later = timezone.now() + timedelta(days=30)
    services.suppression_add(identifier="u-9", channel="push", reason="manual", expires_at=later)
    services.suppression_add(identifier="u-9", channel="push", reason="manual", expires_at=later - timedelta(days=10))
    assert SuppressionEntry.objects.get().expires_at == later
    even_later = later + timedelta(days=30)
    services.suppression_add(identifier="u-9", channel="push", reason="spam_report", expires_at=even_later)
    entry = SuppressionEntry.objects.get()
    assert (entry.expires_at, entry.reason) == (even_later, "spam_report")
    services.suppression_add(identifier="u-9", channel="push", reason="unsubscribe")  # permanent wins
    assert SuppressionEntry.objects.get().expires_at is None
    assert list(SuppressionAudit.objects.order_by("id").values_list("action", flat=True)) == [
        "added", "updated", "updated"]
    last = SuppressionAudit.objects.order_by("-id").first()
    assert last.previous["expires_at"] == even_later.isoformat()
    assert last.expires_at is None


def test_adding_over_an_expired_entry_revives_it():
    services.suppression_add(identifier="u-3", channel="push", reason="manual",
                             expires_at=timezone.now() + timedelta(hours=1))
    _expire("u-3", "push")
    entry = services.suppression_add(identifier="u-3", channel="push", reason="bounce")
    assert entry.expires_at is None and entry.reason == "bounce"
    assert SuppressionEntry.objects.count() == 1
    assert selectors.is_suppressed(identifier="u-3", channel="push") is True
    assert SuppressionAudit.objects.order_by("-id").first().action == AuditAction.ADDED


@pytest.mark.parametrize("kwargs, field, message", [
    ({"channel": "fax"}, "channel", "unknown channel 'fax' (expected one of: email, sms, push, in_app, all)"),
    ({"channel": ""}, "channel", "channel is required"),
    ({"reason": "annoyed"}, "reason",
     "unknown reason 'annoyed' (expected one of: unsubscribe, bounce, spam_report, manual, regulatory)"),
    ({"identifier": "bob@"}, "identifier", "invalid email address 'bob@'"),
    ({"identifier": "+14155550100"}, "identifier",
     "a phone number cannot be suppressed on the email channel (use sms or all)"),
    ({"identifier": "bob@example.com", "channel": "sms"}, "identifier",
     "an email address cannot be suppressed on the sms channel (use email or all)"),
    ({"expires_at": "tomorrow"}, "expires_at",
     "expires_at 'tomorrow' is not an ISO 8601 date or datetime (e.g. 2027-01-31 or 2027-01-31T12:00:00Z)"),
    ({"expires_at": "2001-01-01"}, "expires_at", "expires_at 2001-01-01T00:00:00+00:00 is in the past"),
])
def test_add_refuses_bad_input_naming_the_field(kwargs, field, message):
    args = {"identifier": "bob@example.com", "channel": "email", "reason": "unsubscribe", **kwargs}
    with pytest.raises(ServiceError) as exc:
        services.suppression_add(**args)
    assert (exc.value.field, exc.value.message) == (field, message)
    assert SuppressionEntry.objects.count() == 0
    assert SuppressionAudit.objects.count() == 0


def test_expiry_accepts_iso_strings():
    entry = services.suppression_add(identifier="u-1", channel="push", reason="manual", expires_at="2999-01-31")
    assert entry.expires_at.isoformat() == "2999-01-31T00:00:00+00:00"
    entry = services.suppression_add(identifier="u-2", channel="push", reason="manual",
                                     expires_at="2999-01-31T12:30:00+02:00")
    assert entry.expires_at.isoformat() == "2999-01-31T12:30:00+02:00"


def test_roles_for_writes(marketer, approver, admin_user, nobody):
    entry = services.suppression_add(identifier="a@example.com", channel="email", reason="manual", created_by=marketer)
    assert entry.created_by == marketer
    for user in (approver, nobody):
        with pytest.raises(Forbidden):
            services.suppression_add(identifier="b@example.com", channel="email", reason="manual", created_by=user)
    with pytest.raises(Forbidden):
        services.suppression_remove(identifier="a@example.com", channel="email", removed_by=marketer)
    assert selectors.is_suppressed(identifier="a@example.com", channel="email") is True
    assert services.suppression_remove(identifier="a@example.com", channel="email", removed_by=admin_user,
                                       note="consent renewed") == 1


# --- remove is audited ---------------------------------------------------------------------------

def test_removal_is_audited_with_who_when_why(admin_user):
    services.suppression_add(identifier="bob@example.com", channel="email", reason="unsubscribe",
                             source="sendgrid:unsubscribe")
    assert services.suppression_remove(identifier="Bob@Example.com", channel="email", removed_by=admin_user,
                                       note="customer re-subscribed by phone") == 1
    assert services.suppression_remove(identifier="bob@example.com", channel="email", removed_by=admin_user) == 0
    history = list(selectors.suppression_history(identifier="bob@example.com"))
    assert [h.action for h in history] == ["removed", "added"]
    removal = history[0]
    assert (removal.actor, removal.note, removal.reason, removal.source) == (
        admin_user, "customer re-subscribed by phone", "unsubscribe", "sendgrid:unsubscribe")
    assert removal.previous["reason"] == "unsubscribe"
    assert abs((removal.at - timezone.now()).total_seconds()) < 5


def test_remove_only_touches_the_named_channel():
    services.suppression_add(identifier="bob@example.com", channel="email", reason="unsubscribe")
    services.suppression_add(identifier="bob@example.com", channel="all", reason="manual")
    assert services.suppression_remove(identifier="bob@example.com", channel="email") == 1
    assert selectors.is_suppressed(identifier="bob@example.com", channel="email") is True  # via "all"


# --- bulk ----------------------------------------------------------------------------------------

def test_bulk_add_summary(marketer):
    services.suppression_add(identifier="old@example.com", channel="email", reason="bounce")
    services.suppression_add(identifier="temp@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(days=1))
    result = services.suppression_bulk_add(created_by=marketer, source="crm-export", entries=[
        {"identifier": "a@example.com", "channel": "email", "reason": "unsubscribe"},
        {"identifier": " A@EXAMPLE.com", "channel": "email", "reason": "unsubscribe"},
        {"identifier": "a@example.com", "channel": "all", "reason": "unsubscribe"},  # not a duplicate
        {"identifier": "old@example.com", "channel": "email", "reason": "manual"},
        {"identifier": "temp@example.com", "channel": "email", "reason": "manual"},  # becomes permanent
        {"identifier": "+1 415 555 0100", "channel": "sms", "reason": "unsubscribe", "source": "twilio:STOP"},
    ])
    assert result.added == 3
    assert result.updated == 1
    assert result.skipped == [(1, "duplicate of row 0"), (3, "already suppressed (bounce, permanent)")]
    entries = {(e.identifier, e.channel): e for e in SuppressionEntry.objects.all()}
    assert set(entries) == {("a@example.com", "email"), ("a@example.com", "all"), ("old@example.com", "email"),
                            ("temp@example.com", "email"), ("+14155550100", "sms")}
    assert entries[("temp@example.com", "email")].expires_at is None
    assert entries[("a@example.com", "email")].source == "crm-export"
    assert entries[("a@example.com", "email")].created_by == marketer
    assert entries[("+14155550100", "sms")].source == "twilio:STOP"
    assert SuppressionAudit.objects.filter(actor=marketer).count() == 4


def test_bulk_add_is_all_or_nothing_for_malformed_rows(marketer):
    with pytest.raises(ServiceError) as exc:
        services.suppression_bulk_add(created_by=marketer, entries=[
            {"identifier": "a@example.com", "channel": "email", "reason": "unsubscribe"},
            {"identifier": "b@example.com", "channel": "fax", "reason": "unsubscribe"},
        ])
    assert exc.value.field == "entries[1].channel"
    assert exc.value.message == "row 1: unknown channel 'fax' (expected one of: email, sms, push, in_app, all)"
    assert SuppressionEntry.objects.count() == 0
    assert SuppressionAudit.objects.count() == 0


def test_bulk_add_skip_mode_reports_invalid_rows():
    result = services.suppression_bulk_add(created_by=None, on_invalid="skip", row_label="line", entries=[
        {"row": 2, "identifier": "a@example.com", "channel": "email", "reason": "unsubscribe"},
        {"row": 3, "identifier": "nope@", "channel": "email", "reason": "unsubscribe"},
        {"row": 4, "identifier": "a@example.com", "channel": "email", "reason": "bounce"},
        {"row": 5, "identifier": "b@example.com", "channel": "email", "reason": "whatever"},
    ])
    assert result.added == 1
    assert result.skipped == [
        (3, "invalid email address 'nope@'"),
        (4, "duplicate of line 2"),
        (5, "unknown reason 'whatever' (expected one of: unsubscribe, bounce, spam_report, manual, regulatory)"),
    ]


def test_bulk_remove_summary(admin_user):
    services.suppression_add(identifier="a@example.com", channel="email", reason="unsubscribe")
    services.suppression_add(identifier="b@example.com", channel="email", reason="unsubscribe")
    result = services.suppression_bulk_remove(removed_by=admin_user, note="list cleanup", entries=[
        {"identifier": "a@example.com", "channel": "email"},
        {"identifier": "zed@example.com", "channel": "email"},
        {"identifier": "A@example.com", "channel": "email"},
        {"identifier": "b@example.com", "channel": "sms"},
    ])
    assert result.removed == 1
    assert result.skipped == [(1, "not suppressed"), (2, "duplicate of row 0"), (3, "not suppressed")]
    assert list(SuppressionEntry.objects.values_list("identifier", flat=True)) == ["b@example.com"]
    removal = SuppressionAudit.objects.get(action="removed")
    assert (removal.identifier, removal.actor, removal.note) == ("a@example.com", admin_user, "list cleanup")


def test_bulk_remove_is_all_or_nothing_for_malformed_rows(admin_user):
    services.suppression_add(identifier="a@example.com", channel="email", reason="unsubscribe")
    with pytest.raises(ServiceError) as exc:
        services.suppression_bulk_remove(removed_by=admin_user, entries=[
            {"identifier": "a@example.com", "channel": "email"},
            {"identifier": "(415) 555-0100", "channel": "sms"},
        ])
    assert exc.value.field == "entries[1].identifier"
    assert SuppressionEntry.objects.count() == 1


def test_bulk_remove_requires_admin(marketer):
    with pytest.raises(Forbidden):
        services.suppression_bulk_remove(removed_by=marketer, entries=[{"identifier": "a@x.com", "channel": "email"}])


# --- extend and purge ----------------------------------------------------------------------------

def test_extend_never_shortens(marketer):
    soon = timezone.now() + timedelta(days=1)
    services.suppression_add(identifier="a@example.com", channel="email", reason="manual", expires_at=soon)
    services.suppression_add(identifier="b@example.com", channel="email", reason="manual")
    services.suppression_add(identifier="c@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(days=400))
    ids = list(SuppressionEntry.objects.values_list("pk", flat=True))
    target = timezone.now() + timedelta(days=90)
    assert services.suppression_extend(entry_ids=ids, expires_at=target, actor=marketer) == 1
    expiries = dict(SuppressionEntry.objects.values_list("identifier", "expires_at"))
    assert expiries["a@example.com"] == target
    assert expiries["b@example.com"] is None
    assert expiries["c@example.com"] > target
    assert services.suppression_extend(entry_ids=ids, expires_at=None, actor=marketer) == 2
    assert SuppressionEntry.objects.filter(expires_at__isnull=False).count() == 0


def test_purge_removes_only_expired_entries():
    services.suppression_add(identifier="gone@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(hours=1))
    services.suppression_add(identifier="soon@example.com", channel="email", reason="manual",
                             expires_at=timezone.now() + timedelta(hours=1))
    services.suppression_add(identifier="forever@example.com", channel="email", reason="unsubscribe")
    _expire("gone@example.com", "email")
    assert services.suppression_purge_expired() == 1
    assert sorted(SuppressionEntry.objects.values_list("identifier", flat=True)) == [
        "forever@example.com", "soon@example.com"]
    purge = SuppressionAudit.objects.get(action="purged")
    assert (purge.identifier, purge.actor, purge.note) == ("gone@example.com", None, "expired")
    assert services.suppression_purge_expired() == 0


def test_purge_works_in_batches():
    for i in range(7):
        services.suppression_add(identifier=f"u-{i}", channel="push", reason="manual",
                                 expires_at=timezone.now() + timedelta(hours=1))
    SuppressionEntry.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    services.suppression_add(identifier="keep", channel="push", reason="manual")
    assert services.suppression_purge_expired(batch_size=3) == 7
    assert list(SuppressionEntry.objects.values_list("identifier", flat=True)) == ["keep"]
    assert SuppressionAudit.objects.filter(action="purged").count() == 7
