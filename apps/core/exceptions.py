"""Service errors: what a refused action *is*; the API decides how to say it.

Services raise these and nothing from DRF; the one API handler (``apps.core.api.exception_handler``)
turns each into its HTTP status and the JSON envelope ``{"error": code, "detail": message, "field"?}``.
This module imports neither DRF nor Django, so services, tasks, selectors and the bid path's
Django-free modules can all raise and catch the same kinds. Each kind carries the status the handler
answers as a plain number (``status_code``), read by the handler and by ``apps.core.idempotency``
(which stores answers); services choose a kind, never a number.

=================  ==========================  ======  =======================================
kind               ``code`` (default)          HTTP    when
=================  ==========================  ======  =======================================
``ServiceError``   ``invalid``                 400     bad input: a field breaks a rule
``NotFound``       ``not_found``               404     the thing asked for does not exist
``Conflict``       ``conflict``                409     the current state forbids it (a replay
                                                       with another payload, a wrong transition)
``Forbidden``      ``permission_denied``       403     the caller's role may not do it
``Unprocessable``  ``unprocessable``           422     well-formed, but a business rule refuses
                                                       it (not enough stars)
``Unavailable``    ``unavailable``             503     a store or dependency is down; retry
                                                       after ``retry_after`` seconds
=================  ==========================  ======  =======================================

422 is what the API already answers for a business-rule refusal (loyalty's insufficient stars, in the
schema). Other refusals answer 400 today (``ServiceError("Add at least one offer before submitting.")``);
they stay plain ``ServiceError`` until someone decides their status should change, because turning
one into ``Unprocessable`` turns its 400 into a 422.

``code`` is the machine-readable ``error`` of the envelope; pass ``code=`` for a more precise one
(``insufficient_stars``). ``field`` names the input at fault (``user_id``, ``entries[3].channel``).
"""
from __future__ import annotations

from typing import Any

__all__ = [
    "InvalidInput", "first_field", "first_message",
    "KINDS", "Conflict", "Forbidden", "NotFound", "ServiceError", "Unavailable", "Unprocessable",
]


class ServiceError(Exception):
    """A refused action, for a person: ``message`` says what and why, ``field`` names the input at fault.

    Used directly it is bad input (400). The ``status_code=`` argument overrides the kind's status; it
    exists for callers written before the kinds below (``ServiceError(..., status_code=422)``) and for
    replaying a stored answer (``apps.core.idempotency``). New code raises the kind instead.
    """

    code = "invalid"
    status_code = 400

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code


class NotFound(ServiceError):
    """The thing asked for does not exist (or the caller may not know it does)."""

    code = "not_found"
    status_code = 404


class Conflict(ServiceError):
    """The current state of the thing forbids the action: a wrong transition, a reused key."""

    code = "conflict"
    status_code = 409


class Forbidden(ServiceError):
    """The caller's role does not allow the action."""

    code = "permission_denied"
    status_code = 403


class Unprocessable(ServiceError):
    """The input is well-formed but a business rule refuses it (``Insufficient stars: need 200, have 150``)."""

    code = "unprocessable"
    status_code = 422


class Unavailable(ServiceError):
    """A store or a dependency is down: nobody's fault, try again after ``retry_after`` seconds.

    ``retry_after=None`` lets the API handler use ``apps.core.outages.RETRY_AFTER_SECONDS``.
    """

    code = "unavailable"
    status_code = 503

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 retry_after: int | None = None):
        super().__init__(message, field=field, code=code)
        self.retry_after = retry_after


# The named kinds, most specific first (``apps.core.api.service_error_from`` picks one by status).
KINDS: tuple[type[ServiceError], ...] = (NotFound, Conflict, Forbidden, Unprocessable, Unavailable)


class InvalidInput(ServiceError):
    """Input that fails its schema (400), with every field's problems as a serializer reports them
    (``{field: [message, ...]}``, per item for lists): the answer carries them under ``fields``, and
    ``detail`` and ``field`` name the first, as for a DRF validation error."""

    code = "invalid"

    def __init__(self, errors: dict[str, Any]):
        field = first_field(errors)
        super().__init__(first_message(errors), field=field or None)
        self.errors = errors


# --- the first problem in a field-error tree (DRF's shape: dicts of fields, lists of messages/items) ---
def first_message(data, prefix: str = "") -> str:
    if isinstance(data, dict):
        for key, value in data.items():
            name = "" if key == "non_field_errors" else str(key)
            return first_message(value, f"{prefix}.{name}".strip(".") if name else prefix)
    if isinstance(data, list) and data:
        if any(isinstance(item, (dict, list)) for item in data):
            # A list of per-item errors (ListSerializer): name the first item that failed.
            for index, item in enumerate(data):
                if item:
                    return first_message(item, f"{prefix}.{index}".strip("."))
        return first_message(data[0], prefix)
    return f"{prefix}: {data}" if prefix else str(data)


def first_field(data, prefix: str = "") -> str:
    """The dotted path of the first invalid field (``targeting.countries.0``), "" for a non-field error."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "non_field_errors":
                return prefix
            return first_field(value, f"{prefix}.{key}".strip("."))
    if isinstance(data, list) and any(isinstance(item, (dict, list)) for item in data):
        for index, item in enumerate(data):
            if item:
                return first_field(item, f"{prefix}.{index}".strip("."))
    return prefix
