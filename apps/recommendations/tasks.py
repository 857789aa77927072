"""Celery tasks of the recommendations slice: thin, idempotent."""
from celery import shared_task


@shared_task(name="recommendations.rebuild", ignore_result=True)
def rebuild_recommendations() -> str | None:
    """Recompute every model from all interactions and swap it in (``services.recommendations_rebuild``);
    None when another rebuild was running."""
    from . import services

    build = services.recommendations_rebuild()
    return build.version if build is not None else None


@shared_task(name="recommendations.reap_abandoned_builds", ignore_result=True)
def reap_abandoned_builds() -> int:
    """Mark failed the builds left "running" by a process that died (their lease expired)."""
    from . import services

    return services.recommendations_builds_reap()


@shared_task(name="recommendations.refresh_trending", ignore_result=True)
def refresh_trending() -> int:
    from . import services

    return len(services.trending_refresh().items)


@shared_task(name="recommendations.run_catalog_import", ignore_result=True, acks_late=True)
def run_catalog_import(import_id: int) -> None:
    """Process a queued catalogue import; a redelivery resumes after the last committed chunk."""
    from . import services

    services.catalog_import_run(import_id=import_id)
