"""/metrics on every process: the web view, multiprocess aggregation, and a real Celery worker."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import httpx
import pytest

from apps.analytics import emitter as emitter_mod
from apps.core import redis as redis_store
from tests.support.ports import free_port
from tests.support.processes import start_process
from tests.support.wait import wait_until

ROOT = Path(__file__).resolve().parents[2]


def _sample(text: str, name: str, labels: str = "") -> float | None:
    prefix = f"{name}{{{labels}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.split()[-1])
    return None


def test_web_metrics_expose_the_pipeline_metrics(client, stream):
    em = emitter_mod.Emitter(stream=stream, autostart=False)
    em.emit("click", campaign_id="m")
    em.flush()
    response = client.get("/metrics")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/plain")
    text = response.content.decode()
    for name in (
        "analytics_events_flushed_total", "analytics_events_dropped_total", "analytics_flush_errors_total",
        "analytics_buffer_events", "analytics_stream_length", "analytics_stream_lag_seconds",
        "analytics_events_inserted_total", "analytics_insert_errors_total", "clickhouse_query_seconds",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name
    assert _sample(text, "analytics_events_flushed_total") >= 1


def test_multiprocess_mode_aggregates_forked_children(tmp_path):
    """With PROMETHEUS_MULTIPROC_DIR set, render() sums the samples of every process."""
    script = textwrap.dedent(
        """
        import os
        from apps.analytics.emitter import Emitter
        from apps.core import metrics
        for _ in range(3):
            pid = os.fork()
            if pid == 0:
                em = Emitter(capacity=0, autostart=False)
                for _ in range(5):
                    em.emit("win")            # refused: counted as overflow in this child
                os._exit(0)
            os.waitpid(pid, 0)
        Emitter(capacity=0, autostart=False).emit("win")
        print(metrics.render().decode())
        """
    )
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    assert _sample(out, "analytics_events_dropped_total", 'reason="overflow"') == 16.0
    assert len(list(tmp_path.glob("counter_*.db"))) == 4


@pytest.mark.e2e
def test_celery_worker_serves_metrics_of_its_tasks(tmp_path, clickhouse_db):
    """A real prefork worker (multiprocess mode, as in the Procfile) runs the consume task; its
    /metrics on CELERY_METRICS_PORT shows the task and the pipeline gauges."""
    port = free_port()
    broker = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/12")
    queue = f"analytics-test-{uuid.uuid4().hex[:8]}"
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir), "CELERY_METRICS_PORT": str(port),
           "CELERY_BROKER_URL": broker}
    command = [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool=prefork", "--concurrency=1",
               "-Q", queue, "-n", f"{queue}@%h", "--without-gossip", "--without-mingle", "--without-heartbeat",
               "--loglevel=WARNING"]
    metrics_url = f"http://127.0.0.1:{port}/metrics"
    with start_process(command, env=env, ready=metrics_url, log_path=tmp_path / "worker.log", name="celery worker") as proc:
        from config.celery import app

        redis_store.client().delete(f"{emitter_mod.stream_name()}:writer-lock")
        app.send_task("analytics.consume_events", queue=queue)

        def consumed() -> str | None:
            proc.assert_alive()
            text = httpx.get(metrics_url, timeout=2).text
            done = _sample(text, "celery_tasks_total", 'state="success",task="analytics.consume_events"') or 0
            return text if done >= 1 else None

        text = wait_until(consumed, timeout=60, interval=0.3, message="the worker's /metrics counts a successful consume_events",
                          detail=proc.tail, ignore=(httpx.HTTPError,))
        assert "analytics_stream_length" in text and "celery_task_seconds_bucket" in text
