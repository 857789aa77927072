"""Reads of the bidding slice (Django side): what a campaign has spent, from the owner of that number.

One number for spend: Redis's ``spend:total:{cid}`` (integer micro-dollars, incremented once per
win by ``apps.bidding.wins``) is the owner. ``Campaign.spent`` is its copy in Postgres, brought up to
date by ``spend_flush`` every few seconds; the last ``SpendFlush`` row of a campaign says when that
copy was last reconciled. Pages show the Redis figure and, when Postgres lags, when it last caught up.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

import redis
import structlog
from django.db.models import Max

from apps.bidding.models import SpendFlush
from apps.bidding.wins import spend_pending_key, spend_total_key
from apps.core import redis as redis_store

log = structlog.get_logger(__name__)
MICROS = Decimal(1_000_000)


@dataclass(frozen=True)
class SpendFigure:
    """A campaign's spend as the platform knows it.

    ``live`` — Redis's running total (None when Redis has none or is unreachable: then ``spent`` is
    the best there is); ``pending`` — the part not yet flushed to Postgres; ``recorded`` —
    ``Campaign.spent``; ``reconciled_at`` — the last flush that moved spend into it (None: never)."""

    live: Decimal | None
    pending: Decimal
    recorded: Decimal
    reconciled_at: dt.datetime | None

    @property
    def spent(self) -> Decimal:
        """The one number to show: Redis's when it has one, else Postgres's."""
        return self.live if self.live is not None else self.recorded

    @property
    def in_sync(self) -> bool:
        """True when Postgres holds everything Redis counted (nothing pending, same total)."""
        return self.live is None or (self.pending == 0 and abs(self.live - self.recorded) < Decimal("0.000001"))


def campaign_spend(*, campaigns: Iterable, client: redis.Redis | None = None) -> dict[int, SpendFigure]:
    """``{campaign id: SpendFigure}`` for ``campaigns`` (objects with ``pk`` and ``spent``): one MGET
    to Redis and one aggregate query to Postgres, however many campaigns."""
    campaigns = list(campaigns)
    if not campaigns:
        return {}
    ids = [c.pk for c in campaigns]
    live: list = [None] * len(ids)
    pending: list = [None] * len(ids)
    try:
        client = client or redis_store.client()
        values = redis_store.mget(client, [spend_total_key(i) for i in ids] + [spend_pending_key(i) for i in ids])
        live, pending = values[: len(ids)], values[len(ids):]
    except redis.RedisError as exc:  # the page still shows Postgres's figure
        log.warning("campaign_spend_redis_unavailable", error=type(exc).__name__)
    flushed = dict(
        SpendFlush.objects.filter(campaign_id__in=ids).values("campaign_id").annotate(at=Max("created_at"))
        .values_list("campaign_id", "at")
    )
    out = {}
    for campaign, total, waiting in zip(campaigns, live, pending, strict=True):
        out[campaign.pk] = SpendFigure(
            live=None if total is None else Decimal(int(total)) / MICROS,
            pending=Decimal(int(waiting or 0)) / MICROS,
            recorded=Decimal(campaign.spent),
            reconciled_at=flushed.get(campaign.pk),
        )
    return out
