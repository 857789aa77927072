"""Celery application. Periodic work is declared in code: each installed app's ``schedules.py``
exports ``BEAT_SCHEDULE`` and they are merged here, so adding an app with a ``schedules`` module is
all it takes (no second list). Intervals of a minute or more are crontab entries in those modules."""
import os
from importlib import import_module

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("campaign_express")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _app_module(entry: str) -> str:
    """The package of an INSTALLED_APPS entry (a dotted AppConfig path names its class last)."""
    try:
        import_module(entry)
        return entry
    except ImportError:
        return entry.rsplit(".", 2)[0]


def beat_schedules(installed_apps=None) -> list[tuple[str, dict]]:
    """(app package, its ``BEAT_SCHEDULE``) of each installed app that has a ``schedules`` module, in
    INSTALLED_APPS order."""
    from django.conf import settings
    from django.utils.module_loading import module_has_submodule

    found = []
    for entry in settings.INSTALLED_APPS if installed_apps is None else installed_apps:
        name = _app_module(entry)
        if module_has_submodule(import_module(name), "schedules"):
            found.append((name, import_module(f"{name}.schedules").BEAT_SCHEDULE))
    return found


def _beat_schedule(installed_apps=None) -> dict:
    schedule: dict = {}
    for name, entries in beat_schedules(installed_apps):
        for key, entry in entries.items():
            if key in schedule:
                raise RuntimeError(f"beat entry {key!r} of {name} is declared twice")
            schedule[key] = entry
    return schedule


app.conf.beat_schedule = _beat_schedule()
