"""Fixtures for the integrations tests: vendor fakes, connections pointing at them, campaigns
walked through the real services, Celery eager (tasks run in-process, retries included)."""
from __future__ import annotations

from decimal import Decimal

import pytest

from apps.core.roles import Role
from apps.integrations.models import Connection
from tests.campaigns.conftest import OFFER_DEFAULTS, campaign_fields, make_user  # noqa: F401 - re-exported helpers

from .fakes import ASANA_TOKEN, JIRA_EMAIL, JIRA_TOKEN, AsanaServer, JiraServer


@pytest.fixture(autouse=True)
def _eager_celery():
    from config.celery import app

    previous = app.conf.task_always_eager, app.conf.task_eager_propagates
    app.conf.task_always_eager, app.conf.task_eager_propagates = True, True
    yield
    app.conf.task_always_eager, app.conf.task_eager_propagates = previous


@pytest.fixture(autouse=True)
def _fresh_redis(redis_client):
    """Buckets and breakers live in Redis: every test starts with none."""
    yield


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def jira():
    with JiraServer() as server:
        yield server


@pytest.fixture
def asana():
    with AsanaServer() as server:
        yield server


@pytest.fixture
def marketer(db):
    return make_user(Role.MARKETER, username="marketer")


@pytest.fixture
def approver(db):
    return make_user(Role.APPROVER, username="ann")


@pytest.fixture
def jira_connection(db, jira, approver):
    return Connection.objects.create(
        name="Ops Jira", kind="jira", base_url=jira.url, credentials={"email": JIRA_EMAIL, "api_token": JIRA_TOKEN},
        options={"project_key": "OPS", "issue_type": "Task", "timeout_seconds": 2,
                 "status_map": {"Approved": "approve", "Rejected": "reject"},
                 "user_map": {"ann@acme.example": "ann"},
                 "transitions": {"approve": "Approve", "reject": "Reject", "request_changes": "Back to review"}})


@pytest.fixture
def asana_connection(db, asana, approver):
    return Connection.objects.create(
        name="Marketing Asana", kind="asana", base_url=asana.base_url, credentials={"token": ASANA_TOKEN},
        options={"workspace": asana.workspace, "project": asana.project, "timeout_seconds": 2,
                 "status_map": {"completed": "approve"}, "user_map": {"ann@acme.example": "ann"}})


@pytest.fixture
def draft_campaign(marketer):
    from apps.campaigns import services

    campaign = services.campaign_create(actor=marketer, **campaign_fields(name="Spring Sale", budget=Decimal("1500.00")))
    services.offer_create(campaign_id=campaign.pk, actor=marketer, **OFFER_DEFAULTS)
    return campaign
