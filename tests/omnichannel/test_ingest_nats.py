"""Ingest over NATS reaches the same outcome as over HTTP (same processor, same answers, errors too).

Each test uses its own subject prefix so ingest consumers of other processes on the shared NATS
server (a running ``run_agents``, another test run) never take these messages.
"""
from __future__ import annotations

import asyncio
import os
import sys
import uuid

import nats
import orjson
import pytest
from asgiref.sync import sync_to_async
from django.conf import settings as django_settings

from apps.omnichannel import services
from apps.omnichannel.agents import QUEUE_GROUP, STATUS_HEADER, start_ingest_consumers
from apps.omnichannel.models import Activation, IngestEvent, Interaction
from tests.support.processes import ManagedProcess
from tests.support.wait import async_wait_until

from .helpers import seed_trigger_rules

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(60)]


@pytest.fixture(autouse=True)
def _trigger_rules(transactional_db):
    seed_trigger_rules()


@pytest.fixture
def prefix(settings):
    settings.INGEST_NATS_SUBJECT_PREFIX = f"ingest_t{uuid.uuid4().hex[:10]}"
    return settings.INGEST_NATS_SUBJECT_PREFIX


@pytest.fixture
async def nc():
    from django.db import connections

    connection = await nats.connect(django_settings.NATS_URL, connect_timeout=2)
    yield connection
    await connection.drain()
    # The test body's ORM calls ran in asgiref's sync thread: close that thread's connection too.
    await sync_to_async(connections.close_all)()


async def request(nc, subject: str, body) -> tuple[int, dict]:
    data = body if isinstance(body, bytes) else orjson.dumps(body)
    reply = await nc.request(subject, data, timeout=10)
    return int(reply.headers[STATUS_HEADER]), orjson.loads(reply.data)


def purchase(event_id: str, **extra):
    return {"event_id": event_id, "source": "pos", "event_type": "purchase", "user_id": f"user-{event_id}",
            "amount_cents": 1250, "order_id": f"o-{event_id}", "items": [{"item_id": "latte", "quantity": 2}],
            "timestamp": "2026-11-20T09:00:00Z", **extra}


def comparable(body: dict) -> dict:
    """The answer without the ids that differ between two events."""
    out = {k: v for k, v in body.items() if k not in ("event_id", "user_id")}
    out["activation"] = {k: v for k, v in body["activation"].items() if k != "activation_id"}
    return out


async def test_the_same_event_over_http_and_nats_has_the_same_outcome(nc, prefix, integration_client):
    subscriptions = await start_ingest_consumers(nc, consumers=2)
    assert len(subscriptions) == 2 and {s.queue for s in subscriptions} == {QUEUE_GROUP}
    http = await sync_to_async(integration_client.post)("/v1/channels/ingest", purchase("h-1"), format="json")
    status, body = await request(nc, f"{prefix}.pos.purchase", purchase("n-1"))
    assert (http.status_code, status) == (201, 201)
    assert comparable(body) == comparable(http.json())
    assert body["loyalty"]["stars_earned"] == 13 and body["activation"]["triggered"] is True

    def stored():
        rows = {e.event_id: e for e in IngestEvent.objects.all()}
        return (rows["h-1"].transport, rows["n-1"].transport,
                Interaction.objects.filter(ingest_event__event_id="n-1").count(),
                Activation.objects.filter(ingest_event__event_id="n-1").count())

    assert await sync_to_async(stored)() == ("http", "nats", 1, 1)


async def test_a_replay_over_nats_answers_the_first_result_and_another_body_conflicts(nc, prefix, integration_client):
    """Over NATS the caller is the subject: (source, subject, event_id) is one event."""
    from apps.loyalty.selectors import loyalty_balance

    await start_ingest_consumers(nc)
    subject = f"{prefix}.pos.purchase"
    status, first = await request(nc, subject, purchase("e-1"))
    assert status == 201 and first["duplicate"] is False
    status, again = await request(nc, subject, purchase("e-1"))  # a redelivery or a client retry
    assert (status, again) == (200, {**first, "duplicate": True})
    status, other = await request(nc, subject, purchase("e-1", amount_cents=9999))
    assert (status, other) == (409, {
        "error": "idempotency_conflict", "field": "event_id",
        "detail": "event_id 'e-1' was already used by this caller for another pos event (a different body); "
                  "use a new event_id for a new event"})
    balance = await sync_to_async(lambda: loyalty_balance(user_id="user-e-1").balance)()
    assert balance == 13  # credited once

    # Another caller reusing the id sends its own event and never sees this one's answer.
    status, store_2 = await request(nc, f"{prefix}.pos.purchase.store-2", purchase("e-1", user_id="someone-else"))
    assert (status, store_2["user_id"], store_2["duplicate"]) == (201, "someone-else", False)
    http = await sync_to_async(integration_client.post)(
        "/v1/channels/ingest", purchase("e-1", user_id="http-user"), format="json")
    assert (http.status_code, http.json()["user_id"]) == (201, "http-user")

    def callers():
        return sorted(IngestEvent.objects.filter(event_id="e-1").values_list("caller", "transport"))

    assert await sync_to_async(callers)() == sorted([
        (f"nats:{prefix}.pos.purchase", "nats"), (f"nats:{prefix}.pos.purchase.store-2", "nats"),
        (f"user:{integration_client.user.pk}", "http")])


async def test_errors_are_the_http_errors(nc, prefix, integration_client):
    await start_ingest_consumers(nc)
    await sync_to_async(services.ingest_source_set_enabled)(source="iot", enabled=False)
    event = {"event_id": "x-1", "source": "iot", "event_type": "app_open", "user_id": "u"}
    http = await sync_to_async(integration_client.post)("/v1/channels/ingest", event, format="json")
    status, body = await request(nc, f"{prefix}.iot.app_open", event)
    assert (status, body) == (http.status_code, http.json()) == (400, {
        "error": "source_disabled", "detail": "source 'iot' is disabled", "field": "source"})

    missing = {"event_id": "x-2", "event_type": "app_open", "source": "pos"}
    http = await sync_to_async(integration_client.post)("/v1/channels/ingest", missing, format="json")
    assert await request(nc, f"{prefix}.pos.app_open", missing) == (http.status_code, http.json())

    status, body = await request(nc, f"{prefix}.pos.app_open", b"{not json")
    assert status == 400 and body["error"] == "parse_error"
    status, body = await request(nc, f"{prefix}.pos.app_open", {"event_id": "x-3", "source": "web",
                                                                   "event_type": "app_open", "user_id": "u"})
    assert (status, body["field"]) == (400, "source")  # the subject says pos
    assert await sync_to_async(IngestEvent.objects.count)() == 0


async def test_the_source_comes_from_the_subject_and_no_reply_is_needed(nc, prefix):
    await start_ingest_consumers(nc)
    await nc.publish(f"{prefix}.kiosk.page_view", orjson.dumps({"event_id": "k-1", "event_type": "page_view",
                                                                "device_id": "kiosk-3"}))
    await nc.flush()
    row = await async_wait_until(
        sync_to_async(lambda: IngestEvent.objects.filter(event_id="k-1").values("source", "transport").first()),
        timeout=10, interval=0.05, message="the published event k-1 stored")
    assert row == {"source": "kiosk", "transport": "nats"}


def test_run_ingest_agents_command_serves_nats(prefix, live_env, tmp_path):
    """The standalone process: ``manage.py run_ingest_agents`` answers a real nats-py request."""
    proc = ManagedProcess([sys.executable, "manage.py", "run_ingest_agents", "--consumers", "2"],
                          env={**live_env, "INGEST_NATS_SUBJECT_PREFIX": prefix}, log_path=tmp_path / "agents.log",
                          name="run_ingest_agents", process_group=False).start()
    try:
        proc.wait_for_line(r"ingest agents ready: 2 consumers", timeout=60)

        async def call():
            connection = await nats.connect(django_settings.NATS_URL)
            try:
                return await request(connection, f"{prefix}.mobile_app.purchase",
                                     purchase("cmd-1", source="mobile_app"))
            finally:
                await connection.drain()

        status, body = asyncio.run(call())
        assert status == 201 and body["loyalty"]["stars_earned"] == 16  # app purchases are digital
        assert IngestEvent.objects.get(event_id="cmd-1").transport == "nats"
    finally:
        code = proc.stop()
    assert code == 0, proc.tail()
    assert "ingest agents stopped" in proc.output()


@pytest.fixture
def live_env():
    """The environment of a subprocess that must use this test's database and Redis."""
    conf = django_settings.DATABASES["default"]
    env = dict(os.environ)
    env.update({
        "DATABASE_URL": f"postgres://{conf['USER']}@{conf['HOST']}:{conf['PORT']}/{conf['NAME']}",
        "CELERY_TASK_ALWAYS_EAGER": "true",  # triggered sends run in-process: nothing left in the broker
        "PYTHONUNBUFFERED": "1",
    })
    return env
