"""What a suppression write accepts, and who may make it (``docs/RULES.md §4``).

Checked here once, so single adds, bulk writes, the CSV import, the admin and the API agree:
the channel and reason are known values, an expiry is an ISO date or datetime in the future, an
identifier's kind fits its channel (no phone on email, no email on sms), and the caller's role
allows the write (add: Marketer or Admin; remove: Admin; ``None`` is the system).
"""
from __future__ import annotations

from datetime import datetime, time
from datetime import timezone as dt_timezone

from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from apps.core.exceptions import Forbidden, ServiceError
from apps.core.fields import ISO_DATE_OR_DATETIME_RE
from apps.core.roles import Role, user_has_role

from .models import Channel, Reason

__all__ = [
    "check_kind_fits_channel", "parse_expires_at", "require_remover", "require_writer", "user_or_none",
    "validate_channel", "validate_reason",
]


def _one_of(raw, allowed: list[str], *, what: str, field: str) -> str:
    value = raw.strip().lower() if isinstance(raw, str) else raw
    if value is None or value == "":
        raise ServiceError(f"{what} is required", field=field)
    if value not in allowed:
        raise ServiceError(f"unknown {what} {raw!r} (expected one of: {', '.join(allowed)})", field=field)
    return value


def validate_channel(channel, *, field: str = "channel") -> str:
    return _one_of(channel, Channel.values, what="channel", field=field)


def validate_reason(reason, *, field: str = "reason") -> str:
    return _one_of(reason, Reason.values, what="reason", field=field)


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


def require_writer(user) -> None:
    if user is not None and not user_has_role(user, Role.MARKETER):
        raise Forbidden("Adding suppression entries requires the Marketer or Admin role.")


def require_remover(user) -> None:
    if user is not None and not user_has_role(user):
        raise Forbidden("Removing suppression entries (un-suppressing) requires the Admin role.")


def user_or_none(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None
