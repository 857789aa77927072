"""Periodic bidding work: thin, idempotent tasks that call one service each."""
from __future__ import annotations

from celery import shared_task

from . import services


@shared_task(name="bidding.refresh_offer_snapshot", ignore_result=True)
def refresh_offer_snapshot() -> bool:
    """Rebuild the live-offer snapshot (a safety net: campaign changes already trigger it on commit)."""
    return services.offer_snapshot_refresh()


@shared_task(name="bidding.flush_spend", ignore_result=True)
def flush_spend() -> int:
    """Move win spend counted in Redis into Postgres (exactly once) and complete spent campaigns."""
    return services.spend_flush().batches
