"""Beat entries of the analytics slice (merged by config/celery.py)."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    "analytics-consume-events": {
        "task": "analytics.consume_events",
        "schedule": 1.0,
        # a tick that waited longer than a second is superseded by the next one
        "options": {"expires": 1.0},
    },
    "analytics-drop-expired-partitions": {
        "task": "analytics.drop_expired_partitions",
        "schedule": crontab(hour=3, minute=17),
        "options": {"expires": 3600},
    },
}
