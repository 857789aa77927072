"""Thin, idempotent Celery tasks over apps.loyalty.services (scheduled in schedules.py)."""
from celery import shared_task

from apps.loyalty import services


@shared_task(name="loyalty.rollover_periods", ignore_result=True)
def rollover_periods() -> int:
    """Roll over ended qualifying periods (tier re-evaluation; the only place tiers go down)."""
    return services.loyalty_rollover_due()


@shared_task(name="loyalty.expire_inactive", ignore_result=True)
def expire_inactive() -> int:
    """Expire the stars of Green members inactive for 180 days."""
    return services.loyalty_expire_inactive()


@shared_task(name="loyalty.republish_reward_signals", ignore_result=True)
def republish_reward_signals() -> int:
    """Publish reward signals that could not be published when they were stored (NATS was down)."""
    return services.loyalty_republish_pending_signals()


@shared_task(name="loyalty.purge_idempotency_records", ignore_result=True)
def purge_idempotency_records() -> int:
    """Delete loyalty Idempotency-Key answers past their retention."""
    return services.loyalty_purge_idempotency_records()


@shared_task(name="loyalty.keep_profiles_alive", ignore_result=True)
def keep_profiles_alive() -> int:
    return services.loyalty_profiles_keep_alive()
