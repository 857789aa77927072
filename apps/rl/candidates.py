"""Default candidates of a decision: the live offers running on a channel, cached in process.

Reading them from Postgres (the live campaigns with their offers) costs two queries and the model
instances on every decision that names no candidates (the activation cascade, the surfaces), so
each process keeps the list per channel for ``RL_CANDIDATE_CACHE_SECONDS`` and trusts it only while
the offers' generation in Redis (``rl:offers:generation``, a random token) is the one it was read
under. Any save or delete of a campaign or an offer replaces the token after its commit (signals
connected in ``RlConfig.ready``), so every process drops its lists at its next decision; the
generation is read in the same Redis round trip as the posteriors (``posteriors.posterior_counts``).
What changes without a save — a queryset ``update()``, spend reaching the budget, a schedule's end
passing — is seen when the list expires. A list read inside a transaction is used but not kept.
A flush of the database (``post_migrate``) empties the lists. A missing token (Redis flushed or restarted) is replaced
and never matches a list read before. With Redis down, lists live by their expiry alone.
"""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import structlog
from django.conf import settings
from django.db import connection, transaction
from prometheus_client import Counter

from apps.core import redis as redis_store
from apps.core.channels import Channel

log = structlog.get_logger(__name__)

GENERATION_KEY = "rl:offers:generation"
MAX_CANDIDATES = 50  # Personalizer's limit on actions per rank call

LOADS = Counter("rl_candidate_loads_total", "Default candidate lists read from Postgres (cache miss or invalidated)")


@dataclass(frozen=True, slots=True)
class LiveOffers:
    ids: list[str]
    campaigns: dict[str, str]
    features: dict[str, list[dict[str, Any]]]
    #: the offers' generation the list was read under (None: unknown, Redis unreachable)
    generation: bytes | None
    expires: float


_cache: dict[str, LiveOffers] = {}


def offer_features(offer) -> list[dict[str, Any]]:
    return [{"campaign_id": str(offer.campaign_id), "category": offer.category, "format": offer.format,
             "max_bid_cpm": float(offer.max_bid_cpm), "observed_ctr": float(offer.observed_ctr)}]


def _read(channel: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
    from apps.campaigns import selectors as campaigns

    found: list[tuple[str, str, list[dict[str, Any]]]] = []
    for campaign in campaigns.campaign_list_biddable():
        if channel in campaign.channels or Channel.ALL in campaign.channels:
            found.extend((str(o.pk), str(campaign.pk), offer_features(o)) for o in campaign.offers.all())
    return found[:MAX_CANDIDATES]


def cached(channel: str) -> LiveOffers | None:
    """The list this process holds for ``channel`` if it has not expired (its generation unchecked)."""
    entry = _cache.get(channel)
    if entry is None or entry.expires <= time.monotonic():
        return None
    return entry


def current_generation() -> bytes | None:
    """The offers' generation in Redis, created when missing; None when Redis is unreachable."""
    try:
        client = redis_store.client()
        value = client.get(GENERATION_KEY)
        if value is None:
            client.set(GENERATION_KEY, uuid.uuid4().hex, nx=True)
            value = client.get(GENERATION_KEY)
        return value.encode() if isinstance(value, str) else value
    except Exception as exc:  # noqa: BLE001 - the list then lives by its expiry alone
        log.warning("rl_candidate_generation_unavailable", error=f"{type(exc).__name__}: {exc}")
        return None


def load(channel: str, generation: bytes | None) -> LiveOffers:
    """Read ``channel``'s live offers from Postgres and keep them under ``generation``."""
    LOADS.inc()
    rows = _read(channel)
    entry = LiveOffers(ids=[o for o, _, _ in rows], campaigns={o: c for o, c, _ in rows},
                       features={o: f for o, _, f in rows}, generation=generation,
                       expires=time.monotonic() + settings.RL_CANDIDATE_CACHE_SECONDS)
    # Not kept when read inside a transaction: it may see rows that are then rolled back.
    if settings.RL_CANDIDATE_CACHE_SECONDS > 0 and not connection.in_atomic_block:
        _cache[channel] = entry
    return entry


def live_offers(channel: str) -> LiveOffers:
    """``channel``'s live offers, checked against the current generation (one Redis GET)."""
    generation = current_generation()
    entry = cached(channel)
    if entry is not None and generation is not None and entry.generation == generation:
        return entry
    if entry is not None and generation is None and entry.generation is None:
        return entry  # Redis down: by expiry alone
    return load(channel, generation)


def still_current(entry: LiveOffers, generation: bytes | None) -> bool:
    """Whether a cached list holds under the generation read with the posteriors (None: the key is
    gone or Redis did not answer — then :func:`live_offers` decides)."""
    return generation is not None and entry.generation == generation


def invalidate(**_: Any) -> None:
    """A campaign or offer was saved or deleted: this process forgets its lists now (a reload inside
    the transaction is not kept), every process after the commit (a new generation)."""
    _cache.clear()
    transaction.on_commit(_new_generation)


def _new_generation() -> None:
    _cache.clear()
    try:
        redis_store.client().set(GENERATION_KEY, uuid.uuid4().hex)
    except Exception as exc:  # noqa: BLE001 - other processes see the change when their lists expire
        log.warning("rl_candidate_invalidation_failed", error=f"{type(exc).__name__}: {exc}")


def clear(**_: Any) -> None:
    """Forget every list of this process (also on ``post_migrate``: a flushed database)."""
    _cache.clear()
