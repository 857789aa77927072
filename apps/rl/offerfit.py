"""The OfferFit-style decision client (Personalizer v1.0 rank/reward shape; see
/work/shared/notes/integrations-wire-formats.md §2). Off unless OFFERFIT_API_URL and OFFERFIT_API_KEY
are set; built on the shared outbound toolkit (apps/core/outbound) once it is on main."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings


@dataclass(frozen=True)
class Ranking:
    offer_id: str
    propensity: float
    event_id: str


class Fallback(Exception):
    """OfferFit gave no usable answer; ``reason`` (off, timeout, error, breaker_open, bad_answer) is logged
    on the decision and Thompson answers."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason


def is_configured() -> bool:
    return bool(settings.OFFERFIT_API_URL and settings.OFFERFIT_API_KEY)


def rank(*, event_id: str, context: dict[str, Any], candidates: list[dict[str, Any]]) -> Ranking:
    """Ask OfferFit to rank ``candidates``; raises :class:`Fallback` when it cannot answer in budget."""
    if not is_configured():
        raise Fallback("off")
    raise Fallback("off", "client not built yet")


def reward(*, event_id: str, value: float) -> None:
    """Forward a reward (``clip(value / 2, -1, 1)``) for an OfferFit-served decision."""
    if not is_configured():
        return
