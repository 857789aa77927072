"""Periodic omnichannel work (merged into the beat schedule by config.celery)."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    "omnichannel-recover": {
        "task": "omnichannel.recover",
        "schedule": crontab(minute="*/5"),
        "options": {"expires": 240},
    },
}
