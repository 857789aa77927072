"""What the loyalty services answer (frozen dataclasses; the ones stored as idempotent answers know
their JSON form)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from typing import Any, get_type_hints


class _StoredAnswer:
    """A result stored as an idempotent answer. Its JSON form has each Decimal field as a string and
    no ``replayed`` flag (whoever reads the stored answer back knows whether it is a replay)."""

    @classmethod
    def _decimal_fields(cls) -> list[str]:
        hints = get_type_hints(cls)
        return [f.name for f in fields(cls) if hints[f.name] is Decimal]

    def as_json(self) -> dict[str, Any]:
        body = asdict(self)
        body.pop("replayed")
        for name in self._decimal_fields():
            body[name] = str(body[name])
        return body

    @classmethod
    def from_json(cls, body: dict[str, Any], *, replayed: bool):
        decimals = {name: Decimal(body[name]) for name in cls._decimal_fields()}
        return cls(**{**body, **decimals, "replayed": replayed})


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
class RedeemResult(_StoredAnswer):
    user_id: str
    redemption_tier: str
    stars_spent: int
    value: Decimal
    new_balance: int
    tier: str
    total_redemptions: int
    ledger_entry_id: int
    replayed: bool = False


@dataclass(frozen=True)
class AdjustResult:
    user_id: str
    stars: int
    new_balance: int
    ledger_entry_id: int
    replayed: bool = False


@dataclass(frozen=True)
class RewardSignalResult(_StoredAnswer):
    signal_id: str
    user_id: str
    offer_id: str
    signal_type: str
    tier: str
    reward: Decimal
    replayed: bool = False

