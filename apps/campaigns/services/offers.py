"""Adding, changing and removing a campaign's offers (creatives)."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction

from apps.core.exceptions import Conflict, NotFound
from apps.core.roles import Role

from ..models import Campaign, CampaignStatus, CreativeFormat, EditAction, EditSource, Offer
from ..validation import OFFER_FIELDS, OFFER_SET_EDITABLE_STATES, _clean_offer, offer_validate_changes
from .common import _lock, _record_edit, _refresh_bidding_after_commit, _require_role, _void_votes, log

S = CampaignStatus

# --- offers --------------------------------------------------------------------------------------

def _after_offer_change(campaign: Campaign, *, actor: AbstractBaseUser | None, what: str) -> None:
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


@transaction.atomic
def offer_create(
    *,
    campaign_id: int,
    actor: AbstractBaseUser | None,
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
    source: str = EditSource.TASK,
) -> Offer:
    """Add an offer (creative) to a campaign in draft or in review (in review this voids the votes).
    Writes a ``CampaignEdit`` row with the offer's values as new values."""
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
    _record_edit(campaign, action=EditAction.OFFER_CREATE, actor=actor, source=source, old={}, new=values,
                 offer_id=offer.pk)
    _after_offer_change(campaign, actor=actor, what=f"offer {offer.pk} added")
    log.info("offer_created", offer_id=offer.pk, campaign_id=campaign.pk, actor_id=actor.pk)
    return offer


@transaction.atomic
def offer_update(*, offer_id: int, actor: AbstractBaseUser | None, source: str = EditSource.TASK,
                 **changes: Any) -> Offer:
    """Change an offer. Before approval anything; afterwards only name, max bid, priority and CTR.
    Writes a ``CampaignEdit`` row with each changed field's old and new value; no change, no row."""
    campaign, offer = _lock_offer(offer_id)
    _require_role(actor, Role.MARKETER, "edit offers")
    cleaned = offer_validate_changes(offer=offer, campaign=campaign, changes=changes)
    if not cleaned:
        return offer
    old = {name: getattr(offer, name) for name in cleaned}
    for name, value in cleaned.items():
        setattr(offer, name, value)
    offer.save(update_fields=[*cleaned, "updated_at"])
    _record_edit(campaign, action=EditAction.OFFER_UPDATE, actor=actor, source=source, old=old, new=cleaned,
                 offer_id=offer.pk)
    _after_offer_change(campaign, actor=actor, what=f"offer {offer.pk} ({', '.join(sorted(cleaned))})")
    log.info("offer_updated", offer_id=offer.pk, campaign_id=campaign.pk, fields=sorted(cleaned), actor_id=actor.pk)
    return offer


@transaction.atomic
def offer_delete(*, offer_id: int, actor: AbstractBaseUser | None, source: str = EditSource.TASK) -> None:
    """Remove an offer from a campaign in draft or in review (a campaign in review keeps at least one).
    Writes a ``CampaignEdit`` row with the offer's values as old values."""
    campaign, offer = _lock_offer(offer_id)
    _require_role(actor, Role.MARKETER, "delete offers")
    if campaign.status not in OFFER_SET_EDITABLE_STATES:
        raise Conflict(f"Offers cannot be removed while the campaign is {campaign.get_status_display().lower()}.",
                       field="offers")
    if campaign.status == S.IN_REVIEW and campaign.offers.count() <= 1:
        raise Conflict("A campaign in review needs at least one offer.", field="offers")
    old = {name: getattr(offer, name) for name in OFFER_FIELDS}
    offer.delete()
    _record_edit(campaign, action=EditAction.OFFER_DELETE, actor=actor, source=source, old=old, new={},
                 offer_id=offer_id)
    _after_offer_change(campaign, actor=actor, what=f"offer {offer_id} removed")
    log.info("offer_deleted", offer_id=offer_id, campaign_id=campaign.pk, actor_id=actor.pk)
