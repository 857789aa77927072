"""Writes of the campaigns slice: the lifecycle of docs/RULES.md §3, approvals, offers and spend.

Every function here is the only way its change happens — the admin buttons and the REST API both
call these, so role checks, self-approval checks and state rules cannot be skipped by a crafted
request. Each transition runs in one transaction holding the campaign's row lock
(``select_for_update``) and writes its ``CampaignTransition`` audit row in that transaction. A refused
action raises ``ServiceError`` (or ``Conflict`` / ``PermissionDenied`` / ``NotFound``) and changes
nothing. Anything that changes what the bidder may serve announces itself after commit through
``apps.bidding.services.offer_snapshot_refresh()``.
"""
from __future__ import annotations

import importlib
import importlib.util
import re
from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

import structlog
from django.core.exceptions import ValidationError as DjangoValidationError
from django.core.validators import URLValidator
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone
from django_fsm import can_proceed
from prometheus_client import Counter

from apps.core.api import Conflict, NotFound, PermissionDenied, ServiceError
from apps.core.idempotency import idempotency_purge, idempotent_call
from apps.core.roles import Role, user_has_role

from . import selectors
from .countries import normalise_country
from .models import (
    ApprovalVote,
    Campaign,
    CampaignStatus,
    CampaignTransition,
    Channel,
    CreativeFormat,
    DeviceType,
    Offer,
    VoteDecision,
)

log = structlog.get_logger(__name__)

TRANSITIONS = Counter("campaign_transitions_total", "Campaign lifecycle transitions", ["action"])
VOTES = Counter("campaign_votes_total", "Approval votes cast", ["decision"])
VOTES_VOIDED = Counter("campaign_votes_voided_total", "Approval votes voided by an edit in review")

# Where the bidder's snapshot refresh lives (written by the bidding slice). A module attribute so a
# test can point it at a recorder.
SNAPSHOT_REFRESH_MODULE = "apps.bidding.services"
SNAPSHOT_REFRESH_FUNCTION = "offer_snapshot_refresh"

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

ACTION_LABELS = {
    "submit": "submit", "approve": "approve", "reject": "reject", "revise": "revise",
    "request_changes": "request changes on", "schedule": "schedule", "go_live": "put live",
    "pause": "pause", "resume": "resume", "complete": "complete", "archive": "archive",
}


def campaign_editable_fields(*, status: str) -> tuple[str, ...]:
    """Campaign fields a marketer may change in ``status`` (none once rejected, completed or archived)."""
    return _EDITABLE_CAMPAIGN_FIELDS.get(status, ())


def offer_editable_fields(*, status: str) -> tuple[str, ...]:
    """Offer fields a marketer may change while the campaign is in ``status``."""
    return _EDITABLE_OFFER_FIELDS.get(status, ())


# --- helpers -------------------------------------------------------------------------------------

def _offer_snapshot_refresh() -> None:
    """Tell the bidder to rebuild its live-offer snapshot; skipped while the bidding slice has none."""
    if importlib.util.find_spec(SNAPSHOT_REFRESH_MODULE) is None:
        log.debug("offer_snapshot_refresh_skipped", reason="module missing", module=SNAPSHOT_REFRESH_MODULE)
        return
    module = importlib.import_module(SNAPSHOT_REFRESH_MODULE)
    refresh = getattr(module, SNAPSHOT_REFRESH_FUNCTION, None)
    if refresh is None:
        log.debug("offer_snapshot_refresh_skipped", reason="function missing", module=SNAPSHOT_REFRESH_MODULE)
        return
    refresh()


def _refresh_bidding_after_commit() -> None:
    transaction.on_commit(_offer_snapshot_refresh)


def _lock(campaign_id: int) -> Campaign:
    try:
        return Campaign.objects.select_for_update().get(pk=campaign_id)
    except (Campaign.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Campaign {campaign_id} does not exist.") from None


def _require_role(actor, role: str, doing: str) -> None:
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise PermissionDenied(f"Only a signed-in {role} can {doing}.")
    if not user_has_role(actor, role):
        raise PermissionDenied(f"Only users with the {role} role can {doing}.")


def _require_marketer_or_system(actor, doing: str) -> None:
    if actor is not None:
        _require_role(actor, Role.MARKETER, doing)


def _allowed_sources(action: str) -> list[str]:
    return [str(state) for state in getattr(Campaign, action)._django_fsm.transitions]


def _audit(campaign: Campaign, *, action: str, from_status: str, to_status: str, actor=None, reason: str = "") -> None:
    CampaignTransition.objects.create(
        campaign=campaign, action=action, from_status=from_status, to_status=to_status, actor=actor, reason=reason
    )


def _transition(campaign: Campaign, action: str, *, actor, reason: str = "", extra_fields: Iterable[str] = ()) -> Campaign:
    """Apply the FSM transition ``action`` on a locked campaign, save it and write the audit row."""
    from_status = campaign.status
    _require_state(campaign, action)
    getattr(campaign, action)()
    campaign.save(update_fields=["status", "updated_at", *extra_fields])
    _audit(campaign, action=action, from_status=from_status, to_status=campaign.status, actor=actor, reason=reason)
    TRANSITIONS.labels(action).inc()
    log.info("campaign_transition", campaign_id=campaign.pk, action=action, from_status=str(from_status),
             to_status=str(campaign.status), actor_id=getattr(actor, "pk", None), reason=reason or None)
    if S.LIVE in (from_status, campaign.status):
        _refresh_bidding_after_commit()
    return campaign


def _require_state(campaign: Campaign, action: str) -> None:
    """Refuse early (before other checks) when the state does not allow ``action``."""
    if not can_proceed(getattr(campaign, action)):
        allowed = ", ".join(CampaignStatus(s).label.lower() for s in _allowed_sources(action))
        raise Conflict(
            f"Cannot {ACTION_LABELS[action]} campaign {campaign.pk}: it is "
            f"{campaign.get_status_display().lower()}; this is only possible from {allowed}.",
            field="status",
        )


def _required_reason(reason: str | None, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError(f"A reason is required to {what}.", field="reason", code="required")
    return reason


# --- input cleaning ------------------------------------------------------------------------------

_CURRENCY_RE = re.compile(r"^[A-Z]{3}$")
_DOMAIN_RE = re.compile(r"^(?=.{1,200}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
_IAB_CATEGORY_RE = re.compile(r"^IAB\d{1,2}(-\d{1,3})?$")
_MAX_INT = 2_147_483_647
SPEND_QUANTUM = Decimal("0.000001")  # Campaign.spent has 6 decimal places


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


def _choices(field: str, values: Any, allowed: Iterable[str], *, non_empty: bool = False) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ServiceError(f"{field} must be a list.", field=field)
    allowed = list(allowed)
    out: list[str] = []
    for value in values:
        if value not in allowed:
            raise ServiceError(f"{field}: unknown value {value!r}; choose from {', '.join(allowed)}.", field=field)
        if value not in out:
            out.append(value)
    if non_empty and not out:
        raise ServiceError(f"{field} needs at least one value.", field=field, code="required")
    return out


def _countries(values: Any) -> list[str]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ServiceError("target_countries must be a list.", field="target_countries")
    out: list[str] = []
    for value in values:
        code = normalise_country(value) if isinstance(value, str) else None
        if code is None:
            raise ServiceError(
                f"target_countries: {value!r} is not an ISO 3166-1 country code (use alpha-3 like USA or alpha-2 like US).",
                field="target_countries",
            )
        if code not in out:
            out.append(code)
    return out


def _segments(values: Any) -> list[int]:
    if isinstance(values, str) or not isinstance(values, Iterable):
        raise ServiceError("target_segments must be a list of segment ids.", field="target_segments")
    out: list[int] = []
    for value in values:
        segment = _int("target_segments", value, minimum=0)
        if segment not in out:
            out.append(segment)
    return out


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
    if values["end_at"] <= values["start_at"]:
        raise ServiceError("end_at must be after start_at.", field="end_at")
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


def _apply_rule(campaign: Campaign) -> None:
    rule = selectors.approval_rule_for(budget=campaign.budget, channels=campaign.channels)
    campaign.approval_rule = rule
    # A campaign always needs at least one approval, even if an admin deactivated every rule.
    campaign.required_approvals = rule.min_approvals if rule else 1


def _void_votes(campaign: Campaign, *, actor, what: str) -> int:
    """An edit while in review: votes so far no longer count (docs/RULES.md §3). Returns how many."""
    voided = ApprovalVote.objects.filter(campaign=campaign, review_round=campaign.review_round, voided=False).update(
        voided=True
    )
    if voided:
        campaign.review_round += 1  # the caller holds the campaign's row lock
        campaign.save(update_fields=["review_round", "updated_at"])
        _audit(campaign, action="votes_voided", from_status=campaign.status, to_status=campaign.status, actor=actor,
               reason=f"{voided} vote(s) voided: {what} changed while in review")
        VOTES_VOIDED.inc(voided)
        log.info("campaign_votes_voided", campaign_id=campaign.pk, voided=voided, what=what,
                 review_round=campaign.review_round)
    return voided


# --- campaigns -----------------------------------------------------------------------------------

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
    if campaign.status == S.SCHEDULED and "start_at" in cleaned and cleaned["start_at"] <= timezone.now():
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
    if cleaned["end_at"] <= timezone.now():
        raise ServiceError("end_at is in the past.", field="end_at")
    return cleaned


@transaction.atomic
def campaign_create(
    *,
    actor,
    name: str,
    advertiser: str,
    budget: Decimal,
    channels: list[str],
    start_at: datetime,
    end_at: datetime,
    currency: str = "USD",
    target_countries: list[str] | None = None,
    target_device_types: list[str] | None = None,
    target_segments: list[int] | None = None,
    max_impressions_per_hour: int = 10,
    max_impressions_per_day: int = 50,
) -> Campaign:
    """Create a draft campaign. Marketers only; countries are stored as ISO alpha-3."""
    _require_role(actor, Role.MARKETER, "create campaigns")
    values = campaign_validate_new(values={
        "name": name, "advertiser": advertiser, "budget": budget, "currency": currency, "channels": channels,
        "start_at": start_at, "end_at": end_at, "target_countries": target_countries or [],
        "target_device_types": target_device_types or [], "target_segments": target_segments or [],
        "max_impressions_per_hour": max_impressions_per_hour, "max_impressions_per_day": max_impressions_per_day,
    })
    campaign = Campaign.objects.create(created_by=actor, **values)
    _audit(campaign, action="create", from_status=S.DRAFT, to_status=S.DRAFT, actor=actor)
    log.info("campaign_created", campaign_id=campaign.pk, actor_id=actor.pk)
    return campaign


CREATE_SCOPE = "campaigns.create"
IDEMPOTENCY_RETENTION = timedelta(days=7)


def campaign_create_once(*, actor, idempotency_key: str, **fields: Any) -> tuple[Campaign, bool]:
    """:func:`campaign_create` at most once per ``(actor, idempotency_key)``: a retry after a lost answer
    returns the campaign the first call made (``replayed=True``) instead of a second one; the same key
    with different fields is a Conflict (409); a refusal is stored and refused again (apps.core.idempotency).

    Keys belong to the actor (the scope names them), so two marketers cannot collide."""
    outcome = idempotent_call(
        scope=f"{CREATE_SCOPE}.{getattr(actor, 'pk', None)}",
        key=idempotency_key,
        payload=fields,
        run=lambda: {"campaign_id": campaign_create(actor=actor, **fields).pk},
        success_status=201,
    )
    return selectors.campaign_get(campaign_id=outcome.body["campaign_id"]), outcome.replayed


def campaign_purge_idempotency_records() -> int:
    """Delete the stored answers of campaign creates older than ``IDEMPOTENCY_RETENTION`` (7 days)."""
    return idempotency_purge(scope_prefix=f"{CREATE_SCOPE}.", older_than=IDEMPOTENCY_RETENTION)


@transaction.atomic
def campaign_update(*, campaign_id: int, actor, **changes: Any) -> Campaign:
    """Change campaign fields allowed in its state (see ``campaign_editable_fields``).

    In review the approval rule is chosen again and the votes so far are voided; on a live campaign
    the bidder's snapshot is refreshed after commit."""
    campaign = _lock(campaign_id)
    _require_role(actor, Role.MARKETER, "edit campaigns")
    cleaned = campaign_validate_changes(campaign=campaign, changes=changes)
    if not cleaned:
        return campaign
    for name, value in cleaned.items():
        setattr(campaign, name, value)
    update_fields = [*cleaned, "updated_at"]
    if campaign.status == S.IN_REVIEW:
        _apply_rule(campaign)
        update_fields += ["approval_rule", "required_approvals"]
    campaign.save(update_fields=update_fields)
    if campaign.status == S.IN_REVIEW:
        _void_votes(campaign, actor=actor, what=", ".join(sorted(cleaned)))
    if campaign.status == S.LIVE:
        _refresh_bidding_after_commit()
    log.info("campaign_updated", campaign_id=campaign.pk, fields=sorted(cleaned), actor_id=actor.pk)
    return campaign


@transaction.atomic
def campaign_submit(*, campaign_id: int, actor, reason: str = "") -> Campaign:
    """draft → in_review. Picks the strictest matching approval rule and opens a new review round."""
    campaign = _lock(campaign_id)
    _require_state(campaign, "submit")
    _require_role(actor, Role.MARKETER, "submit campaigns")
    if not campaign.offers.exists():
        raise ServiceError("Add at least one offer before submitting.", field="offers")
    if campaign.end_at <= timezone.now():
        raise ServiceError("end_at has passed; move it before submitting.", field="end_at")
    _apply_rule(campaign)
    campaign.review_round += 1
    campaign.submitted_by = actor
    campaign.submitted_at = timezone.now()
    rule_name = campaign.approval_rule.name if campaign.approval_rule else "no rule matched"
    reason = reason.strip() or f"needs {campaign.required_approvals} approval(s): {rule_name}"
    return _transition(campaign, "submit", actor=actor, reason=reason, extra_fields=[
        "approval_rule", "required_approvals", "review_round", "submitted_by", "submitted_at",
    ])


def _check_vote(campaign: Campaign, actor, action: str) -> None:
    _require_state(campaign, action)
    _require_role(actor, Role.APPROVER, "decide on campaigns")
    if actor.pk in (campaign.submitted_by_id, campaign.created_by_id):
        raise PermissionDenied("You cannot approve or reject your own submission.", code="self_approval")
    if selectors.campaign_has_vote_from(campaign=campaign, user=actor):
        raise Conflict("You have already voted on this campaign in this review round.", code="already_voted")


def _record_vote(campaign: Campaign, actor, decision: str, reason: str) -> ApprovalVote:
    try:
        with transaction.atomic():
            vote = ApprovalVote.objects.create(
                campaign=campaign, approver=actor, review_round=campaign.review_round, decision=decision, reason=reason
            )
    except IntegrityError:
        raise Conflict("You have already voted on this campaign in this review round.", code="already_voted") from None
    _audit(campaign, action=f"vote_{decision}", from_status=campaign.status, to_status=campaign.status, actor=actor,
           reason=reason)
    VOTES.labels(decision).inc()
    log.info("campaign_vote", campaign_id=campaign.pk, decision=str(decision), approver_id=actor.pk,
             review_round=campaign.review_round)
    return vote


@transaction.atomic
def campaign_approve(*, campaign_id: int, actor, reason: str = "") -> Campaign:
    """Cast an approval. The campaign moves to approved once the approvals of the current review
    round reach ``required_approvals``. Approvers only; not on one's own submission; one vote each."""
    campaign = _lock(campaign_id)
    _check_vote(campaign, actor, "approve")
    _record_vote(campaign, actor, VoteDecision.APPROVE, reason.strip())
    approvals = selectors.campaign_approval_count(campaign=campaign)
    if approvals >= campaign.required_approvals:
        rule_name = campaign.approval_rule.name if campaign.approval_rule else "default"
        _transition(campaign, "approve", actor=actor,
                    reason=f"{approvals} of {campaign.required_approvals} approval(s) ({rule_name})")
    return campaign


@transaction.atomic
def campaign_reject(*, campaign_id: int, actor, reason: str) -> Campaign:
    """in_review → rejected. A reason is required; any one rejection rejects."""
    reason = _required_reason(reason, "reject a campaign")
    campaign = _lock(campaign_id)
    _check_vote(campaign, actor, "reject")
    _record_vote(campaign, actor, VoteDecision.REJECT, reason)
    return _transition(campaign, "reject", actor=actor, reason=reason)


@transaction.atomic
def campaign_request_changes(*, campaign_id: int, actor, reason: str) -> Campaign:
    """in_review → draft, back to the marketer with a note of what to change (required)."""
    reason = _required_reason(reason, "request changes")
    campaign = _lock(campaign_id)
    _require_state(campaign, "request_changes")
    _require_role(actor, Role.APPROVER, "request changes")
    if actor.pk in (campaign.submitted_by_id, campaign.created_by_id):
        raise PermissionDenied("You cannot review your own submission.", code="self_approval")
    return _transition(campaign, "request_changes", actor=actor, reason=reason)


@transaction.atomic
def campaign_revise(*, campaign_id: int, actor, reason: str = "") -> Campaign:
    """rejected → draft, so the marketer can edit and submit again."""
    campaign = _lock(campaign_id)
    _require_state(campaign, "revise")
    _require_role(actor, Role.MARKETER, "revise campaigns")
    return _transition(campaign, "revise", actor=actor, reason=reason.strip())


@transaction.atomic
def campaign_schedule(*, campaign_id: int, actor, reason: str = "") -> Campaign:
    """approved → scheduled; the start time must be in the future (beat puts it live then)."""
    campaign = _lock(campaign_id)
    _require_state(campaign, "schedule")
    _require_role(actor, Role.MARKETER, "schedule campaigns")
    if campaign.start_at <= timezone.now():
        raise ServiceError("start_at has already passed: put the campaign live instead of scheduling it.",
                           field="start_at")
    return _transition(campaign, "schedule", actor=actor, reason=reason.strip() or f"starts {campaign.start_at:%Y-%m-%d %H:%M} UTC")


@transaction.atomic
def campaign_go_live(*, campaign_id: int, actor=None, reason: str = "") -> Campaign:
    """scheduled → live when the start time has come (beat, ``actor=None``); approved → live when it
    already has (a marketer). Refused before the start, after the end, or with no budget left."""
    campaign = _lock(campaign_id)
    _require_state(campaign, "go_live")
    _require_marketer_or_system(actor, "put campaigns live")
    now = timezone.now()
    if campaign.start_at > now:
        raise ServiceError("start_at is still in the future: schedule the campaign instead.", field="start_at")
    if campaign.end_at <= now:
        raise ServiceError("end_at has passed; move it before going live.", field="end_at")
    if campaign.spent >= campaign.budget:
        raise ServiceError("The budget is spent; raise it before going live.", field="budget")
    return _transition(campaign, "go_live", actor=actor, reason=reason.strip() or ("start time reached" if actor is None else ""))


@transaction.atomic
def campaign_pause(*, campaign_id: int, actor, reason: str = "") -> Campaign:
    """live → paused (stops bidding)."""
    campaign = _lock(campaign_id)
    _require_state(campaign, "pause")
    _require_role(actor, Role.MARKETER, "pause campaigns")
    return _transition(campaign, "pause", actor=actor, reason=reason.strip())


@transaction.atomic
def campaign_resume(*, campaign_id: int, actor, reason: str = "") -> Campaign:
    """paused → live. If the end time passed or the budget ran out meanwhile, the campaign is
    completed at once (a second audit row) rather than left paused for ever."""
    campaign = _lock(campaign_id)
    _require_state(campaign, "resume")
    _require_role(actor, Role.MARKETER, "resume campaigns")
    _transition(campaign, "resume", actor=actor, reason=reason.strip())
    if campaign.end_at <= timezone.now():
        _transition(campaign, "complete", actor=actor, reason="end time reached")
    elif campaign.spent >= campaign.budget:
        _transition(campaign, "complete", actor=actor, reason="budget spent")
    return campaign


@transaction.atomic
def campaign_complete(*, campaign_id: int, actor=None, reason: str) -> Campaign:
    """live → completed: by beat (``actor=None``) at the end time or when the budget is spent, or by a
    marketer ending it early. A reason is required."""
    reason = _required_reason(reason, "complete a campaign")
    campaign = _lock(campaign_id)
    _require_state(campaign, "complete")
    _require_marketer_or_system(actor, "complete campaigns")
    return _transition(campaign, "complete", actor=actor, reason=reason)


@transaction.atomic
def campaign_archive(*, campaign_id: int, actor, reason: str = "") -> Campaign:
    """completed → archived."""
    campaign = _lock(campaign_id)
    _require_state(campaign, "archive")
    _require_role(actor, Role.MARKETER, "archive campaigns")
    return _transition(campaign, "archive", actor=actor, reason=reason.strip())


def campaign_add_spend(*, campaign_id: int, amount: Decimal) -> Campaign:
    """Add ``amount`` (currency units, e.g. a win's clearing CPM / 1000) to the campaign's spend with
    one atomic ``UPDATE … SET spent = spent + amount``. Beat completes it once spent >= budget."""
    if isinstance(amount, float) or isinstance(amount, bool):
        raise TypeError("amount must be a Decimal (money is never a float)")
    try:
        amount = Decimal(amount).quantize(SPEND_QUANTUM, rounding=ROUND_HALF_UP)
    except (InvalidOperation, TypeError, ValueError):
        raise ServiceError(f"amount must be a decimal number, got {amount!r}.", field="amount") from None
    if not amount.is_finite() or amount < 0:
        raise ServiceError("amount must be zero or more.", field="amount")
    updated = Campaign.objects.filter(pk=campaign_id).update(spent=F("spent") + amount)
    if not updated:
        raise NotFound(f"Campaign {campaign_id} does not exist.")
    return Campaign.objects.get(pk=campaign_id)


def campaign_go_live_due(*, now: datetime | None = None) -> list[int]:
    """Put live every scheduled campaign whose start time has come; returns their ids.

    Each campaign is its own transaction: one refusal (changed meanwhile) does not stop the rest."""
    done: list[int] = []
    for campaign_id in selectors.campaign_ids_due_to_go_live(now=now):
        try:
            campaign_go_live(campaign_id=campaign_id, actor=None)
        except ServiceError as exc:
            log.info("campaign_go_live_skipped", campaign_id=campaign_id, detail=exc.message)
            continue
        done.append(campaign_id)
    return done


def campaign_complete_due(*, now: datetime | None = None) -> list[int]:
    """Complete every live campaign past its end time or out of budget; returns their ids."""
    done: list[int] = []
    for campaign_id, reason in selectors.campaign_ids_due_to_complete(now=now):
        try:
            campaign_complete(campaign_id=campaign_id, actor=None, reason=reason)
        except ServiceError as exc:
            log.info("campaign_complete_skipped", campaign_id=campaign_id, detail=exc.message)
            continue
        done.append(campaign_id)
    return done


# --- offers --------------------------------------------------------------------------------------

def _after_offer_change(campaign: Campaign, *, actor, what: str) -> None:
    if campaign.status == S.IN_REVIEW:
        _void_votes(campaign, actor=actor, what=what)
    if campaign.status == S.LIVE:
        _refresh_bidding_after_commit()


def _lock_offer(offer_id: int) -> tuple[Campaign, Offer]:
    campaign_id = Offer.objects.filter(pk=offer_id).values_list("campaign_id", flat=True).first()
    if campaign_id is None:
        raise NotFound(f"Offer {offer_id} does not exist.")
    campaign = _lock(campaign_id)  # the campaign's lock serialises offer edits with transitions
    offer = Offer.objects.select_for_update().get(pk=offer_id)
    return campaign, offer


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


@transaction.atomic
def offer_create(
    *,
    campaign_id: int,
    actor,
    name: str,
    creative_markup: str,
    width: int,
    height: int,
    landing_url: str,
    advertiser_domain: str,
    category: str,
    max_bid_cpm: Decimal,
    format: str = CreativeFormat.BANNER,  # noqa: A002 - the model's field name
    priority: int = 5,
    observed_ctr: float = 0.0,
) -> Offer:
    """Add an offer (creative) to a campaign in draft or in review (in review this voids the votes)."""
    campaign = _lock(campaign_id)
    _require_role(actor, Role.MARKETER, "add offers")
    if campaign.status not in OFFER_SET_EDITABLE_STATES:
        raise Conflict(f"Offers cannot be added while the campaign is {campaign.get_status_display().lower()}.",
                       field="offers")
    values = _clean_offer({
        "name": name, "creative_markup": creative_markup, "width": width, "height": height, "format": format,
        "landing_url": landing_url, "advertiser_domain": advertiser_domain, "category": category,
        "max_bid_cpm": max_bid_cpm, "priority": priority, "observed_ctr": observed_ctr,
    })
    offer = Offer.objects.create(campaign=campaign, **values)
    _after_offer_change(campaign, actor=actor, what=f"offer {offer.pk} added")
    log.info("offer_created", offer_id=offer.pk, campaign_id=campaign.pk, actor_id=actor.pk)
    return offer


@transaction.atomic
def offer_update(*, offer_id: int, actor, **changes: Any) -> Offer:
    """Change an offer. Before approval anything; afterwards only name, max bid, priority and CTR."""
    campaign, offer = _lock_offer(offer_id)
    _require_role(actor, Role.MARKETER, "edit offers")
    cleaned = offer_validate_changes(offer=offer, campaign=campaign, changes=changes)
    if not cleaned:
        return offer
    for name, value in cleaned.items():
        setattr(offer, name, value)
    offer.save(update_fields=[*cleaned, "updated_at"])
    _after_offer_change(campaign, actor=actor, what=f"offer {offer.pk} ({', '.join(sorted(cleaned))})")
    log.info("offer_updated", offer_id=offer.pk, campaign_id=campaign.pk, fields=sorted(cleaned), actor_id=actor.pk)
    return offer


@transaction.atomic
def offer_delete(*, offer_id: int, actor) -> None:
    """Remove an offer from a campaign in draft or in review (a campaign in review keeps at least one)."""
    campaign, offer = _lock_offer(offer_id)
    _require_role(actor, Role.MARKETER, "delete offers")
    if campaign.status not in OFFER_SET_EDITABLE_STATES:
        raise Conflict(f"Offers cannot be removed while the campaign is {campaign.get_status_display().lower()}.",
                       field="offers")
    if campaign.status == S.IN_REVIEW and campaign.offers.count() <= 1:
        raise Conflict("A campaign in review needs at least one offer.", field="offers")
    offer.delete()
    _after_offer_change(campaign, actor=actor, what=f"offer {offer_id} removed")
    log.info("offer_deleted", offer_id=offer_id, campaign_id=campaign.pk, actor_id=actor.pk)
