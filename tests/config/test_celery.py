"""config/celery.py: the beat schedule is every installed app's ``schedules.BEAT_SCHEDULE`` (no second
list), intervals of a minute or more are crontab entries, and no entry outlives its next run."""
from __future__ import annotations

from importlib import import_module

import pytest
from celery.schedules import crontab
from django.conf import settings

from config.celery import _beat_schedule, app, beat_schedules
from tests.support.beat import min_period_seconds

SLICES_WITH_SCHEDULES = {"apps.campaigns", "apps.bidding", "apps.loyalty", "apps.suppression", "apps.omnichannel",
                         "apps.analytics", "apps.training", "apps.core", "apps.rl", "apps.recommendations",
                         "apps.integrations", "apps.dsp"}


def test_the_schedule_is_every_installed_apps_entries():
    found = beat_schedules()
    names = [name for name, _ in found]
    assert set(names) == SLICES_WITH_SCHEDULES  # found by looking, not listed
    assert names == [name for name in settings.INSTALLED_APPS if name in SLICES_WITH_SCHEDULES]  # in that order
    merged = {key: entry for _, entries in found for key, entry in entries.items()}
    assert app.conf.beat_schedule == merged
    for name, entries in found:
        assert entries is import_module(f"{name}.schedules").BEAT_SCHEDULE
        import_module(f"{name}.tasks")  # registers the tasks (as the worker's autodiscovery does)
        for key, entry in entries.items():
            assert app.conf.beat_schedule[key] is entry
            assert key.startswith(name.removeprefix("apps.") + "-"), key  # names say their slice
            assert entry["task"] in app.tasks, key


def test_an_app_without_schedules_adds_nothing_and_a_new_one_is_picked_up():
    assert _beat_schedule(["apps.inference", "django.contrib.auth"]) == {}
    assert set(_beat_schedule(["apps.inference", "apps.omnichannel"])) == {"omnichannel-recover",
                                                                          "omnichannel-purge-idempotency-records"}


def test_a_key_declared_twice_is_refused():
    with pytest.raises(RuntimeError, match="declared twice"):
        _beat_schedule(["apps.omnichannel", "apps.omnichannel"])


@pytest.mark.parametrize("key", sorted(app.conf.beat_schedule))
def test_a_minute_or_more_is_a_crontab_and_every_run_expires_before_the_next(key):
    entry = app.conf.beat_schedule[key]
    schedule = entry["schedule"]
    if not isinstance(schedule, crontab):
        assert isinstance(schedule, int | float) and 0 < schedule < 60, f"{key}: {schedule!r} s should be a crontab"
    assert 0 < entry["options"]["expires"] <= min_period_seconds(schedule), key


def test_the_crontab_periods():
    periods = {key: min_period_seconds(entry["schedule"]) for key, entry in app.conf.beat_schedule.items()
               if isinstance(entry["schedule"], crontab)}
    assert periods == {
        "analytics-drop-expired-partitions": 86400, "campaigns-purge-idempotency-records": 3600,
        "campaigns-notification-emails-pending": 60,
        "loyalty-rollover-periods": 3600, "loyalty-expire-inactive": 86400, "loyalty-republish-reward-signals": 60,
        "loyalty-keep-profiles-alive": 1200, "loyalty-purge-idempotency-records": 86400,
        "omnichannel-recover": 300, "omnichannel-purge-idempotency-records": 86400, "suppression-purge-expired": 3600, "training-train-and-publish": 86400,
        "core-purge-outbound-calls": 86400, "core-purge-auth-audit": 86400, "rl-expire-decisions": 60, "rl-sync-catalog": 3600,
        "recommendations-rebuild": 3600, "recommendations-reap-abandoned-builds": 60,
        "integrations-push-powerbi": 3600, "integrations-sync-approval-status": 60,
        "integrations-sync-creative-validity": 900,
    }


def test_every_task_is_routed_to_a_declared_queue_and_a_plain_worker_consumes_them_all():
    """docker/k8s runs one worker per queue: a route to a queue nobody declares would never run."""
    app.loader.import_default_modules()
    declared = {queue.name for queue in app.conf.task_queues}
    assert declared == set(settings.CELERY_QUEUE_NAMES)
    ours = [name for name in app.tasks if not name.startswith("celery.")]
    assert len(ours) > 20
    routed = {name: (app.amqp.router.route({}, name).get("queue") or app.amqp.default_queue).name for name in ours}
    assert set(routed.values()) <= declared
    assert routed["analytics.consume_events"] == "analytics" and routed["training.train_and_publish"] == "training"
    assert routed["omnichannel.send_activation"] == "messaging" and routed["campaigns.go_live_due"] == "celery"
