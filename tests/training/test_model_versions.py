"""The admin's list of bid model versions, and the roll-back that puts an earlier one back in every bidder."""
from __future__ import annotations

import asyncio
import html
import os
import threading
import time

import numpy as np
import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client

from apps.core import redis as redis_store
from apps.core.exceptions import Conflict, Forbidden, NotFound, Unprocessable
from apps.inference import registry
from apps.inference.features import FEATURE_LAYOUT_VERSION, feature_matrix
from apps.inference.model import CoLaNetWeights
from apps.inference.runtime import InferenceRuntime
from apps.inference.services import model_publish
from apps.training import services
from apps.training.models import ModelVersion, ModelVersionAction, ModelVersionAudit
from config import env
from tests.factories import make_user
from tests.inference.conftest import random_request, random_weights
from tests.support.admin import changelist
from tests.support.wait import wait_until

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/training/modelversion/"


def _metadata(log_loss: float, half: float, auc: float, *, published: bool, auc_half: float | None = None) -> dict:
    return {
        "trained_at": "2026-11-30T04:05:00+00:00",
        "data_window": {"since": "2026-11-23T00:00:00+00:00", "until": "2026-11-30T00:00:00+00:00",
                        "label_window_seconds": 86400},
        "holdout": {"challenger": {"version": "x", "log_loss": log_loss, "log_loss_half_width": half, "auc": auc,
                                   "rows": 400, "clicks": 12, **({"auc_half_width": auc_half} if auc_half else {})},
                    "champion": {"version": "seed-42", "log_loss": 0.2, "log_loss_half_width": 0.01, "auc": 0.5,
                                 "rows": 400, "clicks": 12}},
        "decision": {"published": published, "better": published, "reason": "because"},
    }


@pytest.fixture
def models(tmp_path, monkeypatch):
    """A registry directory with v1 (older) and v2 (newer, in service), both trained files."""
    directory = tmp_path / "models"
    monkeypatch.setattr(env, "NPU_MODEL_DIR", str(directory))
    now = time.time_ns()
    for i, (version, ll, auc) in enumerate((("v1", 0.1234512, 0.7123), ("v2", 0.1111, 0.7345))):
        w = random_weights(40 + i, version=version)
        src = tmp_path / f"src-{version}.npz"
        CoLaNetWeights(W1=w.W1, b1=w.b1, theta=w.theta, W2=w.W2, b2=w.b2, version=version,
                       metadata=_metadata(ll, 0.0042, auc, published=True,
                                          auc_half=0.0123 if version == "v2" else None)).to_npz(src)
        published = model_publish(source=src, model_dir=directory, announce=False)
        stamp = now - (2 - i) * 10**9  # v1 published a second before v2
        os.utime(published.path, ns=(stamp, stamp))
    return directory


@pytest.fixture
def admin_client(db):
    client = Client()
    client.force_login(make_user("Admin", username="admin"))
    return client


@pytest.fixture
def marketer_client(db):
    client = Client()
    client.force_login(make_user("Marketer", username="marketer"))
    return client


class Bidder:
    """An InferenceRuntime watching the registry on its own event loop, as a bid worker does.
    Polling is effectively off: a switch within a second can only come from the announcement."""

    def __init__(self, directory):
        self.runtime = InferenceRuntime(model_dir=directory, poll_interval_s=3600)
        self.runtime.load()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    async def _main(self):
        client = redis_store.async_client()
        watcher = asyncio.create_task(self.runtime.watch(client))
        try:
            await asyncio.to_thread(self._stop.wait)
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            await client.aclose()

    def __enter__(self):
        self._thread.start()
        wait_until(lambda: self.runtime.subscribed, 5, message="the bidder subscribed to models:published")
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)


def _roll_back(client, row: ModelVersion):
    return client.post(CHANGELIST, {"action": "roll_back", ACTION_CHECKBOX_NAME: [str(row.pk)]}, follow=True)


def test_the_list_shows_each_version_with_its_metrics_and_the_one_in_service(admin_client, models):
    cl = changelist(admin_client.get(CHANGELIST), expect_rows=True)
    assert [row.version for row in cl.result_list] == ["v2", "v1"]
    content = html.unescape(admin_client.get(CHANGELIST).content.decode())
    assert "0.12345 ± 0.00420" in content and "0.7123" in content and "0.7345 ± 0.0123" in content
    assert "2026-11-23 00:00 – 2026-11-30 00:00 UTC" in content
    assert '<option value="roll_back">Roll back to this version</option>' in content
    v1, v2 = ModelVersion.objects.get(version="v1"), ModelVersion.objects.get(version="v2")
    assert (v2.in_service, v1.in_service) == (True, False)
    assert (v1.layout_version, v1.decision, v1.holdout_rows, v1.champion_version) == (
        FEATURE_LAYOUT_VERSION, "published", 400, "seed-42")
    assert abs(v1.published_at.timestamp() - (v2.published_at.timestamp() - 1)) < 1e-3
    # filters and search
    assert [r.version for r in changelist(admin_client.get(CHANGELIST, {"in_service": "yes"})).result_list] == ["v2"]
    assert [r.version for r in changelist(admin_client.get(CHANGELIST, {"q": "v1"})).result_list] == ["v1"]
    # read-only: no add, no delete; the detail page shows the stored metadata
    assert admin_client.get(CHANGELIST + "add/").status_code == 403
    detail = html.unescape(admin_client.get(f"{CHANGELIST}{v1.pk}/change/").content.decode())
    assert '"label_window_seconds": 86400' in detail


def test_a_removed_file_stays_listed_and_the_newest_left_goes_in_service(admin_client, models):
    changelist(admin_client.get(CHANGELIST))
    registry.model_path(models, "v2").unlink()
    cl = changelist(admin_client.get(CHANGELIST, {"in_service": "gone"}))
    assert [r.version for r in cl.result_list] == ["v2"]
    assert ModelVersion.objects.get(version="v1").in_service
    assert not ModelVersion.objects.get(version="v2").in_service


def test_roll_back_in_the_admin_switches_a_running_bidder_within_a_second(admin_client, models,
                                                                          django_capture_on_commit_callbacks):
    request = random_request(np.random.default_rng(7), 16)
    v1 = CoLaNetWeights.from_npz(registry.model_path(models, "v1"))
    with Bidder(models) as bidder:
        assert bidder.runtime.model_version == "v2"
        changelist(admin_client.get(CHANGELIST))
        row = ModelVersion.objects.get(version="v1")
        with django_capture_on_commit_callbacks(execute=True):
            response = _roll_back(admin_client, row)
        started = time.monotonic()
        wait_until(lambda: bidder.runtime.model_version == "v1", timeout=1.0,
                   message="the bidder scores with v1 within a second of the roll-back")
        assert time.monotonic() - started < 1.0
        score, ctr = bidder.runtime.score(*request)
    expected_score, expected_ctr = v1.forward(feature_matrix(*request))
    np.testing.assert_allclose(score, expected_score, atol=1e-5)
    np.testing.assert_allclose(ctr, expected_ctr, atol=1e-5)
    assert "Rolled back to v1 (was v2)" in html.unescape(response.content.decode())
    assert registry.newest_model(models).version == "v1"
    audit = ModelVersionAudit.objects.get()
    assert (audit.action, audit.from_version, audit.to_version, audit.actor.username) == (
        ModelVersionAction.ROLLBACK, "v2", "v1", "admin")
    assert list(ModelVersion.objects.filter(in_service=True).values_list("version", flat=True)) == ["v1"]
    # a runtime starting now loads the rolled-back version too
    fresh = InferenceRuntime(model_dir=models)
    fresh.load()
    assert fresh.model_version == "v1"


def test_only_the_admin_role_rolls_back(marketer_client, models, db):
    changelist(marketer_client.get(CHANGELIST), expect_rows=True)  # a Marketer sees the list...
    row = ModelVersion.objects.get(version="v1")
    before = registry.newest_model(models)
    response = _roll_back(marketer_client, row)  # ... but has no roll-back action
    assert response.status_code == 200
    assert response.context["action_form"] is None and 'value="roll_back"' not in response.content.decode()
    assert registry.newest_model(models) == before and not ModelVersionAudit.objects.exists()
    with pytest.raises(Forbidden, match="Only the Admin role"):
        services.model_rollback(version="v1", actor=make_user("Marketer", "Approver", username="both"))
    assert registry.newest_model(models) == before and not ModelVersionAudit.objects.exists()
    nobody = Client()
    nobody.force_login(make_user(username="nobody"))
    assert nobody.get(CHANGELIST).status_code == 403


def test_refused_roll_backs_change_nothing(admin_client, models, tmp_path):
    admin = make_user(superuser=True, username="root")
    with pytest.raises(Conflict, match="'v2' is already in service"):
        services.model_rollback(version="v2", actor=admin)
    with pytest.raises(NotFound, match="'v9' is not in the model directory"):
        services.model_rollback(version="v9", actor=admin)
    # a file of another feature layout is listed, marked unloadable, and cannot go back in service
    other = FEATURE_LAYOUT_VERSION + 1
    w = random_weights(50, version="old-layout")
    CoLaNetWeights(W1=w.W1, b1=w.b1, theta=w.theta, W2=w.W2, b2=w.b2, version="old-layout",
                   layout_version=other).to_npz(registry.model_path(models, "old-layout"))
    stamp = time.time_ns() - 5 * 10**9
    os.utime(registry.model_path(models, "old-layout"), ns=(stamp, stamp))
    before = registry.newest_model(models)
    with pytest.raises(Unprocessable, match=f"trained on feature layout {other}"):
        services.model_rollback(version="old-layout", actor=admin)
    row = ModelVersion.objects.get(version="old-layout")
    assert (row.loadable, row.layout_version, row.in_service) == (False, other, False)
    response = _roll_back(admin_client, row)
    assert "Not rolled back: version 'old-layout' cannot go back in service" in html.unescape(response.content.decode())
    assert registry.newest_model(models) == before and not ModelVersionAudit.objects.exists()
