import pytest


def test_live(client):
    response = client.get("/live")
    assert response.status_code == 200
    assert response.json() == {"status": "live"}


@pytest.mark.django_db
def test_ready_when_every_store_answers(client):
    response = client.get("/ready")
    assert response.status_code == 200, response.content
    assert response.json()["checks"] == {"postgres": "ok", "redis": "ok", "clickhouse": "ok", "nats": "ok"}


@pytest.mark.django_db
def test_ready_names_the_store_that_does_not_answer(client, settings):
    # A port nothing listens on: NATS is "down" for this request only.
    settings.NATS_URL = "nats://127.0.0.1:1"
    response = client.get("/ready")
    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["nats"]
    assert body["checks"]["redis"] == "ok"


@pytest.mark.django_db
def test_ready_reports_clickhouse_down(client, settings):
    from apps.core import clickhouse

    settings.CLICKHOUSE_URL = "clickhouse://default@127.0.0.1:1/x"
    clickhouse.reset_connections()
    response = client.get("/ready")
    clickhouse.reset_connections()
    assert response.status_code == 503
    assert response.json()["failing"] == ["clickhouse"]


def test_metrics_exposes_prometheus_text(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert b"# HELP" in response.content
