"""Idempotency records of omnichannel writes are purged after OMNICHANNEL_IDEMPOTENCY_RETENTION_DAYS
(omnichannel.purge_idempotency_records, daily); an ingest event sent again after its record went is
still its own duplicate, answered from the stored event, and credits nothing twice."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.models import IdempotencyRecord
from apps.omnichannel.models import IngestEvent, Interaction

pytestmark = pytest.mark.django_db

URL = "/v1/channels/ingest"


def event(**overrides):
    body = {"event_id": "ret-1", "source": "pos", "event_type": "cart_add", "user_id": "u-1", "item_id": "sku-1"}
    return {**body, **overrides}


def _age_records(days: int) -> None:
    IdempotencyRecord.objects.filter(scope__startswith="omnichannel.").update(
        created_at=timezone.now() - timedelta(days=days))


def test_the_daily_purge_drops_omnichannel_records_past_the_retention(settings, integration_client):
    from apps.omnichannel.tasks import purge_idempotency_records

    settings.OMNICHANNEL_IDEMPOTENCY_RETENTION_DAYS = 30
    settings.RETENTION_PURGE_BATCH_SIZE = 2
    for i in range(3):
        assert integration_client.post(URL, event(event_id=f"old-{i}"), format="json").status_code == 201
    _age_records(31)
    assert integration_client.post(URL, event(event_id="new-1"), format="json").status_code == 201
    IdempotencyRecord.objects.create(scope="loyalty.redeem", key="k", fingerprint="f", response_status=200,
                                     created_at=timezone.now() - timedelta(days=31))
    IdempotencyRecord.objects.filter(scope="loyalty.redeem").update(created_at=timezone.now() - timedelta(days=31))

    assert purge_idempotency_records.apply().get() == 3
    assert IdempotencyRecord.objects.filter(scope__startswith="omnichannel.").count() == 1
    assert IdempotencyRecord.objects.filter(scope="loyalty.redeem").count() == 1  # not ours to purge
    assert IngestEvent.objects.count() == 4  # the events themselves stay


def test_an_event_sent_again_after_its_record_was_purged_is_still_a_duplicate(settings, integration_client):
    from apps.omnichannel.services import omnichannel_purge_idempotency_records

    settings.OMNICHANNEL_IDEMPOTENCY_RETENTION_DAYS = 30
    first = integration_client.post(URL, event(), format="json")
    assert first.status_code == 201
    _age_records(31)
    assert omnichannel_purge_idempotency_records() == 1
    assert not IdempotencyRecord.objects.filter(scope__startswith="omnichannel.").exists()

    again = integration_client.post(URL, event(), format="json")
    assert (again.status_code, again.json()) == (200, {**first.json(), "duplicate": True})
    assert IngestEvent.objects.count() == 1 and Interaction.objects.count() == 1

    other = integration_client.post(URL, event(item_id="sku-9"), format="json")
    assert other.status_code == 409 and other.json()["field"] == "event_id"
    assert IngestEvent.objects.count() == 1 and Interaction.objects.count() == 1


def test_the_purge_is_on_the_beat_schedule_with_an_expiry():
    import apps.omnichannel.tasks  # noqa: F401  (registers the tasks, as the worker's autodiscovery does)
    from config.celery import app

    entry = app.conf.beat_schedule["omnichannel-purge-idempotency-records"]
    assert entry["task"] == "omnichannel.purge_idempotency_records" and 0 < entry["options"]["expires"] <= 86400
    assert "omnichannel.purge_idempotency_records" in app.tasks
