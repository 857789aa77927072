import asyncio
import os
import time

import numpy as np
import pytest
import redis.asyncio as aioredis
from django.core.management import call_command
from prometheus_client import REGISTRY

from apps.core import redis as redis_store
from apps.inference import registry
from apps.inference.features import feature_matrix
from apps.inference.model import CoLaNetWeights
from apps.inference.runtime import InferenceRuntime
from config import env
from tests.support.ports import free_port
from tests.support.wait import async_pause, async_wait_until

from .conftest import random_request, random_weights


def export(tmp_path, version, seed):
    path = tmp_path / f"src-{version}.npz"
    random_weights(seed, version=version).to_npz(path)
    return path


def test_load_uses_seeded_init_when_nothing_is_published(tmp_path):
    runtime = InferenceRuntime(model_dir=tmp_path / "models", seed=9)
    assert not runtime.ready and runtime.model_version is None
    with pytest.raises(RuntimeError, match="not loaded"):
        runtime.score(*random_request(np.random.default_rng(0), 2))
    runtime.load()
    assert runtime.ready and runtime.model_version == "seed-9"
    np.testing.assert_array_equal(runtime.provider.weights.W1, CoLaNetWeights.seeded(seed=9).W1)
    assert REGISTRY.get_sample_value("inference_model_info", {"version": "seed-9", "provider": "cpu"}) == 1.0


def test_load_picks_newest_published_and_skips_corrupt_files(tmp_path):
    models = tmp_path / "models"
    call_command("publish_model", str(export(tmp_path, "old", 1)), "--model-dir", str(models), "--no-announce")
    call_command("publish_model", str(export(tmp_path, "new", 2)), "--model-dir", str(models), "--no-announce")
    runtime = InferenceRuntime(model_dir=models)
    runtime.load()
    assert runtime.model_version == "new"
    # a newer but corrupt file (e.g. copied by hand, truncated) is skipped at start-up
    broken = registry.model_path(models, "broken")
    broken.write_bytes(registry.model_path(models, "new").read_bytes()[:1000])
    os.utime(broken, ns=(time.time_ns() + 10**9, time.time_ns() + 10**9))
    runtime = InferenceRuntime(model_dir=models)
    runtime.load()
    assert runtime.model_version == "new"


def test_from_env_copies_the_configured_knobs(tmp_path, monkeypatch):
    # config.env read CAMPAIGN_EXPRESS__NPU__* at start-up (tests/core/test_env.py); patch what it read.
    monkeypatch.setattr(env, "NPU_MODEL_DIR", str(tmp_path / "m"))
    monkeypatch.setattr(env, "NPU_BATCHING", True)
    monkeypatch.setattr(env, "NPU_BATCH_MAX_ITEMS", 8)
    monkeypatch.setattr(env, "NPU_BATCH_MAX_WAIT_US", 250)
    monkeypatch.setattr(env, "NPU_SEED", 5)
    monkeypatch.setattr(env, "NPU_POLL_INTERVAL_S", 0.5)
    monkeypatch.setattr(env, "NPU_PROVIDER", "cpu")
    runtime = InferenceRuntime.from_env()
    assert runtime.model_dir == tmp_path / "m" and runtime.provider_name == "cpu" and runtime.poll_interval_s == 0.5
    assert runtime.batcher is not None and runtime.batcher.max_items == 8 and runtime.batcher.max_wait_us == 250
    runtime.load()
    assert runtime.model_version == "seed-5"
    monkeypatch.setattr(env, "NPU_BATCHING", False)
    assert InferenceRuntime.from_env().batcher is None
    monkeypatch.setattr(env, "NPU_MODEL_DIR", "var/models")  # relative: from the project root
    assert InferenceRuntime.from_env().model_dir == registry.PROJECT_ROOT / "var" / "models"


def test_load_refuses_an_unavailable_provider(tmp_path):
    runtime = InferenceRuntime(provider_name="tenstorrent", model_dir=tmp_path)
    with pytest.raises(Exception, match="tenstorrent provider is unavailable"):
        runtime.load()
    assert not runtime.ready


async def test_score_observes_latency_metric(tmp_path, rng):
    runtime = InferenceRuntime(model_dir=tmp_path)
    runtime.load()
    labels = {"provider": "cpu", "mode": "direct"}
    before = REGISTRY.get_sample_value("inference_latency_us_count", labels) or 0.0
    request = random_request(rng, 64)
    score, ctr = runtime.score(*request)
    score2, _ = await runtime.score_async(*request)
    assert REGISTRY.get_sample_value("inference_latency_us_count", labels) == before + 2
    np.testing.assert_array_equal(score, score2)
    np.testing.assert_allclose(score, runtime.provider.weights.forward(feature_matrix(*request))[0], atol=1e-5)


@pytest.mark.parametrize("batching", [False, True])
async def test_hot_reload_via_publish_model_while_scoring(tmp_path, batching, rng):
    models = tmp_path / "models"
    call_command("publish_model", str(export(tmp_path, "hot-v1", 31)), "--model-dir", str(models), "--no-announce")
    # polling effectively off: the switch below can only come from the pub/sub announcement
    runtime = InferenceRuntime(model_dir=models, batching=batching, poll_interval_s=3600)
    runtime.load()
    assert runtime.model_version == "hot-v1"
    v1, v2 = CoLaNetWeights.from_npz(registry.model_path(models, "hot-v1")), random_weights(32, version="hot-v2")
    request = random_request(rng, 64)
    expected = {"hot-v1": v1, "hot-v2": v2}

    client = redis_store.async_client()
    watcher = asyncio.create_task(runtime.watch(client))
    errors: list[BaseException] = []
    seen: list[str] = []
    stop = asyncio.Event()

    async def hammer():
        while not stop.is_set():
            try:
                provider = runtime.provider  # the model this call will use
                score, ctr = await runtime.score_async(*request)
                weights = expected[provider.weights.version]
                if not batching:  # a direct call runs on exactly the provider it started with
                    np.testing.assert_allclose(score, weights.forward(feature_matrix(*request))[0], atol=1e-5)
                seen.append(provider.weights.version)
            except BaseException as exc:  # noqa: BLE001 - every failure counts
                errors.append(exc)
            await async_pause(0, "one loop turn between calls, so the watcher runs")

    try:
        await async_wait_until(lambda: runtime.subscribed, 5, message="the watcher subscribed")
        workers = [asyncio.create_task(hammer()) for _ in range(24)]
        await async_wait_until(lambda: len(seen) >= 50, timeout=10, message="scoring on hot-v1 under way")
        old_provider = runtime.provider
        v2_path = tmp_path / "src-hot-v2.npz"
        v2.to_npz(v2_path)
        await asyncio.to_thread(call_command, "publish_model", str(v2_path), "--model-dir", str(models))
        await async_wait_until(lambda: runtime.model_version == "hot-v2", 5, message="hot-v2 swapped in")
        await async_wait_until(lambda: seen.count("hot-v2") > 10, timeout=10, message="scoring on hot-v2")
        stop.set()
        await asyncio.gather(*workers)
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await client.aclose()

    assert errors == []
    assert seen.count("hot-v1") > 10 and seen.count("hot-v2") > 10
    # once switched, scores are the new model's; a request holding the old provider still gets v1's
    score, _ = await runtime.score_async(*request)
    np.testing.assert_allclose(score, v2.forward(feature_matrix(*request))[0], atol=1e-5)
    np.testing.assert_allclose(old_provider.score(*request)[0], v1.forward(feature_matrix(*request))[0], atol=1e-5)
    assert not runtime.subscribed  # the watcher unsubscribed on cancel
    assert REGISTRY.get_sample_value("inference_model_info", {"version": "hot-v1", "provider": "cpu"}) == 0.0
    assert REGISTRY.get_sample_value("inference_model_info", {"version": "hot-v2", "provider": "cpu"}) == 1.0


async def test_polling_picks_up_a_model_when_redis_is_unreachable(tmp_path):
    models = tmp_path / "models"
    runtime = InferenceRuntime(model_dir=models, poll_interval_s=0.05)
    runtime.load()
    assert runtime.model_version == "seed-42"
    dead = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.2)
    polls = []
    poll = runtime.poll_model_dir

    async def counted_poll():
        polls.append(1)
        return await poll()

    runtime.poll_model_dir = counted_poll
    watcher = asyncio.create_task(runtime.watch(dead))
    try:
        # the watcher tries to subscribe and fails (connection refused), and keeps polling
        await async_wait_until(lambda: watcher.done() or len(polls) >= 2, timeout=5, message="two polls")
        assert not watcher.done() and not runtime.subscribed
        await asyncio.to_thread(call_command, "publish_model", str(export(tmp_path, "polled", 40)), "--model-dir",
                                str(models), "--no-announce")
        await async_wait_until(lambda: runtime.model_version == "polled", 5, message="the polled model loaded")
    finally:
        watcher.cancel()
        await asyncio.gather(watcher, return_exceptions=True)
        await dead.aclose()


async def test_corrupt_or_bogus_models_are_ignored_and_the_old_one_kept(tmp_path, rng):
    models = tmp_path / "models"
    call_command("publish_model", str(export(tmp_path, "good", 50)), "--model-dir", str(models), "--no-announce")
    runtime = InferenceRuntime(model_dir=models)
    runtime.load()
    request = random_request(rng, 16)
    before = runtime.score(*request)[0]
    rejected = lambda: REGISTRY.get_sample_value("inference_model_reloads_total", {"result": "rejected"}) or 0.0  # noqa: E731
    count = rejected()

    # a half-copied file lands in the directory (not via publish_model) and is newest
    bad = registry.model_path(models, "bad")
    bad.write_bytes(registry.model_path(models, "good").read_bytes()[:4000])
    assert await runtime.poll_model_dir() is False
    assert await runtime.poll_model_dir() is False  # remembered: not re-read every poll
    assert rejected() == count + 1
    assert await runtime.load_announced(b"bad") is False
    # announcements naming unknown or unsafe versions
    assert await runtime.load_announced(b"never-published") is False
    assert await runtime.load_announced(b"../../etc/passwd") is False
    # a file whose name and contents disagree
    mislabelled = registry.model_path(models, "other")
    random_weights(51, version="not-other").to_npz(mislabelled)
    assert await runtime.load_announced("other") is False

    assert runtime.model_version == "good"
    np.testing.assert_array_equal(runtime.score(*request)[0], before)

    # the same name, fixed and republished, is tried again
    bad.unlink()
    random_weights(52, version="bad").to_npz(tmp_path / "fixed.npz")
    call_command("publish_model", str(tmp_path / "fixed.npz"), "--model-dir", str(models), "--no-announce")
    assert await runtime.poll_model_dir() is True
    assert runtime.model_version == "bad"


@pytest.mark.parametrize("batching", [False, True])
async def test_score_indexed_async_equals_score_async(tmp_path, rng, batching):
    runtime = InferenceRuntime(model_dir=tmp_path, batching=batching)
    runtime.load()
    table = rng.normal(0, 1, (50, 64)).astype(np.float32)
    table.setflags(write=False)
    user, _, positions = random_request(rng, 20)
    index = rng.choice(50, size=20, replace=False).astype(np.intp)
    mode = "batched" if batching else "direct"
    labels = {"provider": "cpu", "mode": mode}
    before = REGISTRY.get_sample_value("inference_latency_us_count", labels) or 0.0
    score, ctr = await runtime.score_indexed_async(user, table, index, positions)
    assert REGISTRY.get_sample_value("inference_latency_us_count", labels) == before + 1
    ref_score, ref_ctr = await runtime.score_async(user, table[index], positions)
    np.testing.assert_allclose(score, ref_score, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ctr, ref_ctr, atol=1e-5, rtol=0)
