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

The package re-exports every public name, so callers import ``apps.loyalty.services`` as before:
``earn``, ``redeem`` (redeem and adjust), ``reward_signals``, ``maintenance`` (beat work),
``accounts`` (lock, enrol, rollover), ``effects`` (after-commit profile refresh and events) and
``results``. The input checks are in ``apps.loyalty.validation``.
"""
from apps.core.exceptions import ServiceError  # re-exported: callers catch services.ServiceError
from apps.loyalty.validation import ADJUST_MAX_STARS, OFFER_ID_MAX, TRANSACTION_ID_MAX, USER_ID_MAX

from .earn import EARNS, RATE_QUANTUM, STARS_EARNED, loyalty_earn
from .effects import PROFILE_REFRESH_FAILURES, TIER_CHANGES, loyalty_profile_refresh, loyalty_profiles_keep_alive
from .maintenance import (
    STARS_EXPIRED,
    loyalty_expire_inactive,
    loyalty_purge_idempotency_records,
    loyalty_rollover_due,
)
from .redeem import REDEEM_REFUSED, REDEMPTIONS, STARS_REDEEMED, loyalty_adjust, loyalty_redeem
from .results import AdjustResult, EarnResult, RedeemResult, RewardSignalResult
from .reward_signals import (
    REWARD_SIGNALS,
    SIGNAL_PUBLISH_FAILURES,
    SIGNALS_PUBLISHED,
    _signal_message,
    loyalty_publish_signals,
    loyalty_republish_pending_signals,
    loyalty_reward_signal,
)

__all__ = [
    "ADJUST_MAX_STARS", "EARNS", "OFFER_ID_MAX", "PROFILE_REFRESH_FAILURES", "RATE_QUANTUM", "REDEEM_REFUSED",
    "REDEMPTIONS", "REWARD_SIGNALS", "SIGNALS_PUBLISHED", "SIGNAL_PUBLISH_FAILURES", "STARS_EARNED", "STARS_EXPIRED",
    "STARS_REDEEMED", "ServiceError", "TIER_CHANGES", "TRANSACTION_ID_MAX", "USER_ID_MAX", "AdjustResult", "EarnResult",
    "RedeemResult", "RewardSignalResult", "_signal_message", "loyalty_adjust", "loyalty_earn",
    "loyalty_expire_inactive", "loyalty_profile_refresh", "loyalty_profiles_keep_alive", "loyalty_publish_signals",
    "loyalty_purge_idempotency_records", "loyalty_redeem", "loyalty_republish_pending_signals",
    "loyalty_reward_signal", "loyalty_rollover_due",
]
