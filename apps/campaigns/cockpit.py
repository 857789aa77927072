"""Read-side figures of the campaign cockpit (issue 19): pacing, flight dates, one date format.

Pacing compares the share of the budget spent with the share of the flight elapsed; it is flagged
when they differ by more than ``settings.CAMPAIGN_PACING_MARGIN_PCT`` percentage points (over: spending
ahead of time, the budget runs out early; under: behind, the budget will be left over). Spend is the
bidding slice's one number (``apps.bidding.selectors.campaign_spend``: Redis first).
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings

DATE_FORMAT = "%Y-%m-%d"  # the one date format of the cockpit pages (ISO 8601, UTC)
DATETIME_FORMAT = "%Y-%m-%d %H:%M UTC"
UTC = dt.timezone.utc


def fmt_date(value: dt.datetime | dt.date | None) -> str:
    if value is None:
        return "—"
    if isinstance(value, dt.datetime):
        value = value.astimezone(UTC)
    return value.strftime(DATE_FORMAT)


def fmt_datetime(value: dt.datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime(DATETIME_FORMAT)


def fmt_pct(value: float | None, digits: int = 1) -> str:
    """A fraction (0.123) as a percent ("12.3 %"); None as "—"."""
    return "—" if value is None else f"{100 * value:.{digits}f} %"


@dataclass(frozen=True)
class Pacing:
    budget_share: float  # spent / budget (0..)
    flight_share: float  # elapsed / flight length (0..1)
    flag: str  # "" on pace, "over" or "under"

    @property
    def gap_points(self) -> float:
        return 100 * (self.budget_share - self.flight_share)

    def label(self) -> str:
        return f"{100 * self.budget_share:.0f} % of budget / {100 * self.flight_share:.0f} % of flight"


def pacing(*, budget: Decimal, spent: Decimal, start_at: dt.datetime, end_at: dt.datetime,
           now: dt.datetime | None = None, margin_pct: float | None = None) -> Pacing:
    """Pacing of a campaign at ``now`` (see the module docstring). Before the start nothing is flagged
    unless something was spent; after the end the flight share is 100 %."""
    now = now or dt.datetime.now(UTC)
    margin = settings.CAMPAIGN_PACING_MARGIN_PCT if margin_pct is None else margin_pct
    length = (end_at - start_at).total_seconds()
    elapsed = (now - start_at).total_seconds()
    flight = 0.0 if length <= 0 else min(max(elapsed / length, 0.0), 1.0)
    share = float(spent / budget) if budget else 0.0
    gap = 100 * (share - flight)
    flag = ""
    if now >= start_at or share > 0:
        flag = "over" if gap > margin else "under" if gap < -margin else ""
    return Pacing(budget_share=share, flight_share=flight, flag=flag)
