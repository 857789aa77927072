"""Periodic loyalty work (merged into the beat schedule by config.celery). Every task is safe to run
late, twice or concurrently: each account is re-checked under its row lock."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Periods end at each member's enrolment anniversary: hourly keeps a downgrade within the hour.
    "loyalty-rollover-periods": {
        "task": "loyalty.rollover_periods",
        "schedule": crontab(minute=5),
        "options": {"expires": 50 * 60},
    },
    "loyalty-expire-inactive": {
        "task": "loyalty.expire_inactive",
        "schedule": crontab(minute=20, hour=3),
        "options": {"expires": 6 * 3600},
    },
    "loyalty-republish-reward-signals": {
        "task": "loyalty.republish_reward_signals",
        "schedule": crontab(),  # every minute
        "options": {"expires": 55},
    },
    # Profiles expire an hour after their last write: rewrite them well before that.
    "loyalty-keep-profiles-alive": {
        "task": "loyalty.keep_profiles_alive",
        "schedule": crontab(minute="*/20"),
        "options": {"expires": 10 * 60},
    },
    "loyalty-purge-idempotency-records": {
        "task": "loyalty.purge_idempotency_records",
        "schedule": crontab(minute=40, hour=4),
        "options": {"expires": 6 * 3600},
    },
}
