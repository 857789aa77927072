"""Periodic omnichannel work (merged into the beat schedule by config.celery)."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    "omnichannel-recover": {
        "task": "omnichannel.recover",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 240},
    },
    "omnichannel-purge-idempotency-records": {
        "task": "omnichannel.purge_idempotency_records",
        "schedule": crontab(hour=3, minute=41),
        "options": {"expires": 3600},
    },
}
