"""Writes of the bidding slice (Django side): the offer snapshot and the spend flush.

* ``offer_snapshot_refresh()`` — called by the campaigns slice after every commit that changes
  what may be bid on, by the beat schedule, and at start-up of the bid processes. It builds the
  snapshot of live offers from Postgres, stores it in Redis and announces its version; every bidder
  process loads it within milliseconds.
* ``spend_flush()`` — moves win spend counted in Redis into ``Campaign.spent`` exactly once per
  increment, and completes campaigns whose budget is spent.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from decimal import Decimal

import redis
import structlog
from django.db import IntegrityError, transaction
from prometheus_client import Counter

from apps.bidding import snapshot as snap
from apps.bidding.models import SpendFlush
from apps.bidding.wins import SPEND_DIRTY_KEY, spend_pending_key
from apps.campaigns import selectors as campaign_selectors
from apps.campaigns import services as campaign_services
from apps.core import channels
from apps.core import redis as redis_store
from apps.core.exceptions import NotFound, ServiceError

log = structlog.get_logger(__name__)

BIDDABLE_CHANNELS = channels.BIDDABLE_CHANNELS
SPEND_INFLIGHT_KEY = "spend:inflight"  # hash batch_id -> "campaign_id:micros", claimed but not yet in Postgres
MICROS = Decimal(1_000_000)

SNAPSHOT_REFRESHES = Counter("bids_snapshot_refreshes", "Offer snapshots built and published", ["result"])
SPEND_FLUSHED_MICROS = Counter("bids_spend_flushed_micros", "Win spend moved from Redis to Postgres (micro-dollars)")


def _micros(amount: Decimal) -> int:
    return int((Decimal(amount) * MICROS).to_integral_value())


def offer_rows_biddable() -> tuple[list[snap.OfferRow], dict[int, int]]:
    """OfferRows of every offer of every biddable display campaign, and each campaign's spend (micros)."""
    rows: list[snap.OfferRow] = []
    spent: dict[int, int] = {}
    for campaign in campaign_selectors.campaign_list_biddable():
        if not BIDDABLE_CHANNELS.intersection(campaign.channels or ()):
            continue
        spent[campaign.pk] = _micros(campaign.spent)
        for offer in campaign.offers.all():
            blocked = campaign_selectors.offer_creative_blocked(offer)
            if blocked:  # a DAM asset that is expired, withdrawn or unapproved does not bid (issue 14)
                log.info("offer_not_biddable", offer_id=offer.pk, campaign_id=campaign.pk, reason=blocked)
                continue
            rows.append(snap.OfferRow(
                offer_id=offer.pk, campaign_id=campaign.pk, name=offer.name, advertiser=campaign.advertiser,
                markup=offer.creative_markup, width=offer.width, height=offer.height, format=offer.format,
                landing_url=offer.landing_url, adomain=offer.advertiser_domain, category=offer.category,
                max_bid_cpm=float(offer.max_bid_cpm), priority=offer.priority, observed_ctr=float(offer.observed_ctr),
                countries=list(campaign.target_countries or ()), device_types=list(campaign.target_device_types or ()),
                segments=[int(s) for s in campaign.target_segments or ()],
                start_at=campaign.start_at.timestamp(), end_at=campaign.end_at.timestamp(),
                budget_micros=_micros(campaign.budget), max_per_hour=campaign.max_impressions_per_hour,
                max_per_day=campaign.max_impressions_per_day,
            ))
    return rows, spent


def offer_snapshot_refresh(*, client: redis.Redis | None = None) -> bool:
    """Rebuild the live-offer snapshot from Postgres, store it in Redis and announce it.

    True when this snapshot was published; False when a newer one already was, or Redis is down
    (logged — the beat schedule rebuilds it again shortly, and bidders keep their current one)."""
    client = client or redis_store.client()
    try:
        version = snap.next_version(client)  # reserved before reading the database: see publish_snapshot
        rows, spent = offer_rows_biddable()
        snap.seed_spend_totals(client, spent)
        published = snap.publish_snapshot(client, version=version, offers=rows)
    except redis.RedisError as exc:
        SNAPSHOT_REFRESHES.labels("failed").inc()
        log.warning("offer_snapshot_refresh_failed", error=f"{type(exc).__name__}: {exc}")
        return False
    SNAPSHOT_REFRESHES.labels("published" if published else "superseded").inc()
    log.info("offer_snapshot_refreshed", version=version, offers=len(rows), campaigns=len(spent), published=published)
    return published


# --- spend ----------------------------------------------------------------------------------------

# Move a campaign's pending spend into the in-flight hash under a fresh batch id, atomically.
_CLAIM_LUA = """
local amount = tonumber(redis.call('GET', KEYS[1]) or '0')
if amount <= 0 then
  redis.call('SREM', KEYS[2], ARGV[1])
  return 0
end
redis.call('DECRBY', KEYS[1], amount)
redis.call('HSET', KEYS[3], ARGV[2], ARGV[1] .. ':' .. amount)
return amount
"""


@dataclass
class SpendFlushResult:
    batches: int = 0
    micros: int = 0
    campaigns: set[int] = field(default_factory=set)
    completed: list[int] = field(default_factory=list)


def _apply_batch(batch_id: str, campaign_id: int, micros: int) -> bool:
    """Add one claimed batch to the campaign's spend unless it was added before. True if added now."""
    try:
        with transaction.atomic():
            _, created = SpendFlush.objects.get_or_create(
                batch_id=batch_id, defaults={"campaign_id": campaign_id, "amount_micros": micros}
            )
            if created:
                campaign_services.campaign_add_spend(campaign_id=campaign_id, amount=Decimal(micros) / MICROS)
    except IntegrityError:  # a concurrent flush inserted the same batch first
        return False
    return created


def spend_flush(*, client: redis.Redis | None = None) -> SpendFlushResult:
    """Move win spend from Redis into ``Campaign.spent`` exactly once, then complete campaigns whose
    budget is spent. Safe to run concurrently and to re-run after a crash at any point."""
    client = client or redis_store.client()
    result = SpendFlushResult()
    for raw in client.smembers(SPEND_DIRTY_KEY):
        campaign_id = int(raw)
        client.eval(_CLAIM_LUA, 3, spend_pending_key(campaign_id), SPEND_DIRTY_KEY, SPEND_INFLIGHT_KEY,
                    campaign_id, uuid.uuid4().hex)
    # Every claimed batch, including those a crashed run left behind.
    for raw_batch, raw_value in client.hgetall(SPEND_INFLIGHT_KEY).items():
        batch_id = raw_batch.decode()
        cid, _, amount = raw_value.decode().partition(":")
        campaign_id, micros = int(cid), int(amount)
        try:
            added = _apply_batch(batch_id, campaign_id, micros)
        except NotFound:
            log.error("spend_flush_campaign_missing", campaign_id=campaign_id, micros=micros, batch_id=batch_id)
            added = False
        client.hdel(SPEND_INFLIGHT_KEY, batch_id)
        if added:
            result.batches += 1
            result.micros += micros
            result.campaigns.add(campaign_id)
            SPEND_FLUSHED_MICROS.inc(micros)
    for campaign_id in sorted(result.campaigns):
        try:
            campaign = campaign_selectors.campaign_get(campaign_id=campaign_id)
        except NotFound:
            continue
        if campaign.status == "live" and campaign.spent >= campaign.budget:
            try:
                campaign_services.campaign_complete(campaign_id=campaign_id, reason="budget spent")
            except ServiceError as exc:
                log.info("spend_flush_complete_skipped", campaign_id=campaign_id, detail=exc.message)
                continue
            result.completed.append(campaign_id)
    if result.batches:
        log.info("spend_flushed", batches=result.batches, micros=result.micros,
                 campaigns=sorted(result.campaigns), completed=result.completed)
    return result
