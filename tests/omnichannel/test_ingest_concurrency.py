"""Ingest idempotency under concurrency, and the migration that introduced the caller, on the real Postgres.

Each worker thread has its own database connection, so the transactions really overlap.
"""
from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from django.db import IntegrityError, connection, connections, transaction
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from apps.core.exceptions import Conflict
from apps.loyalty.selectors import loyalty_balance
from apps.omnichannel import services
from apps.omnichannel.models import Activation, IngestEvent, Interaction
from tests.factories import make_user, token_client
from tests.support.db import wait_for_blocked_backends

from .helpers import seed_trigger_rules

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(90)]

CALLER = "user:4242"


@pytest.fixture(autouse=True)
def _trigger_rules(transactional_db):
    seed_trigger_rules()


def purchase(event_id: str, **extra) -> dict:
    return {"event_id": event_id, "source": "pos", "event_type": "purchase", "user_id": "member-1",
            "amount_cents": 1250, "items": [{"item_id": "latte", "quantity": 1}], **extra}


class Worker:
    """Run ``fn`` in a thread with its own DB connection; ``result()`` returns its value or re-raises."""

    def __init__(self, fn):
        self._fn, self._box = fn, {}
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        try:
            self._box["value"] = self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            self._box["error"] = exc
        finally:
            connections.close_all()

    def start(self) -> Worker:
        self.thread.start()
        return self

    def result(self, timeout: float = 30):
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not finish"
        if "error" in self._box:
            raise self._box["error"]
        return self._box["value"]


def _first_holds_its_transaction(body: dict):
    """Start the first event in a transaction kept open until ``release`` is set."""
    recorded, release = threading.Event(), threading.Event()

    def first():
        with transaction.atomic():
            outcome = services.ingest_event_process(data=body, transport="http", caller=CALLER)
            recorded.set()
            assert release.wait(30)
        return outcome

    worker = Worker(first).start()
    assert recorded.wait(30), "the first event was not recorded"
    return worker, release


def test_a_concurrent_duplicate_waits_for_the_first_and_replays_its_answer():
    first, release = _first_holds_its_transaction(purchase("race-1"))
    second = Worker(lambda: services.ingest_event_process(data=purchase("race-1"), transport="http",
                                                          caller=CALLER)).start()
    wait_for_blocked_backends(1)  # waiting on the idempotency record's unique index
    assert second.thread.is_alive()
    release.set()
    a, b = first.result(), second.result()
    assert (a.status, b.status) == (201, 200)
    assert b.body == {**a.body, "duplicate": True}
    assert IngestEvent.objects.count() == 1 and Interaction.objects.count() == 1
    assert Activation.objects.count() == 1
    assert loyalty_balance(user_id="member-1").balance == 13


def test_a_concurrent_other_body_under_the_same_id_is_a_conflict_once_the_first_commits():
    first, release = _first_holds_its_transaction(purchase("race-2"))
    second = Worker(lambda: services.ingest_event_process(data=purchase("race-2", amount_cents=99_00),
                                                          transport="http", caller=CALLER)).start()
    wait_for_blocked_backends(1)
    assert second.thread.is_alive()
    release.set()
    assert first.result().status == 201
    with pytest.raises(Conflict) as exc:
        second.result()
    assert (exc.value.status_code, exc.value.field) == (409, "event_id")
    assert IngestEvent.objects.count() == 1
    assert loyalty_balance(user_id="member-1").balance == 13


def test_when_the_first_rolls_back_the_waiting_duplicate_records_the_event():
    recorded, release = threading.Event(), threading.Event()

    def first():
        with pytest.raises(RuntimeError), transaction.atomic():
            services.ingest_event_process(data=purchase("race-3"), transport="http", caller=CALLER)
            recorded.set()
            assert release.wait(30)
            raise RuntimeError("the caller's transaction failed after ingest")

    a = Worker(first).start()
    assert recorded.wait(30)
    second = Worker(lambda: services.ingest_event_process(data=purchase("race-3"), transport="http",
                                                          caller=CALLER)).start()
    wait_for_blocked_backends(1)
    release.set()
    a.result()
    assert second.result().status == 201
    assert IngestEvent.objects.count() == 1
    assert loyalty_balance(user_id="member-1").balance == 13


def test_a_burst_of_identical_posts_creates_one_event():
    # Three at once: the process's connection pool (DATABASE_POOL_MAX_SIZE, 4) also serves this thread.
    user = make_user("Integration", username="pos-burst", is_staff=False)
    clients = [token_client(user) for _ in range(3)]
    body = purchase("burst-1")
    barrier = threading.Barrier(len(clients))

    def post(client):
        barrier.wait(10)
        response = client.post("/v1/channels/ingest", body, format="json")
        return response.status_code, response.json()

    workers = [Worker(lambda client=client: post(client)).start() for client in clients]
    answers = [w.result() for w in workers]
    assert sorted(status for status, _ in answers) == [200, 200, 201]
    created = next(body for status, body in answers if status == 201)
    assert all(body == {**created, "duplicate": True} for status, body in answers if status == 200)
    assert IngestEvent.objects.count() == 1
    assert loyalty_balance(user_id="member-1").balance == 13


# --- the trigger cooldown ---------------------------------------------------------------------------------
def cart_abandon(event_id: str) -> dict:
    return {"event_id": event_id, "source": "web", "event_type": "cart_abandon", "user_id": "member-1"}


def test_a_concurrent_trigger_for_the_same_user_waits_and_respects_the_cooldown():
    """Two events of one user, each a trigger: the second decides only once the first's activation is
    committed, so it sees it and stays inside the cooldown (without the per-user lock both activate)."""
    first, release = _first_holds_its_transaction(cart_abandon("cart-1"))
    second = Worker(lambda: services.ingest_event_process(data=cart_abandon("cart-2"), transport="http",
                                                          caller=CALLER)).start()
    wait_for_blocked_backends(1)  # the second waits for the user's trigger lock
    assert second.thread.is_alive()
    release.set()
    a, b = first.result(), second.result()
    assert (a.status, b.status) == (201, 201)
    assert a.body["activation"]["triggered"] is True
    assert b.body["activation"] == {
        "triggered": False, "reason": "user already activated for cart_abandon in the last 240 min",
        "activation_id": None, "status": None, "channel": None}
    assert list(Activation.objects.values_list("pk", flat=True)) == [a.body["activation"]["activation_id"]]
    assert IngestEvent.objects.count() == 2


def test_a_burst_of_triggers_for_one_user_activates_once_and_other_users_do_not_wait():
    # Three threads: the process's connection pool (DATABASE_POOL_MAX_SIZE, 4) also serves this thread.
    calls = [("member-1", "burst-a"), ("member-1", "burst-b"), ("member-2", "burst-c")]
    barrier = threading.Barrier(len(calls))

    def ingest(user_id: str, event_id: str):
        barrier.wait(10)
        return services.ingest_event_process(data={**cart_abandon(event_id), "user_id": user_id},
                                             transport="http", caller=CALLER)

    workers = [Worker(lambda user_id=user_id, event_id=event_id: ingest(user_id, event_id)).start()
               for user_id, event_id in calls]
    outcomes = [w.result() for w in workers]  # re-raises anything a thread raised
    assert [o.status for o in outcomes] == [201, 201, 201]
    assert sorted(o.body["activation"]["triggered"] for o in outcomes[:2]) == [False, True]
    assert outcomes[2].body["activation"]["triggered"] is True
    assert sorted(Activation.objects.values_list("user_id", flat=True)) == ["member-1", "member-2"]
    assert IngestEvent.objects.count() == 3


# --- the migration --------------------------------------------------------------------------------------
BEFORE = ("omnichannel", "0002_sources_triggers_roles")
AFTER = ("omnichannel", "0003_ingest_event_caller")


def test_the_migration_keeps_existing_events_as_legacy_and_adds_the_constraint():
    executor = MigrationExecutor(connection)
    executor.migrate([BEFORE])
    try:
        Old = executor.loader.project_state([BEFORE]).apps.get_model("omnichannel", "IngestEvent")
        now = timezone.now()
        for n, transport in enumerate(("http", "nats")):
            Old.objects.create(event_id=f"before-{n}", source="pos", event_type="app_open", user_id="u-1",
                               occurred_at=now - timedelta(days=1), transport=transport,
                               payload={"event_id": f"before-{n}"}, result={"event_id": f"before-{n}"})
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate([AFTER])
    assert sorted(IngestEvent.objects.values_list("event_id", "caller", "result")) == [
        ("before-0", "legacy", {"event_id": "before-0"}), ("before-1", "legacy", {"event_id": "before-1"})]
    # The id is now unique per (source, caller): another caller may use it, the same caller may not.
    fields = {"source": "pos", "event_type": "app_open", "user_id": "u-2", "occurred_at": timezone.now(),
              "transport": "http", "payload": {}}
    IngestEvent.objects.create(event_id="before-0", caller=CALLER, **fields)
    with pytest.raises(IntegrityError), transaction.atomic():
        IngestEvent.objects.create(event_id="before-0", caller=CALLER, **fields)
    assert IngestEvent.objects.filter(event_id="before-0").count() == 2
