"""Input checks of the loyalty slice (the API validates too; other slices call the services directly,
so the services check again). A refusal is a ``ServiceError`` naming the field."""
from __future__ import annotations

import re
from typing import Any

from django.conf import settings

from apps.core.exceptions import ServiceError
from apps.core.identifiers import USER_ID_MAX_LENGTH, clean_user_id
from apps.loyalty import rules

USER_ID_MAX = USER_ID_MAX_LENGTH
TRANSACTION_ID_MAX = 128
OFFER_ID_MAX = 64
ADJUST_MAX_STARS = 1_000_000
_CHANNEL_RE = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


def _clean_user_id(user_id: Any) -> str:
    """The platform's one user-id rule (``apps.core.identifiers``)."""
    return clean_user_id(user_id)


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

