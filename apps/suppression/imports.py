"""CSV import of suppression entries: check the upload, then run it in chunks (``docs/RULES.md §4``).

``suppression_import_create`` refuses a file that cannot be imported at all (not UTF-8, bad header,
no rows) and stores the rest as a queued ``SuppressionImport``; ``suppression_import_run`` (a Celery
task, the admin's "run here" button or ``manage.py import_suppressions``) writes it through
``suppression_bulk_add``, one transaction per chunk, resuming after the last committed chunk.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import NotFound, ServiceError
from apps.core.file_imports import ImportStatus

from .models import SuppressionImport
from .validation import require_writer, user_or_none
from .writes import suppression_bulk_add

__all__ = ["CSV_OPTIONAL_COLUMNS", "CSV_REQUIRED_COLUMNS", "CSV_TEMPLATE", "DRY_RUN_MAX_ROWS", "ImportCheck",
           "suppression_import_check", "suppression_import_create", "suppression_import_errors_csv",
           "suppression_import_run"]

log = structlog.get_logger(__name__)

CSV_REQUIRED_COLUMNS = ("identifier", "channel", "reason")
CSV_OPTIONAL_COLUMNS = ("expires_at", "source")
#: The file offered for download on the import page: the header and one row of each kind.
CSV_TEMPLATE = (
    "identifier,channel,reason,expires_at,source\r\n"
    "jane@example.com,email,unsubscribe,,newsletter footer\r\n"
    "+1 (415) 555-0100,sms,manual,2027-12-31,call centre\r\n"
    "user-48213,all,regulatory,,legal request 2026-114\r\n"
)
#: A dry run checks the whole file in one request (in a rolled-back transaction); larger files are
#: checked by importing them (the per-row problems are listed and downloadable afterwards).
DRY_RUN_MAX_ROWS = 20_000


class _DryRunRollback(Exception):
    pass


@dataclass
class ImportCheck:
    """What an import would do, without doing it."""

    total_rows: int
    added: int = 0
    updated: int = 0
    skipped_rows: list[tuple[int, str]] = field(default_factory=list)

    @property
    def skipped(self) -> int:
        return len(self.skipped_rows)


def suppression_import_check(*, data: bytes, created_by, chunk_size: int | None = None) -> ImportCheck:
    """Dry run: every row of the CSV through the same checks and writes as the import, inside a
    transaction that is rolled back, so the counts are exactly what importing it now would give."""
    actor = user_or_none(created_by)
    require_writer(actor)
    if len(data) > settings.SUPPRESSION_IMPORT_MAX_BYTES:
        raise ServiceError(f"the file is larger than {settings.SUPPRESSION_IMPORT_MAX_BYTES // (1024 * 1024)} MB; "
                           "split it", field="file")
    text = _decode_csv(data)
    rows = list(_iter_csv_rows(text))
    if not rows:
        raise ServiceError("the file has a header but no data rows", field="file")
    if len(rows) > DRY_RUN_MAX_ROWS:
        raise ServiceError(f"a dry run checks at most {DRY_RUN_MAX_ROWS:,} rows and this file has {len(rows):,}; "
                           "split it, or import it and download the skipped rows afterwards", field="file")
    check = ImportCheck(total_rows=len(rows))
    chunk_size = chunk_size or settings.SUPPRESSION_IMPORT_CHUNK_SIZE
    seen: dict = {}
    try:
        with transaction.atomic():
            for start in range(0, len(rows), chunk_size):
                entries = []
                for line, values, problem in rows[start:start + chunk_size]:
                    if problem:
                        check.skipped_rows.append((line, problem))
                    else:
                        entries.append({**values, "row": line})
                result = suppression_bulk_add(entries=entries, created_by=actor, source="dry run", on_invalid="skip",
                                              seen=seen, row_label="line", quiet=True)
                check.added += result.added
                check.updated += result.updated
                check.skipped_rows.extend((int(line), str(why)) for line, why in result.skipped)
            raise _DryRunRollback
    except _DryRunRollback:
        pass
    check.skipped_rows.sort()
    return check


def suppression_import_errors_csv(rows) -> str:
    """``line,problem`` CSV of skipped rows (for download)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["line", "problem"])
    writer.writerows([line, why] for line, why in rows)
    return out.getvalue()


def _decode_csv(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ServiceError("the file is not UTF-8 text; save the CSV as UTF-8", field="file") from None
    if "\x00" in text:
        raise ServiceError("the file contains NUL bytes; is it really a CSV?", field="file")
    return text


def _read_header(reader) -> list[str]:
    try:
        header = next(reader)
    except StopIteration:
        raise ServiceError("the file is empty", field="file") from None
    except csv.Error as exc:
        raise ServiceError(f"line 1: {exc}", field="file") from None
    columns = [name.strip().lower() for name in header]
    missing = [c for c in CSV_REQUIRED_COLUMNS if c not in columns]
    unknown = [c for c in columns if c not in CSV_REQUIRED_COLUMNS + CSV_OPTIONAL_COLUMNS]
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    problems = []
    if missing:
        problems.append(f"missing column(s): {', '.join(missing)}")
    if unknown:
        problems.append(f"unknown column(s): {', '.join(repr(c) for c in unknown)}")
    if repeated:
        problems.append(f"repeated column(s): {', '.join(repeated)}")
    if problems:
        raise ServiceError(
            "bad header line — " + "; ".join(problems)
            + f" (expected {','.join(CSV_REQUIRED_COLUMNS)}[,expires_at][,source])",
            field="file",
        )
    return columns


def _iter_csv_rows(text: str, columns_out: list | None = None):
    """Yield ``(line_number, dict | None, problem | None)`` for every non-blank data row."""
    reader = csv.reader(io.StringIO(text, newline=""))
    columns = _read_header(reader)
    if columns_out is not None:
        columns_out.extend(columns)
    while True:
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield reader.line_num, None, f"unreadable CSV: {exc}"
            continue
        if not any(v.strip() for v in values):
            continue
        line = reader.line_num
        if len(values) > len(columns):
            yield line, None, f"has {len(values)} values but the header has {len(columns)} columns"
            continue
        values = values + [""] * (len(columns) - len(values))
        yield line, dict(zip(columns, values, strict=True)), None


def suppression_import_create(*, filename: str, data: bytes, created_by, source: str = "") -> SuppressionImport:
    """Check an uploaded CSV (``identifier,channel,reason[,expires_at][,source]``) and store it as a
    queued import; raises ``ServiceError(field="file")`` for a file that cannot be imported at all.
    Rows are checked one by one when the import runs."""
    actor = user_or_none(created_by)
    require_writer(actor)
    limit = settings.SUPPRESSION_IMPORT_MAX_BYTES
    if len(data) > limit:
        raise ServiceError(f"the file is larger than {limit // (1024 * 1024)} MB; split it", field="file")
    text = _decode_csv(data)
    total = sum(1 for _ in _iter_csv_rows(text))
    if total == 0:
        raise ServiceError("the file has a header but no data rows", field="file")
    name = (filename or "upload.csv")[:255]
    imp = SuppressionImport.objects.create(
        filename=name, content=text, source=(source or f"csv:{name}")[:200], total_rows=total, created_by=actor,
    )
    log.info("suppression_import_created", import_id=imp.pk, rows=total, actor_id=getattr(actor, "pk", None))
    return imp


def suppression_import_run(*, import_id: int, progress: Callable[[int], None] | None = None,
                           chunk_size: int | None = None) -> SuppressionImport:
    """Process an import's remaining rows in chunks, one transaction per chunk, updating its
    progress as it goes. Safe to call again (a redelivered task resumes after the last committed
    chunk; a second runner of the same import stops at its first chunk). ``progress(n)`` is called
    with the number of rows each chunk handled."""
    chunk_size = chunk_size or settings.SUPPRESSION_IMPORT_CHUNK_SIZE
    claimed = SuppressionImport.objects.filter(
        pk=import_id, status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING]
    ).update(status=ImportStatus.RUNNING, started_at=timezone.now())
    imp = SuppressionImport.objects.filter(pk=import_id).first()
    if imp is None:
        raise NotFound(f"import {import_id} does not exist")
    if not claimed:
        return imp
    seen: dict = {}
    start_at = imp.processed_rows
    if progress and start_at:
        progress(start_at)
    try:
        rows = _iter_csv_rows(imp.content)
        position = 0
        chunk: list[tuple[int, dict | None, str | None]] = []
        for item in rows:
            position += 1
            if position <= start_at:
                continue
            chunk.append(item)
            if len(chunk) >= chunk_size:
                if not _import_chunk(imp.pk, chunk, offset=position - len(chunk), seen=seen):
                    return SuppressionImport.objects.get(pk=import_id)
                if progress:
                    progress(len(chunk))
                chunk = []
        if chunk:
            if not _import_chunk(imp.pk, chunk, offset=position - len(chunk), seen=seen):
                return SuppressionImport.objects.get(pk=import_id)
            if progress:
                progress(len(chunk))
    except ServiceError as exc:
        SuppressionImport.objects.filter(pk=import_id).update(
            status=ImportStatus.FAILED, error=exc.message, finished_at=timezone.now()
        )
        log.warning("suppression_import_failed", import_id=import_id, error=exc.message)
        return SuppressionImport.objects.get(pk=import_id)
    SuppressionImport.objects.filter(pk=import_id, status=ImportStatus.RUNNING).update(
        status=ImportStatus.DONE, finished_at=timezone.now()
    )
    imp = SuppressionImport.objects.get(pk=import_id)
    log.info("suppression_import_done", import_id=import_id, added=imp.added, updated=imp.updated,
             skipped=imp.skipped)
    return imp


def _import_chunk(import_id: int, chunk: list, *, offset: int, seen: dict) -> bool:
    """Write one chunk and advance the import's counters atomically; False if another runner got there first."""
    with transaction.atomic():
        imp = SuppressionImport.objects.select_for_update().get(pk=import_id)
        if imp.status != ImportStatus.RUNNING or imp.processed_rows != offset:
            return False
        skipped: list[tuple[int, str]] = []
        entries = []
        for line, values, problem in chunk:
            if problem:
                skipped.append((line, problem))
            else:
                entries.append({**values, "row": line})
        result = suppression_bulk_add(entries=entries, created_by=imp.created_by, source=imp.source,
                                      on_invalid="skip", seen=seen, row_label="line", quiet=True)
        skipped.extend(result.skipped)
        skipped.sort()
        room = SuppressionImport.SKIP_DETAIL_LIMIT - len(imp.skipped_rows)
        if room > 0:
            imp.skipped_rows = imp.skipped_rows + [list(item) for item in skipped[:room]]
        imp.processed_rows += len(chunk)
        imp.added += result.added
        imp.updated += result.updated
        imp.skipped += len(skipped)
        imp.save(update_fields=["skipped_rows", "processed_rows", "added", "updated", "skipped"])
    return True
