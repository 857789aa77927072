"""Creating and editing campaigns, and adding spend (docs/RULES.md §3 "Edits")."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import F

from apps.core.exceptions import NotFound, ServiceError
from apps.core.idempotency import idempotency_purge, idempotent_call
from apps.core.roles import Role

from .. import selectors
from ..models import Campaign, CampaignStatus, EditAction, EditSource
from ..validation import campaign_validate_changes, campaign_validate_new
from .common import (
    _apply_rule,
    _audit,
    _lock,
    _record_edit,
    _refresh_bidding_after_commit,
    _require_role,
    _void_votes,
    log,
)

S = CampaignStatus
SPEND_QUANTUM = Decimal("0.000001")  # Campaign.spent has 6 decimal places


@transaction.atomic
def campaign_create(
    *,
    actor: AbstractBaseUser | None,
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


def campaign_create_once(*, actor: AbstractBaseUser | None, idempotency_key: str,
                         **fields: Any) -> tuple[Campaign, bool]:
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
def campaign_update(*, campaign_id: int, actor: AbstractBaseUser | None, source: str = EditSource.TASK,
                    **changes: Any) -> Campaign:
    """Change campaign fields allowed in its state (see ``campaign_editable_fields``).

    Writes a ``CampaignEdit`` row with each changed field's old and new value (``source``: api, admin
    or task); a change to nothing changes nothing and writes nothing. In review the approval rule is
    chosen again and the votes so far are voided; on a live campaign the bidder's snapshot is
    refreshed after commit."""
    campaign = _lock(campaign_id)
    _require_role(actor, Role.MARKETER, "edit campaigns")
    cleaned = campaign_validate_changes(campaign=campaign, changes=changes)
    if not cleaned:
        return campaign
    old = {name: getattr(campaign, name) for name in cleaned}
    for name, value in cleaned.items():
        setattr(campaign, name, value)
    update_fields = [*cleaned, "updated_at"]
    if campaign.status == S.IN_REVIEW:
        _apply_rule(campaign)
        update_fields += ["approval_rule", "required_approvals"]
    campaign.save(update_fields=update_fields)
    _record_edit(campaign, action=EditAction.CAMPAIGN_UPDATE, actor=actor, source=source, old=old, new=cleaned)
    if campaign.status == S.IN_REVIEW:
        _void_votes(campaign, actor=actor, what=", ".join(sorted(cleaned)))
    if campaign.status == S.LIVE:
        _refresh_bidding_after_commit()
    log.info("campaign_updated", campaign_id=campaign.pk, fields=sorted(cleaned), actor_id=actor.pk)
    return campaign


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


