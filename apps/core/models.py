"""Platform-wide models shared by every slice."""
from __future__ import annotations

from django.db import models


class IdempotencyRecord(models.Model):
    """The stored answer to one idempotent write (see :mod:`apps.core.idempotency`).

    A row is inserted in the same transaction as the change it guards, so either both exist or
    neither does; ``unique (scope, key)`` makes a concurrent duplicate wait for the first
    transaction and then read its answer instead of applying the change a second time.
    """

    scope = models.CharField(max_length=64, help_text="Which operation the key belongs to, e.g. loyalty.redeem")
    key = models.CharField(max_length=255, help_text="The client's Idempotency-Key")
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of the canonical request body")
    response_status = models.PositiveSmallIntegerField()
    response_body = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["scope", "key"], name="core_idempotency_scope_key_uniq")]
        verbose_name = "idempotency record"

    def __str__(self) -> str:
        return f"{self.scope}:{self.key} -> {self.response_status}"
