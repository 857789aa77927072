"""Writes of the loyalty slice (docs/RULES.md §2). Other slices call these, never the models.

Every change of stars happens in one transaction that holds the account's row lock
(``select_for_update``), updates the totals with ``F()`` expressions and appends a ledger row; the
database's check constraint refuses a negative balance whatever happens. After commit the member's
bidding profile in Redis is refreshed (and announced) and analytics events are emitted.

Idempotency: an earn is keyed by ``transaction_id`` (unique per account on the ledger); redeem,
adjust and reward signals by an ``Idempotency-Key`` through :mod:`apps.core.idempotency`.

Qualifying periods are 12 months from enrolment. A period that has ended is rolled over by the
beat task (``loyalty_rollover_due``), or by the member's next earn or redeem if that comes first, so
stars always count toward the period they were earned in. Rollover is the only place a tier goes
down: the next tier is the one the ended period's qualifying stars reach.
"""
from __future__ import annotations

import re
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import orjson
import structlog
from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone
from prometheus_client import Counter

from apps.analytics.emitter import emit, emit_with_id, stable_event_id
from apps.core.api import Conflict, NotFound, PermissionDenied, ServiceError
from apps.core.idempotency import idempotency_purge, idempotent_call, validate_key
from apps.core.profiles import profile_write
from apps.core.roles import user_has_role
from apps.loyalty import publisher, rules, selectors
from apps.loyalty.models import (
    LedgerEntry,
    LedgerKind,
    LoyaltyAccount,
    RewardSignal,
    SignalType,
    Tier,
)

log = structlog.get_logger(__name__)

STARS_EARNED = Counter("loyalty_stars_earned_total", "Stars credited by earns")
STARS_REDEEMED = Counter("loyalty_stars_redeemed_total", "Stars spent on redemptions")
EARNS = Counter("loyalty_earns_total", "Earn requests", ["outcome"])  # credited | replayed
REDEMPTIONS = Counter("loyalty_redemptions_total", "Redemptions", ["redemption_tier"])
REDEEM_REFUSED = Counter("loyalty_redeem_refused_total", "Refused redemptions", ["reason"])
TIER_CHANGES = Counter("loyalty_tier_changes_total", "Tier changes", ["direction"])
STARS_EXPIRED = Counter("loyalty_stars_expired_total", "Stars expired after Green-tier inactivity")
REWARD_SIGNALS = Counter("loyalty_reward_signals_total", "Reward signals stored", ["signal_type"])
SIGNALS_PUBLISHED = Counter("loyalty_reward_signals_published_total", "Reward signals acknowledged by NATS")
SIGNAL_PUBLISH_FAILURES = Counter("loyalty_reward_signal_publish_failures_total", "Failed reward-signal publishes")
PROFILE_REFRESH_FAILURES = Counter("loyalty_profile_refresh_failures_total", "Profile refreshes that failed (Redis down)")

USER_ID_MAX = 128
TRANSACTION_ID_MAX = 128
OFFER_ID_MAX = 64
ADJUST_MAX_STARS = 1_000_000
RATE_QUANTUM = Decimal("0.0001")  # rates are sums and products of 3-decimal multipliers and 1.2: exact at 4
_CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


# --- results ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class EarnResult:
    user_id: str
    stars_earned: int
    new_balance: int
    earn_rate_applied: Decimal
    tier: str
    tier_changed: bool
    new_tier: str | None
    transaction_id: str = ""
    replayed: bool = False


@dataclass(frozen=True)
class RedeemResult:
    user_id: str
    redemption_tier: str
    stars_spent: int
    value: Decimal
    new_balance: int
    tier: str
    total_redemptions: int
    ledger_entry_id: int
    replayed: bool = False

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("replayed")
        body["value"] = str(self.value)
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any], *, replayed: bool) -> "RedeemResult":
        return cls(**{**body, "value": Decimal(body["value"]), "replayed": replayed})


@dataclass(frozen=True)
class AdjustResult:
    user_id: str
    stars: int
    new_balance: int
    ledger_entry_id: int
    replayed: bool = False


@dataclass(frozen=True)
class RewardSignalResult:
    signal_id: str
    user_id: str
    offer_id: str
    signal_type: str
    tier: str
    reward: Decimal
    replayed: bool = False

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("replayed")
        body["reward"] = str(self.reward)
        return body


# --- input checks (the API validates too; other slices call these functions directly) -----------
def _clean_user_id(user_id: Any) -> str:
    if not isinstance(user_id, str) or not user_id.strip():
        raise ServiceError("user_id is required.", field="user_id", code="required")
    user_id = user_id.strip()
    if len(user_id) > USER_ID_MAX or not user_id.isprintable():
        raise ServiceError(f"user_id must be at most {USER_ID_MAX} printable characters.", field="user_id")
    return user_id


def _clean_amount(amount_cents: Any) -> int:
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int):
        raise ServiceError("amount_cents must be a whole number of cents.", field="amount_cents")
    if amount_cents < 1:
        raise ServiceError("amount_cents must be at least 1.", field="amount_cents")
    if amount_cents > settings.LOYALTY_MAX_EARN_AMOUNT_CENTS:
        raise ServiceError(
            f"amount_cents must be at most {settings.LOYALTY_MAX_EARN_AMOUNT_CENTS}.", field="amount_cents"
        )
    return amount_cents


def _clean_channel(channel: Any) -> str:
    if not isinstance(channel, str) or not channel.strip():
        raise ServiceError("channel is required.", field="channel", code="required")
    channel = channel.strip().lower()
    if not _CHANNEL_RE.match(channel):
        raise ServiceError(
            "channel must be a lower-case name of letters, digits and underscores (e.g. app, web, in_store).",
            field="channel",
        )
    return channel


def _clean_transaction_id(transaction_id: Any) -> str:
    if not isinstance(transaction_id, str) or not transaction_id.strip():
        raise ServiceError("transaction_id is required.", field="transaction_id", code="required")
    transaction_id = transaction_id.strip()
    if len(transaction_id) > TRANSACTION_ID_MAX or not transaction_id.isprintable():
        raise ServiceError(
            f"transaction_id must be at most {TRANSACTION_ID_MAX} printable characters.", field="transaction_id"
        )
    return transaction_id


def _clean_flag(value: Any, field: str) -> bool:
    if not isinstance(value, bool):
        raise ServiceError(f"{field} must be true or false.", field=field)
    return value


def _clean_redemption(redemption_tier: Any) -> rules.Redemption:
    redemption = rules.REDEMPTIONS.get(redemption_tier) if isinstance(redemption_tier, str) else None
    if redemption is None:
        raise ServiceError(
            f"Unknown redemption tier {redemption_tier!r}; choose one of: {', '.join(rules.REDEMPTIONS)}.",
            field="redemption_tier",
        )
    return redemption


def _tier_label(tier: str) -> str:
    return Tier(tier).label


# --- after-commit effects -----------------------------------------------------------------------
def loyalty_profile_refresh(*, user_id: str) -> None:
    """Write the member's loyalty fields into the bidding profile (``profile:{user_id}``) and announce
    the change so bidders drop their L1 copy. Redis being down is logged and counted, never raised:
    the loyalty change itself is already committed, and the next change writes the profile again."""
    account = selectors.loyalty_account_find(user_id=user_id)
    if account is None:
        return
    fields = {"loyalty_tier": str(account.tier), "loyalty": selectors.account_feature_vector(account)}
    try:
        profile_write(user_id=user_id, fields=fields)
    except Exception as exc:  # noqa: BLE001 - a cache write must not fail a committed change
        PROFILE_REFRESH_FAILURES.inc()
        log.warning("loyalty_profile_refresh_failed", user_id=user_id, error=f"{type(exc).__name__}: {exc}")


def loyalty_profiles_keep_alive(*, batch_size: int = 500) -> int:
    """Rewrite every member's loyalty fields into the bidding profile, without announcing.

    The profile hash lives ``PROFILE_TTL_SECONDS`` (an hour) after its last write; without this a
    Gold member who has not transacted for an hour would bid as a default Green user. Run from beat
    more often than the TTL. Also refreshes the day-dependent parts of the vector (birthday window,
    redeem recency). Returns how many profiles were written; stops at the first Redis error."""
    written = 0
    last_id = 0
    while True:
        accounts = selectors.loyalty_accounts_after(last_id=last_id, limit=batch_size)
        if not accounts:
            return written
        for account in accounts:
            profile_write(
                user_id=account.user_id,
                fields={"loyalty_tier": str(account.tier), "loyalty": selectors.account_feature_vector(account)},
                announce=False,
            )
            written += 1
        last_id = accounts[-1].pk


def _after_commit(user_id: str, *events: tuple[str, dict[str, Any]]) -> None:
    """Register the profile refresh and the analytics events to run once the transaction commits."""

    def run() -> None:
        loyalty_profile_refresh(user_id=user_id)
        for event_type, fields in events:
            emit(event_type, user_id=user_id, **fields)

    transaction.on_commit(run)


_EPOCH = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)


def _ledger_events(entry: LedgerEntry) -> list[tuple[str, dict[str, Any]]]:
    """The analytics events a ledger row stands for (an earn's tier change included)."""
    tier = str(entry.tier_after)
    details = entry.details or {}
    if entry.kind == LedgerKind.EARN:
        events = [("loyalty_earn", {
            "stars": entry.stars, "tier": tier, "amount": entry.amount_cents / 100, "channel": entry.channel,
            "extra": {"transaction_id": entry.transaction_id, "earn_rate": format(entry.earn_rate.normalize(), "f")},
        })]
        if details.get("tier_changed"):
            events.append(_tier_change_fields(before=details["tier_before"], after=tier, reason="earn"))
        return events
    if entry.kind == LedgerKind.ROLLOVER and details.get("tier_before", tier) != tier:
        return [_tier_change_fields(before=details["tier_before"], after=tier, reason="period_rollover")]
    if entry.kind == LedgerKind.REDEEM:
        return [("loyalty_redeem", {
            "stars": -entry.stars, "tier": tier, "amount": float(Decimal(details["value"])),
            "reason": entry.redemption_tier, "extra": {"idempotency_key": entry.idempotency_key},
        })]
    if entry.kind == LedgerKind.ADJUST:
        return [("loyalty_adjust", {"stars": entry.stars, "tier": tier, "reason": entry.reason[:200]})]
    return []


def _written_together(entry: LedgerEntry) -> list[LedgerEntry]:
    """The ledger rows of the write that made ``entry``: one transaction stamps its rows with one ``now``
    (a period rollover before an earn or a redeem, then the row itself)."""
    return list(LedgerEntry.objects.filter(account_id=entry.account_id, created_at=entry.created_at).order_by("pk"))


def _after_commit_ledger(user_id: str, entries: list[LedgerEntry]) -> None:
    """After commit: refresh the bidding profile and emit the rows' events, each with an id derived from its
    ledger row and the row's time (``emit_with_id``).

    The first call of a write and every replay of it call this: when the COMMIT reached Postgres but the
    answer was lost (Postgres restarting), Django runs no ``on_commit`` callback, so the first call
    emitted nothing; the client's retry is answered from the ledger and emits the same events with the
    same ids. ClickHouse (``ReplacingMergeTree`` by ``event_id``, reports ``FINAL``) keeps one of each."""
    events = [(event_type, stable_event_id("loyalty.ledger", entry.pk, event_type),
               (entry.created_at - _EPOCH) // timedelta(microseconds=1), fields)
              for entry in entries for event_type, fields in _ledger_events(entry)]

    def run() -> None:
        loyalty_profile_refresh(user_id=user_id)
        for event_type, event_id, timestamp_us, fields in events:
            emit_with_id(event_type, event_id=event_id, timestamp_us=timestamp_us, user_id=user_id, **fields)

    transaction.on_commit(run)


def _replay_ledger_events(user_id: str, ledger_entry_id: int | None) -> None:
    """A replayed answer: emit (again) the events of the write it answers for (see ``_after_commit_ledger``)."""
    entry = LedgerEntry.objects.filter(pk=ledger_entry_id).first() if ledger_entry_id else None
    if entry is not None:
        _after_commit_ledger(user_id, _written_together(entry))


def _tier_change_fields(*, before: str, after: str, reason: str) -> tuple[str, dict[str, Any]]:
    direction = "up" if rules.tier_rank(after) > rules.tier_rank(before) else "down"
    return "loyalty_tier_change", {"tier": str(after), "reason": reason, "extra": {"from": str(before), "direction": direction}}


def _tier_change_event(*, before: str, after: str, reason: str) -> tuple[str, dict[str, Any]]:
    """The tier-change event, counted in ``loyalty_tier_changes_total``."""
    event = _tier_change_fields(before=before, after=after, reason=reason)
    TIER_CHANGES.labels(event[1]["extra"]["direction"]).inc()
    return event


# --- accounts -----------------------------------------------------------------------------------
def _lock_account(user_id: str) -> LoyaltyAccount | None:
    return LoyaltyAccount.objects.select_for_update().filter(user_id=user_id).first()


def _lock_or_enrol(*, user_id: str, channel: str, now: datetime) -> tuple[LoyaltyAccount, bool]:
    """Lock the member's account, enrolling them (Green) first when they have none.

    ``INSERT .. ON CONFLICT DO NOTHING`` then ``SELECT .. FOR UPDATE``: two first earns of a new user
    at once create one account, and the second waits for the first's lock.
    """
    account = _lock_account(user_id)
    if account is not None:
        return account, False
    preferred = rules.CANONICAL_CHANNEL.get(channel, "")
    LoyaltyAccount.objects.bulk_create(
        [
            LoyaltyAccount(
                user_id=user_id,
                tier=Tier.GREEN,
                qualifying_period_start=now,
                qualifying_period_end=rules.period_end(now),
                enrolled_at=now,
                last_activity_at=now,
                enrolment_channel=channel,
                preferred_channel=preferred,
            )
        ],
        ignore_conflicts=True,
    )
    account = LoyaltyAccount.objects.select_for_update().get(user_id=user_id)
    enrolled = account.enrolled_at == now
    if enrolled:
        log.info("loyalty_enrolled", user_id=user_id, channel=channel)
    return account, enrolled


def _rollover_locked(account: LoyaltyAccount, *, now: datetime) -> tuple[str, dict[str, Any]] | None:
    """Roll every ended qualifying period of a locked account; return a tier-change event or None.

    The tier for the new period is the one the ended period's qualifying stars reach (a period with
    no stars after it means Green). Writes one ``rollover`` ledger row (0 stars).
    """
    if account.qualifying_period_end > now:
        return None
    before = account.tier
    start, end, qualifying = account.qualifying_period_start, account.qualifying_period_end, account.qualifying_stars
    periods = []
    while end <= now:
        periods.append({"start": start.isoformat(), "end": end.isoformat(), "qualifying_stars": qualifying})
        new_tier = rules.tier_for_qualifying(qualifying)
        start, end, qualifying = end, rules.period_end(end), 0
    LoyaltyAccount.objects.filter(pk=account.pk).update(
        tier=new_tier, qualifying_stars=0, qualifying_period_start=start, qualifying_period_end=end, updated_at=now
    )
    LedgerEntry.objects.create(
        account=account, kind=LedgerKind.ROLLOVER, stars=0, balance_after=account.balance, tier_after=new_tier,
        reason="Qualifying period ended", details={"tier_before": before, "periods": periods}, created_at=now,
    )
    account.tier, account.qualifying_stars = new_tier, 0
    account.qualifying_period_start, account.qualifying_period_end = start, end
    log.info("loyalty_period_rolled_over", user_id=account.user_id, tier_before=before, tier_after=new_tier,
             periods=len(periods))
    if new_tier != before:
        return _tier_change_event(before=before, after=new_tier, reason="period_rollover")
    return None


# --- earn ---------------------------------------------------------------------------------------
def _earn_replay(entry: LedgerEntry, request: dict[str, Any]) -> EarnResult:
    stored = {
        "amount_cents": entry.amount_cents,
        "channel": entry.channel,
        "is_referral": entry.details.get("is_referral", False),
        "is_digital": entry.details.get("is_digital", False),
    }
    differing = sorted(name for name, value in stored.items() if request[name] != value)
    if differing:
        raise Conflict(
            f"transaction_id {entry.transaction_id!r} was already credited with a different "
            f"{', '.join(differing)}.",
            field="transaction_id",
            code="idempotency_conflict",
        )
    EARNS.labels("replayed").inc()
    _after_commit_ledger(entry.account.user_id, _written_together(entry))
    return EarnResult(
        user_id=entry.account.user_id,
        stars_earned=entry.stars,
        new_balance=entry.balance_after,
        earn_rate_applied=entry.earn_rate,
        tier=entry.tier_after,
        tier_changed=entry.details.get("tier_changed", False),
        new_tier=entry.tier_after if entry.details.get("tier_changed") else None,
        transaction_id=entry.transaction_id,
        replayed=True,
    )


def loyalty_earn(
    *,
    user_id: str,
    amount_cents: int,
    channel: str,
    transaction_id: str,
    is_referral: bool = False,
    is_digital: bool = False,
) -> EarnResult:
    """Credit stars for a purchase (docs/RULES.md §2.2), enrolling an unknown user as Green.

    ``stars = ceil(ceil(amount_cents / 100) x rate)`` with
    ``rate = (tier + Σ(active promotion - 1) + Σ(channel bonus - 1)) x 2 if referral x 1.2 if digital``
    computed in Decimal; ``earn_rate_applied`` is that whole ``rate``. The rate uses the tier the
    member had before this purchase; an upgrade the purchase reaches applies at once to the account.

    Idempotent on ``(user_id, transaction_id)``: a replay returns the first result (``replayed=True``)
    and credits nothing; the same id with a different amount, channel or flags raises Conflict (409).
    """
    user_id = _clean_user_id(user_id)
    request = {
        "amount_cents": _clean_amount(amount_cents),
        "channel": _clean_channel(channel),
        "is_referral": _clean_flag(is_referral, "is_referral"),
        "is_digital": _clean_flag(is_digital, "is_digital"),
    }
    transaction_id = _clean_transaction_id(transaction_id)
    now = timezone.now()
    with transaction.atomic():
        account, enrolled = _lock_or_enrol(user_id=user_id, channel=request["channel"], now=now)
        previous = LedgerEntry.objects.filter(account=account, transaction_id=transaction_id).select_related("account").first()
        if previous is not None:
            return _earn_replay(previous, request)

        _rollover_locked(account, now=now)  # its ledger row stands for its event (_after_commit_ledger)

        promotions = list(selectors.active_promotions(now=now).values_list("pk", "multiplier"))
        bonuses = list(selectors.active_channel_bonuses(channel=request["channel"], now=now).values_list("pk", "multiplier"))
        rate = rules.earn_rate(
            tier=account.tier,
            promotion_multipliers=[m for _, m in promotions],
            channel_bonus_multipliers=[m for _, m in bonuses],
            is_referral=request["is_referral"],
            is_digital=request["is_digital"],
        )
        stars = rules.stars_for(amount_cents=request["amount_cents"], rate=rate)
        tier_before = account.tier
        tier_after = rules.tier_after_earn(tier_before, account.qualifying_stars + stars)
        tier_changed = tier_after != tier_before
        # The row is locked, so the values read above are current; F() keeps the update itself atomic.
        updates: dict[str, Any] = {
            "balance": F("balance") + stars,
            "qualifying_stars": F("qualifying_stars") + stars,
            "lifetime_stars": F("lifetime_stars") + stars,
            "tier": tier_after,
            "last_earn_at": now,
            "last_activity_at": now,
            "updated_at": now,
        }
        if not account.preferred_channel and request["channel"] in rules.CANONICAL_CHANNEL:
            updates["preferred_channel"] = rules.CANONICAL_CHANNEL[request["channel"]]
        LoyaltyAccount.objects.filter(pk=account.pk).update(**updates)
        new_balance = account.balance + stars
        entry = LedgerEntry.objects.create(
            account=account,
            kind=LedgerKind.EARN,
            stars=stars,
            balance_after=new_balance,
            transaction_id=transaction_id,
            amount_cents=request["amount_cents"],
            channel=request["channel"],
            earn_rate=rate,
            tier_after=tier_after,
            details={
                "base_stars": rules.base_stars(request["amount_cents"]),
                "is_referral": request["is_referral"],
                "is_digital": request["is_digital"],
                "promotions": [pk for pk, _ in promotions],
                "channel_bonuses": [pk for pk, _ in bonuses],
                "tier_before": tier_before,
                "tier_changed": tier_changed,
                "enrolled": enrolled,
            },
            created_at=now,
        )
        if tier_changed:
            _tier_change_event(before=tier_before, after=tier_after, reason="earn")  # counts it
        _after_commit_ledger(user_id, _written_together(entry))
        transaction.on_commit(lambda: (EARNS.labels("credited").inc(), STARS_EARNED.inc(stars)))
    log.info("loyalty_earned", user_id=user_id, stars=stars, balance=new_balance, tier=str(tier_after),
             transaction_id=transaction_id)
    return EarnResult(
        user_id=user_id,
        stars_earned=stars,
        new_balance=new_balance,
        earn_rate_applied=rate.quantize(RATE_QUANTUM),  # as stored on the ledger, so a replay is identical
        tier=str(tier_after),
        tier_changed=tier_changed,
        new_tier=str(tier_after) if tier_changed else None,
        transaction_id=transaction_id,
    )


# --- redeem -------------------------------------------------------------------------------------
def _redeem_locked(*, user_id: str, redemption: rules.Redemption, idempotency_key: str) -> RedeemResult:
    now = timezone.now()
    account = _lock_account(user_id)
    if account is None:
        REDEEM_REFUSED.labels("no_account").inc()
        raise NotFound(f"No loyalty account for user {user_id!r}.", field="user_id")
    _rollover_locked(account, now=now)  # its ledger row stands for its event (_after_commit_ledger)
    if rules.tier_rank(account.tier) < rules.tier_rank(redemption.min_tier):
        REDEEM_REFUSED.labels("tier_too_low").inc()
        raise ServiceError(
            f"Requires {_tier_label(redemption.min_tier)} tier, you are {_tier_label(account.tier)}",
            field="redemption_tier", code="tier_too_low", status_code=403,
        )
    if account.balance < redemption.stars:
        REDEEM_REFUSED.labels("insufficient_stars").inc()
        raise ServiceError(
            f"Insufficient stars: need {redemption.stars}, have {account.balance}",
            field="redemption_tier", code="insufficient_stars", status_code=422,
        )
    LoyaltyAccount.objects.filter(pk=account.pk).update(
        balance=F("balance") - redemption.stars,
        total_redemptions=F("total_redemptions") + 1,
        last_redeem_at=now,
        last_activity_at=now,
        updated_at=now,
    )
    new_balance = account.balance - redemption.stars
    entry = LedgerEntry.objects.create(
        account=account,
        kind=LedgerKind.REDEEM,
        stars=-redemption.stars,
        balance_after=new_balance,
        idempotency_key=idempotency_key,
        redemption_tier=redemption.key,
        tier_after=account.tier,
        details={"value": str(redemption.value)},
        created_at=now,
    )
    _after_commit_ledger(user_id, _written_together(entry))
    transaction.on_commit(lambda: (REDEMPTIONS.labels(redemption.key).inc(), STARS_REDEEMED.inc(redemption.stars)))
    log.info("loyalty_redeemed", user_id=user_id, redemption_tier=redemption.key, stars=redemption.stars,
             balance=new_balance)
    return RedeemResult(
        user_id=user_id,
        redemption_tier=redemption.key,
        stars_spent=redemption.stars,
        value=redemption.value,
        new_balance=new_balance,
        tier=str(account.tier),
        total_redemptions=account.total_redemptions + 1,
        ledger_entry_id=entry.pk,
    )


def loyalty_redeem(*, user_id: str, redemption_tier: str, idempotency_key: str) -> RedeemResult:
    """Spend stars on a reward of the catalogue (docs/RULES.md §2.4).

    Checks the tier (403 ``Requires Gold tier, you are Green``), then the balance (422
    ``Insufficient stars: need 200, have 150``), then deducts under the account's row lock, so
    concurrent redeems can never overdraw. Qualifying and lifetime stars are not reduced.
    Idempotent on ``idempotency_key``: a replay returns the first answer (or raises the first refusal);
    the same key for a different user or reward raises Conflict (409).
    """
    user_id = _clean_user_id(user_id)
    redemption = _clean_redemption(redemption_tier)
    key = validate_key(idempotency_key)
    outcome = idempotent_call(
        scope="loyalty.redeem",
        key=key,
        payload={"user_id": user_id, "redemption_tier": redemption.key},
        run=lambda: _redeem_locked(user_id=user_id, redemption=redemption, idempotency_key=key).as_json(),
    )
    if outcome.replayed:
        _replay_ledger_events(user_id, outcome.body.get("ledger_entry_id"))
    return RedeemResult.from_json(outcome.body, replayed=outcome.replayed)


# --- adjust -------------------------------------------------------------------------------------
def _adjust_locked(*, user_id: str, stars: int, reason: str, actor, idempotency_key: str) -> dict[str, Any]:
    now = timezone.now()
    account = _lock_account(user_id)
    if account is None:
        raise NotFound(f"No loyalty account for user {user_id!r}.", field="user_id")
    if account.balance + stars < 0:
        raise ServiceError(
            f"Insufficient stars: need {-stars}, have {account.balance}", field="stars", code="insufficient_stars",
            status_code=422,
        )
    LoyaltyAccount.objects.filter(pk=account.pk).update(balance=F("balance") + stars, updated_at=now)
    new_balance = account.balance + stars
    entry = LedgerEntry.objects.create(
        account=account, kind=LedgerKind.ADJUST, stars=stars, balance_after=new_balance,
        idempotency_key=idempotency_key, tier_after=account.tier, reason=reason,
        actor=actor if getattr(actor, "pk", None) else None, created_at=now,
    )
    _after_commit_ledger(user_id, [entry])
    log.info("loyalty_adjusted", user_id=user_id, stars=stars, balance=new_balance,
             actor=getattr(actor, "username", None), reason=reason)
    return asdict(AdjustResult(user_id=user_id, stars=stars, new_balance=new_balance, ledger_entry_id=entry.pk))


def loyalty_adjust(*, user_id: str, stars: int, reason: str, actor=None, idempotency_key: str | None = None) -> AdjustResult:
    """Correct a member's balance by ``stars`` (positive or negative) with a reason; writes an
    ``adjust`` ledger row. Only the spendable balance changes: qualifying and lifetime stars record
    purchases, so goodwill credits and corrections leave them (and the tier) alone. The balance can
    not go below zero. With ``idempotency_key`` a resubmission applies once. A person (``actor``)
    must hold the Admin role; ``actor=None`` is a system correction."""
    if actor is not None and not user_has_role(actor):
        raise PermissionDenied("Adjusting stars requires the Admin role.")
    user_id = _clean_user_id(user_id)
    if isinstance(stars, bool) or not isinstance(stars, int) or stars == 0 or abs(stars) > ADJUST_MAX_STARS:
        raise ServiceError(f"stars must be a non-zero whole number between -{ADJUST_MAX_STARS} and {ADJUST_MAX_STARS}.",
                           field="stars")
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError("A reason is required for an adjustment.", field="reason", code="required")
    if len(reason) > 255:
        raise ServiceError("reason must be at most 255 characters.", field="reason")

    def run() -> dict[str, Any]:
        return _adjust_locked(user_id=user_id, stars=stars, reason=reason, actor=actor, idempotency_key=key or "")

    key = idempotency_key.strip() if idempotency_key else ""
    if key:
        outcome = idempotent_call(
            scope="loyalty.adjust", key=key, payload={"user_id": user_id, "stars": stars, "reason": reason}, run=run
        )
        if outcome.replayed:
            _replay_ledger_events(user_id, outcome.body.get("ledger_entry_id"))
        return AdjustResult(**{**outcome.body, "replayed": outcome.replayed})
    with transaction.atomic():
        return AdjustResult(**run())


# --- reward signals -----------------------------------------------------------------------------
def _signal_message(signal: RewardSignal) -> tuple[str, bytes]:
    payload = {
        "signal_id": str(signal.signal_id),
        "user_id": signal.user_id,
        "offer_id": signal.offer_id,
        "signal_type": signal.signal_type,
        "tier": signal.tier,
        "reward": float(signal.reward),
        "created_at": signal.created_at.isoformat(),
    }
    return str(signal.signal_id), orjson.dumps(payload)


def loyalty_publish_signals(*, signal_ids: list[int]) -> int:
    """Publish the given stored signals that are not yet published; mark the acknowledged ones.
    Returns how many were acknowledged. NATS down: the signals stay ``published=False``."""
    signals = list(RewardSignal.objects.filter(pk__in=signal_ids, published=False).order_by("pk"))
    if not signals:
        return 0
    by_id = {str(s.signal_id): s for s in signals}
    RewardSignal.objects.filter(pk__in=[s.pk for s in signals]).update(publish_attempts=F("publish_attempts") + 1)
    try:
        acked = publisher.publish(_signal_message(s) for s in signals)
        failure = None
    except publisher.PublishError as exc:
        acked, failure = exc.acked, exc
    if acked:
        RewardSignal.objects.filter(pk__in=[by_id[a].pk for a in acked]).update(published=True, published_at=timezone.now())
        SIGNALS_PUBLISHED.inc(len(acked))
    if failure is not None:
        SIGNAL_PUBLISH_FAILURES.inc()
        log.warning("loyalty_signal_publish_failed", pending=len(signals) - len(acked), error=str(failure))
    return len(acked)


def _emit_reward_signal(signal: RewardSignal) -> None:
    """The signal as an analytics event: the bid model's trainer joins it to impressions by
    (user, offer) within its window (apps.training). Its id and time come from the stored row."""
    emit_with_id(
        "reward_signal", event_id=stable_event_id("loyalty.reward_signal", signal.signal_id),
        timestamp_us=(signal.created_at - _EPOCH) // timedelta(microseconds=1),
        user_id=signal.user_id, offer_id=signal.offer_id, reason=str(signal.signal_type),
        amount=float(signal.reward), tier=str(signal.tier),
    )


def loyalty_reward_signal(
    *,
    user_id: str,
    offer_id: str,
    signal_type: str,
    tier: str | None = None,
    idempotency_key: str | None = None,
) -> RewardSignalResult:
    """Store a training signal with the server-side reward (clicked +1.0, redeemed +2.0, ignored -0.1)
    and publish it on NATS ``loyalty.reward-signals`` after commit. ``tier`` defaults to the
    member's current tier (Green when not enrolled). A failed publish leaves the signal stored with
    ``published=False`` for the beat task to retry. With ``idempotency_key`` a retry stores it once."""
    user_id = _clean_user_id(user_id)
    if not isinstance(offer_id, str) or not offer_id.strip() or len(offer_id.strip()) > OFFER_ID_MAX:
        raise ServiceError(f"offer_id is required (at most {OFFER_ID_MAX} characters).", field="offer_id")
    offer_id = offer_id.strip()
    if signal_type not in SignalType.values:
        raise ServiceError(f"Unknown signal_type {signal_type!r}; choose one of: {', '.join(SignalType.values)}.",
                           field="signal_type")
    if tier is not None and tier not in Tier.values:
        raise ServiceError(f"Unknown tier {tier!r}; choose one of: {', '.join(Tier.values)}.", field="tier")

    def run() -> dict[str, Any]:
        account = selectors.loyalty_account_find(user_id=user_id)
        signal = RewardSignal.objects.create(
            signal_id=uuid.uuid4(),
            user_id=user_id,
            offer_id=offer_id,
            signal_type=signal_type,
            tier=tier or (account.tier if account else Tier.GREEN),
            reward=rules.SIGNAL_REWARDS[signal_type],
        )
        REWARD_SIGNALS.labels(signal_type).inc()
        transaction.on_commit(lambda: loyalty_publish_signals(signal_ids=[signal.pk]))
        transaction.on_commit(lambda: _emit_reward_signal(signal))
        return RewardSignalResult(
            signal_id=str(signal.signal_id), user_id=user_id, offer_id=offer_id, signal_type=signal_type,
            tier=str(signal.tier), reward=signal.reward,
        ).as_json()

    key = idempotency_key.strip() if idempotency_key else ""
    payload = {"user_id": user_id, "offer_id": offer_id, "signal_type": signal_type, "tier": tier}
    if key:
        outcome = idempotent_call(scope="loyalty.reward-signal", key=key, payload=payload, run=run, success_status=202)
        body, replayed = outcome.body, outcome.replayed
    else:
        with transaction.atomic():
            body, replayed = run(), False
    return RewardSignalResult(**{**body, "reward": Decimal(body["reward"]), "replayed": replayed})


def loyalty_republish_pending_signals(*, older_than_seconds: int = 30, limit: int = 500) -> int:
    """Retry signals left unpublished (NATS was down). Signals younger than ``older_than_seconds``
    are skipped: their own after-commit publish may still be running. Returns how many went out."""
    cutoff = timezone.now() - timedelta(seconds=older_than_seconds)
    ids = list(
        RewardSignal.objects.filter(published=False, created_at__lte=cutoff).order_by("pk").values_list("pk", flat=True)[:limit]
    )
    return loyalty_publish_signals(signal_ids=ids) if ids else 0


# --- scheduled work -----------------------------------------------------------------------------
def _due_batches(queryset_for_now, *, batch_size: int = 500):
    """Yield primary keys of due accounts in batches until none is due. Each processed account
    leaves the due set (rolled over, expired, or found no longer due under its lock), so this ends."""
    seen: set[int] = set()
    while True:
        batch = [pk for pk in queryset_for_now().values_list("pk", flat=True)[:batch_size] if pk not in seen]
        if not batch:
            return
        seen.update(batch)
        yield from batch


def loyalty_rollover_due(*, now: datetime | None = None) -> int:
    """Roll over every account whose qualifying period has ended (tier re-evaluation; the only
    place tiers go down). One short transaction per account; safe to run concurrently and again.
    Returns how many accounts were rolled over."""
    now = now or timezone.now()
    done = 0
    for pk in _due_batches(lambda: selectors.accounts_due_for_rollover(now=now)):
        with transaction.atomic():
            account = LoyaltyAccount.objects.select_for_update().get(pk=pk)
            if account.qualifying_period_end > now:
                continue  # rolled by an earn in the meantime
            event = _rollover_locked(account, now=now)
            _after_commit(account.user_id, *([event] if event else []))
            done += 1
    if done:
        log.info("loyalty_rollover_done", accounts=done)
    return done


def loyalty_expire_inactive(*, now: datetime | None = None) -> int:
    """Expire the whole balance of Green accounts with no earn or redeem for 180 days, one
    ``expire`` ledger row each. Qualifying and lifetime stars stay. Returns accounts expired."""
    now = now or timezone.now()
    done = 0
    for pk in _due_batches(lambda: selectors.accounts_due_for_expiry(now=now)):
        with transaction.atomic():
            account = LoyaltyAccount.objects.select_for_update().get(pk=pk)
            if not selectors.accounts_due_for_expiry(now=now).filter(pk=pk).exists():
                continue  # earned, redeemed or upgraded in the meantime
            stars = account.balance
            LoyaltyAccount.objects.filter(pk=pk).update(balance=F("balance") - stars, updated_at=now)
            LedgerEntry.objects.create(
                account=account, kind=LedgerKind.EXPIRE, stars=-stars, balance_after=0, tier_after=account.tier,
                reason=f"No activity for {rules.GREEN_EXPIRY_DAYS} days",
                details={"last_activity_at": account.last_activity_at.isoformat()}, created_at=now,
            )
            _after_commit(account.user_id, ("loyalty_expire", {"stars": stars, "tier": str(account.tier)}))
            transaction.on_commit(lambda stars=stars: STARS_EXPIRED.inc(stars))
            done += 1
    if done:
        log.info("loyalty_expiry_done", accounts=done)
    return done


def loyalty_purge_idempotency_records() -> int:
    """Delete loyalty Idempotency-Key answers older than ``LOYALTY_IDEMPOTENCY_RETENTION_DAYS``."""
    return idempotency_purge(scope_prefix="loyalty.", older_than=timedelta(days=settings.LOYALTY_IDEMPOTENCY_RETENTION_DAYS))
