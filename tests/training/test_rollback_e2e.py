"""A roll-back in the admin changes what a running bid app scores with: the real ``run_bid_app``
(2 uvicorn workers) on a free port, two published versions whose CTR heads price the same offer far
apart, and the admin's 'Roll back to this version'. Polling of the model directory is off (an
hour), so the switch can only come from the announcement the roll-back sends."""
from __future__ import annotations

import os
import sys
import time

import httpx
import numpy as np
import pytest
import redis
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from apps.bidding.snapshot import next_version, publish_snapshot
from apps.inference.model import CoLaNetWeights
from apps.inference.services import model_publish
from apps.training.models import ModelVersion
from config import env
from tests.bidding.helpers import golden_weights
from tests.bidding.test_http import BANNER, rows_for_examples
from tests.factories import make_user
from tests.support.ports import free_port
from tests.support.processes import ManagedProcess
from tests.support.wait import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db]
CHANGELIST = "/admin/training/modelversion/"
MAX_BID = 6.0  # rows_for_examples: the 300x250 offer BANNER asks for


def _shifted(version: str, shift: float) -> CoLaNetWeights:
    """The golden weights with the CTR head's bias moved by ``shift``: +3 predicts ~100 %, -3 ~0 %."""
    base = golden_weights(version)
    b2 = np.array(base.b2)
    b2[1] += shift
    return CoLaNetWeights(W1=base.W1, b1=base.b1, theta=base.theta, W2=base.W2, b2=b2, version=version)


def _bid_prices(base: str, n: int) -> set[float]:
    """The price of ``n`` bids, each on a new connection (the kernel spreads them over both workers)."""
    prices = set()
    for _ in range(n):
        response = httpx.post(f"{base}/v1/bid", content=BANNER, timeout=10)
        assert response.status_code == 200, response.text
        prices.add(response.json()["seatbid"][0]["bid"][0]["price"])
    return prices


def _serving(base: str, n: int = 10) -> set[str]:
    return {httpx.get(f"{base}/ready", timeout=10).json()["model_version"] for _ in range(n)}


@pytest.fixture
def bid_app(tmp_path, monkeypatch):
    models = tmp_path / "models"
    monkeypatch.setattr(env, "NPU_MODEL_DIR", str(models))
    for version, shift in (("low-ctr", -3.0), ("high-ctr", 3.0)):  # published in this order: high-ctr serves
        src = tmp_path / f"{version}.npz"
        _shifted(version, shift).to_npz(src)
        model_publish(source=src, model_dir=models, announce=False)
    os.utime(models / "colanet-low-ctr.npz", ns=(time.time_ns() - 10**9,) * 2)  # the older of the two
    redis_url = env.env_str("REDIS_URL", env.REDIS_URL)
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    publish_snapshot(client, version=next_version(client), offers=rows_for_examples())
    port = free_port()
    env_vars = {**os.environ, "REDIS_URL": redis_url, "CAMPAIGN_EXPRESS__NPU__MODEL_DIR": str(models),
                "CAMPAIGN_EXPRESS__NPU__POLL_INTERVAL_S": "3600", "BID_WIN_SECRET": "rollback-e2e",
                "BID_PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", "OPENBLAS_NUM_THREADS": "1",
                "BID_TMAX_CAP_MS": "2000"}
    env_vars.pop("PROMETHEUS_MULTIPROC_DIR", None)
    proc = ManagedProcess([sys.executable, "manage.py", "run_bid_app", "--port", str(port), "--workers", "2",
                           "--metrics-dir", str(tmp_path / "prom")], env=env_vars,
                          log_path=tmp_path / "run_bid_app.log", name="run_bid_app").start()
    try:
        proc.wait_ready(f"http://127.0.0.1:{port}/ready", 60)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.stop()
        client.close()


def test_a_roll_back_in_the_admin_changes_what_a_running_bid_app_scores_with(bid_app, django_capture_on_commit_callbacks):
    assert _serving(bid_app) == {"high-ctr"}
    assert _bid_prices(bid_app, 10) == {MAX_BID}  # predicted CTR >= 5 %: the offer's max bid
    admin = Client()
    admin.force_login(make_user("Admin", username="admin"))
    assert admin.get(CHANGELIST).status_code == 200  # the list mirrors the registry
    row = ModelVersion.objects.get(version="low-ctr")
    with django_capture_on_commit_callbacks(execute=True):  # the announcement goes out after the commit
        response = admin.post(CHANGELIST, {"action": "roll_back", ACTION_CHECKBOX_NAME: [str(row.pk)]}, follow=True)
    assert response.status_code == 200 and "Rolled back to low-ctr (was high-ctr)" in response.content.decode()
    wait_until(lambda: _serving(bid_app) == {"low-ctr"}, timeout=1.0,
               message="both bid workers serve low-ctr within a second of the roll-back")
    prices = _bid_prices(bid_app, 10)
    # predicted CTR ~0: the minimum fraction (0.5) of the max bid, plus the little CTR left
    assert len(prices) == 1 and MAX_BID * 0.5 <= prices.pop() < MAX_BID * 0.55
