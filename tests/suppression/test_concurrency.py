"""Concurrent adds of the same key must leave one entry and one "added" audit row, and no errors."""
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.suppression import services
from apps.suppression.models import SuppressionAudit, SuppressionEntry
from tests.support.threads import run_together


def _race(calls) -> None:
    """Every call at once; any exception, or a call that does not finish, fails the test."""
    run_together(calls)


@pytest.mark.django_db(transaction=True)
def test_concurrent_single_adds_keep_one_entry():
    for round_ in range(3):
        identifier = f"race{round_}@example.com"
        _race([
            lambda identifier=identifier: services.suppression_add(identifier=identifier, channel="email", reason="unsubscribe")
            for _ in range(6)
        ])
        assert SuppressionEntry.objects.filter(identifier=identifier).count() == 1
        assert SuppressionAudit.objects.filter(identifier=identifier, action="added").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_and_single_adds_keep_one_entry_per_key():
    later = timezone.now() + timedelta(days=5)
    rows = [{"identifier": f"u-{i}", "channel": "push", "reason": "manual", "expires_at": later} for i in range(50)]
    calls = [lambda: services.suppression_bulk_add(entries=rows, created_by=None) for _ in range(3)]
    calls += [lambda i=i: services.suppression_add(identifier=f"u-{i}", channel="push", reason="unsubscribe")
              for i in range(0, 50, 10)]
    _race(calls)
    assert SuppressionEntry.objects.count() == 50
    assert SuppressionAudit.objects.filter(action="added").count() == 50
    # whatever the order, the permanent adds are never shortened by the expiring bulk rows
    assert SuppressionEntry.objects.filter(identifier__in=[f"u-{i}" for i in range(0, 50, 10)],
                                           expires_at__isnull=True).count() == 5
