"""Concurrent adds of the same key must leave one entry and one "added" audit row, and no errors."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.suppression import services
from apps.suppression.models import SuppressionAudit, SuppressionEntry


def _race(calls) -> list[BaseException]:
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call):
        try:
            barrier.wait(timeout=10)
            call()
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    return errors


@pytest.mark.django_db(transaction=True)
def test_concurrent_single_adds_keep_one_entry():
    for round_ in range(3):
        identifier = f"race{round_}@example.com"
        errors = _race([
            lambda: services.suppression_add(identifier=identifier, channel="email", reason="unsubscribe")
            for _ in range(6)
        ])
        assert errors == []
        assert SuppressionEntry.objects.filter(identifier=identifier).count() == 1
        assert SuppressionAudit.objects.filter(identifier=identifier, action="added").count() == 1


@pytest.mark.django_db(transaction=True)
def test_concurrent_bulk_and_single_adds_keep_one_entry_per_key():
    later = timezone.now() + timedelta(days=5)
    rows = [{"identifier": f"u-{i}", "channel": "push", "reason": "manual", "expires_at": later} for i in range(50)]
    calls = [lambda: services.suppression_bulk_add(entries=rows, created_by=None) for _ in range(3)]
    calls += [lambda i=i: services.suppression_add(identifier=f"u-{i}", channel="push", reason="unsubscribe")
              for i in range(0, 50, 10)]
    assert _race(calls) == []
    assert SuppressionEntry.objects.count() == 50
    assert SuppressionAudit.objects.filter(action="added").count() == 50
    # whatever the order, the permanent adds are never shortened by the expiring bulk rows
    assert SuppressionEntry.objects.filter(identifier__in=[f"u-{i}" for i in range(0, 50, 10)],
                                           expires_at__isnull=True).count() == 5
