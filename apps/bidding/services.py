"""Writes of the bidding slice (Django side): the offer snapshot and the spend flush.

* ``offer_snapshot_refresh()`` — called by the campaigns slice after every commit that changes
  what may be bid on, by the beat schedule, and at start-up of the bid processes. It builds the
  snapshot of live offers from Postgres, stores it in Redis and announces its version; every bidder
  process loads it within milliseconds.
* ``spend_flush()`` — moves win spend counted in Redis into ``Campaign.spent`` exactly once per
  increment, and completes campaigns whose budget is spent. Single Redis or Redis Cluster alike:
  every script touches one campaign's slot, the global sets are ordered around it (see there).
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
from apps.bidding.cache import LEGACY_FREQ_PATTERN, freq_key
from apps.bidding.models import SpendFlush
from apps.bidding.wins import (
    LEGACY_SPEND_INFLIGHT_KEY,
    SPEND_DIRTY_KEY,
    legacy_spend_pending_key,
    legacy_spend_total_key,
    spend_inflight_key,
    spend_pending_key,
    spend_total_key,
)
from apps.campaigns import selectors as campaign_selectors
from apps.campaigns import services as campaign_services
from apps.core import channels
from apps.core import redis as redis_store
from apps.core.exceptions import NotFound, ServiceError

log = structlog.get_logger(__name__)

BIDDABLE_CHANNELS = channels.BIDDABLE_CHANNELS
SPEND_FLUSHING_KEY = "spend:flushing"  # campaigns a flush took out of spend:dirty and has not finished
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
        migrate_legacy_spend(client, spent)  # before seeding: a legacy total is the campaign's total
        snap.seed_spend_totals(client, spent)
        mark_pending_dirty(client, spent)
        published = snap.publish_snapshot(client, version=version, offers=rows)
    except redis.RedisError as exc:
        SNAPSHOT_REFRESHES.labels("failed").inc()
        log.warning("offer_snapshot_refresh_failed", error=f"{type(exc).__name__}: {exc}")
        return False
    SNAPSHOT_REFRESHES.labels("published" if published else "superseded").inc()
    log.info("offer_snapshot_refreshed", version=version, offers=len(rows), campaigns=len(spent), published=published)
    return published


# --- spend ----------------------------------------------------------------------------------------

# Move a campaign's pending spend into its in-flight hash under a fresh batch id, atomically (one slot).
# KEYS: spend pending, spend in flight. ARGV: batch id.
_CLAIM_LUA = """
local amount = tonumber(redis.call('GET', KEYS[1]) or '0')
if amount <= 0 then return 0 end
redis.call('DECRBY', KEYS[1], amount)
redis.call('HSET', KEYS[2], ARGV[1], amount)
return amount
"""

# Single Redis only (legacy keys carry no hash tag): fold what a running pre-issue-20 version wrote
# under the legacy names into the new ones. Both are increments, so adding and deleting the legacy
# key is exact however often it runs. KEYS: legacy total, total, legacy pending, pending.
_MIGRATE_LUA = """
local moved = 0
local total = redis.call('GET', KEYS[1])
if total then
  redis.call('INCRBY', KEYS[2], total)
  redis.call('DEL', KEYS[1])
end
local pending = redis.call('GET', KEYS[3])
if pending then
  redis.call('INCRBY', KEYS[4], pending)
  redis.call('DEL', KEYS[3])
  moved = tonumber(pending)
end
return moved
"""


def migrate_legacy_spend(client, campaign_ids) -> int:
    """Fold legacy ``spend:total:<cid>`` / ``spend:pending:<cid>`` into ``spend:{c:<cid>}:...`` (single
    Redis; a cluster never had the legacy names). Returns the pending micros moved."""
    if redis_store.is_cluster(client):
        return 0
    ids = list(campaign_ids)
    if not ids:
        return 0
    with client.pipeline(transaction=False) as pipe:
        for cid in ids:
            pipe.eval(_MIGRATE_LUA, 4, legacy_spend_total_key(cid), spend_total_key(cid),
                      legacy_spend_pending_key(cid), spend_pending_key(cid))
        moved = sum(int(x) for x in pipe.execute())
    if moved:
        log.info("spend_legacy_keys_migrated", campaigns=len(ids), pending_micros=moved)
    return moved


def migrate_legacy_freq(client, *, batch: int = 500) -> int:
    """Fold a Redis Cluster's legacy frequency sets ``freq:<user>`` into ``{profile:<user>}:freq``
    (``apps.bidding.cache.freq_key``: the profile's slot). A single Redis keeps ``freq:<user>``:
    nothing to do. Per master: ``SCAN`` for the legacy names, copy each set's members (``ZADD NX``:
    a member already in the new set is the same win), carry its TTL over when longer, then delete it.
    Idempotent; run it (``manage.py migrate_cluster_freq``) once the bid app and the win handlers all
    run this version — a win an older process writes to a legacy set meanwhile would be missed by
    the frequency caps once folded. Returns the legacy sets folded."""
    if not redis_store.is_cluster(client):
        return 0
    folded = 0
    for node in client.get_primaries():
        server = client.get_redis_connection(node)
        for key in server.scan_iter(match=LEGACY_FREQ_PATTERN, count=batch):
            user_id = key.decode()[len("freq:"):]
            with server.pipeline(transaction=False) as pipe:
                pipe.zrange(key, 0, -1, withscores=True)
                pipe.pttl(key)
                members, ttl_ms = pipe.execute()
            target = freq_key(user_id, cluster=True)
            if members:
                with client.pipeline(transaction=False) as pipe:  # one slot: the target's master
                    pipe.zadd(target, dict(members), nx=True)
                    if ttl_ms > 0:
                        pipe.pexpire(target, ttl_ms, nx=True)  # created just now: no TTL yet
                        pipe.pexpire(target, ttl_ms, gt=True)
                    pipe.execute()
            server.delete(key)
            folded += 1
    if folded:
        log.info("frequency_legacy_keys_migrated", sets=folded)
    return folded


def mark_pending_dirty(client, campaign_ids) -> None:
    """Put back into ``spend:dirty`` any campaign with pending spend: on a cluster a win increments
    pending, then adds the campaign to the set in a second step; a crash between the two would leave
    the spend waiting for the campaign's next win; a flush that crashed after another flush took the
    campaign out of ``spend:flushing`` would leave a batch in flight. The snapshot refresh runs this on
    every beat."""
    ids = list(campaign_ids)
    if not ids:
        return
    with client.pipeline(transaction=False) as pipe:  # one trip per node on a cluster
        for cid in ids:
            pipe.get(spend_pending_key(cid))
            pipe.hlen(spend_inflight_key(cid))  # a batch a crashed flush left behind
        values = pipe.execute()
    waiting = [cid for i, cid in enumerate(ids) if int(values[2 * i] or 0) > 0 or int(values[2 * i + 1] or 0) > 0]
    if waiting:
        client.sadd(SPEND_DIRTY_KEY, *waiting)


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


def _flush_batch(client, inflight_key: str, batch_id: str, campaign_id: int, micros: int,
                 result: SpendFlushResult) -> None:
    try:
        added = _apply_batch(batch_id, campaign_id, micros)
    except NotFound:
        log.error("spend_flush_campaign_missing", campaign_id=campaign_id, micros=micros, batch_id=batch_id)
        added = False
    client.hdel(inflight_key, batch_id)
    if added:
        result.batches += 1
        result.micros += micros
        result.campaigns.add(campaign_id)
        SPEND_FLUSHED_MICROS.inc(micros)


def spend_flush(*, client: redis.Redis | None = None) -> SpendFlushResult:
    """Move win spend from Redis into ``Campaign.spent`` exactly once, then complete campaigns whose
    budget is spent. Safe to run concurrently and to re-run after a crash at any point.

    Per campaign, in this order: ``SADD spend:flushing``, ``SREM spend:dirty``, claim (one script in
    the campaign's slot: pending -> a batch in ``spend:{c:<cid>}:inflight``), add every in-flight batch
    to Postgres once (``SpendFlush`` row per batch id), ``SREM spend:flushing``. A win increments
    pending *before* it adds the campaign to ``spend:dirty``, so whichever way a win and a flush
    interleave, its spend is either claimed now or left with the campaign in the set; a crash leaves
    the campaign in ``spend:flushing`` or ``spend:dirty``, and the next run picks it up there."""
    client = client or redis_store.client()
    result = SpendFlushResult()
    dirty = {int(raw) for raw in client.smembers(SPEND_DIRTY_KEY)}
    if not redis_store.is_cluster(client):
        migrate_legacy_spend(client, dirty)
        # batches a pre-issue-20 flush claimed into the one legacy hash and did not finish
        for raw_batch, raw_value in client.hgetall(LEGACY_SPEND_INFLIGHT_KEY).items():
            cid, _, amount = raw_value.decode().partition(":")
            _flush_batch(client, LEGACY_SPEND_INFLIGHT_KEY, raw_batch.decode(), int(cid), int(amount), result)
    todo = dirty | {int(raw) for raw in client.smembers(SPEND_FLUSHING_KEY)}
    for campaign_id in sorted(todo):
        client.sadd(SPEND_FLUSHING_KEY, campaign_id)
        client.srem(SPEND_DIRTY_KEY, campaign_id)
        inflight = spend_inflight_key(campaign_id)
        client.eval(_CLAIM_LUA, 2, spend_pending_key(campaign_id), inflight, uuid.uuid4().hex)
        # every claimed batch, including those a crashed run left behind
        for raw_batch, raw_amount in client.hgetall(inflight).items():
            _flush_batch(client, inflight, raw_batch.decode(), campaign_id, int(raw_amount), result)
        client.srem(SPEND_FLUSHING_KEY, campaign_id)
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
