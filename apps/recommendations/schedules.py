"""Periodic work of the recommendations slice (merged into the beat schedule by ``config.celery``).
Both periods are configurable: the rebuild every ``RECS_REBUILD_EVERY_MINUTES`` (a crontab), trending
every ``RECS_TRENDING_REFRESH_SECONDS`` (under a minute, so new interactions reach it within one).
Each entry expires before the next is due, so a backlog never runs a stale job twice."""
from celery.schedules import crontab
from django.conf import settings

_EVERY = settings.RECS_REBUILD_EVERY_MINUTES

BEAT_SCHEDULE = {
    "recommendations-rebuild": {
        "task": "recommendations.rebuild",
        "schedule": (crontab(minute=f"*/{_EVERY}") if _EVERY < 60
                     else crontab(minute=23, hour=f"*/{_EVERY // 60}")),
        "options": {"expires": _EVERY * 60 * 0.9},
    },
    # A build whose process died is shown failed within a minute of its lease expiring.
    "recommendations-reap-abandoned-builds": {
        "task": "recommendations.reap_abandoned_builds",
        "schedule": crontab(minute="*"),
        "options": {"expires": 50},
    },
    "recommendations-refresh-trending": {
        "task": "recommendations.refresh_trending",
        "schedule": float(settings.RECS_TRENDING_REFRESH_SECONDS),
        "options": {"expires": settings.RECS_TRENDING_REFRESH_SECONDS * 0.9},
    },
}
