"""Celery tasks of the suppression slice: thin, idempotent, taking ids."""
from celery import shared_task

from . import services


@shared_task(name="suppression.purge_expired", ignore_result=True)
def purge_expired_suppressions() -> int:
    """Delete entries whose expiry has passed (each leaves a ``purged`` audit row)."""
    return services.suppression_purge_expired()


@shared_task(name="suppression.run_import", ignore_result=True, acks_late=True)
def run_suppression_import(import_id: int) -> None:
    """Process a queued CSV import; a redelivery resumes after the last committed chunk."""
    services.suppression_import_run(import_id=import_id)
