"""Shared DRF plumbing: errors for people (every 4xx names the field and the rule it broke).

The service error kinds live in ``apps.core.exceptions`` (no DRF there), and everyone imports them from
there; this module maps them to HTTP.
"""
from __future__ import annotations

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from apps.core import outages
from apps.core.exceptions import KINDS, InvalidInput, ServiceError, first_field, first_message

__all__ = ["error_body", "exception_handler", "service_error_from", "service_error_response"]


def query_value(request, name: str) -> str | None:
    """One query parameter's value, None when absent; given more than once is a 400 naming it
    (``?limit=5&limit=`` must not quietly mean the last one)."""
    values = request.query_params.getlist(name)
    if len(values) > 1:
        raise ServiceError(f"{name}: give it once, not {len(values)} times", field=name)
    return values[0] if values else None


def service_error_from(status_code: int, body: dict) -> ServiceError:
    """The service error a stored answer (status + envelope) stands for: the kind of that status, with
    the stored code and field (``apps.core.idempotency`` replays refusals with it)."""
    kind = next((kind for kind in KINDS if kind.status_code == status_code), ServiceError)
    error = kind(body.get("detail", "Refused."), field=body.get("field"), code=body.get("error"))
    error.status_code = status_code  # exactly the stored one, also for a status no kind has (a 401)
    return error


def error_body(exc: ServiceError) -> dict:
    """The JSON envelope of a service error: ``{"error", "detail", "field"?, "fields"?}``."""
    body: dict = {"error": exc.code, "detail": exc.message}
    if exc.field:
        body["field"] = exc.field
    if isinstance(exc, InvalidInput):
        body["fields"] = exc.errors
    return body


def service_error_response(exc: ServiceError) -> Response:
    """The answer to a service error; a 503 carries ``Retry-After``."""
    code = exc.status_code
    headers = None
    if code == status.HTTP_503_SERVICE_UNAVAILABLE:  # also a ServiceError(status_code=503) of old
        retry_after = getattr(exc, "retry_after", None) or outages.RETRY_AFTER_SECONDS
        headers = {"Retry-After": str(retry_after)}
    return Response(error_body(exc), status=code, headers=headers)


def exception_handler(exc, context):
    """DRF's ``EXCEPTION_HANDLER``: service errors and store outages by kind, DRF's own errors in the envelope."""
    if outage := outages.as_unavailable(exc):
        set_rollback()  # the request's transaction, if any, changed nothing
        return service_error_response(outage)
    if isinstance(exc, ServiceError):
        return service_error_response(exc)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = {"error": "invalid", "detail": first_message(response.data)}
        if field := first_field(response.data):
            body["field"] = field
        response.data = {**body, "fields": response.data}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"error": getattr(exc, "default_code", "error"), "detail": str(response.data["detail"])}
    return response
