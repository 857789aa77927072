"""Beat entries of the training slice (merged by ``config.celery``): one champion/challenger round a
day, off-peak; it expires long before the next is due."""
from celery.schedules import crontab

BEAT_SCHEDULE = {
    "training-train-and-publish": {
        "task": "training.train_and_publish",
        "schedule": crontab(hour=4, minute=5),
        "options": {"expires": 3600},
    },
}
