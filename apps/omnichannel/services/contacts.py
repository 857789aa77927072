"""Contacts: the addresses, tokens, consents and store presence of a user (docs/RULES.md §5)."""
from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ServiceError
from apps.core.identifiers import clean_user_id

from ..models import Channel, Contact

CONTACT_FIELDS = (
    "email", "phone", "fcm_token", "apns_token", "consent_email", "consent_sms", "consent_push",
    "consent_in_app", "consent_web", "consent_in_store", "preferred_channel", "present_store_id", "present_until",
)


def _normalise_address(value: str, *, field: str) -> str:
    """An email (lower-cased) or phone (E.164) in the same canonical form the suppression list uses,
    so a contact's address and its suppression entry always compare equal."""
    from apps.suppression.services import normalise_identifier

    if not value:
        return ""
    try:
        normalised = normalise_identifier(value)
    except ServiceError as exc:
        raise ServiceError(exc.message, field=field) from None
    if field == "email" and "@" not in normalised:
        raise ServiceError(f"invalid email address {value!r}", field=field)
    if field == "phone" and not normalised.startswith("+"):
        raise ServiceError(f"invalid phone number {value!r}: write it in E.164, e.g. +14155550100", field=field)
    return normalised


def _clean_token(value: str, field: str) -> str:
    value = (value or "").strip()
    if value and any(ch.isspace() for ch in value):
        raise ServiceError(f"{field} must not contain whitespace", field=field)
    return value


def contact_upsert(*, user_id: str, fields: dict[str, Any]) -> Contact:
    """Create or update the contact record of ``user_id`` with ``fields`` (only the keys given change).

    Emails are lower-cased, phones normalised to E.164; an empty string clears a value.
    """
    user_id = _clean_user_id(user_id)
    unknown = set(fields) - set(CONTACT_FIELDS)
    if unknown:
        raise ServiceError(f"unknown contact field(s): {', '.join(sorted(unknown))}", field=sorted(unknown)[0])
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if name in ("email", "phone"):
            values[name] = _normalise_address(value or "", field=name)
        elif name in ("fcm_token", "apns_token"):
            values[name] = _clean_token(value, name)
        elif name == "preferred_channel":
            if value and value not in Channel.values:
                raise ServiceError(f"preferred_channel must be one of {', '.join(Channel.values)}", field=name)
            values[name] = value or ""
        elif name.startswith("consent_"):
            if not isinstance(value, bool):
                raise ServiceError(f"{name} must be true or false", field=name)
            values[name] = value
        elif name == "present_store_id":
            values[name] = (value or "").strip()[:64]
        else:  # present_until
            values[name] = value
    with transaction.atomic():
        contact, created = Contact.objects.select_for_update().get_or_create(user_id=user_id, defaults=values)
        if not created and values:
            for name, value in values.items():
                setattr(contact, name, value)
            contact.save(update_fields=[*values, "updated_at"])
    return contact


def contact_forget_push_token(*, user_id: str, token: str) -> None:
    """Drop a push token the provider called dead (FCM UNREGISTERED, APNs 410 / BadDeviceToken)."""
    Contact.objects.filter(user_id=user_id, fcm_token=token).update(fcm_token="", updated_at=timezone.now())
    Contact.objects.filter(user_id=user_id, apns_token=token).update(apns_token="", updated_at=timezone.now())


def _clean_user_id(user_id: Any, field: str = "user_id") -> str:
    """The platform's one user-id rule (``apps.core.identifiers``), named for this slice's callers."""
    return clean_user_id(user_id, field=field)
