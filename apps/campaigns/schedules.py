"""Beat entries of the campaigns slice (merged by ``config.celery``).

Every 15 s: a campaign goes live / completes at most ~15 s after its time. Each run expires before
the next one is due, so a backlog after a stalled worker does not pile up duplicate scans. Hourly: stored answers of Idempotency-Key creates past their 7 days are deleted. Every minute:
notification emails still pending (their enqueue failed, or the retries ran out) are sent."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    "campaigns-go-live-due": {
        "task": "campaigns.go_live_due",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    "campaigns-complete-due": {
        "task": "campaigns.complete_due",
        "schedule": 15.0,
        "options": {"expires": 14},
    },
    "campaigns-purge-idempotency-records": {
        "task": "campaigns.purge_idempotency_records",
        "schedule": crontab(minute=13),  # hourly
        "options": {"expires": 3500},
    },
    "campaigns-notification-emails-pending": {
        "task": "campaigns.notification_emails_pending",
        "schedule": crontab(),  # every minute
        "options": {"expires": 55},
    },
}
