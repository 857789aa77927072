"""The beat task that re-queues sends and webhook batches whose Celery task was lost."""
from __future__ import annotations

import json
import time
from datetime import timedelta

import pytest
from django.utils import timezone

from apps.omnichannel import services
from apps.omnichannel.models import SendGridBatch, SendLedger
from apps.omnichannel.schedules import BEAT_SCHEDULE
from apps.omnichannel.tasks import recover
from tests.support.beat import min_period_seconds

from .helpers import reachable_by

pytestmark = pytest.mark.django_db


def test_recover_is_scheduled_with_an_expiry():
    entry = BEAT_SCHEDULE["omnichannel-recover"]
    assert entry["task"] == "omnichannel.recover" and entry["options"]["expires"] < min_period_seconds(entry["schedule"])


def test_a_send_whose_task_was_lost_is_sent_by_the_recovery(providers):
    reachable_by("u-1", email="ann@example.com")
    # Outside django_capture_on_commit_callbacks the after-commit enqueue never runs: the task is "lost".
    activation = services.activation_create(user_id="u-1", title="Hi")
    send = SendLedger.objects.get(activation=activation)
    assert recover.apply().get() == {"sends": 0, "sendgrid_batches": 0}  # too recent to be called lost
    SendLedger.objects.filter(pk=send.pk).update(next_attempt_at=timezone.now() - timedelta(minutes=11))
    assert recover.apply().get()["sends"] == 1
    assert SendLedger.objects.get(pk=send.pk).status == "sent"
    assert len(providers.sendgrid.requests) == 1
    assert recover.apply().get()["sends"] == 0


def test_an_abandoned_claim_is_closed_without_a_second_send(providers, settings):
    reachable_by("u-1", email="ann@example.com")
    activation = services.activation_create(user_id="u-1", title="Hi")
    SendLedger.objects.filter(activation=activation).update(
        status="sending", claim_token="dead-worker", claimed_at=timezone.now() - timedelta(hours=1))
    assert recover.apply().get()["sends"] == 1
    send = SendLedger.objects.get(activation=activation)
    assert (send.status, send.error_code) == ("failed", "outcome_unknown")
    assert providers.sendgrid.requests == []


def test_an_unprocessed_webhook_batch_is_processed_by_the_recovery(sendgrid_signing_key):
    body = json.dumps([{"event": "processed", "email": "a@example.com", "timestamp": 1700000000,
                        "sg_event_id": "ev-1", "sg_message_id": "m.1"}]).encode()
    ts = str(int(time.time()))
    batch = services.sendgrid_webhook_receive(body=body, signature=sendgrid_signing_key.sign(ts, body), timestamp=ts)
    SendGridBatch.objects.filter(pk=batch.pk).update(received_at=timezone.now() - timedelta(minutes=6))
    assert recover.apply().get()["sendgrid_batches"] == 1
    batch.refresh_from_db()
    assert batch.processed_at is not None and batch.new_events == 1


def test_demo_seed_is_idempotent():
    from apps.omnichannel import demo
    from apps.omnichannel.models import Activation, Contact, Interaction

    assert demo.seed() == {"contacts": 3, "accepted": 8, "duplicate": 0}
    counts = (Contact.objects.count(), Interaction.objects.count(), Activation.objects.count())
    assert demo.seed() == {"contacts": 3, "accepted": 0, "duplicate": 8}
    assert (Contact.objects.count(), Interaction.objects.count(), Activation.objects.count()) == counts
    assert Activation.objects.get(trigger="store_visit").channel == "in_store"
