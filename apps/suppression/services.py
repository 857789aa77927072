"""Writes to the suppression list. Every change leaves a ``SuppressionAudit`` row in its transaction.

Who may do what (checked in ``validation``, so the admin and the API agree):

* adding entries — Marketer or Admin; ``created_by=None`` means the system (webhooks, STOP replies);
* removing entries (un-suppressing) — Admin only, because re-contacting someone who opted out is
  the expensive mistake; ``removed_by=None`` means the system (e.g. an SMS "START" reply);
* reading and checking — any staff role (see ``selectors``).

The code lives in modules by sub-domain; this module is the slice's public face for writes and
re-exports them, so callers keep importing ``apps.suppression.services``:

* ``validation`` — channel, reason, expiry and identifier-kind checks; the role checks;
* ``writes`` — single and bulk add and remove, extend, purge (and the ``suppression_changes_total`` metric);
* ``imports`` — the CSV import (check the upload, run it in chunks).
"""
from __future__ import annotations

from .identifiers import normalise_identifier
from .imports import (
    CSV_OPTIONAL_COLUMNS,
    CSV_REQUIRED_COLUMNS,
    CSV_TEMPLATE,
    DRY_RUN_MAX_ROWS,
    ImportCheck,
    suppression_import_check,
    suppression_import_create,
    suppression_import_errors_csv,
    suppression_import_run,
)
from .validation import check_kind_fits_channel, parse_expires_at, validate_channel, validate_reason
from .writes import (
    BULK_WRITE_LOCK,
    SUPPRESSION_CHANGES,
    BulkRemoveResult,
    BulkResult,
    suppression_add,
    suppression_add_with_outcome,
    suppression_bulk_add,
    suppression_bulk_remove,
    suppression_extend,
    suppression_purge_expired,
    suppression_remove,
)

__all__ = [
    "BulkResult",
    "BulkRemoveResult",
    "normalise_identifier",
    "suppression_add",
    "suppression_add_with_outcome",
    "suppression_remove",
    "suppression_bulk_add",
    "suppression_bulk_remove",
    "suppression_extend",
    "suppression_purge_expired",
    "suppression_import_create", "suppression_import_check", "suppression_import_errors_csv", "CSV_TEMPLATE",
    "DRY_RUN_MAX_ROWS", "ImportCheck",
    "suppression_import_run",
    # checks and constants callers use too
    "BULK_WRITE_LOCK",
    "CSV_OPTIONAL_COLUMNS",
    "CSV_REQUIRED_COLUMNS",
    "SUPPRESSION_CHANGES",
    "check_kind_fits_channel",
    "parse_expires_at",
    "validate_channel",
    "validate_reason",
]
