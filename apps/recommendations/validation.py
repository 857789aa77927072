"""Input rules of a catalogue item, shared by the PUT endpoint, the bulk import and the admin form."""
from __future__ import annotations

import math
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation

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


PRICE_PATTERN = r"^\d{1,10}(\.\d{1,2})?$"
DATETIME_PATTERN = r"^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$"


def _text(data: dict, name: str, limit: int, *, required: bool = False, csv: bool = False) -> str:
    value = data.get(name, "")
    if value is None and csv:
        value = ""
    if not isinstance(value, str):
        raise ServiceError(f"{name}: must be a string", field=name)
    if len(value) > limit:
        raise ServiceError(f"{name}: at most {limit} characters", field=name)
    value = value.strip()
    if required and not value:
        raise ServiceError(f"{name}: required", field=name)
    return value


def _tags(value, *, csv: bool) -> list[str]:
    if csv:
        value = [t for t in (value or "").split("|") if t.strip()]
    if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
        raise ServiceError("tags: must be a list of strings", field="tags")
    if len(value) > MAX_TAGS or any(len(t) > 64 for t in value):
        raise ServiceError(f"tags: at most {MAX_TAGS} tags of at most 64 characters", field="tags")
    if any(not t.strip() for t in value):
        raise ServiceError("tags: a tag must not be empty", field="tags")
    return list(dict.fromkeys(t.strip() for t in value))


def _attributes(value) -> dict:
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
    if value is None:
        return None
    if isinstance(value, str):
        if not re.match(PRICE_PATTERN, value):
            raise ServiceError("price: a number or a decimal string such as \"89.90\"", field="price")
    elif isinstance(value, bool) or not isinstance(value, (int, float)):
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


def _available(value, *, csv: bool) -> bool:
    if isinstance(value, bool):
        return value
    if csv and isinstance(value, str) and value.strip().lower() in ("true", "false", "1", "0"):
        return value.strip().lower() in ("true", "1")
    raise ServiceError("available: must be true or false", field="available")


def _created_at(value) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = parse_datetime(value) if isinstance(value, str) and re.match(DATETIME_PATTERN, value) else None
    except ValueError:  # well formed but not a date: month 00, 31 February
        parsed = None
    if parsed is None:
        raise ServiceError("created_at: must be an ISO 8601 date-time with a time zone, e.g. 2026-01-31T09:00:00Z",
                           field="created_at")
    return parsed


def clean_item(data: dict, *, csv: bool = False) -> dict:
    """The item's fields, checked; ``ServiceError(field=…)`` names the first bad one. Unknown keys
    are refused (a typo such as "availble" must not pass silently). JSON (the API, JSON lines) must
    match the documented types; a CSV row's values are all strings, an empty one meaning "not given",
    tags separated by ``|``."""
    if not isinstance(data, dict):
        raise ServiceError("the item must be a JSON object")
    unknown = sorted(set(data) - set(ITEM_FIELDS) - {"item_id"})
    if unknown:
        raise ServiceError(f"unknown field(s): {', '.join(unknown)} (known: {', '.join(ITEM_FIELDS)})",
                           field=unknown[0])
    if csv:
        data = {k: v for k, v in data.items() if v not in ("", None)}
        if "price" in data:
            data["price"] = str(data["price"]).strip()
    return {
        "name": _text(data, "name", 255, required=True, csv=csv),
        "category": _text(data, "category", 128, csv=csv),
        "tags": _tags(data["tags"], csv=csv) if "tags" in data else [],
        "attributes": _attributes(data["attributes"]) if "attributes" in data else {},
        "price": _price(data.get("price")),
        "available": _available(data["available"], csv=csv) if "available" in data else True,
        "created_at": _created_at(data.get("created_at")),
    }
