"""Periodic decision work (merged into the beat schedule by config.celery). Both tasks are safe to
run late, twice or concurrently: closing is a conditional update and each feedback event closes at
most one decision."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    "rl-expire-decisions": {
        "task": "rl.expire_decisions",
        "schedule": crontab(),  # every minute
        "options": {"expires": 55},
    },
    "rl-sync-catalog": {
        "task": "rl.sync_catalog",
        "schedule": crontab(minute=15),  # hourly; a no-op while OfferFit is off
        "options": {"expires": 50 * 60},
    },
    "rl-consume-feedback": {
        "task": "rl.consume_feedback",
        "schedule": 10.0,
        "options": {"expires": 9},
    },
}
