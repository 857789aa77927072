"""The one-rebuild-at-a-time lock is a short lease renewed by the running build: a build whose
process is killed (SIGKILL, as a worker's OOM kill or a hard time limit does) stops renewing, its
lease expires within RECS_REBUILD_LEASE_SECONDS, the reaper lists it failed with the reason, and a
new build can start. The dead build is a real subprocess, killed for real."""
from __future__ import annotations

import os
import signal
import sys
import textwrap

import pytest
from django.conf import settings as django_settings

from apps.recommendations import services
from apps.recommendations.models import ModelBuild
from apps.recommendations.services import builds
from tests.support.processes import ManagedProcess
from tests.support.wait import pause, wait_until

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.timeout(120)]

LEASE = 2.0

# A rebuild in another process that hangs while computing (as a long build does), heartbeat running.
HANGING_BUILD = textwrap.dedent("""
    import threading
    import django
    django.setup()
    from apps.recommendations import engine, services

    def hang(**kwargs):
        print("computing", flush=True)
        threading.Event().wait()

    engine.build_model = hang
    services.recommendations_rebuild()
""")


@pytest.fixture
def hanging_build(tmp_path):
    conf = django_settings.DATABASES["default"]
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings", "PYTHONUNBUFFERED": "1",
           "DATABASE_URL": f"postgres://{conf['USER']}@{conf['HOST']}:{conf['PORT']}/{conf['NAME']}",
           "RECS_REBUILD_LEASE_SECONDS": str(LEASE)}
    process = ManagedProcess([sys.executable, "-c", HANGING_BUILD], env=env, log_path=tmp_path / "build.log",
                             name="rebuild", process_group=False).start()
    yield process
    process.stop(timeout=5)


def test_a_killed_build_is_given_up_within_its_lease_and_listed_failed(shop, redis_client, settings, hanging_build):
    settings.RECS_REBUILD_LEASE_SECONDS = LEASE
    hanging_build.wait_for_line("computing", timeout=60)
    build = ModelBuild.objects.get()
    assert build.status == ModelBuild.Status.RUNNING
    assert redis_client.get(builds.REBUILD_LOCK) == build.version.encode()

    # Alive: its heartbeat renews the lease past its length, and the reaper leaves it alone.
    pause(LEASE * 2, "the lease outliving its length is the behaviour")
    assert redis_client.get(builds.REBUILD_LOCK) == build.version.encode()
    assert services.recommendations_builds_reap() == 0
    assert services.recommendations_rebuild() is None  # one at a time
    assert ModelBuild.objects.get().status == ModelBuild.Status.RUNNING

    os.kill(hanging_build.pid, signal.SIGKILL)
    wait_until(lambda: hanging_build.returncode == -signal.SIGKILL, timeout=10, message="the build process died")
    wait_until(lambda: redis_client.get(builds.REBUILD_LOCK) is None, timeout=LEASE * 3,
               message="the dead build's lease expired")
    assert services.recommendations_builds_reap() == 1
    build.refresh_from_db()
    assert build.status == ModelBuild.Status.FAILED and build.finished_at is not None
    assert build.error.startswith("abandoned: the build stopped renewing its lease")

    fresh = services.recommendations_rebuild()
    assert fresh is not None and fresh.status == ModelBuild.Status.SERVED
    assert list(ModelBuild.objects.order_by("started_at").values_list("status", flat=True)) == ["failed", "served"]
    assert redis_client.get(builds.REBUILD_LOCK) is None


def test_a_new_rebuild_reaps_a_dead_build_it_finds(shop, redis_client):
    dead = ModelBuild.objects.create(version="dead-1")  # running, and nobody holds the lease
    fresh = services.recommendations_rebuild()
    assert fresh is not None and fresh.status == ModelBuild.Status.SERVED
    dead.refresh_from_db()
    assert dead.status == ModelBuild.Status.FAILED and dead.error.startswith("abandoned: ")


def test_a_build_that_lost_its_lease_does_not_swap_its_model_in(shop, redis_client, monkeypatch):
    real_build = builds.engine.build_model

    def build_then_lose_the_lease(**kwargs):
        model = real_build(**kwargs)
        redis_client.set(builds.REBUILD_LOCK, "someone-else")  # expired and taken meanwhile
        return model

    monkeypatch.setattr(builds.engine, "build_model", build_then_lose_the_lease)
    with pytest.raises(builds.LeaseLost):
        services.recommendations_rebuild()
    build = ModelBuild.objects.get()
    assert build.status == ModelBuild.Status.FAILED and "LeaseLost" in build.error
    assert not ModelBuild.objects.filter(status=ModelBuild.Status.SERVED).exists()
    assert redis_client.get(builds.REBUILD_LOCK) == b"someone-else"  # not ours to release


def test_the_reaper_is_on_the_beat_schedule_every_minute():
    import apps.recommendations.tasks  # noqa: F401  (registers the tasks, as the worker's autodiscovery does)
    from config.celery import app

    entry = app.conf.beat_schedule["recommendations-reap-abandoned-builds"]
    assert entry["task"] == "recommendations.reap_abandoned_builds" and entry["options"]["expires"] < 60
    assert "recommendations.reap_abandoned_builds" in app.tasks
