"""What the loyalty services answer (frozen dataclasses; the ones stored as idempotent answers know
their JSON form)."""
from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any


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

