import asyncio

import numpy as np
import pytest

from apps.inference.batcher import InferenceBatcher
from apps.inference.providers import CpuProvider
from apps.inference.runtime import InferenceRuntime

from .conftest import random_request, random_weights


class CountingCpuProvider(CpuProvider):
    """The real CPU provider, recording the size of every batch it is asked to score."""

    def __init__(self, weights):
        super().__init__(weights)
        self.batch_sizes: list[int] = []

    def score_batch(self, requests):
        self.batch_sizes.append(len(requests))
        return super().score_batch(requests)


@pytest.fixture
def provider():
    return CountingCpuProvider(random_weights(21))


async def test_sixteen_concurrent_requests_make_one_provider_call(provider, rng):
    batcher = InferenceBatcher(lambda: provider, max_items=16, max_wait_us=50_000)
    requests = [random_request(rng, n) for n in [64, 1, 7, 33] * 4]
    results = await asyncio.gather(*(batcher.score(*request) for request in requests))
    assert provider.batch_sizes == [16]
    assert batcher.batches == 1 and batcher.items == 16
    for request, (score, ctr) in zip(requests, results, strict=True):
        alone_score, alone_ctr = provider.score(*request)
        np.testing.assert_allclose(score, alone_score, atol=1e-5, rtol=0)
        np.testing.assert_allclose(ctr, alone_ctr, atol=1e-5, rtol=0)


async def test_single_request_is_flushed_by_the_timer(provider, rng):
    batcher = InferenceBatcher(lambda: provider, max_items=16, max_wait_us=20_000)
    request = random_request(rng, 64)
    loop = asyncio.get_running_loop()
    started = loop.time()
    score, ctr = await batcher.score(*request)
    waited = loop.time() - started
    assert provider.batch_sizes == [1]
    assert waited >= 0.015  # held for the configured 20 ms (a lower bound only: bench/timings.py times it), then flushed alone
    np.testing.assert_allclose(score, provider.score(*request)[0], atol=1e-5, rtol=0)


async def test_default_sub_millisecond_wait_flushes_promptly(provider, rng):
    batcher = InferenceBatcher(lambda: provider)  # 16 items / 500 µs
    # flushed by the 500 µs timer, not by a sixteenth request (how fast: bench/timings.py); a hang guard only
    await asyncio.wait_for(batcher.score(*random_request(rng, 8)), timeout=10)
    assert provider.batch_sizes == [1]


async def test_more_than_max_items_split_into_full_batch_then_timer_batch(provider, rng):
    batcher = InferenceBatcher(lambda: provider, max_items=16, max_wait_us=2_000)
    requests = [random_request(rng, 4) for _ in range(20)]
    results = await asyncio.gather(*(batcher.score(*request) for request in requests))
    assert provider.batch_sizes == [16, 4]
    for request, (score, _) in zip(requests, results, strict=True):
        np.testing.assert_allclose(score, provider.score(*request)[0], atol=1e-5, rtol=0)


async def test_bad_request_fails_only_its_caller(provider, rng):
    batcher = InferenceBatcher(lambda: provider, max_items=3, max_wait_us=5_000)
    good = [random_request(rng, 5) for _ in range(2)]
    user, offers, positions = random_request(rng, 5)
    outcomes = await asyncio.gather(
        batcher.score(*good[0]), batcher.score(user, offers[:, :10], positions), batcher.score(*good[1]),
        return_exceptions=True,
    )
    assert isinstance(outcomes[1], ValueError)
    assert provider.batch_sizes == [2]
    assert outcomes[0][0].shape == outcomes[2][0].shape == (5,)


async def test_provider_error_reaches_every_caller_of_the_batch(rng):
    runtime = InferenceRuntime(model_dir="/nonexistent")  # never loaded: its provider getter raises
    batcher = InferenceBatcher(runtime._current_provider, max_items=2, max_wait_us=5_000)
    outcomes = await asyncio.gather(*(batcher.score(*random_request(rng, 3)) for _ in range(2)), return_exceptions=True)
    assert all(isinstance(o, RuntimeError) and "not loaded" in str(o) for o in outcomes)


def test_batcher_rejects_bad_configuration(provider):
    with pytest.raises(ValueError, match="max_items must be at least 1"):
        InferenceBatcher(lambda: provider, max_items=0)
    with pytest.raises(ValueError, match="max_wait_us must not be negative"):
        InferenceBatcher(lambda: provider, max_wait_us=-1)
