"""Activations and email events reach analytics (the real emitter → Redis stream → ClickHouse path)."""
from __future__ import annotations

import json
import time
import uuid

import pytest

from apps.analytics import testing
from apps.core import clickhouse as ch
from apps.omnichannel.services import sendgrid_batch_process, sendgrid_webhook_receive

from .helpers import make_offer, reachable_by
from .test_providers import activate_and_send
from .test_sendgrid_webhook import sg_event

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="session")
def clickhouse_db():
    return testing.clickhouse_schema()


def test_activation_and_email_events_are_emitted(clickhouse_db, providers, sendgrid_signing_key,
                                                 django_capture_on_commit_callbacks):
    user_id = f"u-{uuid.uuid4().hex[:12]}"  # this test's rows only (the ClickHouse database outlives runs)
    campaign, offer = make_offer()
    reachable_by(user_id, email="ann@example.com")
    with django_capture_on_commit_callbacks(execute=True):
        activation, send = activate_and_send(user_id, offer_id=offer.pk)
        events = [sg_event(send, kind) for kind in ("delivered", "open", "click", "unsubscribe")]
        body = json.dumps(events).encode()
        ts = str(int(time.time()))
        batch = sendgrid_webhook_receive(body=body, signature=sendgrid_signing_key.sign(ts, body), timestamp=ts)
        sendgrid_batch_process(batch_id=batch.pk)
    testing.flush_and_consume()
    rows = ch.execute(
        "SELECT event_type, channel, activation_id, campaign_id, offer_id FROM analytics_events FINAL "
        "WHERE user_id = %(user_id)s ORDER BY timestamp, timestamp_us",
        {"user_id": user_id},
    )
    ids = (str(activation.pk), str(campaign.pk), str(offer.pk))
    assert sorted(rows) == sorted([
        ("activation_queued", "email", *ids), ("activation_sent", "email", *ids),
        ("email_delivered", "email", *ids), ("activation_delivered", "email", *ids),
        ("email_open", "email", *ids), ("email_click", "email", *ids), ("email_unsubscribe", "email", *ids),
    ])


def test_skipped_and_failed_activations_say_why(clickhouse_db, providers, django_capture_on_commit_callbacks):
    user_id = f"u-{uuid.uuid4().hex[:12]}"
    reachable_by(user_id)  # reachable by nothing
    other = f"u-{uuid.uuid4().hex[:12]}"
    reachable_by(other, phone="+14155550100")
    providers.twilio.fail_next(400, {"code": 21211, "message": "The 'To' number is not a valid phone number.",
                                     "status": 400})
    with django_capture_on_commit_callbacks(execute=True):
        from apps.omnichannel.services import activation_create

        activation_create(user_id=user_id, title="Hi")
        activate_and_send(other)
    testing.flush_and_consume()
    skipped = ch.execute("SELECT event_type, reason FROM analytics_events FINAL WHERE user_id = %(u)s", {"u": user_id})
    assert skipped == [("activation_failed", "no_reachable_channel")]
    failed = ch.execute("SELECT event_type, reason FROM analytics_events FINAL WHERE user_id = %(u)s "
                        "AND event_type = 'activation_failed'", {"u": other})
    assert failed == [("activation_failed", "twilio HTTP 400 21211: The 'To' number is not a valid phone number.")]
