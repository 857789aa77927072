"""Retention: deleting old rows in bounded batches.

A purge of a large, busy table in one ``DELETE`` holds its row locks (and a long transaction) for as
long as it runs; writers of the same rows and vacuum wait behind it. :func:`delete_in_batches` takes
the primary keys of at most ``batch_size`` matching rows, deletes just those in a statement of its
own (autocommit: each batch is its own short transaction), and goes on until a batch comes back
short. Rows inserted meanwhile that match are taken by a later batch or the next run.
"""
from __future__ import annotations

from django.conf import settings
from django.db.models import QuerySet


def delete_in_batches(queryset: QuerySet, *, batch_size: int | None = None) -> int:
    """Delete every row of ``queryset``, at most ``batch_size`` (default ``RETENTION_PURGE_BATCH_SIZE``)
    per statement; returns how many rows of the queryset's model went."""
    size = batch_size or settings.RETENTION_PURGE_BATCH_SIZE
    model = queryset.model
    label = model._meta.label
    total = 0
    while True:
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[:size])
        if not ids:
            return total
        _, per_model = model._base_manager.filter(pk__in=ids).delete()
        total += per_model.get(label, 0)
        if len(ids) < size:
            return total
