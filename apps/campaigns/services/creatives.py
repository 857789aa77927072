"""Creatives imported from a DAM (AEM Assets, Bynder, Aprimo via apps.integrations): linking the asset
to an offer, and the validity the DAM reports. An offer whose asset is expired, withdrawn or
unapproved (``creative_blocked_reason`` set, or ``creative_valid_until`` passed) leaves the bidder's
snapshot until the DAM says it is valid again; both changes are audited as offer edits."""
from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import Conflict, ServiceError
from apps.core.roles import Role

from ..models import CampaignStatus, EditAction, EditSource, Offer
from ..validation import OFFER_SET_EDITABLE_STATES
from .common import _record_edit, _refresh_bidding_after_commit, _require_role, log
from .offers import _after_offer_change, _lock_offer

DAM_SOURCES = ("aem", "bynder", "aprimo")
ASSET_FIELDS = ("creative_source", "creative_connection_id", "creative_asset_id", "creative_asset_url", "creative_mime",
                "creative_valid_until", "creative_blocked_reason")


@transaction.atomic
def offer_creative_import(*, offer_id: int, actor: AbstractBaseUser | None, source: str, connection_id: int,
                          asset_id: str, asset_url: str, mime: str, valid_until: datetime | None,
                          blocked_reason: str = "", markup: str | None = None,
                          edit_source: str = EditSource.API) -> Offer:
    """Make a DAM asset the offer's creative (draft or in review, like any creative change)."""
    campaign, offer = _lock_offer(offer_id)
    _require_role(actor, Role.MARKETER, "import creatives")
    if campaign.status not in OFFER_SET_EDITABLE_STATES:
        raise Conflict(f"The creative cannot change while the campaign is {campaign.get_status_display().lower()}.",
                       field="offer_id")
    if source not in DAM_SOURCES:
        raise ServiceError(f"source must be one of {', '.join(DAM_SOURCES)}", field="source")
    if not asset_url.startswith(("https://", "http://")):
        raise ServiceError("The asset has no URL to serve.", field="asset_id")
    new = {"creative_source": source, "creative_connection_id": connection_id, "creative_asset_id": asset_id[:200],
           "creative_asset_url": asset_url[:1000], "creative_mime": mime[:100], "creative_valid_until": valid_until,
           "creative_blocked_reason": blocked_reason[:200]}
    if markup is not None:
        new["creative_markup"] = markup
    old = {name: getattr(offer, name) for name in new}
    for name, value in new.items():
        setattr(offer, name, value)
    offer.creative_checked_at = timezone.now()
    offer.save(update_fields=[*new, "creative_checked_at", "updated_at"])
    _record_edit(campaign, action=EditAction.OFFER_UPDATE, actor=actor, source=edit_source, old=old, new=new,
                 offer_id=offer.pk)
    _after_offer_change(campaign, actor=actor, what=f"offer {offer.pk} creative imported from {source}")
    log.info("offer_creative_imported", offer_id=offer.pk, source=source, asset_id=asset_id, actor_id=getattr(actor, "pk", None))
    return offer


@transaction.atomic
def offer_creative_validity_set(*, offer_id: int, valid_until: datetime | None, blocked_reason: str) -> bool:
    """What the DAM says now (beat). Returns whether anything changed; a change on a live campaign
    refreshes the bidder's snapshot (the offer leaves or comes back)."""
    campaign, offer = _lock_offer(offer_id)
    new = {"creative_valid_until": valid_until, "creative_blocked_reason": blocked_reason[:200]}
    old = {name: getattr(offer, name) for name in new}
    offer.creative_checked_at = timezone.now()
    if old == new:
        offer.save(update_fields=["creative_checked_at"])
        return False
    for name, value in new.items():
        setattr(offer, name, value)
    offer.save(update_fields=[*new, "creative_checked_at", "updated_at"])
    _record_edit(campaign, action=EditAction.OFFER_UPDATE, actor=None, source=EditSource.TASK, old=old, new=new,
                 offer_id=offer.pk)
    if campaign.status == CampaignStatus.LIVE:
        _refresh_bidding_after_commit()
    log.info("offer_creative_validity", offer_id=offer.pk, blocked_reason=blocked_reason or None,
             valid_until=valid_until.isoformat() if valid_until else None)
    return True
