"""Connections: their settings as adaptor input, and "Test connection"."""
from __future__ import annotations

from dataclasses import dataclass

import structlog
from django.utils import timezone

from apps.core.exceptions import NotFound

from ..adaptors import ConnectionConfig, ConnectionProblem, adaptor_for
from ..models import Connection

log = structlog.get_logger("apps.integrations")


def connection_config(connection: Connection) -> ConnectionConfig:
    if connection.credentials.undecryptable_token is not None:
        raise ConnectionProblem("The stored credentials cannot be decrypted with the configured OUTBOUND_SECRET_KEYS: "
                                "enter them again.")
    return ConnectionConfig(
        id=connection.pk, kind=connection.kind, name=connection.name, base_url=connection.base_url,
        credentials=dict(connection.credentials), options=dict(connection.options or {}),
        rate_per_second=connection.rate_per_second, version=connection.updated_at.isoformat())


@dataclass(frozen=True)
class TestResult:
    ok: bool
    message: str


def connection_test(*, connection_id: int) -> TestResult:
    """Call the vendor the way the integration will (credentials, configured project/folder/dataset)
    and say in plain words what is wrong, within 5 s. The outcome is stored on the connection."""
    try:
        connection = Connection.objects.get(pk=connection_id)
    except Connection.DoesNotExist:
        raise NotFound(f"Connection {connection_id} does not exist.") from None
    try:
        message = adaptor_for(connection_config(connection)).test()
        result = TestResult(True, message)
    except ConnectionProblem as exc:
        result = TestResult(False, exc.message)
    except (KeyError, TypeError, ValueError) as exc:  # an answer not in the vendor's documented shape
        result = TestResult(False, f"The vendor answered in an unexpected format ({type(exc).__name__}: {exc}).")
    Connection.objects.filter(pk=connection_id).update(
        last_tested_at=timezone.now(), last_test_ok=result.ok, last_test_message=result.message[:300])
    log.info("integration_connection_tested", connection_id=connection_id, ok=result.ok, message=result.message)
    return result
