"""Periodic platform work (merged into the beat schedule by config.celery)."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    "core-purge-outbound-calls": {
        "task": "core.purge_outbound_calls",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 3600},
    },
    "core-purge-auth-audit": {
        "task": "core.purge_auth_audit",
        "schedule": crontab(hour=3, minute=29),
        "options": {"expires": 3600},
    },
}
