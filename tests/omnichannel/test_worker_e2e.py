"""End to end through a real Celery worker (``celery -A config worker`` in a subprocess).

The worker gets this test run's database, Redis and provider servers through its environment and
consumes a queue of its own (``OMNICHANNEL_TASK_QUEUE``), so no other worker on the broker can take
these tasks. It runs one prefork child, so the test can kill the child in the middle of a send.
"""
from __future__ import annotations

import json
import os
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from apps.omnichannel.models import Activation, EmailStats, SendLedger
from tests.support.processes import ManagedProcess
from tests.support.wait import pause, wait_until

from .conftest import new_signing_key, start_providers
from .helpers import reachable_by

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]


class Worker:
    def __init__(self, env: dict[str, str], log_path: Path):
        self.process = ManagedProcess(
            [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", "--concurrency=1",
             "-Q", env["OMNICHANNEL_TASK_QUEUE"], "-n", f"omni-e2e-{uuid.uuid4().hex[:8]}@%h",
             "--without-heartbeat", "--without-gossip", "--without-mingle", "--loglevel=INFO"],
            env=env, log_path=log_path, name="celery worker",
        ).start()
        try:
            self.process.wait_for_line(r" ready\.", timeout=60)
        except BaseException:
            self.process.stop()
            raise

    def children(self) -> list[int]:
        """PIDs of the prefork pool processes."""
        pids = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            pids += [int(p) for p in (task / "children").read_text().split()]
        return pids

    def stop(self) -> None:
        self.process.stop(timeout=20)


@pytest.fixture(scope="module")
def e2e(django_db_setup, tmp_path_factory):
    """Provider servers + one worker for the module; each test resets the servers' scripts."""
    servers = start_providers()
    signing_key = new_signing_key()
    queue = f"omni-e2e-{uuid.uuid4().hex[:10]}"
    conf = django_settings.DATABASES["default"]
    env = {
        **os.environ, **servers.env(),
        "DATABASE_URL": f"postgres://{conf['USER']}@{conf['HOST']}:{conf['PORT']}/{conf['NAME']}",
        "OMNICHANNEL_TASK_QUEUE": queue,
        "OMNICHANNEL_SEND_RETRY_BASE_SECONDS": "0.2", "OMNICHANNEL_SEND_RETRY_MAX_SECONDS": "0.5",
        "SENDGRID_WEBHOOK_VERIFICATION_KEY": signing_key.public_b64,
        "CELERY_TASK_ALWAYS_EAGER": "false", "PYTHONUNBUFFERED": "1",
    }
    worker = Worker(env, tmp_path_factory.mktemp("omni-worker") / "worker.log")
    yield {"servers": servers, "worker": worker, "queue": queue, "env": env, "key": signing_key}
    worker.stop()
    for server in servers.all():
        server.stop()


@pytest.fixture
def configured(e2e, settings):
    """This process (which queues the tasks) sees the same configuration as the worker."""
    for name, value in e2e["servers"].env().items():
        setattr(settings, name, value)
    settings.OMNICHANNEL_TASK_QUEUE = e2e["queue"]
    settings.SENDGRID_WEBHOOK_VERIFICATION_KEY = e2e["key"].public_b64
    e2e["servers"].reset()
    return e2e


def send_of(activation_id: int) -> SendLedger:
    return SendLedger.objects.get(activation_id=activation_id)


def test_email_activation_and_webhook_through_the_worker(configured, integration_client, client):
    servers = configured["servers"]
    reachable_by("u-1", email="ann@example.com")
    response = integration_client.post("/v1/channels/activate", {"user_id": "u-1", "title": "Latte -20%",
                                                                 "body": "Today only"}, format="json")
    assert response.status_code == 201, response.content
    activation_id = response.json()["activation_id"]
    wait_until(lambda: send_of(activation_id).status == "sent", 30, message="the worker to send")
    [request] = servers.sendgrid.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.header("Authorization") == f"Bearer {configured['env']['SENDGRID_API_KEY']}"
    assert request.json()["personalizations"][0]["custom_args"] == {"activation_id": str(activation_id), "user_id": "u-1"}
    assert Activation.objects.get(pk=activation_id).status == "sent"

    # SendGrid reports delivery and an open; the worker processes the stored batch.
    send = send_of(activation_id)
    events = [{"email": "ann@example.com", "timestamp": int(time.time()), "event": event,
               "sg_event_id": uuid.uuid4().hex, "sg_message_id": f"{send.provider_message_id}.filter0001.1.0",
               "activation_id": str(activation_id), "user_id": "u-1"} for event in ("delivered", "open")]
    body = json.dumps(events).encode()
    ts = str(int(time.time()))
    response = client.post("/v1/webhooks/sendgrid", data=body, content_type="application/json",
                           HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE=configured["key"].sign(ts, body),
                           HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP=ts)
    assert response.status_code == 202
    wait_until(lambda: Activation.objects.get(pk=activation_id).status == "delivered", 30, message="delivery")
    stats = wait_until(lambda: EmailStats.objects.filter(activation_id=activation_id, unique_opens=1).first(), 30, message="open")
    assert (stats.total_sent, stats.delivered, stats.opens) == (1, 1, 1)


def test_the_worker_retries_a_5xx_and_not_a_4xx(configured, integration_client):
    servers = configured["servers"]
    servers.twilio.fail_next(503, {"code": 20503, "message": "Service Unavailable", "status": 503}, times=2)
    reachable_by("u-1", phone="+14155550100")
    first = integration_client.post("/v1/channels/activate", {"user_id": "u-1", "title": "Hi"}, format="json").json()
    wait_until(lambda: send_of(first["activation_id"]).status == "sent", 30, message="the retried send")
    assert len(servers.twilio.requests) == 3
    assert send_of(first["activation_id"]).attempts == 3

    servers.twilio.reset()
    servers.twilio.fail_next(400, {"code": 21211, "message": "The 'To' number is not a valid phone number.", "status": 400})
    reachable_by("u-2", phone="+14155550101")
    second = integration_client.post("/v1/channels/activate", {"user_id": "u-2", "title": "Hi"}, format="json").json()
    wait_until(lambda: send_of(second["activation_id"]).status == "failed", 30, message="the permanent failure")
    pause(1.0, "longer than every back-off (0.2-0.5 s): a retry would have shown up by now")
    assert len(servers.twilio.requests) == 1
    assert send_of(second["activation_id"]).error_code == "21211"


def test_a_worker_killed_during_the_provider_call_does_not_send_twice(configured, integration_client):
    servers, worker = configured["servers"], configured["worker"]
    reachable_by("u-1", fcm_token="fcm-token-1")
    servers.fcm.hold()
    activation_id = integration_client.post("/v1/channels/activate", {"user_id": "u-1", "title": "Hi"},
                                            format="json").json()["activation_id"]
    assert servers.fcm.arrived.wait(30), "the worker never called FCM"
    [child] = worker.children()
    os.kill(child, signal.SIGKILL)  # the pool process dies while FCM holds the request
    servers.fcm.release()
    # Celery requeues the task (acks_late + reject_on_worker_lost); the redelivered run finds its own
    # claim on the ledger row and does not call FCM again.
    send = wait_until(lambda: SendLedger.objects.filter(activation_id=activation_id, status="failed").first(),
                      30, message="the redelivered task to close the send")
    assert send.error_code == "outcome_unknown"
    assert len(servers.fcm.requests) == 1
    assert "WorkerLostError" in worker.process.output(), worker.process.tail(30)
    wait_until(lambda: worker.children() and worker.children() != [child], 30, message="a new pool process")
    # The worker goes on serving: the next activation is sent normally.
    reachable_by("u-2", fcm_token="fcm-token-2")
    next_id = integration_client.post("/v1/channels/activate", {"user_id": "u-2", "title": "Hi"},
                                      format="json").json()["activation_id"]
    wait_until(lambda: send_of(next_id).status == "sent", 30, message="the next send")
    assert len(servers.fcm.requests) == 2
