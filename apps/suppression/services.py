"""Writes to the suppression list. Every change leaves a ``SuppressionAudit`` row in its transaction.

Who may do what (checked here, so the admin and the API agree):

* adding entries — Marketer or Admin; ``created_by=None`` means the system (webhooks, STOP replies);
* removing entries (un-suppressing) — Admin only, because re-contacting someone who opted out is
  the expensive mistake; ``removed_by=None`` means the system (e.g. an SMS "START" reply);
* reading and checking — any staff role (see ``selectors``).
"""
from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field as dc_field
from datetime import datetime, time, timezone as dt_timezone

import structlog
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime
import prometheus_client

from apps.core.exceptions import NotFound, PermissionDenied, ServiceError
from apps.core.roles import Role, user_has_role
from apps.core.fields import ISO_DATE_OR_DATETIME_RE

from .identifiers import classify_and_normalise, normalise_identifier
from .models import (
    AuditAction,
    Channel,
    ImportStatus,
    Reason,
    SuppressionAudit,
    SuppressionEntry,
    SuppressionImport,
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
    "suppression_import_create",
    "suppression_import_run",
]

log = structlog.get_logger(__name__)

SUPPRESSION_CHANGES = prometheus_client.Counter(
    "suppression_changes_total", "Changes to the suppression list", ["action", "reason"]
)

# Key of the Postgres advisory lock that serialises bulk writers (any fixed 64-bit number).
BULK_WRITE_LOCK = 0x5355505052455353  # "SUPPRESS"

CSV_REQUIRED_COLUMNS = ("identifier", "channel", "reason")
CSV_OPTIONAL_COLUMNS = ("expires_at", "source")


@dataclass
class BulkResult:
    """Outcome of a bulk add: ``skipped`` holds ``(row, reason)`` for every row not written."""

    added: int = 0
    skipped: list[tuple[int, str]] = dc_field(default_factory=list)
    updated: int = 0  # existing entries whose expiry was extended (or made permanent)


@dataclass
class BulkRemoveResult:
    removed: int = 0
    skipped: list[tuple[int, str]] = dc_field(default_factory=list)


# --- validation ----------------------------------------------------------------------------------

def validate_channel(channel, *, field: str = "channel") -> str:
    value = channel.strip().lower() if isinstance(channel, str) else channel
    if value is None or value == "":
        raise ServiceError("channel is required", field=field)
    if value not in Channel.values:
        raise ServiceError(
            f"unknown channel {channel!r} (expected one of: {', '.join(Channel.values)})", field=field
        )
    return value


def validate_reason(reason, *, field: str = "reason") -> str:
    value = reason.strip().lower() if isinstance(reason, str) else reason
    if value is None or value == "":
        raise ServiceError("reason is required", field=field)
    if value not in Reason.values:
        raise ServiceError(
            f"unknown reason {reason!r} (expected one of: {', '.join(Reason.values)})", field=field
        )
    return value


_KIND_NOT_ON = {
    # Catch swapped columns: a phone number cannot receive email, an email address cannot receive SMS.
    ("phone", Channel.EMAIL): "a phone number cannot be suppressed on the email channel (use sms or all)",
    ("email", Channel.SMS): "an email address cannot be suppressed on the sms channel (use email or all)",
}


def check_kind_fits_channel(kind: str, channel: str, *, field: str = "identifier") -> None:
    problem = _KIND_NOT_ON.get((kind, channel))
    if problem:
        raise ServiceError(problem, field=field)


def parse_expires_at(value, *, field: str = "expires_at", now: datetime | None = None) -> datetime | None:
    """``None``/empty → permanent; a datetime or ISO 8601 date/datetime string in the future.

    A date alone means midnight UTC at the start of that day; a datetime without an offset is UTC.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        text = value.strip()
        try:
            # Only the ISO forms the schema documents (parse_datetime alone also takes 20270131, week dates, ...).
            if not ISO_DATE_OR_DATETIME_RE.match(text):
                raise ValueError(text)
            parsed = parse_datetime(text)
            if parsed is None:
                day = parse_date(text)
                parsed = datetime.combine(day, time.min) if day else None
        except ValueError:
            parsed = None
        if parsed is None:
            raise ServiceError(
                f"expires_at {value!r} is not an ISO 8601 date or datetime (e.g. 2027-01-31 or 2027-01-31T12:00:00Z)",
                field=field,
            )
    else:
        raise ServiceError("expires_at must be an ISO 8601 date or datetime", field=field)
    if timezone.is_naive(parsed):
        parsed = parsed.replace(tzinfo=dt_timezone.utc)
    if parsed <= (now or timezone.now()):
        raise ServiceError(f"expires_at {parsed.isoformat()} is in the past", field=field)
    return parsed


def _require_writer(user) -> None:
    if user is not None and not user_has_role(user, Role.MARKETER):
        raise PermissionDenied("Adding suppression entries requires the Marketer or Admin role.")


def _require_remover(user) -> None:
    if user is not None and not user_has_role(user):
        raise PermissionDenied("Removing suppression entries (un-suppressing) requires the Admin role.")


def _user_or_none(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


# --- single add / remove -------------------------------------------------------------------------

def _snapshot(entry: SuppressionEntry) -> dict:
    return {
        "reason": entry.reason,
        "source": entry.source,
        "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
        "created_at": entry.created_at.isoformat(),
        "created_by_id": entry.created_by_id,
    }


def _merge(entry: SuppressionEntry, *, reason: str, source: str, expires_at, actor, now) -> tuple[str, SuppressionAudit | None]:
    """Apply an add to an existing (locked) row in memory. Returns (outcome, audit row or None).

    An expired row is replaced by the new entry. An active row is only ever lengthened: a later
    add that would shorten it (or match it) leaves it as it is, so a permanent entry stays permanent.
    """
    previous = _snapshot(entry)
    if not entry.is_active(now):
        entry.reason, entry.source, entry.expires_at = reason, source, expires_at
        entry.created_by, entry.created_at, entry.updated_at = actor, now, now
        action = AuditAction.ADDED
    elif entry.expires_at is not None and (expires_at is None or expires_at > entry.expires_at):
        entry.expires_at = expires_at
        entry.reason = reason
        entry.source = source or entry.source
        entry.updated_at = now
        action = AuditAction.UPDATED
    else:
        return "unchanged", None
    audit = SuppressionAudit(
        action=action, identifier=entry.identifier, channel=entry.channel, reason=entry.reason,
        source=entry.source, expires_at=entry.expires_at, previous=previous, actor=actor, at=now,
    )
    return ("added" if action == AuditAction.ADDED else "updated"), audit


def _add_one(*, identifier: str, kind: str, channel: str, reason: str, source: str, expires_at, actor, now
             ) -> tuple[SuppressionEntry, str]:
    """Insert or merge one already-validated entry; caller holds a transaction."""
    entry = SuppressionEntry.objects.select_for_update().filter(identifier=identifier, channel=channel).first()
    if entry is None:
        try:
            with transaction.atomic():  # savepoint: a concurrent insert of the same key loses cleanly
                entry = SuppressionEntry.objects.create(
                    identifier=identifier, identifier_kind=kind, channel=channel, reason=reason, source=source,
                    created_by=actor, created_at=now, expires_at=expires_at,
                )
        except IntegrityError:
            entry = SuppressionEntry.objects.select_for_update().get(identifier=identifier, channel=channel)
        else:
            SuppressionAudit.objects.create(
                action=AuditAction.ADDED, identifier=identifier, channel=channel, reason=reason, source=source,
                expires_at=expires_at, actor=actor, at=now,
            )
            return entry, "added"
    outcome, audit = _merge(entry, reason=reason, source=source, expires_at=expires_at, actor=actor, now=now)
    if audit is not None:
        entry.save()
        audit.save()
    return entry, outcome


def suppression_add(*, identifier: str, channel: str, reason: str, created_by=None, expires_at=None,
                    source: str = "") -> SuppressionEntry:
    """Suppress ``identifier`` on ``channel`` (idempotent: one entry per identifier and channel).

    Adding again keeps the single entry; it is lengthened if the new expiry is later (``None`` =
    permanent) and never shortened. An expired entry is replaced. ``created_by=None`` marks a system
    entry (webhooks). Raises ``ServiceError`` naming the bad field, ``PermissionDenied`` for users
    without the Marketer or Admin role.
    """
    return suppression_add_with_outcome(identifier=identifier, channel=channel, reason=reason,
                                        created_by=created_by, expires_at=expires_at, source=source)[0]


def suppression_add_with_outcome(*, identifier: str, channel: str, reason: str, created_by=None,
                                 expires_at=None, source: str = "") -> tuple[SuppressionEntry, str]:
    """``suppression_add`` that also says what happened: ``"added"``, ``"updated"`` (lengthened)
    or ``"unchanged"`` (an active entry already covered it)."""
    actor = _user_or_none(created_by)
    _require_writer(actor)
    key, kind = classify_and_normalise(identifier)
    channel = validate_channel(channel)
    check_kind_fits_channel(kind, channel)
    reason = validate_reason(reason)
    now = timezone.now()
    expires_at = parse_expires_at(expires_at, now=now)
    source = (source or "").strip()[:200]
    with transaction.atomic():
        entry, outcome = _add_one(identifier=key, kind=kind, channel=channel, reason=reason, source=source,
                                  expires_at=expires_at, actor=actor, now=now)
    if outcome != "unchanged":
        SUPPRESSION_CHANGES.labels(action=outcome, reason=reason).inc()
        log.info("suppression_added" if outcome == "added" else "suppression_extended", entry_id=entry.pk,
                 channel=channel, reason=reason, source=source, permanent=entry.expires_at is None,
                 actor_id=getattr(actor, "pk", None))
    return entry, outcome


def _remove_locked(entries: Iterable[SuppressionEntry], *, actor, note: str, now, action=AuditAction.REMOVED) -> int:
    entries = list(entries)
    if not entries:
        return 0
    SuppressionAudit.objects.bulk_create([
        SuppressionAudit(action=action, identifier=e.identifier, channel=e.channel, reason=e.reason,
                         source=e.source, expires_at=e.expires_at, previous=_snapshot(e), actor=actor,
                         note=note, at=now)
        for e in entries
    ])
    SuppressionEntry.objects.filter(pk__in=[e.pk for e in entries]).delete()
    for e in entries:
        SUPPRESSION_CHANGES.labels(action=action, reason=e.reason).inc()
    return len(entries)


def suppression_remove(*, identifier: str, channel: str, removed_by=None, note: str = "") -> int:
    """Un-suppress ``identifier`` on exactly ``channel`` (an ``all`` entry is removed only with
    ``channel="all"``). Returns how many entries were removed (0 or 1). The entry is deleted and a
    ``removed`` audit row keeps who, when, why (``note``) and what the entry was.
    """
    actor = _user_or_none(removed_by)
    _require_remover(actor)
    key = normalise_identifier(identifier)
    channel = validate_channel(channel)
    note = (note or "").strip()[:500]
    with transaction.atomic():
        entries = SuppressionEntry.objects.select_for_update().filter(identifier=key, channel=channel)
        removed = _remove_locked(entries, actor=actor, note=note, now=timezone.now())
    if removed:
        log.info("suppression_removed", channel=channel, actor_id=getattr(actor, "pk", None), note=note)
    return removed


# --- bulk ---------------------------------------------------------------------------------------

def _describe(entry: SuppressionEntry) -> str:
    until = "permanent" if entry.expires_at is None else f"until {entry.expires_at:%Y-%m-%d %H:%M} UTC"
    return f"already suppressed ({entry.reason}, {until})"


def suppression_bulk_add(*, entries: list[dict], created_by, source: str = "", on_invalid: str = "raise",
                         seen: dict | None = None, row_label: str = "row", quiet: bool = False) -> BulkResult:
    """Add many entries in one transaction.

    Each dict has ``identifier``, ``channel``, ``reason`` and optionally ``expires_at``, ``source``
    and ``row`` (the label used in the report; default: its 0-based index in ``entries``).
    ``on_invalid="raise"`` refuses the whole batch on the first malformed row (``ServiceError``
    with field ``entries[i].<field>``); ``"skip"`` reports it in ``skipped`` instead. Rows that
    repeat an earlier row, or that would not change an existing active entry, are skipped with the
    reason. ``seen`` (key → row) carries duplicate detection across calls (chunked imports);
    ``quiet`` logs at debug level (an import logs one summary, not one line per chunk).
    """
    if on_invalid not in ("raise", "skip"):
        raise ValueError("on_invalid must be 'raise' or 'skip'")
    actor = _user_or_none(created_by)
    _require_writer(actor)
    now = timezone.now()
    default_source = (source or "").strip()[:200]
    seen = {} if seen is None else seen
    result = BulkResult()
    skipped: list[tuple[int, object, str]] = []  # (index, row, reason): reported in input order
    candidates: list[tuple[int, object, str, str, str, str, str, datetime | None]] = []
    changes: Counter = Counter()

    for index, raw in enumerate(entries):
        row = raw.get("row", index) if isinstance(raw, dict) else index
        try:
            if not isinstance(raw, dict):
                raise ServiceError("each entry must be an object with identifier, channel and reason", field="")
            key, kind = classify_and_normalise(raw.get("identifier"), field="identifier")
            channel = validate_channel(raw.get("channel"))
            check_kind_fits_channel(kind, channel)
            reason = validate_reason(raw.get("reason"))
            expires_at = parse_expires_at(raw.get("expires_at"), now=now)
        except ServiceError as exc:
            if on_invalid == "raise":
                name = f"entries[{index}].{exc.field}" if exc.field else f"entries[{index}]"
                raise ServiceError(f"{row_label} {row}: {exc.message}", field=name) from None
            skipped.append((index, row, exc.message))
            continue
        if (key, channel) in seen:
            skipped.append((index, row, f"duplicate of {row_label} {seen[(key, channel)]}"))
            continue
        seen[(key, channel)] = row
        row_source = (str(raw.get("source") or "").strip() or default_source)[:200]
        candidates.append((index, row, key, kind, channel, reason, row_source, expires_at))

    if candidates:
        _bulk_write(candidates, actor=actor, now=now, result=result, skipped=skipped, changes=changes)
    result.skipped = [(row, why) for _, row, why in sorted(skipped, key=lambda item: item[0])]
    for (action, reason), count in changes.items():
        SUPPRESSION_CHANGES.labels(action=action, reason=reason).inc(count)
    (log.debug if quiet else log.info)(
        "suppression_bulk_added", added=result.added, updated=result.updated, skipped=len(result.skipped),
        actor_id=getattr(actor, "pk", None), source=default_source)
    return result


def _bulk_write(candidates, *, actor, now, result: BulkResult, skipped: list, changes: Counter) -> None:
    """Lock the existing rows for these keys, then insert the new ones and merge the rest."""
    with transaction.atomic():
        # Bulk writers take turns: two of them locking existing rows and inserting new ones over
        # overlapping key sets could otherwise deadlock. Single adds touch one key and need no turn.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [BULK_WRITE_LOCK])
        identifiers = {c[2] for c in candidates}
        existing = {
            (e.identifier, e.channel): e
            for e in SuppressionEntry.objects.select_for_update().filter(identifier__in=identifiers)
            .order_by("identifier", "channel")
        }
        new_entries, changed, audits = [], [], []
        for index, row, key, kind, channel, reason, row_source, expires_at in candidates:
            entry = existing.get((key, channel))
            if entry is None:
                new_entries.append((index, row, SuppressionEntry(
                    identifier=key, identifier_kind=kind, channel=channel, reason=reason, source=row_source,
                    created_by=actor, created_at=now, expires_at=expires_at,
                )))
                continue
            was_active = entry.is_active(now)
            description = _describe(entry)
            outcome, audit = _merge(entry, reason=reason, source=row_source, expires_at=expires_at, actor=actor, now=now)
            if audit is None:
                skipped.append((index, row, description))
                continue
            changed.append(entry)
            audits.append(audit)
            changes[(outcome, reason)] += 1
            if was_active:
                result.updated += 1
            else:
                result.added += 1
        if new_entries:
            new_entries.sort(key=lambda item: (item[2].identifier, item[2].channel))
            try:
                with transaction.atomic():
                    SuppressionEntry.objects.bulk_create([e for _, _, e in new_entries])
            except IntegrityError:
                # A concurrent writer inserted one of these keys: fall back to the row-by-row path,
                # which locks and merges each key.
                for index, row, e in new_entries:
                    entry, outcome = _add_one(identifier=e.identifier, kind=e.identifier_kind, channel=e.channel,
                                              reason=e.reason, source=e.source, expires_at=e.expires_at,
                                              actor=actor, now=now)
                    if outcome == "unchanged":
                        skipped.append((index, row, _describe(entry)))
                        continue
                    result.added += outcome == "added"
                    result.updated += outcome == "updated"
                    changes[(outcome, e.reason)] += 1
            else:
                audits.extend(
                    SuppressionAudit(action=AuditAction.ADDED, identifier=e.identifier, channel=e.channel,
                                     reason=e.reason, source=e.source, expires_at=e.expires_at, actor=actor, at=now)
                    for _, _, e in new_entries
                )
                result.added += len(new_entries)
                for _, _, e in new_entries:
                    changes[("added", e.reason)] += 1
        if changed:
            SuppressionEntry.objects.bulk_update(
                changed, ["reason", "source", "expires_at", "created_by", "created_at", "updated_at"]
            )
        SuppressionAudit.objects.bulk_create(audits)


def suppression_bulk_remove(*, entries: list[dict], removed_by, note: str = "", on_invalid: str = "raise"
                            ) -> BulkRemoveResult:
    """Remove many ``{identifier, channel}`` entries in one transaction (Admin only; audited with
    ``note``). Malformed rows refuse the whole batch (``on_invalid="raise"``) or are reported
    (``"skip"``); rows that match no entry are reported as ``not suppressed``."""
    if on_invalid not in ("raise", "skip"):
        raise ValueError("on_invalid must be 'raise' or 'skip'")
    actor = _user_or_none(removed_by)
    _require_remover(actor)
    note = (note or "").strip()[:500]
    result = BulkRemoveResult()
    skipped: list[tuple[int, object, str]] = []
    wanted: dict[tuple[str, str], tuple[int, object]] = {}
    for index, raw in enumerate(entries):
        row = raw.get("row", index) if isinstance(raw, dict) else index
        try:
            if not isinstance(raw, dict):
                raise ServiceError("each entry must be an object with identifier and channel", field="")
            key = classify_and_normalise(raw.get("identifier"), field="identifier")[0]
            channel = validate_channel(raw.get("channel"))
        except ServiceError as exc:
            if on_invalid == "raise":
                name = f"entries[{index}].{exc.field}" if exc.field else f"entries[{index}]"
                raise ServiceError(f"row {row}: {exc.message}", field=name) from None
            skipped.append((index, row, exc.message))
            continue
        if (key, channel) in wanted:
            skipped.append((index, row, f"duplicate of row {wanted[(key, channel)][1]}"))
            continue
        wanted[(key, channel)] = (index, row)
    with transaction.atomic():
        found = {
            (e.identifier, e.channel): e
            for e in SuppressionEntry.objects.select_for_update()
            .filter(identifier__in={k for k, _ in wanted}).order_by("identifier", "channel")
            if (e.identifier, e.channel) in wanted
        }
        for key, (index, row) in wanted.items():
            if key not in found:
                skipped.append((index, row, "not suppressed"))
        result.removed = _remove_locked(found.values(), actor=actor, note=note, now=timezone.now())
    result.skipped = [(row, why) for _, row, why in sorted(skipped, key=lambda item: item[0])]
    log.info("suppression_bulk_removed", removed=result.removed, skipped=len(result.skipped),
             actor_id=getattr(actor, "pk", None), note=note)
    return result


def suppression_extend(*, entry_ids: list[int], expires_at, actor) -> int:
    """Lengthen the given entries to ``expires_at`` (``None`` = permanent); never shortens.
    Returns how many entries changed. Marketer or Admin."""
    actor = _user_or_none(actor)
    _require_writer(actor)
    now = timezone.now()
    expires_at = parse_expires_at(expires_at, now=now)
    changed = []
    audits = []
    with transaction.atomic():
        for entry in SuppressionEntry.objects.select_for_update().filter(pk__in=entry_ids).order_by("pk"):
            if entry.expires_at is None or (expires_at is not None and expires_at <= entry.expires_at):
                continue
            previous = _snapshot(entry)
            if not entry.is_active(now):
                entry.created_at = now  # revived: in force again from now
            entry.expires_at, entry.updated_at = expires_at, now
            changed.append(entry)
            audits.append(SuppressionAudit(
                action=AuditAction.UPDATED, identifier=entry.identifier, channel=entry.channel, reason=entry.reason,
                source=entry.source, expires_at=expires_at, previous=previous, actor=actor, at=now,
                note="expiry extended",
            ))
        SuppressionEntry.objects.bulk_update(changed, ["expires_at", "created_at", "updated_at"])
        SuppressionAudit.objects.bulk_create(audits)
    log.info("suppression_extended", count=len(changed), permanent=expires_at is None,
             actor_id=getattr(actor, "pk", None))
    return len(changed)


def suppression_purge_expired(*, now: datetime | None = None, batch_size: int = 5000) -> int:
    """Delete entries whose expiry has passed, each with a ``purged`` audit row; returns the count.
    Batched, skips rows another transaction holds (an add reviving the entry wins)."""
    now = now or timezone.now()
    total = 0
    while True:
        with transaction.atomic():
            batch = list(
                SuppressionEntry.objects.select_for_update(skip_locked=True)
                .filter(expires_at__lte=now).order_by("pk")[:batch_size]
            )
            purged = _remove_locked(batch, actor=None, note="expired", now=now, action=AuditAction.PURGED)
        total += purged
        if purged < batch_size:
            break
    if total:
        log.info("suppression_purged", count=total)
    return total


# --- CSV import ----------------------------------------------------------------------------------

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
        yield line, dict(zip(columns, values)), None


def suppression_import_create(*, filename: str, data: bytes, created_by, source: str = "") -> SuppressionImport:
    """Check an uploaded CSV (``identifier,channel,reason[,expires_at][,source]``) and store it as a
    queued import; raises ``ServiceError(field="file")`` for a file that cannot be imported at all.
    Rows are checked one by one when the import runs."""
    actor = _user_or_none(created_by)
    _require_writer(actor)
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
