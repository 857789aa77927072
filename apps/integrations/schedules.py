"""Periodic integration work (merged into the beat schedule by config.celery)."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    # Asana/Jira status of the items awaiting a decision; each run expires before the next is due.
    "integrations-sync-approval-status": {
        "task": "integrations.sync_approval_status",
        "schedule": crontab(minute="*"),
        "options": {"expires": 50},
    },
    # DAM validity of imported creatives (AEM expiry/status, Bynder archive/limited, Aprimo status).
    "integrations-sync-creative-validity": {
        "task": "integrations.sync_creative_validity",
        "schedule": crontab(minute="*/15"),
        "options": {"expires": 600},
    },
    # Closed hours to Power BI: a quarter past each hour (the close delay is 10 minutes).
    "integrations-push-powerbi": {
        "task": "integrations.push_powerbi_all",
        "schedule": crontab(minute=15),
        "options": {"expires": 3000},
    },
}
