"""Periodic work of the suppression slice (merged into the beat schedule by ``config.celery``)."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    "suppression-purge-expired": {
        "task": "suppression.purge_expired",
        "schedule": crontab(minute=7),  # hourly, off the top of the hour
        # A purge that waited an hour in the queue is superseded by the next one.
        "options": {"expires": 55 * 60},
    },
}
