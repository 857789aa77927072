"""POST /v1/loyalty/reward-signal: stored with the server-side reward, published on NATS."""
from __future__ import annotations

import asyncio
import queue
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import nats
import orjson
import pytest
from django.utils import timezone

from apps.loyalty import publisher, services
from apps.loyalty.models import RewardSignal
from config import env

URL = "/v1/loyalty/reward-signal"


class NatsSubscriber:
    """A real NATS subscriber on its own thread and event loop, collecting messages of a subject."""

    def __init__(self, subject: str):
        self.subject = subject
        self.messages: queue.Queue = queue.Queue()
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        nc = await nats.connect(env.env_str("NATS_URL", env.NATS_URL))

        async def on_message(msg):
            self.messages.put((dict(msg.headers or {}), orjson.loads(msg.data)))

        await nc.subscribe(self.subject, cb=on_message)
        await nc.flush()
        self._ready.set()
        await self._stop.wait()
        await nc.close()

    def __enter__(self) -> "NatsSubscriber":
        self._thread.start()
        assert self._ready.wait(5), "subscriber did not connect"
        return self

    def __exit__(self, *exc) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(5)
        assert not self._thread.is_alive(), "the subscriber thread did not stop"

    def wait_for(self, signal_id: str, timeout: float = 5.0) -> tuple[dict, dict]:
        """The message carrying ``signal_id`` (other processes may publish on the subject too)."""
        deadline = timezone.now() + timedelta(seconds=timeout)
        while timezone.now() < deadline:
            try:
                headers, body = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            if body.get("signal_id") == signal_id:
                return headers, body
        raise AssertionError(f"signal {signal_id} not received within {timeout}s")


@pytest.mark.django_db
@pytest.mark.parametrize("signal_type,reward", [("clicked", "1.0"), ("redeemed", "2.0"), ("ignored", "-0.1")])
def test_signal_is_stored_and_reaches_a_nats_subscriber(integration_client, django_capture_on_commit_callbacks,
                                                        signal_type, reward):
    services.loyalty_earn(user_id="u-sig", amount_cents=60_000, channel="app", transaction_id="t")  # Gold
    with NatsSubscriber(publisher.SUBJECT) as sub:
        with django_capture_on_commit_callbacks(execute=True):
            response = integration_client.post(URL, {"user_id": "u-sig", "offer_id": "offer-7", "signal_type": signal_type},
                                               format="json")
        assert response.status_code == 202, response.content
        body = response.json()
        assert (body["reward"], body["tier"], body["signal_type"]) == (reward, "gold", signal_type)
        headers, message = sub.wait_for(body["signal_id"])
    assert headers["Nats-Msg-Id"] == body["signal_id"]
    assert message["reward"] == float(reward) and message["user_id"] == "u-sig" and message["offer_id"] == "offer-7"
    stored = RewardSignal.objects.get(signal_id=body["signal_id"])
    assert (stored.reward, stored.published, stored.publish_attempts) == (Decimal(reward), True, 1)


@pytest.mark.django_db
def test_client_cannot_choose_the_reward(integration_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = integration_client.post(URL, {"user_id": "u", "offer_id": "o", "signal_type": "clicked",
                                                 "tier": "reserve", "reward": 99}, format="json")
    assert response.status_code == 202
    assert RewardSignal.objects.get().reward == Decimal("1.0")
    assert response.json()["tier"] == "reserve"  # an explicit tier is kept; unknown users default to green


@pytest.mark.django_db
def test_nats_down_keeps_the_signal_and_the_beat_task_publishes_it(settings, django_capture_on_commit_callbacks):
    from apps.loyalty import tasks

    nats_url = settings.NATS_URL
    settings.NATS_URL = "nats://127.0.0.1:1"  # nothing listens there
    with django_capture_on_commit_callbacks(execute=True):
        result = services.loyalty_reward_signal(user_id="u-down", offer_id="o-1", signal_type="redeemed")
    signal = RewardSignal.objects.get(signal_id=result.signal_id)
    assert (signal.published, signal.publish_attempts) == (False, 1)  # stored, nothing lost, request not failed

    settings.NATS_URL = nats_url
    RewardSignal.objects.filter(pk=signal.pk).update(created_at=timezone.now() - timedelta(minutes=2))
    with NatsSubscriber(publisher.SUBJECT) as sub:
        assert tasks.republish_reward_signals() == 1
        _, message = sub.wait_for(result.signal_id)
    assert message["signal_type"] == "redeemed" and message["reward"] == 2.0
    signal.refresh_from_db()
    assert (signal.published, signal.publish_attempts) == (True, 2)
    assert tasks.republish_reward_signals() == 0  # nothing left to send


@pytest.mark.django_db
def test_republish_leaves_fresh_signals_to_their_own_publish():
    RewardSignal.objects.create(signal_id=uuid.uuid4(), user_id="u", offer_id="o",
                                signal_type="clicked", tier="green", reward=Decimal("1.0"))
    assert services.loyalty_republish_pending_signals(older_than_seconds=30) == 0


@pytest.mark.django_db
def test_jetstream_stream_captures_signals_and_dedupes_by_signal_id():
    """The LOYALTY stream keeps signals for consumers that are down; a re-publish is a duplicate."""
    # A fresh id: the stream remembers ids for its duplicate window across test runs.
    signal = RewardSignal.objects.create(signal_id=uuid.uuid4(), user_id="u-js",
                                         offer_id="o", signal_type="clicked", tier="green", reward=Decimal("1.0"))
    message = services._signal_message(signal)

    async def publish_twice():
        nc = await nats.connect(env.env_str("NATS_URL", env.NATS_URL))
        js = nc.jetstream()
        try:
            await publisher._ensure_stream(js)
            first = await js.publish(publisher.SUBJECT, message[1], headers={"Nats-Msg-Id": message[0]})
            second = await js.publish(publisher.SUBJECT, message[1], headers={"Nats-Msg-Id": message[0]})
            stored = await js.get_msg(publisher.stream_name(), first.seq)
            return first, second, stored
        finally:
            await nc.close()

    first, second, stored = asyncio.run(publish_twice())
    assert first.stream == "LOYALTY" and not first.duplicate
    assert second.duplicate and second.seq == first.seq
    assert orjson.loads(stored.data)["signal_id"] == str(signal.signal_id)


@pytest.mark.django_db
def test_idempotency_key_stores_a_signal_once(integration_client, django_capture_on_commit_callbacks):
    body = {"user_id": "u-i", "offer_id": "o", "signal_type": "clicked"}
    with django_capture_on_commit_callbacks(execute=True):
        first = integration_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="sig-1")
        again = integration_client.post(URL, body, format="json", HTTP_IDEMPOTENCY_KEY="sig-1")
        other = integration_client.post(URL, {**body, "signal_type": "ignored"}, format="json",
                                        HTTP_IDEMPOTENCY_KEY="sig-1")
    assert first.status_code == again.status_code == 202 and first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"
    assert other.status_code == 409
    assert RewardSignal.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize("change,field", [({"signal_type": "liked"}, "signal_type"), ({"tier": "platinum"}, "tier"),
                                          ({"offer_id": ""}, "offer_id"), ({"user_id": None}, "user_id")])
def test_bad_signal_is_400_naming_the_field(integration_client, change, field):
    body = {"user_id": "u", "offer_id": "o", "signal_type": "clicked", **change}
    response = integration_client.post(URL, body, format="json")
    assert response.status_code == 400 and field in response.json()["fields"]
    assert not RewardSignal.objects.exists()
