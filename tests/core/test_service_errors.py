"""Service error kinds (apps.core.exceptions) and the one handler that maps them to HTTP (apps.core.api)."""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from apps.core import api, exceptions
from apps.core.exceptions import (
    Conflict,
    Forbidden,
    NotFound,
    ServiceError,
    Unavailable,
    Unprocessable,
)
from apps.core.idempotency import idempotent_call
from apps.core.models import IdempotencyRecord

KINDS = [
    # (error, status, envelope)
    (ServiceError("amount_cents must be at least 1.", field="amount_cents"), 400,
     {"error": "invalid", "detail": "amount_cents must be at least 1.", "field": "amount_cents"}),
    (NotFound("No account for user 'u1'."), 404, {"error": "not_found", "detail": "No account for user 'u1'."}),
    (Conflict("Cannot pause a draft campaign.", field="status"), 409,
     {"error": "conflict", "detail": "Cannot pause a draft campaign.", "field": "status"}),
    (Forbidden("Requires the Admin role."), 403, {"error": "permission_denied", "detail": "Requires the Admin role."}),
    (Unprocessable("Insufficient stars: need 200, have 150", field="redemption_tier", code="insufficient_stars"),
     422, {"error": "insufficient_stars", "detail": "Insufficient stars: need 200, have 150",
           "field": "redemption_tier"}),
    (Unavailable("Analytics store unavailable, try again shortly."), 503,
     {"error": "unavailable", "detail": "Analytics store unavailable, try again shortly."}),
]

IDS = [type(error).__name__ for error, _, _ in KINDS]


class Raises(APIView):
    """A view that raises whatever the test hands it, answered through the configured EXCEPTION_HANDLER."""

    authentication_classes: list = []
    permission_classes: list = []
    error: Exception = ServiceError("unset")

    def get(self, request):
        raise self.error


def _answer(error: Exception):
    response = Raises.as_view(error=error)(APIRequestFactory().get("/v1/raises"))
    response.render()
    return response


@pytest.mark.parametrize("error, status, envelope", KINDS, ids=IDS)
def test_each_kind_is_its_status_and_the_envelope(error, status, envelope):
    response = _answer(error)
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == envelope
    assert response.has_header("Retry-After") is (status == 503)


def test_unavailable_says_when_to_retry():
    assert _answer(Unavailable("down")).headers["Retry-After"] == "5"  # outages.RETRY_AFTER_SECONDS
    assert _answer(Unavailable("down", retry_after=30)).headers["Retry-After"] == "30"


def test_a_kinds_code_and_status_can_be_given_as_before():
    # The pre-kinds way (loyalty: ServiceError(..., status_code=422)) answers as it did.
    response = _answer(ServiceError("Insufficient stars", code="insufficient_stars", status_code=422))
    assert response.status_code == 422 and json.loads(response.content)["error"] == "insufficient_stars"
    response = _answer(NotFound("gone", code="campaign_not_found"))
    assert response.status_code == 404 and json.loads(response.content)["error"] == "campaign_not_found"


def test_kinds_are_service_errors_and_live_in_one_module():
    for kind in (NotFound, Conflict, Forbidden, Unprocessable, Unavailable):
        assert issubclass(kind, ServiceError)
    assert exceptions.KINDS == (NotFound, Conflict, Forbidden, Unprocessable, Unavailable)
    assert not hasattr(exceptions, "PermissionDenied")  # one name per kind: Forbidden
    assert set(api.__all__) == {"error_body", "exception_handler", "service_error_from", "service_error_response"}


def test_every_module_imports_the_kinds_from_apps_core_exceptions():
    """Nobody imports an error kind from ``apps.core.api`` (the HTTP mapping), and nobody passes ``status_code=``
    to a service error: the kind says the status."""
    root = Path(__file__).resolve().parents[2]
    kinds = {"ServiceError", "NotFound", "Conflict", "Forbidden", "PermissionDenied", "Unprocessable", "Unavailable"}
    offenders = []
    for path in sorted([*root.joinpath("apps").rglob("*.py"), *root.joinpath("tests").rglob("*.py")]):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "apps.core.api":
                offenders += [f"{path.relative_to(root)}:{node.lineno} imports {alias.name}"
                              for alias in node.names if alias.name in kinds]
            if (isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) in kinds
                    and any(keyword.arg == "status_code" for keyword in node.keywords)
                    and path != Path(__file__).resolve()):
                offenders.append(f"{path.relative_to(root)}:{node.lineno} passes status_code=")
    assert offenders == []


def test_exceptions_module_imports_neither_drf_nor_django():
    root = Path(__file__).resolve().parents[2]
    code = ("import sys, apps.core.exceptions; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('rest_framework', 'django')))")
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_a_store_outage_becomes_the_unavailable_kind():
    from django.db import OperationalError

    from apps.core import outages

    try:
        try:
            raise OperationalError("connection refused")
        except OperationalError as exc:
            raise RuntimeError("report failed") from exc
    except RuntimeError as exc:
        outage = outages.as_unavailable(exc)
    assert isinstance(outage, Unavailable)
    assert (outage.message, outage.retry_after) == ("postgres is unavailable right now; retry in a few seconds", 5)
    assert outages.as_unavailable(ValueError("a bug")) is None
    assert outages.as_unavailable(Unavailable("already a kind")) is None


@pytest.mark.django_db
@pytest.mark.parametrize("error, status, envelope", KINDS[:-1], ids=IDS[:-1])
def test_idempotent_replay_raises_the_same_kind(error, status, envelope):
    def refuse():
        raise error

    for attempt in ("first", "replay"):
        with pytest.raises(type(error)) as raised:
            idempotent_call(scope="test.kinds", key="k1", payload={}, run=refuse)
        got = raised.value
        assert (type(got), got.status_code, api.error_body(got)) == (type(error), status, envelope), attempt
    assert IdempotencyRecord.objects.get(scope="test.kinds").response_status == status


@pytest.mark.django_db
def test_idempotent_call_keeps_no_record_of_an_outage_so_a_retry_runs_again():
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) == 1:
            raise Unavailable("analytics is down")
        return {"ok": True}

    with pytest.raises(Unavailable):
        idempotent_call(scope="test.kinds", key="k2", payload={}, run=flaky)
    assert not IdempotencyRecord.objects.filter(scope="test.kinds", key="k2").exists()
    outcome = idempotent_call(scope="test.kinds", key="k2", payload={}, run=flaky)
    assert (outcome.status, outcome.body, outcome.replayed, len(calls)) == (200, {"ok": True}, False, 2)
