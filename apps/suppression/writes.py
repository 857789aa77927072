"""Writes to the suppression list: single and bulk add and remove, extend, purge.

Every change leaves a ``SuppressionAudit`` row in its transaction. Inputs and roles are checked by
``validation`` first. Callers import these through ``apps.suppression.services``.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from dataclasses import field as dc_field
from datetime import datetime

import prometheus_client
import structlog
from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from apps.core.exceptions import ServiceError

from .identifiers import classify_and_normalise, normalise_identifier
from .models import AuditAction, SuppressionAudit, SuppressionEntry
from .validation import (
    check_kind_fits_channel,
    parse_expires_at,
    require_remover,
    require_writer,
    user_or_none,
    validate_channel,
    validate_reason,
)

__all__ = [
    "BULK_WRITE_LOCK", "SUPPRESSION_CHANGES", "BulkRemoveResult", "BulkResult",
    "suppression_add", "suppression_add_with_outcome", "suppression_bulk_add", "suppression_bulk_remove",
    "suppression_extend", "suppression_purge_expired", "suppression_remove",
]

log = structlog.get_logger(__name__)

SUPPRESSION_CHANGES = prometheus_client.Counter(
    "suppression_changes_total", "Changes to the suppression list", ["action", "reason"]
)

# Key of the Postgres advisory lock that serialises bulk writers (any fixed 64-bit number).
BULK_WRITE_LOCK = 0x5355505052455353  # "SUPPRESS"


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


# --- single add / remove -------------------------------------------------------------------------

def _snapshot(entry: SuppressionEntry) -> dict:
    return {
        "reason": entry.reason,
        "source": entry.source,
        "expires_at": entry.expires_at.isoformat() if entry.expires_at else None,
        "created_at": entry.created_at.isoformat(),
        "created_by_id": entry.created_by_id,
    }


def _merge(entry: SuppressionEntry, *, reason: str, source: str, expires_at, actor: AbstractBaseUser | None,
           now) -> tuple[str, SuppressionAudit | None]:
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


def _add_one(*, identifier: str, kind: str, channel: str, reason: str, source: str, expires_at,
             actor: AbstractBaseUser | None, now) -> tuple[SuppressionEntry, str]:
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
    entry (webhooks). Raises ``ServiceError`` naming the bad field, ``Forbidden`` for users
    without the Marketer or Admin role.
    """
    return suppression_add_with_outcome(identifier=identifier, channel=channel, reason=reason,
                                        created_by=created_by, expires_at=expires_at, source=source)[0]


def suppression_add_with_outcome(*, identifier: str, channel: str, reason: str, created_by=None,
                                 expires_at=None, source: str = "") -> tuple[SuppressionEntry, str]:
    """``suppression_add`` that also says what happened: ``"added"``, ``"updated"`` (lengthened)
    or ``"unchanged"`` (an active entry already covered it)."""
    actor = user_or_none(created_by)
    require_writer(actor)
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


def _remove_locked(entries: Iterable[SuppressionEntry], *, actor: AbstractBaseUser | None, note: str, now,
                   action=AuditAction.REMOVED) -> int:
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
    actor = user_or_none(removed_by)
    require_remover(actor)
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


def _batch_rows(entries: list, parse, *, needs: str, on_invalid: str, row_label: str, seen: dict,
                skipped: list) -> Iterator[tuple[int, object, dict, tuple]]:
    """The usable entries of a batch, as ``(index, row, raw, parse(raw))``; ``parse`` returns a tuple
    that starts with the (identifier key, channel) pair and raises ServiceError for a bad entry.

    ``row`` is the entry's ``row`` label (default: its index). An entry that is not an object
    (it ``needs`` those keys) or that ``parse`` refuses is appended to ``skipped`` as ``(index, row,
    why)``, or with ``on_invalid="raise"`` refuses the batch (field ``entries[i].<field>``). An entry
    whose pair is already in ``seen`` (pair → row, filled here) is skipped as a duplicate."""
    for index, raw in enumerate(entries):
        row = raw.get("row", index) if isinstance(raw, dict) else index
        try:
            if not isinstance(raw, dict):
                raise ServiceError(f"each entry must be an object with {needs}", field="")
            parsed = parse(raw)
        except ServiceError as exc:
            if on_invalid == "raise":
                name = f"entries[{index}].{exc.field}" if exc.field else f"entries[{index}]"
                raise ServiceError(f"{row_label} {row}: {exc.message}", field=name) from None
            skipped.append((index, row, exc.message))
            continue
        pair = parsed[:2]
        if pair in seen:
            skipped.append((index, row, f"duplicate of {row_label} {seen[pair]}"))
            continue
        seen[pair] = row
        yield index, row, raw, parsed


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
    actor = user_or_none(created_by)
    require_writer(actor)
    now = timezone.now()
    default_source = (source or "").strip()[:200]
    seen = {} if seen is None else seen
    result = BulkResult()
    skipped: list[tuple[int, object, str]] = []  # (index, row, reason): reported in input order
    candidates: list[tuple[int, object, str, str, str, str, str, datetime | None]] = []
    changes: Counter = Counter()

    def parse(raw: dict) -> tuple:
        key, kind = classify_and_normalise(raw.get("identifier"), field="identifier")
        channel = validate_channel(raw.get("channel"))
        check_kind_fits_channel(kind, channel)
        return key, channel, kind, validate_reason(raw.get("reason")), parse_expires_at(raw.get("expires_at"), now=now)

    for index, row, raw, (key, channel, kind, reason, expires_at) in _batch_rows(
        entries, parse, needs="identifier, channel and reason", on_invalid=on_invalid, row_label=row_label,
        seen=seen, skipped=skipped,
    ):
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


def _bulk_write(candidates, *, actor: AbstractBaseUser | None, now, result: BulkResult, skipped: list,
                changes: Counter) -> None:
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
    actor = user_or_none(removed_by)
    require_remover(actor)
    note = (note or "").strip()[:500]
    result = BulkRemoveResult()
    skipped: list[tuple[int, object, str]] = []
    def parse(raw: dict) -> tuple[str, str]:
        return classify_and_normalise(raw.get("identifier"), field="identifier")[0], validate_channel(raw.get("channel"))

    wanted: dict[tuple[str, str], tuple[int, object]] = {
        pair: (index, row)
        for index, row, _, pair in _batch_rows(entries, parse, needs="identifier and channel", on_invalid=on_invalid,
                                               row_label="row", seen={}, skipped=skipped)
    }
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


def suppression_extend(*, entry_ids: list[int], expires_at, actor: AbstractBaseUser | None) -> int:
    """Lengthen the given entries to ``expires_at`` (``None`` = permanent); never shortens.
    Returns how many entries changed. Marketer or Admin."""
    actor = user_or_none(actor)
    require_writer(actor)
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
