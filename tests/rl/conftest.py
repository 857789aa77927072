"""Fixtures for the decision tests: API clients per role, a clean Redis, the ClickHouse schema."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.analytics import testing
from tests.factories import make_user, token_client
from tests.support.wait import wait_until


@pytest.fixture(autouse=True)
def _clean_redis(redis_client):
    """Posterior copies and the feedback watermark live in Redis: every test starts without them."""
    yield


@pytest.fixture(scope="session")
def clickhouse_db():
    return testing.clickhouse_schema()


@pytest.fixture
def integration_client(db) -> APIClient:
    return token_client(make_user("Integration", username="web-surface", is_staff=False))


@pytest.fixture
def marketer_client(db) -> APIClient:
    return token_client(make_user("Marketer", username="mia-marketer"))


@pytest.fixture(autouse=True)
def _eager_tasks():
    """Tasks (the OfferFit reward) run in-process: nothing is left in the broker."""
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


def fresh_range_start() -> datetime:
    """The next whole second, once it has come: a decision-log range from there holds this test's
    decisions only (ClickHouse keeps the earlier tests' rows, and ranges start at a whole second)."""
    start = (timezone.now() + timedelta(seconds=1)).replace(microsecond=0)
    wait_until(lambda: timezone.now() >= start, timeout=2, interval=0.01, message=f"the clock to reach {start}")
    return start
