"""Input rules of the campaigns slice: which fields exist, which may change in which state
(docs/RULES.md §3 "Edits"), and how every value is cleaned and checked.

The services call these before every write; the admin form calls ``campaign_validate_new`` /
``campaign_validate_changes`` to show a refusal next to its field. A refusal is a ``ServiceError``
naming the field.
"""
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db.models import Q
from django.utils import timezone

from apps.core.countries import normalise_country
from apps.core.exceptions import Conflict, ServiceError

from . import selectors
from .models import Campaign, CampaignStatus, Channel, CreativeFormat, DeviceType, Offer

S = CampaignStatus

CAMPAIGN_FIELDS = (
    "name", "advertiser", "budget", "currency", "channels", "start_at", "end_at",
    "target_countries", "target_device_types", "target_segments",
    "max_impressions_per_hour", "max_impressions_per_day",
)
# What may still change once a campaign is approved: money, time window end, targeting, caps.
# Advertiser, channels and creatives were what the approvers approved.
OPERATIONAL_FIELDS = (
    "name", "budget", "end_at", "target_countries", "target_device_types", "target_segments",
    "max_impressions_per_hour", "max_impressions_per_day",
)
OFFER_FIELDS = (
    "name", "creative_markup", "width", "height", "format", "landing_url", "advertiser_domain",
    "category", "max_bid_cpm", "priority", "observed_ctr",
)
OFFER_OPERATIONAL_FIELDS = ("name", "max_bid_cpm", "priority", "observed_ctr")

_EDITABLE_CAMPAIGN_FIELDS: dict[str, tuple[str, ...]] = {
    S.DRAFT: CAMPAIGN_FIELDS,
    S.IN_REVIEW: CAMPAIGN_FIELDS,
    S.APPROVED: OPERATIONAL_FIELDS + ("start_at",),
    S.SCHEDULED: OPERATIONAL_FIELDS + ("start_at",),
    S.LIVE: OPERATIONAL_FIELDS,
    S.PAUSED: OPERATIONAL_FIELDS,
}
_EDITABLE_OFFER_FIELDS: dict[str, tuple[str, ...]] = {
    S.DRAFT: OFFER_FIELDS,
    S.IN_REVIEW: OFFER_FIELDS,
    S.APPROVED: OFFER_OPERATIONAL_FIELDS,
    S.SCHEDULED: OFFER_OPERATIONAL_FIELDS,
    S.LIVE: OFFER_OPERATIONAL_FIELDS,
    S.PAUSED: OFFER_OPERATIONAL_FIELDS,
}
# Offers (creatives) are added or removed only before approval: a new creative needs review.
OFFER_SET_EDITABLE_STATES = (S.DRAFT, S.IN_REVIEW)


def campaign_editable_fields(*, status: str) -> tuple[str, ...]:
    """Campaign fields a marketer may change in ``status`` (none once rejected, completed or archived)."""
    return _EDITABLE_CAMPAIGN_FIELDS.get(status, ())


def offer_editable_fields(*, status: str) -> tuple[str, ...]:
    """Offer fields a marketer may change while the campaign is in ``status``."""
    return _EDITABLE_OFFER_FIELDS.get(status, ())


# --- the time window (docs/RULES.md §1 step 4, §3) ---------------------------------------------------
# A campaign runs inside ``[start_at, end_at)``, and ``end_at`` is after ``start_at``. These are the only
# statements of that rule: the service, the API serializer, the selectors and the beat sweeps call them
# (the database's check constraint ``campaign_ends_after_start`` is the backstop).

END_AFTER_START = "end_at must be after start_at."


def schedule_check(*, start_at: datetime, end_at: datetime) -> None:
    """Refuse a window that does not end after it starts (``ServiceError`` on ``end_at``)."""
    if end_at <= start_at:
        raise ServiceError(END_AFTER_START, field="end_at")


def schedule_has_started(*, start_at: datetime, now: datetime) -> bool:
    return start_at <= now


def schedule_has_ended(*, end_at: datetime, now: datetime) -> bool:
    return end_at <= now


def schedule_running_q(*, now: datetime) -> Q:
    """ORM filter: campaigns whose window contains ``now``."""
    return Q(start_at__lte=now, end_at__gt=now)


def schedule_ended_q(*, now: datetime) -> Q:
    """ORM filter: campaigns whose window has ended by ``now``."""
    return Q(end_at__lte=now)


# --- input cleaning ------------------------------------------------------------------------------

_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_DOMAIN_RE = re.compile(r"^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_IAB_CATEGORY_RE = re.compile(r"^IAB\d{1,2}(-\d{1,3})?$")
_MAX_INT = 2_147_483_647


def _text(field: str, value: Any, *, max_length: int, allow_blank: bool = False) -> str:
    if not isinstance(value, str):
        raise ServiceError(f"{field} must be text.", field=field)
    value = value.strip()
    if not value and not allow_blank:
        raise ServiceError(f"{field} must not be blank.", field=field, code="required")
    if len(value) > max_length:
        raise ServiceError(f"{field} is longer than {max_length} characters.", field=field)
    return value


def _decimal(field: str, value: Any, *, places: int, max_digits: int, minimum: Decimal) -> Decimal:
    if isinstance(value, float):
        value = repr(value)  # a float is turned into its shortest decimal form, not its binary expansion
    try:
        amount = Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ServiceError(f"{field} must be a decimal number, got {value!r}.", field=field) from None
    if not amount.is_finite():
        raise ServiceError(f"{field} must be a finite number.", field=field)
    if amount < minimum:
        raise ServiceError(f"{field} must be at least {minimum}.", field=field)
    if amount != amount.quantize(Decimal(1).scaleb(-places)):
        raise ServiceError(f"{field} allows at most {places} decimal places.", field=field)
    if len(amount.quantize(Decimal(1).scaleb(-places)).as_tuple().digits) > max_digits:
        raise ServiceError(f"{field} is too large.", field=field)
    return amount.quantize(Decimal(1).scaleb(-places))


def _int(field: str, value: Any, *, minimum: int, maximum: int = _MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ServiceError(f"{field} must be a whole number.", field=field)
    if not minimum <= value <= maximum:
        raise ServiceError(f"{field} must be between {minimum} and {maximum}.", field=field)
    return value


def _datetime(field: str, value: Any) -> datetime:
    if not isinstance(value, datetime):
        raise ServiceError(f"{field} must be a date and time.", field=field)
    if timezone.is_naive(value):
        raise ServiceError(f"{field} must carry a time zone (times are UTC).", field=field)
    return value


def _distinct(field: str, values: Any, clean: Callable[[Any], Any], *, what: str = "a list") -> list:
    """``values`` (a list, not a string) cleaned one by one with ``clean``, which raises for a bad
    item; repeats are dropped, the first order kept."""
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ServiceError(f"{field} must be {what}.", field=field)
    out: list = []
    for value in values:
        item = clean(value)
        if item not in out:
            out.append(item)
    return out


def _choices(field: str, values: Any, allowed: Iterable[str], *, non_empty: bool = False) -> list[str]:
    allowed = list(allowed)

    def known(value: Any) -> str:
        if value not in allowed:
            raise ServiceError(f"{field}: unknown value {value!r}; choose from {', '.join(allowed)}.", field=field)
        return value

    out = _distinct(field, values, known)
    if non_empty and not out:
        raise ServiceError(f"{field} needs at least one value.", field=field, code="required")
    return out


def _country(value: Any) -> str:
    code = normalise_country(value) if isinstance(value, str) else None
    if code is None:
        raise ServiceError(
            f"target_countries: {value!r} is not an ISO 3166-1 country code "
            "(use alpha-3 like USA or alpha-2 like US).",
            field="target_countries",
        )
    return code


def _countries(values: Any) -> list[str]:
    return _distinct("target_countries", values, _country)


def _segments(values: Any) -> list[int]:
    return _distinct("target_segments", values, lambda value: _int("target_segments", value, minimum=0),
                     what="a list of segment ids")


def _clean_campaign(data: Mapping[str, Any]) -> dict[str, Any]:
    """Validate and normalise campaign fields (only those present)."""
    unknown = set(data) - set(CAMPAIGN_FIELDS)
    if unknown:
        raise TypeError(f"unknown campaign fields: {sorted(unknown)}")
    cleaners = {
        "name": lambda v: _text("name", v, max_length=200),
        "advertiser": lambda v: _text("advertiser", v, max_length=200),
        "budget": lambda v: _decimal("budget", v, places=2, max_digits=14, minimum=Decimal("0.01")),
        "currency": lambda v: _currency(v),
        "channels": lambda v: _choices("channels", v, Channel.values, non_empty=True),
        "start_at": lambda v: _datetime("start_at", v),
        "end_at": lambda v: _datetime("end_at", v),
        "target_countries": _countries,
        "target_device_types": lambda v: _choices("target_device_types", v, DeviceType.values),
        "target_segments": _segments,
        "max_impressions_per_hour": lambda v: _int("max_impressions_per_hour", v, minimum=1),
        "max_impressions_per_day": lambda v: _int("max_impressions_per_day", v, minimum=1),
    }
    return {name: cleaners[name](value) for name, value in data.items()}


def _currency(value: Any) -> str:
    code = _text("currency", value, max_length=3).upper()
    if not _CURRENCY_RE.match(code):
        raise ServiceError("currency must be a three-letter ISO 4217 code such as USD.", field="currency")
    return code


def _check_campaign_consistency(values: Mapping[str, Any], *, spent: Decimal = Decimal("0")) -> None:
    """Rules across fields, on the campaign as it would be after the change."""
    schedule_check(start_at=values["start_at"], end_at=values["end_at"])
    if values["budget"] < spent:
        raise ServiceError(f"budget cannot be below what is already spent ({spent:.2f}).", field="budget")
    if values["max_impressions_per_day"] < values["max_impressions_per_hour"]:
        raise ServiceError("max_impressions_per_day cannot be below max_impressions_per_hour.",
                           field="max_impressions_per_day")


def _clean_offer(data: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(data) - set(OFFER_FIELDS)
    if unknown:
        raise TypeError(f"unknown offer fields: {sorted(unknown)}")
    cleaners = {
        "name": lambda v: _text("name", v, max_length=200),
        "creative_markup": lambda v: _text("creative_markup", v, max_length=100_000),
        "width": lambda v: _int("width", v, minimum=1, maximum=10_000),
        "height": lambda v: _int("height", v, minimum=1, maximum=10_000),
        "format": lambda v: _choices("format", [v], CreativeFormat.values)[0],
        "landing_url": _landing_url,
        "advertiser_domain": _advertiser_domain,
        "category": _category,
        "max_bid_cpm": lambda v: _decimal("max_bid_cpm", v, places=4, max_digits=10, minimum=Decimal("0.0001")),
        "priority": lambda v: _int("priority", v, minimum=0, maximum=32767),
        "observed_ctr": _ctr,
    }
    return {name: cleaners[name](value) for name, value in data.items()}


def _landing_url(value: Any) -> str:
    url = _text("landing_url", value, max_length=500)
    try:
        URLValidator(schemes=["http", "https"])(url)
    except DjangoValidationError:
        raise ServiceError("landing_url must be an http(s) URL.", field="landing_url") from None
    return url


def _advertiser_domain(value: Any) -> str:
    domain = _text("advertiser_domain", value, max_length=200).lower()
    if not _DOMAIN_RE.match(domain):
        raise ServiceError("advertiser_domain must be a bare domain such as example.com (no scheme or path).",
                           field="advertiser_domain")
    return domain


def _category(value: Any) -> str:
    category = _text("category", value, max_length=20).upper()
    if not _IAB_CATEGORY_RE.match(category):
        raise ServiceError("category must be an IAB content category such as IAB3 or IAB3-1.", field="category")
    return category


def _ctr(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal)):
        raise ServiceError("observed_ctr must be a number between 0 and 1.", field="observed_ctr")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ServiceError("observed_ctr must be between 0 and 1.", field="observed_ctr")
    return value


def campaign_validate_changes(*, campaign: Campaign, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Check that ``changes`` may be applied to ``campaign`` in its current state; returns them
    cleaned, without the ones equal to the current value. Raises ``ServiceError`` naming the field.

    Used by :func:`campaign_update` and by the admin form (to show the error next to the field)."""
    cleaned = _clean_campaign(changes)
    cleaned = {name: value for name, value in cleaned.items() if getattr(campaign, name) != value}
    if not cleaned:
        return {}
    editable = campaign_editable_fields(status=campaign.status)
    for name in cleaned:
        if name not in editable:
            state = campaign.get_status_display().lower()
            hint = " Revise it first." if campaign.status == S.REJECTED else ""
            raise Conflict(f"{name} cannot be changed while the campaign is {state}.{hint}", field=name)
    merged = {name: cleaned.get(name, getattr(campaign, name)) for name in CAMPAIGN_FIELDS}
    _check_campaign_consistency(merged, spent=campaign.spent)
    if (campaign.status == S.SCHEDULED and "start_at" in cleaned
            and schedule_has_started(start_at=cleaned["start_at"], now=timezone.now())):
        raise ServiceError("start_at of a scheduled campaign must stay in the future.", field="start_at")
    if campaign.status in (S.APPROVED, S.SCHEDULED, S.LIVE, S.PAUSED) and "budget" in cleaned:
        rule = selectors.approval_rule_for(budget=cleaned["budget"], channels=campaign.channels)
        needed = rule.min_approvals if rule else 1
        if needed > campaign.required_approvals:
            raise Conflict(
                f"A budget of {cleaned['budget']} needs {needed} approvals ({rule.name}) but this campaign was "
                f"approved with {campaign.required_approvals}; keep the budget within what was approved.",
                field="budget",
            )
    return cleaned


def campaign_validate_new(*, values: Mapping[str, Any]) -> dict[str, Any]:
    """Clean and check the fields of a new campaign (all of ``CAMPAIGN_FIELDS``); returns them cleaned.

    Used by :func:`campaign_create` and by the admin form (to show the error next to the field)."""
    missing = set(CAMPAIGN_FIELDS) - set(values)
    if missing:
        raise TypeError(f"missing campaign fields: {sorted(missing)}")
    cleaned = _clean_campaign(values)
    _check_campaign_consistency(cleaned)
    if schedule_has_ended(end_at=cleaned["end_at"], now=timezone.now()):
        raise ServiceError("end_at is in the past.", field="end_at")
    return cleaned



def offer_validate_changes(*, offer: Offer, campaign: Campaign, changes: Mapping[str, Any]) -> dict[str, Any]:
    """Clean ``changes`` and check they are allowed in the campaign's state; returns the real changes."""
    cleaned = _clean_offer(changes)
    cleaned = {name: value for name, value in cleaned.items() if getattr(offer, name) != value}
    editable = offer_editable_fields(status=campaign.status)
    for name in cleaned:
        if name not in editable:
            state = campaign.get_status_display().lower()
            raise Conflict(f"Offer {name} cannot be changed while the campaign is {state}.", field=name)
    return cleaned


