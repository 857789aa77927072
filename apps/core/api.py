"""Shared DRF plumbing: errors for people (every 4xx names the field and the rule it broke)."""
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler, set_rollback


class ServiceError(Exception):
    """Raised by services for a refused business action; the API turns it into a 4xx."""

    status_code = status.HTTP_400_BAD_REQUEST
    code = "invalid"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None, status_code: int | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        if code:
            self.code = code
        if status_code:
            self.status_code = status_code


class Conflict(ServiceError):
    status_code = status.HTTP_409_CONFLICT
    code = "conflict"


class PermissionDenied(ServiceError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"


class NotFound(ServiceError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"


def exception_handler(exc, context):
    from apps.core import outages

    if store := outages.unavailable_store(exc):
        set_rollback()  # the request's transaction, if any, changed nothing
        return Response(outages.body(store), status=status.HTTP_503_SERVICE_UNAVAILABLE,
                        headers={"Retry-After": str(outages.RETRY_AFTER_SECONDS)})
    if isinstance(exc, ServiceError):
        body = {"error": exc.code, "detail": exc.message}
        if exc.field:
            body["field"] = exc.field
        headers = {"Retry-After": str(outages.RETRY_AFTER_SECONDS)} if exc.status_code == 503 else None
        return Response(body, status=exc.status_code, headers=headers)
    if isinstance(exc, DjangoValidationError):
        exc = exceptions.ValidationError(exc.message_dict if hasattr(exc, "error_dict") else exc.messages)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        body = {"error": "invalid", "detail": _first_message(response.data)}
        if field := _first_field(response.data):
            body["field"] = field
        response.data = {**body, "fields": response.data}
    elif isinstance(response.data, dict) and "detail" in response.data:
        response.data = {"error": getattr(exc, "default_code", "error"), "detail": str(response.data["detail"])}
    return response


def _first_message(data, prefix: str = "") -> str:
    if isinstance(data, dict):
        for key, value in data.items():
            name = "" if key == "non_field_errors" else str(key)
            return _first_message(value, f"{prefix}.{name}".strip(".") if name else prefix)
    if isinstance(data, list) and data:
        if any(isinstance(item, (dict, list)) for item in data):
            # A list of per-item errors (ListSerializer): name the first item that failed.
            for index, item in enumerate(data):
                if item:
                    return _first_message(item, f"{prefix}.{index}".strip("."))
        return _first_message(data[0], prefix)
    return f"{prefix}: {data}" if prefix else str(data)


def _first_field(data, prefix: str = "") -> str:
    """The dotted path of the first invalid field (``targeting.countries.0``), "" for a non-field error."""
    if isinstance(data, dict):
        for key, value in data.items():
            if key == "non_field_errors":
                return prefix
            return _first_field(value, f"{prefix}.{key}".strip("."))
    if isinstance(data, list) and any(isinstance(item, (dict, list)) for item in data):
        for index, item in enumerate(data):
            if item:
                return _first_field(item, f"{prefix}.{index}".strip("."))
    return prefix
