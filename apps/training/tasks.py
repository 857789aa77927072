"""Celery tasks of the training slice (thin: the work is in services.py)."""
from __future__ import annotations

import structlog
from celery import shared_task

log = structlog.get_logger(__name__)


@shared_task(name="training.train_and_publish", ignore_result=True)
def train_and_publish() -> dict:
    """Beat (daily): train a challenger on the last 7 days and publish it if it beats the model in
    service (``apps.training.services.model_train``). Too little data is an expected outcome, not an
    error: logged and reported, nothing published, no retry."""
    from apps.inference.registry import PROJECT_ROOT
    from apps.training.services import NotEnoughData, model_train

    try:
        outcome = model_train(out_dir=PROJECT_ROOT / "var" / "training", publish=True)
    except NotEnoughData as exc:
        log.info("training_skipped", reason=str(exc))
        return {"trained": False, "reason": str(exc)}
    sel = outcome.selection
    return {"trained": True, "version": outcome.result.weights.version, "published": sel.published,
            "reason": sel.reason, "impressions": outcome.impressions}
