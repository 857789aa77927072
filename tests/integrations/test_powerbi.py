"""Power BI push dataset against a local server speaking the documented API: the dataset made once,
closed hours only, batched within the row limit, a retried push never appends an hour twice."""
from __future__ import annotations

import datetime as dt
import random
import uuid

import pytest

from apps.core.outbound import OutboundError
from apps.integrations import services, tasks
from apps.integrations.adaptors.powerbi import TABLE_COLUMNS
from apps.integrations.models import Connection, PowerBIPush

from .fakes import PBI_CLIENT, PBI_SECRET, PBI_TENANT, PowerBIServer

pytestmark = pytest.mark.django_db
UTC = dt.UTC


@pytest.fixture
def powerbi():
    with PowerBIServer() as server:
        yield server


@pytest.fixture
def window():
    from apps.analytics import testing
    from apps.core import clickhouse as ch

    testing.clickhouse_schema()
    rng = random.Random()
    start = dt.datetime(rng.randrange(1975, 2100), rng.randrange(1, 13), rng.randrange(1, 26), tzinfo=UTC)
    yield start
    ch.execute(f"ALTER TABLE analytics_events DROP PARTITION {start:%Y%m}", kind="ddl")


def _row(event_type: str, ts: dt.datetime, **fields) -> tuple:
    from apps.analytics import events

    us = int(ts.timestamp()) * 1_000_000 + ts.microsecond
    return events.row_to_insert(events.to_row(event_type, uuid.uuid4().hex, us, fields))


@pytest.fixture
def traffic(window, draft_campaign):
    """Hours 0..3 of the window: 3 campaigns with bids and wins in each; a click in hour 1."""
    from apps.analytics import events
    from apps.core import clickhouse as ch

    ours = str(draft_campaign.pk)
    rows = []
    for hour in range(4):
        for cid in (ours, "x-other-1", "x-other-2"):
            ts = window + dt.timedelta(hours=hour, minutes=5)
            rows += [_row("bid_response", ts, request_id=f"{cid}-{hour}-{n}", campaign_id=cid, price=2.0, latency_us=300)
                     for n in range(4)]
            rows += [_row("win", ts, request_id=f"{cid}-{hour}-0", campaign_id=cid, win_price=1.5)]
    rows.append(_row("click", window + dt.timedelta(hours=1, minutes=9), request_id=f"{ours}-1-0", campaign_id=ours))
    ch.insert("analytics_events", events.COLUMNS, rows)
    return ours


@pytest.fixture
def connection(powerbi, window):
    return Connection.objects.create(
        name="BI", kind="powerbi", base_url=powerbi.api_url,
        credentials={"tenant_id": PBI_TENANT, "client_id": PBI_CLIENT, "client_secret": PBI_SECRET},
        options={"group_id": powerbi.group, "token_url": powerbi.token_url, "start": window.isoformat(),
                 "timeout_seconds": 2})


def rows_posts(powerbi):
    return [r for r in powerbi.requests if r.method == "POST" and r.path.endswith("/rows")]


def test_the_dataset_is_created_once_from_the_documented_schema(powerbi, connection, traffic, window):
    now = window + dt.timedelta(hours=3, minutes=30)  # hours 0, 1, 2 are closed; 3 is open
    summary = services.powerbi_push(connection_id=connection.pk, now=now)
    [create] = [r for r in powerbi.requests if r.method == "POST" and r.path.endswith("/datasets")]
    assert create.query == {"defaultRetentionPolicy": ["basicFIFO"]}
    assert create.header("Authorization") == "Bearer eyJ0eXAiOiJKV1Qi.pbi-token"
    body = create.json()
    assert body["name"] == "Campaign Express" and body["defaultMode"] == "Push"
    assert body["tables"] == [{"name": "CampaignHourly",
                               "columns": [{"name": n, "dataType": t} for n, t in TABLE_COLUMNS]}]
    [dataset_id] = powerbi.datasets
    pushed = powerbi.rows[dataset_id]
    assert summary.rows == len(pushed) == 9  # 3 closed hours x 3 campaigns, the open hour not yet
    assert {r["hour"] for r in pushed} == {(window + dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H:%M:%SZ")
                                          for h in range(3)}
    hour1 = (window + dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ours_hour1 = next(r for r in pushed if r["campaign_id"] == traffic and r["hour"] == hour1)
    assert (ours_hour1["campaign_name"], ours_hour1["bids"], ours_hour1["impressions"], ours_hour1["clicks"]) == (
        "Spring Sale", 4, 1, 1)
    assert ours_hour1["spend"] == 0.0015 and ours_hour1["ctr"] == 1.0 and ours_hour1["win_rate"] == 0.25
    assert powerbi.tokens_issued == 1

    # the next run, same hour: nothing new; once hour 3 closes, only hour 3
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows == 0
    assert services.powerbi_push(connection_id=connection.pk, now=now + dt.timedelta(hours=1)).rows == 3
    assert len(powerbi.datasets) == 1 and len(powerbi.rows[dataset_id]) == 12
    push = PowerBIPush.objects.get()
    assert push.rows_pushed == 12 and push.cursor == window + dt.timedelta(hours=4)


def test_batches_stay_within_rows_per_request_and_resume_exactly(powerbi, connection, traffic, window):
    connection.options = {**connection.options, "rows_per_request": 4}
    connection.save()
    now = window + dt.timedelta(hours=5)
    # the third POST of rows fails with a 400: the first two batches (8 rows) are in, the position kept
    calls = {"n": 0}
    original = powerbi.answer

    def answer(r):
        if r.path.endswith("/rows"):
            calls["n"] += 1
            if calls["n"] == 3:
                return 400, {}, {"error": {"code": "InvalidRequest", "message": "try again"}}
        return original(r)

    powerbi.answer = answer
    with pytest.raises(OutboundError):
        services.powerbi_push(connection_id=connection.pk, now=now)
    [dataset_id] = powerbi.datasets
    assert len(powerbi.rows[dataset_id]) == 8
    push = PowerBIPush.objects.get()
    assert (push.cursor, push.cursor_offset, push.uncertain_from) == (window + dt.timedelta(hours=2), 2, None)
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows == 4
    pushed = powerbi.rows[dataset_id]
    assert len(pushed) == 12 and len({(r["hour"], r["campaign_id"]) for r in pushed}) == 12  # each row once
    assert all(len(p.json()["rows"]) <= 4 for p in rows_posts(powerbi))


def test_a_429_is_waited_for_and_a_redelivered_push_appends_nothing_twice(powerbi, connection, traffic, window):
    import time

    services.powerbi_push(connection_id=connection.pk, now=window + dt.timedelta(hours=1, minutes=30))  # hour 0
    powerbi.script(429, {"error": {"code": "TooManyRequests"}}, {"Retry-After": "1"})
    now = window + dt.timedelta(hours=5)
    started = time.monotonic()
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows == 9
    assert time.monotonic() - started >= 0.95
    statuses = [r.path.endswith("/rows") for r in powerbi.requests]
    assert statuses.count(True) == 3  # hour 0, then the 429'd batch and its retry
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows == 0  # a redelivery: nothing
    [dataset_id] = powerbi.datasets
    pushed = powerbi.rows[dataset_id]
    assert len(pushed) == len({(r["hour"], r["campaign_id"]) for r in pushed}) == 12


def test_the_celery_task_pushes_through_the_service(powerbi, connection, traffic, window, settings):
    connection.options = {**connection.options, "start": (dt.datetime.now(UTC) - dt.timedelta(hours=3)).isoformat()}
    connection.save()
    pushed = tasks.push_powerbi.apply(args=(connection.pk,)).get()  # whatever the last hours hold
    [dataset_id] = powerbi.datasets
    assert pushed == len(powerbi.rows[dataset_id]) == PowerBIPush.objects.get().rows_pushed
    cursor = PowerBIPush.objects.get().cursor
    assert cursor.minute == 0 and dt.datetime.now(UTC) - dt.timedelta(hours=2) <= cursor <= dt.datetime.now(UTC)


def _is_rows_post(r) -> bool:
    return r.method == "POST" and r.path.endswith("/rows")


def _keys(rows) -> list[tuple]:
    return sorted((r["hour"], r["campaign_id"]) for r in rows)


def _admin_client(client):
    from apps.core.roles import Role

    from .conftest import make_user

    client.force_login(make_user(Role.ADMIN, username="bi-admin"))
    return client


def test_a_lost_answer_to_the_dataset_create_adopts_the_dataset_power_bi_made(powerbi, connection, traffic, window):
    # Power BI makes the dataset but the connection drops before its answer: the lookup by name right
    # after finds it, and the push carries on into that dataset.
    powerbi.drop(when=lambda r: r.method == "POST" and r.path.endswith("/datasets"))
    summary = services.powerbi_push(connection_id=connection.pk, now=window + dt.timedelta(hours=3, minutes=30))
    [dataset_id] = powerbi.datasets  # one dataset, not two
    creates = [r for r in powerbi.requests if r.method == "POST" and r.path.endswith("/datasets")]
    assert len(creates) == 1 and summary.rows == len(powerbi.rows[dataset_id]) == 9
    push = PowerBIPush.objects.get()
    assert push.dataset_id == dataset_id


def test_a_create_still_unconfirmed_is_adopted_by_the_retry(powerbi, connection, traffic, window):
    # The create's answer is lost and so is every lookup that follows it in this run: the run fails
    # (retryable) without a dataset id; the retried run finds the dataset by name before creating.
    def later_lookup(r):
        return r.method == "GET" and r.path.endswith("/datasets") and len(
            [x for x in powerbi.requests if x.method == "GET" and x.path.endswith("/datasets")]) > 1

    powerbi.drop(when=lambda r: r.method == "POST" and r.path.endswith("/datasets"))
    powerbi.drop(times=3, when=later_lookup)  # the client's three attempts at the GET
    now = window + dt.timedelta(hours=3, minutes=30)
    with pytest.raises(OutboundError) as caught:
        services.powerbi_push(connection_id=connection.pk, now=now)
    assert caught.value.retryable and caught.value.kind == "network"
    push = PowerBIPush.objects.get()
    assert push.dataset_id == "" and "creating dataset" in push.note
    assert tasks.push_powerbi.apply(args=(connection.pk,)).get() >= 0  # a Celery retry, same code path
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows >= 0
    assert len(powerbi.datasets) == 1
    assert len([r for r in powerbi.requests if r.method == "POST" and r.path.endswith("/datasets")]) == 1
    assert PowerBIPush.objects.get().dataset_id == next(iter(powerbi.datasets))


def test_a_lost_answer_on_a_push_stops_the_dataset_and_arrived_rows_are_not_sent_again(
        powerbi, connection, traffic, window, client):
    now = window + dt.timedelta(hours=5)
    services.powerbi_push(connection_id=connection.pk, now=window + dt.timedelta(hours=1, minutes=30))  # hour 0
    [dataset_id] = powerbi.datasets
    # Power BI appends the next batch (hours 1-3) but the connection drops before the answer.
    powerbi.drop(when=_is_rows_post)
    with pytest.raises(OutboundError) as caught:
        services.powerbi_push(connection_id=connection.pk, now=now)
    assert caught.value.kind == "network" and caught.value.retryable
    assert len(powerbi.rows[dataset_id]) == 12  # it arrived
    push = PowerBIPush.objects.get()
    assert (push.uncertain_from, push.uncertain_to, push.uncertain_rows) == (
        window + dt.timedelta(hours=1), window + dt.timedelta(hours=3), 9)
    assert push.cursor == window + dt.timedelta(hours=1) and push.rows_pushed == 3  # not advanced
    assert push.note.startswith("NEEDS A CHECK") and "'CampaignHourly'" in push.note

    # the Celery task's retry and later beats send nothing while it is unconfirmed
    posts = len([r for r in powerbi.requests if _is_rows_post(r)])
    assert tasks.push_powerbi.apply(args=(connection.pk,)).get() == 0
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows == 0
    assert len([r for r in powerbi.requests if _is_rows_post(r)]) == posts

    # the admin shows it stopped, with the hours and rows to check
    admin = _admin_client(client)
    page = admin.get("/admin/integrations/powerbipush/").content.decode()
    assert "stopped: needs a check" in page and (
        f"9 rows of {window + dt.timedelta(hours=1):%Y-%m-%d %H:00} to {window + dt.timedelta(hours=3):%Y-%m-%d %H:00}"
        in page)
    # a person finds the 9 rows in the table: resume past them
    answer = admin.post("/admin/integrations/powerbipush/", {"action": "resume_arrived",
                                                             "_selected_action": [push.pk]})
    assert answer.status_code == 302
    push.refresh_from_db()
    assert (push.uncertain_from, push.cursor, push.rows_pushed) == (None, window + dt.timedelta(hours=4), 12)
    assert "were in the table, not sent again" in push.note and "bi-admin" in push.note
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows == 0  # hour 4 is still open
    assert services.powerbi_push(connection_id=connection.pk, now=now + dt.timedelta(hours=1)).rows == 0
    pushed = powerbi.rows[dataset_id]
    assert _keys(pushed) == sorted(set(_keys(pushed))) and len(pushed) == 12  # every hour once, no gap
    assert "pushing" in admin.get("/admin/integrations/powerbipush/").content.decode()


def test_a_lost_push_that_did_not_arrive_is_sent_again_once_a_person_says_so(
        powerbi, connection, traffic, window, client):
    connection.options = {**connection.options, "rows_per_request": 4}
    connection.save()
    now = window + dt.timedelta(hours=5)
    # the second batch is read and the connection drops before Power BI did anything with it
    seen = {"n": 0}

    def second_rows_post(r):
        if _is_rows_post(r):
            seen["n"] += 1
        return seen["n"] == 2 and _is_rows_post(r)

    powerbi.drop(when=second_rows_post, act=False)
    with pytest.raises(OutboundError):
        services.powerbi_push(connection_id=connection.pk, now=now)
    [dataset_id] = powerbi.datasets
    assert len(powerbi.rows[dataset_id]) == 4
    push = PowerBIPush.objects.get()
    assert push.uncertain_rows == 4 and push.cursor_offset == 1  # hour 1, after its first row
    admin = _admin_client(client)
    admin.post("/admin/integrations/powerbipush/", {"action": "resume_resend", "_selected_action": [push.pk]})
    push.refresh_from_db()
    assert push.uncertain_from is None and "sent again" in push.note
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows == 8
    pushed = powerbi.rows[dataset_id]
    assert len(pushed) == 12 and _keys(pushed) == sorted(set(_keys(pushed)))


def test_a_worker_killed_mid_push_leaves_the_batch_unconfirmed(powerbi, connection, traffic, window, monkeypatch):
    # the state is written before the POST: a run that dies during it (no answer, no exception
    # handler) leaves the dataset stopped rather than resending on the next run
    from apps.integrations.adaptors.powerbi import PowerBIAdaptor

    def killed(self, dataset_id, rows):
        raise SystemExit("worker killed")

    with monkeypatch.context() as patch:
        patch.setattr(PowerBIAdaptor, "add_rows", killed)
        with pytest.raises(SystemExit):
            services.powerbi_push(connection_id=connection.pk, now=window + dt.timedelta(hours=3))  # hours 0, 1
    push = PowerBIPush.objects.get()
    assert push.uncertain_from == window and push.uncertain_rows == 6
    assert services.powerbi_push(connection_id=connection.pk, now=window + dt.timedelta(hours=3)).rows == 0
    assert rows_posts(powerbi) == []


def test_test_connection_says_whether_the_dataset_exists(powerbi, connection):
    result = services.connection_test(connection_id=connection.pk)
    assert result.ok and result.message == \
        "Connected to Power BI; workspace found, dataset 'Campaign Express' will be created on the first push."
    connection.credentials = {**connection.credentials, "client_secret": "wrong"}
    connection.save()
    result = services.connection_test(connection_id=connection.pk)
    assert not result.ok and "Entra ID refused the client credentials" in result.message


def test_the_push_is_on_the_beat_schedule():
    from config.celery import app

    entry = app.conf.beat_schedule["integrations-push-powerbi"]
    assert entry["task"] == "integrations.push_powerbi_all"


def test_the_rows_per_hour_limit_stops_a_run_and_the_next_hour_carries_on(powerbi, connection, traffic, window,
                                                                        monkeypatch, redis_client):
    from apps.integrations.services import bi

    monkeypatch.setattr(bi, "MAX_ROWS_PER_HOUR", 5)  # Power BI's 1,000,000, scaled down
    connection.options = {**connection.options, "rows_per_request": 4}
    connection.save()
    now = window + dt.timedelta(hours=5)  # 12 closed rows
    first = services.powerbi_push(connection_id=connection.pk, now=now)
    assert (first.rows, first.requests) == (5, 2)  # 4, then the 1 left of the hour's budget
    push = PowerBIPush.objects.get()
    assert "rows per hour reached" in push.note and (push.cursor, push.cursor_offset) == (
        window + dt.timedelta(hours=1), 2)
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows == 0  # same hour: nothing more
    for key in redis_client.keys(f"integrations:powerbi:{connection.pk}:rows:*"):  # two clock hours later
        redis_client.delete(key)
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows == 5
    for key in redis_client.keys(f"integrations:powerbi:{connection.pk}:rows:*"):
        redis_client.delete(key)
    assert services.powerbi_push(connection_id=connection.pk, now=now).rows == 2
    [dataset_id] = powerbi.datasets
    pushed = powerbi.rows[dataset_id]
    assert len(pushed) == 12 and _keys(pushed) == sorted(set(_keys(pushed)))
    assert all(len(p.json()["rows"]) <= 4 for p in rows_posts(powerbi))


def test_our_request_rate_stays_within_120_post_rows_a_minute(powerbi, connection):
    from apps.integrations.adaptors import adaptor_for
    from apps.integrations.services.connections import connection_config

    bucket = adaptor_for(connection_config(Connection.objects.get(pk=connection.pk))).client.rate_limit
    assert bucket.rate_per_s * 60 <= 120 and bucket.burst <= 5  # Power BI: 120 POST rows per minute, 5 pending
