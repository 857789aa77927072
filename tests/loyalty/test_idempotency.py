"""apps.core.idempotency: the reusable mechanism behind redeem, adjust and reward-signal keys."""
from __future__ import annotations

import threading

import pytest
from django.db import connection

from apps.core.exceptions import Conflict, ServiceError, Unprocessable
from apps.core.idempotency import idempotency_purge, idempotent_call, request_fingerprint
from apps.core.models import IdempotencyRecord
from tests.support.db import wait_for_blocked_backends


def test_fingerprint_ignores_key_order_but_not_values():
    assert request_fingerprint({"a": 1, "b": [1, 2]}) == request_fingerprint({"b": [1, 2], "a": 1})
    assert request_fingerprint({"a": 1}) != request_fingerprint({"a": "1"})


@pytest.mark.django_db
def test_runs_once_and_replays_the_stored_answer():
    calls = []

    def run():
        calls.append(1)
        return {"n": len(calls)}

    first = idempotent_call(scope="test.op", key="k1", payload={"x": 1}, run=run, success_status=201)
    again = idempotent_call(scope="test.op", key="k1", payload={"x": 1}, run=run)
    assert (first.status, first.body, first.replayed) == (201, {"n": 1}, False)
    assert (again.status, again.body, again.replayed) == (201, {"n": 1}, True)
    assert calls == [1]
    # Keys are scoped: the same key in another scope is another request.
    assert idempotent_call(scope="test.other", key="k1", payload={"x": 1}, run=run).body == {"n": 2}


@pytest.mark.django_db
def test_different_payload_is_a_conflict():
    idempotent_call(scope="test.op", key="k", payload={"x": 1}, run=lambda: {})
    with pytest.raises(Conflict) as exc:
        idempotent_call(scope="test.op", key="k", payload={"x": 2}, run=lambda: {})
    assert exc.value.field == "Idempotency-Key" and exc.value.status_code == 409


@pytest.mark.django_db
def test_refusal_is_stored_its_changes_rolled_back_and_replayed():
    def refuse():
        IdempotencyRecord.objects.create(scope="side-effect", key="x", fingerprint="f", response_status=200)
        raise Unprocessable("No.", field="thing", code="nope")

    for _ in range(2):
        with pytest.raises(Unprocessable) as exc:
            idempotent_call(scope="test.op", key="k", payload={}, run=refuse)
        assert (exc.value.message, exc.value.field, exc.value.code, exc.value.status_code) == ("No.", "thing", "nope", 422)
    assert not IdempotencyRecord.objects.filter(scope="side-effect").exists()
    assert IdempotencyRecord.objects.get(scope="test.op").response_status == 422


@pytest.mark.django_db
def test_unexpected_error_stores_nothing_so_a_retry_runs_again():
    def boom():
        raise RuntimeError("database hiccup")

    with pytest.raises(RuntimeError):
        idempotent_call(scope="test.op", key="k", payload={}, run=boom)
    assert not IdempotencyRecord.objects.exists()
    assert idempotent_call(scope="test.op", key="k", payload={}, run=lambda: {"ok": True}).body == {"ok": True}


@pytest.mark.django_db
@pytest.mark.parametrize("key", [None, "", "   ", "x" * 256, "tab\there", "ключ"])
def test_unusable_keys_are_400(key):
    with pytest.raises(ServiceError) as exc:
        idempotent_call(scope="test.op", key=key, payload={}, run=lambda: {})
    assert exc.value.field == "Idempotency-Key" and exc.value.status_code == 400


@pytest.mark.django_db
def test_body_is_normalised_through_json():
    from decimal import Decimal

    first = idempotent_call(scope="test.op", key="k", payload={}, run=lambda: {"v": Decimal("1.50")})
    assert first.body == {"v": "1.50"}
    assert idempotent_call(scope="test.op", key="k", payload={}, run=lambda: {}).body == first.body


@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicate_waits_for_the_first_and_replays_it():
    started, calls, results = threading.Event(), [], {}

    def slow():
        calls.append(1)
        started.set()
        if len(calls) == 1:  # the second request arrives, and waits, while this transaction is open
            wait_for_blocked_backends(1)
        return {"done": True}

    def first():
        try:
            results["first"] = idempotent_call(scope="test.op", key="k", payload={}, run=slow)
        finally:
            connection.close()

    thread = threading.Thread(target=first)
    thread.start()
    assert started.wait(5)
    try:
        results["second"] = idempotent_call(scope="test.op", key="k", payload={}, run=slow)
    finally:
        thread.join(5)
    assert not thread.is_alive(), "the first request did not finish"
    assert calls == [1]
    assert results["first"].replayed is False and results["second"].replayed is True
    assert results["second"].body == {"done": True}


@pytest.mark.django_db
def test_purge_deletes_only_old_records_of_the_scope():
    from datetime import timedelta

    from django.utils import timezone

    for scope in ("loyalty.redeem", "other.op"):
        idempotent_call(scope=scope, key="old", payload={}, run=lambda: {})
    idempotent_call(scope="loyalty.redeem", key="new", payload={}, run=lambda: {})
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(days=40))
    assert idempotency_purge(scope_prefix="loyalty.", older_than=timedelta(days=30)) == 1
    assert sorted(IdempotencyRecord.objects.values_list("scope", "key")) == [("loyalty.redeem", "new"), ("other.op", "old")]


@pytest.mark.django_db
def test_without_keep_refusals_a_refusal_leaves_no_record_so_a_corrected_request_runs():
    def refuse():
        IdempotencyRecord.objects.create(scope="side-effect", key="x", fingerprint="f", response_status=200)
        raise ServiceError("Amount must be at least 1.", field="amount")

    with pytest.raises(ServiceError, match="at least 1"):
        idempotent_call(scope="test.op", key="k", payload={"amount": 0}, run=refuse, keep_refusals=False)
    assert not IdempotencyRecord.objects.exists()  # neither the record nor the change
    fixed = idempotent_call(scope="test.op", key="k", payload={"amount": 5}, run=lambda: {"ok": True},
                            keep_refusals=False)
    assert (fixed.status, fixed.body, fixed.replayed) == (200, {"ok": True}, False)


@pytest.mark.django_db
def test_conflict_detail_replaces_the_message_naming_a_digest_key():
    idempotent_call(scope="test.op", key="0" * 64, payload={"x": 1}, run=lambda: {}, key_field="event_id")
    with pytest.raises(Conflict) as exc:
        idempotent_call(scope="test.op", key="0" * 64, payload={"x": 2}, run=lambda: {}, key_field="event_id",
                        conflict_detail="event_id 'e-1' was already used")
    assert (exc.value.message, exc.value.field, exc.value.code) == ("event_id 'e-1' was already used", "event_id",
                                                                    "idempotency_conflict")
