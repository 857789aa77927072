"""The one rule for user ids, in every slice (``docs/RULES.md``, "Conventions that hold everywhere").

A user id is 1–128 characters once surrounding whitespace is trimmed, and none of them is whitespace,
a control or format character, a separator, a surrogate, private-use or unassigned (Unicode
categories C and Z). Letters, digits, punctuation and symbols of any script are fine: ``u-42``,
``josé``, ``用户42``, ``a+b@shop``. Such an id is safe as a Redis key part (``profile:{user_id}``),
in a URL path and as a suppression identifier, and two ids that look alike are the same bytes.

This module imports neither Django nor DRF: services, serializers and the bid path can all use it.
"""
from __future__ import annotations

import unicodedata
from typing import Any

from apps.core.exceptions import ServiceError

__all__ = ["USER_ID_MAX_LENGTH", "USER_ID_PATTERN", "clean_user_id", "user_id_problem"]

USER_ID_MAX_LENGTH = 128

# The part of the rule a schema ``pattern`` (ECMA-262) and a ``RegexField`` (Python) can both state:
# no whitespace, no C0/C1 control characters. Use it with ``maxLength`` = USER_ID_MAX_LENGTH and a
# field that does not trim (``apps.core.fields.StrictRegexField``). ``clean_user_id`` is stricter
# still (format, private-use and unassigned characters), so whatever the pattern refuses is refused.
USER_ID_PATTERN = r"^[^\s\x00-\x1f\x7f-\x9f]+$"


def user_id_problem(value: str) -> str | None:
    """Why the (already trimmed) ``value`` is not a user id, or None when it is one."""
    if not value:
        return "is empty"
    if len(value) > USER_ID_MAX_LENGTH:
        return f"is longer than {USER_ID_MAX_LENGTH} characters ({len(value)})"
    for position, char in enumerate(value):
        category = unicodedata.category(char)
        if char.isspace() or category[0] == "Z":
            return f"contains whitespace ({_name(char)} at position {position})"
        if category[0] == "C":
            kind = "a control character" if category == "Cc" else "an invisible or unassigned character"
            return f"contains {kind} ({_name(char)} at position {position})"
    return None


def clean_user_id(value: Any, *, field: str = "user_id") -> str:
    """Return ``value`` trimmed when it is a user id; raise ``ServiceError(field=field)`` naming the
    problem otherwise (missing, not a string, too long, whitespace or control characters inside)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ServiceError(f"{field} is required.", field=field, code="required")
    if not isinstance(value, str):
        raise ServiceError(f"{field} must be a string, got {type(value).__name__}.", field=field)
    value = value.strip()
    if problem := user_id_problem(value):
        raise ServiceError(
            f"{field} {problem}; a user id is 1-{USER_ID_MAX_LENGTH} characters without whitespace "
            "or control characters.",
            field=field,
        )
    return value


def _name(char: str) -> str:
    return f"U+{ord(char):04X} {unicodedata.name(char, '')}".rstrip()
