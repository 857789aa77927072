"""Celery application. Periodic work is declared in code: each app's ``schedules.py`` exports
``BEAT_SCHEDULE`` and they are merged here."""
import importlib
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("campaign_express")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

BEAT_APPS = ["campaigns", "loyalty", "suppression", "omnichannel", "analytics", "bidding", "training"]


def _beat_schedule() -> dict:
    schedule: dict = {}
    for name in BEAT_APPS:
        try:
            module = importlib.import_module(f"apps.{name}.schedules")
        except ModuleNotFoundError as exc:
            if exc.name != f"apps.{name}.schedules":
                raise
            continue
        schedule.update(getattr(module, "BEAT_SCHEDULE", {}))
    return schedule


app.conf.beat_schedule = _beat_schedule()
