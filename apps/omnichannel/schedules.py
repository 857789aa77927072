"""Periodic omnichannel work (merged into the beat schedule by config.celery)."""
BEAT_SCHEDULE = {
    "omnichannel-recover": {
        "task": "omnichannel.recover",
        "schedule": 300.0,
        "options": {"expires": 240},
    },
}
