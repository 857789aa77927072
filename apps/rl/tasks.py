"""Thin, idempotent Celery tasks over apps.rl.services (scheduled in schedules.py)."""
from celery import shared_task


@shared_task(name="rl.expire_decisions", ignore_result=True)
def expire_decisions() -> int:
    """Close as failures the decisions whose reward wait time has passed."""
    from apps.rl import services

    return services.rl_expire_due()


@shared_task(name="rl.consume_feedback", ignore_result=True)
def consume_feedback() -> int:
    """Close decisions from loyalty reward signals and email clicks (no decision id: latest open one)."""
    from apps.rl import services

    return services.rl_feedback_poll()


@shared_task(name="rl.offerfit_reward", bind=True, ignore_result=True, max_retries=5)
def offerfit_reward(self, decision_pk: int) -> None:
    """Forward a closed OfferFit-served decision's reward to OfferFit (``clip(value / 2, −1, 1)``)."""
    from apps.core.outbound import OutboundError
    from apps.rl import offerfit
    from apps.rl.models import Decision

    decision = Decision.objects.filter(pk=decision_pk).first()
    if decision is None or not decision.offerfit_event_id:
        return
    try:
        offerfit.reward(event_id=decision.offerfit_event_id, value=decision.reward_value or 0.0)
    except OutboundError as exc:
        if not exc.retryable:
            raise
        raise self.retry(exc=exc, countdown=exc.retry_after or 30 * (self.request.retries + 1)) from exc


@shared_task(name="rl.sync_catalog", ignore_result=True)
def sync_catalog() -> int:
    """Push the live offers to OfferFit as actions with features (nothing when OfferFit is off)."""
    from apps.rl import services

    return services.rl_sync_catalog()
