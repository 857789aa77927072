import pytest

from apps.core import redis as redis_store
from tests.support.ci import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401 - hooks: a skip fails under CI=true


@pytest.fixture
def redis_client():
    """The test Redis database (REDIS_URL, db 10 under scripts/test.sh), emptied before the test."""
    client = redis_store.client()
    client.flushdb()
    yield client


@pytest.fixture
def api_client():
    from rest_framework.test import APIClient

    return APIClient()
