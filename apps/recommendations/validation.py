"""Input rules of a catalogue item, shared by the PUT endpoint, the bulk import and the admin form."""
from __future__ import annotations

import math
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.utils import timezone
from django.utils.dateparse import parse_datetime

from apps.core.exceptions import ServiceError

ITEM_FIELDS = ("name", "category", "tags", "attributes", "price", "available", "created_at")
MAX_TAGS = 50
MAX_ATTRIBUTES = 50
MAX_PRICE = Decimal("9999999999.99")


def clean_item_id(value) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ServiceError("item_id: required, a non-empty string", field="item_id")
    if value != value.strip() or len(value) > 128 or any(ord(c) < 32 for c in value):
        raise ServiceError("item_id: at most 128 characters, no surrounding spaces or control characters",
                           field="item_id")
    return value


def _text(data: dict, name: str, limit: int, *, required: bool = False) -> str:
    value = data.get(name, "")
    if value is None:
        value = ""
    if not isinstance(value, str):
        raise ServiceError(f"{name}: must be a string", field=name)
    value = value.strip()
    if required and not value:
        raise ServiceError(f"{name}: required", field=name)
    if len(value) > limit:
        raise ServiceError(f"{name}: at most {limit} characters", field=name)
    return value


def _tags(value) -> list[str]:
    if value in (None, ""):
        return []
    if isinstance(value, str):  # CSV: "running|trail"
        value = [t for t in value.split("|")]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ServiceError("tags: must be a list of strings", field="tags")
    tags = list(dict.fromkeys(t.strip() for t in value if t.strip()))
    if len(tags) > MAX_TAGS or any(len(t) > 64 for t in tags):
        raise ServiceError(f"tags: at most {MAX_TAGS} tags of at most 64 characters", field="tags")
    return tags


def _attributes(value) -> dict:
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise ServiceError("attributes: must be an object of {name: number}", field="attributes")
    if len(value) > MAX_ATTRIBUTES:
        raise ServiceError(f"attributes: at most {MAX_ATTRIBUTES}", field="attributes")
    out = {}
    for key, number in value.items():
        if not isinstance(key, str) or not key.strip() or len(key) > 64:
            raise ServiceError("attributes: names are non-empty strings of at most 64 characters", field="attributes")
        if isinstance(number, bool) or not isinstance(number, (int, float)) or not math.isfinite(number):
            raise ServiceError(f"attributes.{key}: must be a finite number", field=f"attributes.{key}")
        out[key.strip()] = number
    return out


def _price(value) -> Decimal | None:
    if value in (None, ""):
        return None
    if isinstance(value, bool):
        raise ServiceError("price: must be a number", field="price")
    try:
        price = Decimal(str(value))
    except InvalidOperation:
        raise ServiceError("price: must be a number", field="price") from None
    if not price.is_finite() or price < 0 or price > MAX_PRICE:
        raise ServiceError("price: must be between 0 and 9999999999.99", field="price")
    if price != price.quantize(Decimal("0.01")):
        raise ServiceError("price: at most 2 decimal places", field="price")
    return price.quantize(Decimal("0.01"))


def _available(value) -> bool:
    if value in (None, ""):
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ServiceError("available: must be true or false", field="available")


def _created_at(value) -> datetime | None:
    if value in (None, ""):
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        raise ServiceError("created_at: must be an ISO 8601 date-time, e.g. 2026-01-31T09:00:00Z",
                           field="created_at")
    if timezone.is_naive(parsed):
        raise ServiceError("created_at: needs a time zone (Z or +hh:mm)", field="created_at")
    return parsed


def clean_item(data: dict) -> dict:
    """The item's fields, checked; ``ServiceError(field=…)`` names the first bad one. Unknown keys
    are refused (a typo such as "availble" must not pass silently)."""
    if not isinstance(data, dict):
        raise ServiceError("the item must be a JSON object")
    unknown = sorted(set(data) - set(ITEM_FIELDS) - {"item_id"})
    if unknown:
        raise ServiceError(f"unknown field(s): {', '.join(unknown)} (known: {', '.join(ITEM_FIELDS)})",
                           field=unknown[0])
    return {
        "name": _text(data, "name", 255, required=True),
        "category": _text(data, "category", 128),
        "tags": _tags(data.get("tags")),
        "attributes": _attributes(data.get("attributes")),
        "price": _price(data.get("price")),
        "available": _available(data.get("available")),
        "created_at": _created_at(data.get("created_at")),
    }
