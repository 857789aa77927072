import platform

import numpy as np
import pytest

from apps.inference import features as F
from apps.inference.model import CoLaNetWeights
from apps.inference.providers import (
    PROVIDERS,
    CpuProvider,
    InferenceProvider,
    ProviderUnavailable,
    get_provider,
)
from config import env

from .conftest import random_request, random_weights


@pytest.mark.parametrize("n", [1, 7, 64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_factorised_score_equals_reference_forward(n, seed):
    weights = random_weights(seed)
    provider = CpuProvider(weights)
    user, offers, positions = random_request(np.random.default_rng(100 + seed), n)
    score, ctr = provider.score(user, offers, positions)
    ref_score, ref_ctr = weights.forward(F.feature_matrix(user, offers, positions))
    assert score.shape == ctr.shape == (n,)
    assert score.dtype == ctr.dtype == np.float32
    np.testing.assert_allclose(score, ref_score, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ctr, ref_ctr, atol=1e-5, rtol=0)
    # a non-trivial check: the spikes actually vary across candidates
    if n > 1:
        assert len(np.unique(score)) > 1


def test_factorised_ignores_columns_outside_the_layout(rng):
    weights = random_weights(5)
    provider = CpuProvider(weights)
    user, offers, positions = random_request(rng, 8)
    dirty = user.copy()
    dirty[139:] = 7.0  # position/offer/tail columns of the user row are not user data
    np.testing.assert_array_equal(provider.score(dirty, offers, positions)[0], provider.score(user, offers, positions)[0])


def test_score_batch_equals_per_request_scores(rng):
    provider = CpuProvider(random_weights(9))
    requests = [random_request(rng, n) for n in (64, 1, 0, 7)]
    batched = provider.score_batch(requests)
    assert len(batched) == 4
    for request, (score, ctr) in zip(requests, batched, strict=True):
        alone_score, alone_ctr = provider.score(*request)
        assert score.shape == (request[1].shape[0],)
        np.testing.assert_allclose(score, alone_score, atol=1e-5, rtol=0)
        np.testing.assert_allclose(ctr, alone_ctr, atol=1e-5, rtol=0)
    assert provider.score_batch([]) == []


def test_batch_results_do_not_alias_the_reused_workspace(rng):
    provider = CpuProvider(random_weights(10))
    first_requests = [random_request(rng, 64) for _ in range(4)]
    first = provider.score_batch(first_requests)
    kept = [(score.copy(), ctr.copy()) for score, ctr in first]
    provider.score_batch([random_request(rng, 64) for _ in range(6)])  # larger: the workspace grows
    provider.score_batch([random_request(rng, 64) for _ in range(4)])  # same size: the workspace is reused
    for (score, ctr), (score_then, ctr_then) in zip(first, kept, strict=True):
        np.testing.assert_array_equal(score, score_then)
        np.testing.assert_array_equal(ctr, ctr_then)


def test_score_validates_shapes(rng):
    provider = CpuProvider(random_weights(1))
    user, offers, positions = random_request(rng, 4)
    with pytest.raises(ValueError, match=r"user_row must have shape \(256,\), got \(139,\)"):
        provider.score(user[:139], offers, positions)
    with pytest.raises(ValueError, match=r"offer_features must have shape \(n, 64\), got \(4, 63\)"):
        provider.score(user, offers[:, :63], positions)
    with pytest.raises(ValueError, match=r"positions must have shape \(4,\), got \(3,\)"):
        provider.score(user, offers, positions[:3])
    score, ctr = provider.score(user, offers[:0], positions[:0])
    assert score.shape == ctr.shape == (0,)


def test_get_provider_defaults_to_cpu(monkeypatch):
    monkeypatch.setattr(env, "NPU_PROVIDER", "")
    provider = get_provider()
    assert isinstance(provider, CpuProvider) and provider.name == "cpu"
    assert isinstance(provider, InferenceProvider)
    assert provider.weights.version == "seed-42"  # the documented seeded init when no weights are given
    weights = CoLaNetWeights.seeded(seed=3)
    assert get_provider(" CPU ", weights=weights).weights is weights


def test_unknown_provider_lists_valid_names(monkeypatch):
    monkeypatch.setattr(env, "NPU_PROVIDER", "tpu")  # config.env lower-cases it (tests/core/test_env.py)
    with pytest.raises(ProviderUnavailable) as info:
        get_provider()
    message = str(info.value)
    assert "unknown inference provider 'tpu'" in message and "CAMPAIGN_EXPRESS__NPU__PROVIDER" in message
    assert "valid names: ampere, cpu, groq, inferentia2, inferentia3, tenstorrent" in message


HARDWARE_MISSING = {
    "groq": ["Python module 'groqflow'", "/dev/groq*"],
    "inferentia2": ["Python module 'torch_neuronx'", "/dev/neuron*"],
    "inferentia3": ["Python module 'torch_neuronx'", "/dev/neuron*"],
    "tenstorrent": ["Python module 'ttnn'", "/dev/tenstorrent/*"],
}


@pytest.mark.parametrize("name", sorted(HARDWARE_MISSING))
def test_hardware_providers_refuse_naming_what_is_missing(name):
    cls = PROVIDERS[name]
    if all(present() for _, present in cls.requirements):
        pytest.skip(f"{name} SDK and device are present on this machine")
    with pytest.raises(ProviderUnavailable) as info:
        get_provider(name, weights=CoLaNetWeights.seeded())
    message = str(info.value)
    assert message.startswith(f"{name} provider is unavailable on this machine: ")
    for what, present in cls.requirements:
        assert (what in message) == (not present())  # names exactly what is missing
    requirement_texts = " ".join(what for what, _ in cls.requirements)
    for fragment in HARDWARE_MISSING[name]:  # the SDK module and the device nodes it looks for
        assert fragment in requirement_texts


def test_ampere_provider_needs_aarch64(rng):
    machine = platform.machine()
    if machine.lower() in {"aarch64", "arm64"}:
        weights = random_weights(2)
        request = random_request(rng, 16)
        np.testing.assert_array_equal(get_provider("ampere", weights=weights).score(*request)[0],
                                      CpuProvider(weights).score(*request)[0])
    else:
        with pytest.raises(ProviderUnavailable) as info:
            get_provider("ampere")
        assert str(info.value) == f"ampere provider needs an aarch64 CPU, this machine is {machine}"


def _snapshot_table(rng, n_offers: int) -> np.ndarray:
    table = rng.normal(0, 1, (n_offers, 64)).astype(np.float32)
    table.setflags(write=False)  # like a snapshot's features
    return table


@pytest.mark.parametrize("n", [1, 7, 64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_indexed_score_equals_reference_forward(n, seed):
    weights = random_weights(seed)
    provider = CpuProvider(weights)
    rng = np.random.default_rng(200 + seed)
    user, _, positions = random_request(rng, n)
    table = _snapshot_table(rng, 80)
    index = rng.choice(80, size=n, replace=False).astype(np.intp)
    score, ctr = provider.score_indexed(user, table, index, positions)
    ref_score, ref_ctr = weights.forward(F.feature_matrix(user, table[index], positions))
    assert score.shape == ctr.shape == (n,)
    assert score.dtype == ctr.dtype == np.float32
    np.testing.assert_allclose(score, ref_score, atol=1e-5, rtol=0)
    np.testing.assert_allclose(ctr, ref_ctr, atol=1e-5, rtol=0)
    np.testing.assert_allclose(score, provider.score(user, table[index], positions)[0], atol=1e-5, rtol=0)
    if n > 1:
        assert len(np.unique(score)) > 1


def test_offer_table_is_built_once_per_snapshot_and_model(rng):
    weights = random_weights(3)
    provider = CpuProvider(weights)
    first, second, third = (_snapshot_table(rng, 16) for _ in range(3))
    table = provider.offer_table(first)
    np.testing.assert_allclose(table, first.astype(np.float64) @ weights.W1[140:204], atol=1e-5, rtol=0)
    assert not table.flags.writeable
    assert provider.offer_table(first) is table  # cached: the same array, not recomputed
    provider.offer_table(second)
    assert provider.offer_table(first) is table  # the last two tables are kept
    provider.offer_table(third)
    assert provider.offer_table(third) is provider.offer_table(third)
    # another model version is another provider: its own table for the same snapshot
    other = CpuProvider(random_weights(4, version="other"))
    assert not np.allclose(other.offer_table(first), table)


def test_writable_offer_features_are_not_cached(rng):
    provider = CpuProvider(random_weights(6))
    user, offers, positions = random_request(rng, 5)
    index = np.arange(5, dtype=np.intp)
    before = provider.score_indexed(user, offers, index, positions)[0].copy()
    offers *= -1.0  # a writable array may change between calls: the result must follow it
    after = provider.score_indexed(user, offers, index, positions)[0]
    np.testing.assert_allclose(after, provider.score(user, offers, positions)[0], atol=1e-5, rtol=0)
    assert not np.array_equal(before, after)


def test_indexed_results_do_not_alias_between_calls(rng):
    provider = CpuProvider(random_weights(7))
    table = _snapshot_table(rng, 64)
    user, _, positions = random_request(rng, 64)
    index = np.arange(64, dtype=np.intp)
    score, ctr = provider.score_indexed(user, table, index, positions)
    kept = score.copy(), ctr.copy()
    provider.score_indexed(random_request(rng, 64)[0], table, index[::-1].copy(), positions)
    np.testing.assert_array_equal(score, kept[0])
    np.testing.assert_array_equal(ctr, kept[1])


def test_indexed_score_validates_shapes(rng):
    provider = CpuProvider(random_weights(1))
    table = _snapshot_table(rng, 10)
    user, _, positions = random_request(rng, 4)
    index = np.arange(4, dtype=np.intp)
    with pytest.raises(ValueError, match=r"user_row must have shape \(256,\), got \(139,\)"):
        provider.score_indexed(user[:139], table, index, positions)
    with pytest.raises(ValueError, match=r"offer_features must have shape \(n, 64\), got \(10, 63\)"):
        provider.score_indexed(user, table[:, :63], index, positions)
    with pytest.raises(ValueError, match=r"positions must have shape \(4,\)"):
        provider.score_indexed(user, table, index, positions[:3])
    with pytest.raises(IndexError):
        provider.score_indexed(user, table, np.array([0, 1, 2, 10], dtype=np.intp), positions)
    score, ctr = provider.score_indexed(user, table, index[:0], positions[:0])
    assert score.shape == ctr.shape == (0,)


def test_position_term_of_a_read_only_column_is_cached_and_equal(rng):
    weights = random_weights(8)
    provider = CpuProvider(weights)
    table = _snapshot_table(rng, 64)
    user = random_request(rng, 1)[0]
    column = F.position_column(64, 64)
    column.setflags(write=False)  # like the bid processor's ranked positions
    views = {n: column[:n] for n in (64, 5, 1)}  # the processor passes the same view objects each time
    writable = F.position_column(64, 64)
    for n, view in views.items():
        index = rng.choice(64, size=n, replace=False).astype(np.intp)
        cached = provider.score_indexed(user, table, index, view)
        again = provider.score_indexed(user, table, index, view)
        fresh = provider.score_indexed(user, table, index, writable[:n].copy())
        np.testing.assert_array_equal(cached[0], fresh[0])
        np.testing.assert_array_equal(again[0], fresh[0])
        ref_score, _ = weights.forward(F.feature_matrix(user, table[index], view))
        np.testing.assert_allclose(cached[0], ref_score, atol=1e-5, rtol=0)
    # prefix views of a read-only column: served as slices of the column's term, computed once
    assert provider._position_cache[0] is column
    assert provider.score_indexed(user, table, np.arange(7, dtype=np.intp), column[:7])[0].shape == (7,)
    assert provider._position_cache[0] is column
    assert all(entry[0].base is column for entry in provider._position_terms.values())
    provider._position_terms.clear()
    # a read-only array of its own: cached by identity
    own = F.position_column(64, 64)[:9].copy()
    own.setflags(write=False)
    provider.score_indexed(user, table, np.arange(9, dtype=np.intp), own)
    assert [entry[0] for entry in provider._position_terms.values()] == [own]
    # a writable column, or a read-only view of a writable one, could change: never cached
    provider.score_indexed(user, table, np.arange(3, dtype=np.intp), writable[:3])
    readonly_view_of_writable = writable[:3]
    readonly_view_of_writable.setflags(write=False)
    provider.score_indexed(user, table, np.arange(3, dtype=np.intp), readonly_view_of_writable)
    assert len(provider._position_terms) == 1 and provider._position_cache[0] is column
    for n, view in views.items():  # the processor's way: the same view objects, found by identity
        provider.score_indexed(user, table, np.arange(n, dtype=np.intp), view)
    assert len(provider._position_terms) == 4
