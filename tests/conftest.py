import os

import pytest

from apps.core import redis as redis_store
from tests.support.ci import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 - hooks: a skip fails under CI=true
from tests.support.db import restore_serialized_rows_over_recreated_ones

restore_serialized_rows_over_recreated_ones()


@pytest.fixture
def redis_client():
    """The test Redis database (REDIS_URL, db 10 under scripts/test.sh), emptied before the test. In the
    Redis Cluster pass (REDIS_URL=redis+cluster://..., tests/support/redis_cluster.py) a cluster client,
    and FLUSHDB empties every master."""
    client = redis_store.client()
    client.flushdb()
    yield client


@pytest.fixture(scope="module")
def cluster_url():
    """A Redis Cluster's URL: the suite's own in the Redis Cluster pass (``REDIS_URL``), else one of
    3 masters that this module starts and stops (tests/support/redis_cluster.py)."""
    url = os.environ.get("REDIS_URL", "")
    if redis_store.is_cluster_url(url):
        yield url
        return
    from tests.support.redis_cluster import LocalRedisCluster

    with LocalRedisCluster() as cluster:
        yield cluster.url


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()


@pytest.fixture(autouse=True)
def _celery_join_guard_reset():
    """Every test starts outside any Celery task, as far as Celery can tell.

    An eager ``delay()`` sets a process-wide flag ("a task is running: result.get() would block")
    and restores the value it found afterwards. Two threads running eager tasks at once (the
    concurrency tests) can restore each other's True, leaving the flag set for good, and a later
    test's ``task.apply().get()`` then fails with "Never call result.get() within a task!".
    """
    from celery._state import _set_task_join_will_block

    _set_task_join_will_block(False)
    yield
