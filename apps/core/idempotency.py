"""Idempotent writes: a replay of a request returns the first answer and changes nothing.

Any slice can guard a write with :func:`idempotent_call`::

    outcome = idempotent_call(
        scope="loyalty.redeem",                 # the operation; keys are unique per scope
        key=idempotency_key,                    # the client's Idempotency-Key header
        payload={"user_id": ..., "redemption_tier": ...},   # the canonical request body
        run=lambda: do_the_change(),            # returns a JSON-able dict, or raises ServiceError
    )
    outcome.body, outcome.status, outcome.replayed

How it works (one database transaction):

1. Insert an :class:`~apps.core.models.IdempotencyRecord` ``(scope, key, fingerprint)``. A concurrent
   request with the same key blocks on the unique index until the first transaction ends, then
   fails the insert and reads the committed answer: a duplicate never applies the change twice.
2. Run ``run()`` inside a savepoint, in the same transaction as the record.
3. Store the answer (status + body) on the record and commit both together.

Rules:

* Same key, same payload → the stored answer (``replayed=True``); ``run`` is not called.
* Same key, different payload → :class:`~apps.core.exceptions.Conflict` (409, field ``Idempotency-Key``).
* ``run`` raising :class:`~apps.core.exceptions.ServiceError` (a refused action, a 4xx) rolls back the
  change but keeps the record, like Stripe: a replay raises the same error (the same kind, code,
  field and status) again. With ``keep_refusals=False`` a refusal leaves nothing behind (like a
  loyalty earn): the client may fix the request and send it again under the same key.
  :class:`~apps.core.exceptions.Unavailable` and any other exception roll everything back, record
  included, so the client may retry.
* The body is normalised through JSON (``Decimal`` → string, dates → ISO), so the first answer and a
  replay are identical.
* Records are kept for a retention period; :func:`idempotency_purge` deletes older ones.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Mapping

from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.api import error_body, service_error_from
from apps.core.exceptions import Conflict, ServiceError, Unavailable
from apps.core.models import IdempotencyRecord
from apps.core.retention import delete_in_batches

KEY_HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class IdempotentOutcome:
    """The answer of an idempotent call: HTTP-ish status, JSON body, and whether it was a replay."""

    status: int
    body: dict[str, Any]
    replayed: bool


def canonical_json(payload: Any) -> str:
    """Key-sorted, whitespace-free JSON (Decimal and dates as strings): equal payloads, equal text."""
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), cls=DjangoJSONEncoder, ensure_ascii=False)


def request_fingerprint(payload: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``payload``."""
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


def validate_key(key: str | None, *, field: str = KEY_HEADER) -> str:
    """Return the trimmed key, or raise a 400 naming ``field`` when it is missing or unusable."""
    if key is None or not str(key).strip():
        raise ServiceError(f"{field} is required for this request.", field=field, code="required")
    key = str(key).strip()
    if len(key) > MAX_KEY_LENGTH:
        raise ServiceError(f"{field} must be at most {MAX_KEY_LENGTH} characters.", field=field)
    if not key.isprintable() or not key.isascii():
        raise ServiceError(f"{field} must be printable ASCII.", field=field)
    return key


def _claim(*, scope: str, key: str, fingerprint: str) -> tuple[IdempotencyRecord, bool]:
    """Insert the record (created=True) or return the committed one (created=False).

    The insert waits on the unique index while another transaction holds the same key; when that
    transaction commits, the insert fails and we read its answer; when it rolls back, ours wins.
    """
    try:
        with transaction.atomic():
            record = IdempotencyRecord.objects.create(
                scope=scope, key=key, fingerprint=fingerprint, response_status=0, response_body={}
            )
        return record, True
    except IntegrityError:
        return IdempotencyRecord.objects.get(scope=scope, key=key), False


def idempotent_call(
    *,
    scope: str,
    key: str,
    payload: Mapping[str, Any],
    run: Callable[[], Mapping[str, Any]],
    success_status: int = 200,
    key_field: str = KEY_HEADER,
    keep_refusals: bool = True,
    conflict_detail: str | None = None,
) -> IdempotentOutcome:
    """Run ``run()`` at most once per ``(scope, key)`` and return its (stored) answer.

    ``run`` executes in the same transaction as the record; its side effects after commit should
    be registered with ``transaction.on_commit`` (they then run only for the first call).
    Raises :class:`Conflict` when ``key`` was used with a different payload (``conflict_detail``
    replaces the default message, e.g. when ``key`` is a digest that means nothing to a person),
    and re-raises a stored :class:`ServiceError` (first call and replays alike).
    """
    key = validate_key(key, field=key_field)
    fingerprint = request_fingerprint(payload)
    with transaction.atomic():
        record, created = _claim(scope=scope, key=key, fingerprint=fingerprint)
        if not created:
            if record.fingerprint != fingerprint:
                raise Conflict(
                    conflict_detail or f"{key_field} {key!r} was already used with a different request body.",
                    field=key_field,
                    code="idempotency_conflict",
                )
            outcome = IdempotentOutcome(status=record.response_status, body=record.response_body, replayed=True)
        else:
            try:
                with transaction.atomic():
                    body = json.loads(canonical_json(dict(run())))
                status = success_status
            except Unavailable:
                raise  # nobody's fault and worth retrying: keep no record, so a retry runs again
            except ServiceError as exc:
                if not keep_refusals:
                    raise  # leaves the outer transaction: the record is rolled back with the change
                body, status = error_body(exc), exc.status_code
            record.response_status = status
            record.response_body = body
            record.save(update_fields=["response_status", "response_body"])
            outcome = IdempotentOutcome(status=status, body=body, replayed=False)
    if outcome.status >= 400:
        raise service_error_from(outcome.status, outcome.body)
    return outcome


def idempotency_purge(*, scope_prefix: str, older_than: timedelta, batch_size: int | None = None) -> int:
    """Delete records of scopes starting with ``scope_prefix`` created before now - ``older_than``, in
    bounded batches (:func:`apps.core.retention.delete_in_batches`); returns how many went."""
    cutoff = timezone.now() - older_than
    return delete_in_batches(IdempotencyRecord.objects.filter(scope__startswith=scope_prefix, created_at__lt=cutoff),
                             batch_size=batch_size)
