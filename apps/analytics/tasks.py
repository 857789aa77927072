"""Celery tasks of the analytics pipeline (thin: the work is in pipeline.py and services.py)."""
from __future__ import annotations

from celery import shared_task

from apps.analytics import pipeline, services


@shared_task(name="analytics.consume_events", ignore_result=True)
def consume_events() -> dict:
    """Move events from the Redis stream into ClickHouse (beat, every second; see pipeline.py)."""
    result = pipeline.consume()
    return {"batches": result.batches, "events": result.events, "claimed": result.claimed, "error": result.error}


@shared_task(name="analytics.drop_expired_partitions", ignore_result=True)
def drop_expired_partitions() -> list[str]:
    """Retention (beat, daily): drop monthly partitions older than ANALYTICS_RETENTION_DAYS, and forget
    stream consumers of worker processes that are long gone."""
    dropped = services.partitions_drop_expired()
    dropped += services.partitions_drop_expired(table="bid_inputs")
    pipeline.Writer().forget_idle_consumers()
    return dropped
