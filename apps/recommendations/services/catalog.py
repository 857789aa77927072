"""Catalogue writes: one item (``catalog_item_put``) and bulk imports of JSON lines or CSV."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator

import structlog
from django.contrib.auth.models import AbstractBaseUser, User
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.exceptions import Forbidden, NotFound, ServiceError
from apps.core.file_imports import ImportStatus
from apps.core.roles import Role, user_has_role

from ..models import CatalogAudit, CatalogImport, CatalogItem
from ..validation import ITEM_FIELDS, clean_item, clean_item_id

log = structlog.get_logger(__name__)

WRITER_ROLES = (Role.MARKETER, Role.INTEGRATION)
CSV_COLUMNS = ("item_id", *ITEM_FIELDS)
IMPORT_MAX_BYTES = 50 * 1024 * 1024
IMPORT_CHUNK_ROWS = 500


def require_catalog_writer(actor: AbstractBaseUser | None) -> None:
    if not user_has_role(actor, *WRITER_ROLES):
        raise Forbidden("changing the catalogue requires the Marketer or Integration role")


def _jsonable(value):
    return str(value) if value is not None and not isinstance(value, (str, int, float, bool, list, dict)) else value


def _write(item_id: str, fields: dict, *, actor: User | None,
           source: str) -> tuple[CatalogItem, bool]:
    """Create or update under a row lock, with the audit row in the same transaction."""
    with transaction.atomic():
        item = CatalogItem.objects.select_for_update().filter(item_id=item_id).first()
        if item is None:
            values = {**fields, "created_at": fields["created_at"] or timezone.now()}
            try:
                with transaction.atomic():
                    item = CatalogItem.objects.create(item_id=item_id, **values)
            except IntegrityError:  # created concurrently: update it instead
                item = CatalogItem.objects.select_for_update().get(item_id=item_id)
            else:
                CatalogAudit.objects.create(item_id=item_id, action="created", actor=actor, source=source,
                                            changes={k: [None, _jsonable(v)] for k, v in values.items()})
                return item, True
        if fields["created_at"] is None:
            fields = {k: v for k, v in fields.items() if k != "created_at"}
        changes = {name: [_jsonable(getattr(item, name)), _jsonable(value)]
                   for name, value in fields.items() if getattr(item, name) != value}
        if changes:
            for name, value in fields.items():
                setattr(item, name, value)
            item.save()
            CatalogAudit.objects.create(item_id=item_id, action="updated", actor=actor, source=source,
                                        changes=changes)
        return item, False


def catalog_item_put(*, item_id: str, data: dict, actor: User | None,
                     source: str = "api") -> tuple[CatalogItem, bool]:
    """Create or replace one item (fields left out take their defaults; ``created_at`` is kept when
    not given). Returns the item and whether it was created."""
    require_catalog_writer(actor)
    item_id = clean_item_id(item_id)
    if "item_id" in data and data["item_id"] != item_id:
        raise ServiceError("item_id: the body's item_id differs from the one in the path", field="item_id")
    item, created = _write(item_id, clean_item(data), actor=actor, source=source)
    log.info("catalog_item_put", item_id=item_id, created=created)
    return item, created


# --- bulk import ------------------------------------------------------------------------------------
def _detect_format(filename: str, text: str) -> str:
    name = filename.lower()
    if name.endswith((".jsonl", ".ndjson", ".json")):
        return CatalogImport.Format.JSONL
    if name.endswith(".csv"):
        return CatalogImport.Format.CSV
    return CatalogImport.Format.JSONL if text.lstrip().startswith("{") else CatalogImport.Format.CSV


def _csv_rows(text: str) -> Iterator[tuple[int, dict | None, str | None]]:
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [c.strip().lower() for c in next(reader)]
    except StopIteration:
        return
    except csv.Error as exc:
        raise ServiceError(f"line 1: {exc}", field="file") from None
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if "item_id" not in header or "name" not in header or unknown:
        raise ServiceError(f"bad header line: expected item_id,name and any of {','.join(CSV_COLUMNS[2:])}"
                           + (f"; unknown column(s): {', '.join(unknown)}" if unknown else ""), field="file")
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
        if len(values) > len(header):
            yield reader.line_num, None, f"has {len(values)} values but the header has {len(header)} columns"
            continue
        row: dict = dict(zip(header, values + [""] * (len(header) - len(values)), strict=True))
        if row.get("attributes"):
            try:
                row["attributes"] = json.loads(row["attributes"])
            except ValueError:
                yield reader.line_num, None, 'attributes: must be a JSON object, e.g. {"weight_kg": 1.2}'
                continue
        yield reader.line_num, row, None


def _jsonl_rows(text: str) -> Iterator[tuple[int, dict | None, str | None]]:
    for line_number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            yield line_number, None, f"not JSON: {exc.msg} (column {exc.colno})"
            continue
        if not isinstance(row, dict):
            yield line_number, None, "not a JSON object"
            continue
        yield line_number, row, None


def _rows(imp_format: str, text: str):
    return _jsonl_rows(text) if imp_format == CatalogImport.Format.JSONL else _csv_rows(text)


def catalog_import_create(*, filename: str, data: bytes, actor: User | None,
                          file_format: str = "") -> CatalogImport:
    """Check an upload (UTF-8, a readable header for CSV, at least one row) and queue it; the format is
    ``file_format`` when given, else told by the file name (.jsonl / .csv) or the first character."""
    require_catalog_writer(actor)
    if len(data) > IMPORT_MAX_BYTES:
        raise ServiceError(f"the file is larger than {IMPORT_MAX_BYTES // (1024 * 1024)} MB; split it", field="file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ServiceError("the file is not UTF-8 text", field="file") from None
    fmt = file_format or _detect_format(filename or "", text)
    total = sum(1 for _ in _rows(fmt, text))
    if total == 0:
        raise ServiceError("the file has no data rows", field="file")
    imp = CatalogImport.objects.create(filename=(filename or f"upload.{fmt}")[:255], format=fmt, content=text,
                                       total_rows=total, created_by=actor if getattr(actor, "pk", None) else None)
    log.info("catalog_import_created", import_id=imp.pk, rows=total, format=fmt)
    return imp


def catalog_import_run(*, import_id: int, progress: Callable[[int], None] | None = None) -> CatalogImport:
    """Write an import's rows in chunks (one transaction each, progress saved after each), resuming
    after the last committed chunk when run again; refused rows are kept with their reason."""
    claimed = CatalogImport.objects.filter(pk=import_id, status__in=[ImportStatus.QUEUED, ImportStatus.RUNNING]) \
        .update(status=ImportStatus.RUNNING, started_at=timezone.now())
    imp = CatalogImport.objects.filter(pk=import_id).first()
    if imp is None:
        raise NotFound(f"catalogue import {import_id} does not exist")
    if not claimed:
        return imp
    source = f"import:{imp.pk}"
    chunk: list = []
    position = 0
    try:
        for row in _rows(imp.format, imp.content):
            position += 1
            if position <= imp.processed_rows:
                continue
            chunk.append(row)
            if len(chunk) >= IMPORT_CHUNK_ROWS:
                if not _import_chunk(imp, chunk, source, offset=position - len(chunk)):
                    return CatalogImport.objects.get(pk=import_id)
                if progress:
                    progress(len(chunk))
                chunk = []
        if chunk:
            if not _import_chunk(imp, chunk, source, offset=position - len(chunk)):
                return CatalogImport.objects.get(pk=import_id)
            if progress:
                progress(len(chunk))
    except ServiceError as exc:
        CatalogImport.objects.filter(pk=import_id).update(status=ImportStatus.FAILED, error=exc.message,
                                                          finished_at=timezone.now())
        return CatalogImport.objects.get(pk=import_id)
    CatalogImport.objects.filter(pk=import_id).update(status=ImportStatus.DONE, finished_at=timezone.now())
    imp.refresh_from_db()
    log.info("catalog_import_done", import_id=imp.pk, created=imp.created, updated=imp.updated, refused=imp.refused)
    return imp


def _import_chunk(imp: CatalogImport, chunk: list, source: str, *, offset: int) -> bool:
    """Write one chunk and advance the counters atomically; False when another runner got there first."""
    with transaction.atomic():
        locked = CatalogImport.objects.select_for_update().get(pk=imp.pk)
        if locked.status != ImportStatus.RUNNING or locked.processed_rows != offset:
            return False
        refused: list[list] = []
        for line, row, problem in chunk:
            if problem is None:
                try:
                    item_id = clean_item_id(row.get("item_id"))
                    fields = clean_item({k: v for k, v in row.items() if k != "item_id"},
                                        csv=imp.format == CatalogImport.Format.CSV)
                except ServiceError as exc:
                    problem = exc.message
                else:
                    _, created = _write(item_id, fields, actor=locked.created_by, source=source)
                    if created:
                        locked.created += 1
                    else:
                        locked.updated += 1
            if problem is not None:
                refused.append([line, problem])
        room = CatalogImport.REFUSED_DETAIL_LIMIT - len(locked.refused_rows)
        locked.refused_rows = locked.refused_rows + refused[:max(room, 0)]
        locked.refused += len(refused)
        locked.processed_rows += len(chunk)
        locked.save(update_fields=["refused_rows", "refused", "processed_rows", "created", "updated"])
    imp.processed_rows = locked.processed_rows
    return True


def catalog_import_refused_csv(*, imp: CatalogImport) -> str:
    """The refused rows as a downloadable CSV: line,reason."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["line", "reason"])
    writer.writerows(imp.refused_rows)
    return out.getvalue()


def catalog_items_set_available(*, item_ids: list[str], available: bool,
                                actor: User | None) -> int:
    """Switch items on or off (audited); returns how many changed. An item switched off never appears
    in recommendations from the next request on (the serve path checks the catalogue)."""
    require_catalog_writer(actor)
    changed = 0
    with transaction.atomic():
        for item in CatalogItem.objects.select_for_update().filter(item_id__in=item_ids).exclude(available=available):
            item.available = available
            item.save(update_fields=["available", "updated_at"])
            CatalogAudit.objects.create(item_id=item.item_id, action="updated", actor=actor, source="admin",
                                        changes={"available": [not available, available]})
            changed += 1
    return changed
