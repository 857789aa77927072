"""Identifier normalisation: the same person must map to the same key however the input was typed.

* contains ``@`` → an email address: trimmed, lower-cased, validated.
* starts with ``+`` or ``00``, or is digits written with phone punctuation (``(415) 555-0100``)
  → a phone number, returned in E.164 (``+14155550100``). Without a country code it is refused,
  unless ``SUPPRESSION_DEFAULT_PHONE_REGION`` names the region to assume.
* anything else → a user id or device token, kept as given (only surrounding whitespace removed).
  A plain run of digits (``12345``) is a user id, not a phone number.

Anything that fits none of these (empty, whitespace inside, control characters, an invalid
email or phone) raises ``ServiceError`` naming the problem.
"""
from __future__ import annotations

import re
import unicodedata

import phonenumbers
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator

from apps.core.exceptions import ServiceError

from .models import IdentifierKind

MAX_LENGTH = 320
_PHONE_CHARS = re.compile(r"^\+?[\d\s().\-/]+$")
_PHONE_PUNCTUATION = re.compile(r"[\s().\-/]")
_email_validator = EmailValidator()

_PHONE_REASONS = {
    phonenumbers.ValidationResult.INVALID_COUNTRY_CODE: "its country code does not exist",
    phonenumbers.ValidationResult.TOO_SHORT: "it is too short",
    phonenumbers.ValidationResult.TOO_LONG: "it is too long",
    phonenumbers.ValidationResult.INVALID_LENGTH: "it has the wrong number of digits for its country",
    phonenumbers.ValidationResult.IS_POSSIBLE_LOCAL_ONLY: "it lacks an area code",
}


def classify_and_normalise(identifier: str, *, field: str = "identifier") -> tuple[str, str]:
    """Return ``(normalised, kind)`` for ``identifier``; raise ``ServiceError(field=field)`` if unusable."""
    if identifier is None:
        raise ServiceError("identifier is required", field=field)
    if not isinstance(identifier, str):
        raise ServiceError("identifier must be a string", field=field)
    value = identifier.strip()
    if not value:
        raise ServiceError("identifier is empty", field=field)
    if len(value) > MAX_LENGTH:
        raise ServiceError(f"identifier is longer than {MAX_LENGTH} characters", field=field)
    if any(unicodedata.category(ch).startswith("C") for ch in value):
        raise ServiceError("identifier contains control characters", field=field)
    if "@" in value:
        return _normalise_email(value, field), IdentifierKind.EMAIL
    if _looks_like_phone(value):
        return _normalise_phone(value, field), IdentifierKind.PHONE
    if value.startswith("+"):
        raise ServiceError(f"invalid phone number {value!r}", field=field)
    if any(ch.isspace() for ch in value) or not any(ch.isalnum() for ch in value):
        raise ServiceError(
            f"identifier {value!r} is not an email address, a phone number, a user id or a device token "
            "(user ids and tokens have letters or digits and no spaces)",
            field=field,
        )
    return value, IdentifierKind.OTHER


def normalise_identifier(identifier: str) -> str:
    """The canonical form of an email, phone number, user id or device token (see module docstring)."""
    return classify_and_normalise(identifier)[0]


def _normalise_email(value: str, field: str) -> str:
    email = value.lower()
    try:
        _email_validator(email)
    except ValidationError:
        raise ServiceError(f"invalid email address {value!r}", field=field) from None
    return email


def _looks_like_phone(value: str) -> bool:
    if not _PHONE_CHARS.match(value) or not any(ch.isdigit() for ch in value):
        return False
    if value.startswith("+") or value.startswith("00"):
        return True
    # Bare digits are user ids; digits grouped with phone punctuation are a phone number.
    return bool(_PHONE_PUNCTUATION.search(value))


def _normalise_phone(value: str, field: str) -> str:
    text = value
    if text.startswith("00"):
        text = "+" + text[2:]  # international call prefix used in most of the world
    region = None
    if not text.startswith("+"):
        region = (getattr(settings, "SUPPRESSION_DEFAULT_PHONE_REGION", "") or "").upper() or None
        if region is None:
            raise ServiceError(
                f"phone number {value!r} has no country code: write it as +<country code><number>, "
                "e.g. +14155550100",
                field=field,
            )
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        why = {
            phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: ": its country code does not exist",
            phonenumbers.NumberParseException.TOO_SHORT_NSN: ": it is too short",
            phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: ": it is too short",
            phonenumbers.NumberParseException.TOO_LONG: ": it is too long",
        }.get(exc.error_type, "")
        raise ServiceError(f"invalid phone number {value!r}{why}", field=field) from None
    result = phonenumbers.is_possible_number_with_reason(number)
    if result != phonenumbers.ValidationResult.IS_POSSIBLE:
        why = _PHONE_REASONS.get(result, "it is not a possible number")
        raise ServiceError(f"invalid phone number {value!r}: {why}", field=field)
    if not phonenumbers.is_valid_number(number):
        raise ServiceError(
            f"invalid phone number {value!r}: not a number in use for country code +{number.country_code}",
            field=field,
        )
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
