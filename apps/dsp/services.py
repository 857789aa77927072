"""DSP writes: platform edits (audited, then published to the bid workers after commit), win notices
(idempotent per bid, exact spend, notices from Celery) and the spend flush to Postgres."""
from __future__ import annotations

import dataclasses
import datetime as dt
import time
from decimal import Decimal

import orjson
import structlog
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models.functions import Greatest

from apps.analytics.emitter import emit
from apps.core import redis as redis_store
from apps.core.exceptions import NotFound, Unavailable, Unprocessable
from apps.dsp import platforms as store
from apps.dsp import spend
from apps.dsp.adapters import PlatformConf
from apps.dsp.macros import LOSS_OUTBID, LOSS_WON, format_price, substitute
from apps.dsp.models import Platform, PlatformChange, PlatformHourSpend

log = structlog.get_logger(__name__)

SECRET_FIELDS = ("credentials",)
AUDITED_FIELDS = ("name", "kind", "endpoint_url", "credentials", "params", "enabled", "timeout_ms", "qps_cap",
                  "hourly_budget", "bid_adjustment", "gzip", "currency")


# --- platforms --------------------------------------------------------------------------------------
def platform_conf(platform: Platform) -> PlatformConf:
    return PlatformConf(
        id=platform.pk, name=platform.name, kind=platform.kind, endpoint_url=platform.endpoint_url,
        enabled=platform.enabled, timeout_ms=platform.timeout_ms, qps_cap=platform.qps_cap,
        hourly_budget=float(platform.hourly_budget), bid_adjustment=float(platform.bid_adjustment),
        gzip=platform.gzip, currency=platform.currency, params=dict(platform.params or {}),
        credentials=dict(platform.credentials) if isinstance(platform.credentials, dict) else {},
    )


def platforms_publish() -> int:
    """Publish every platform to the bid workers (the snapshot; beat also runs it as a safety net)."""
    rows = [platform_conf(p) for p in Platform.objects.order_by("name")]
    return store.publish(redis_store.client(), rows)


def _shown(field: str, value):
    if field in SECRET_FIELDS:
        return "set" if value else "not set"
    return str(value) if isinstance(value, Decimal) else value


@transaction.atomic
def platform_save(*, platform: Platform, actor: User | None = None) -> Platform:
    """Create or update ``platform`` (validated by the caller's form or ``full_clean``), write the audit
    row with each changed field's old and new value, and publish after commit."""
    platform.full_clean()
    old = Platform.objects.select_for_update().filter(pk=platform.pk).first() if platform.pk else None
    changes = {}
    for field in AUDITED_FIELDS:
        before = getattr(old, field) if old is not None else None
        after = getattr(platform, field)
        if old is None or before != after:
            changes[field] = [_shown(field, before) if old is not None else None, _shown(field, after)]
    platform.save()
    PlatformChange.objects.create(platform=platform, platform_name=platform.name, actor=actor,
                                  action="create" if old is None else "update", changes=changes)
    log.info("dsp_platform_saved", platform=platform.name, fields=sorted(changes))
    transaction.on_commit(platforms_publish)
    return platform


@transaction.atomic
def platform_delete(*, platform: Platform, actor: User | None = None) -> None:
    log.info("dsp_platform_deleted", platform=platform.name, actor=getattr(actor, "pk", None))
    PlatformChange.objects.create(platform=platform, platform_name=platform.name, actor=actor, action="delete",
                                  changes={f: [_shown(f, getattr(platform, f)), None] for f in AUDITED_FIELDS})
    platform.delete()
    transaction.on_commit(platforms_publish)


# --- wins -------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class WinResult:
    status: str  # "counted" | "duplicate"
    platform: str
    bid_id: str
    hour: dt.datetime
    wins: int
    spend: Decimal
    over_budget: bool
    notices: int


def _auction(auction_id: str) -> dict:
    try:
        raw = redis_store.client().get(store.auction_key(auction_id))
    except Exception as exc:  # noqa: BLE001 - Redis down
        raise Unavailable("win store unavailable, retry later") from exc
    if raw is None:
        raise NotFound(f"unknown auction {auction_id!r} (never seen, or older than DSP_AUCTION_TTL_SECONDS)",
                       field="auction_id")
    return orjson.loads(raw)


def _macro_values(*, auction_id: str, imp_id: str, bid: dict, price: float, loss: int, currency: str) -> dict:
    return {"AUCTION_ID": auction_id, "AUCTION_BID_ID": bid["bid_id"], "AUCTION_IMP_ID": imp_id,
            "AUCTION_SEAT_ID": bid["platform"], "AUCTION_AD_ID": str(bid.get("adid") or ""),
            "AUCTION_PRICE": format_price(price), "AUCTION_CURRENCY": currency, "AUCTION_LOSS": str(loss),
            "AUCTION_MIN_TO_WIN": format_price(price) if loss else ""}


def notice_urls(*, auction_id: str, imp_id: str, bids: list[dict], winner: dict, win_price: float) -> list[tuple[str, str, str]]:
    """(kind, platform, URL) of every notice a win sends: the winner's ``nurl`` and ``burl`` with
    ``${AUCTION_PRICE}`` = win price ÷ its adjustment factor, each loser's ``lurl`` with
    ``${AUCTION_LOSS}`` = 102 (lost to a higher bid) and the clearing price in its own terms."""
    out = []
    for bid in bids:
        won = bid is winner
        price = win_price / (bid.get("factor") or 1.0)
        values = _macro_values(auction_id=auction_id, imp_id=imp_id, bid=bid, price=price,
                               loss=LOSS_WON if won else LOSS_OUTBID, currency=bid.get("currency") or "USD")
        for kind in (("nurl", "burl") if won else ("lurl",)):
            url = substitute(bid.get(kind), values)
            if url:
                out.append((kind, bid["platform"], url))
    return out


def dsp_win_record(*, platform: str, auction_id: str, bid_id: str, imp_id: str, win_price: Decimal,
                   now: float | None = None) -> WinResult:
    """Count a win once per bid: spend in the platform's hour, budget check, notices queued."""
    from apps.dsp import tasks

    row = Platform.objects.filter(name=platform).first()
    if row is None:
        raise NotFound(f"unknown platform {platform!r}", field="platform")
    bids = _auction(auction_id).get(imp_id)
    if not bids:
        raise NotFound(f"auction {auction_id!r} has no bids for imp {imp_id!r}", field="imp_id")
    winner = next((b for b in bids if b["platform_id"] == row.pk and b["bid_id"] == bid_id), None)
    if winner is None:
        raise NotFound(f"auction {auction_id!r} has no bid {bid_id!r} from {platform!r} for imp {imp_id!r}",
                       field="bid_id")
    price = float(win_price)
    if price > winner["price"] * (1 + 1e-9):
        raise Unprocessable(f"win_price {win_price} is above the bid ({winner['price']})", field="win_price")
    factor = winner.get("factor") or 1.0
    # spend in the platform's terms: a CPM clearing price ÷ the adjustment factor, per impression
    spend_micros = int(round(price / factor * 1000))
    now = time.time() if now is None else now
    hour = store.hour_of(now)
    budget_micros = int(row.hourly_budget * 1_000_000)
    try:
        count = spend.count_win(platform_id=row.pk, bid_id=bid_id, hour=hour, spend_micros=spend_micros,
                                budget_micros=budget_micros)
    except Exception as exc:  # noqa: BLE001 - Redis down: the caller retries
        raise Unavailable("win store unavailable, retry later") from exc
    notices = 0
    if count.counted:
        emit("dsp_win", request_id=auction_id, platform=row.name, bid_id=bid_id, imp_id=imp_id,
             price=winner["price"], win_price=price)
        for kind, name, url in notice_urls(auction_id=auction_id, imp_id=imp_id, bids=bids, winner=winner,
                                           win_price=price):
            tasks.fire_notice.delay(url=url, kind=kind, platform=name)
            notices += 1
        if count.over_budget:
            log.info("dsp_platform_over_budget", platform=row.name, hour=hour, spend_micros=count.spend_micros)
    return WinResult(status="counted" if count.counted else "duplicate", platform=row.name, bid_id=bid_id,
                     hour=dt.datetime.fromtimestamp(hour * 3600, tz=dt.timezone.utc), wins=count.wins,
                     spend=Decimal(count.spend_micros) / 1_000_000, over_budget=count.over_budget, notices=notices)


# --- the spend flush --------------------------------------------------------------------------------
def dsp_spend_flush(*, limit: int = 1000) -> int:
    """Copy the exact Redis counters of every hour that changed into ``PlatformHourSpend``.

    The counters only grow, so the copy is idempotent (``GREATEST``): a flush that runs twice, or
    after a crash between taking the dirty set and writing, writes the same values. Returns rows written."""
    pairs = spend.dirty_hours(limit=limit)
    written = 0
    known = set(Platform.objects.filter(pk__in={pid for pid, _ in pairs}).values_list("pk", flat=True))
    try:
        for pid, hour in pairs:
            if pid not in known:
                continue
            wins, spend_micros = spend.hour_totals(platform_id=pid, hour=hour)
            start = dt.datetime.fromtimestamp(hour * 3600, tz=dt.timezone.utc)
            row, created = PlatformHourSpend.objects.get_or_create(
                platform_id=pid, hour=start, defaults={"wins": wins, "spend_micros": spend_micros})
            if not created:
                PlatformHourSpend.objects.filter(pk=row.pk).update(
                    wins=Greatest("wins", wins), spend_micros=Greatest("spend_micros", spend_micros))
            written += 1
    except Exception:
        spend.mark_dirty(pairs)  # try them all again next time (the copy is idempotent)
        raise
    return written
