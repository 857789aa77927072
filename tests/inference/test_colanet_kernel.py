"""The compiled scorer kernel (``apps.inference._colanet``, built by scripts/build_ext.py) agrees with the
numpy path it replaces within a few float32 ulps (no code matches every BLAS's summation order bit for
bit) and with a float64 forward; a unit exactly at its threshold does not fire; the bid path gives the
same outcomes with and without it (the replay corpus through both, compared as test_replay compares)."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from apps.inference import providers
from apps.inference.features import position_column
from apps.inference.model import SCORE_MAX, CoLaNetWeights
from apps.inference.providers import CpuProvider

from .conftest import random_weights

kernel = pytest.importorskip("apps.inference._colanet", reason="run scripts/build_ext.py (scripts/setup.sh does)")


def _numpy_path(provider, user, table, candidates, positions, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(providers, "_colanet", None)
        return provider.rank_indexed(user, table, candidates, positions)


def test_the_provider_uses_the_kernel():
    assert providers._colanet is kernel


def _float64_forward(provider, user, table, candidates, positions):
    """Layer 2 in float64 from the spikes as numpy decides them (float32 layer 1)."""
    weights = provider.weights
    w1 = weights.W1.astype(np.float64)
    thr = (weights.theta - weights.b1).astype(np.float32) - (user[:139].astype(np.float64) @ w1[:139]).astype(np.float32)
    pre = provider.offer_table(table)[candidates] + np.multiply.outer(positions, weights.W1[139]).astype(np.float32)
    z = (pre > thr).astype(np.float64) @ weights.W2.astype(np.float64) + weights.b2.astype(np.float64)
    return z


def _close(a, b):
    """Within float32 summation error: layer 2 sums ~100 terms of either sign in float32 (BLAS in its
    order, the kernel in eight lanes), a few ulps of the terms' magnitude, so 1e-5 relative (1e-6 near 0);
    the replay corpus allows 1.5e-5."""
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)


@pytest.mark.parametrize("weights", [CoLaNetWeights.seeded(seed=21), random_weights(3), random_weights(4, hidden=49)],
                         ids=["seeded", "random", "hidden-49"])
def test_rank_indexed_agrees_with_the_numpy_path_within_float32_ulps(weights, monkeypatch):
    provider = CpuProvider(weights)
    rng = np.random.default_rng(2026)
    table = rng.random((80, 64), dtype=np.float32)
    table[:, 50] = rng.random(80) < 0.3  # the seeded ladders read columns 48 and 50: exact thresholds
    table.setflags(write=False)
    column = position_column(64, 64)
    column.setflags(write=False)
    for trial in range(400):
        n = int(rng.integers(1, 65))
        candidates = sorted(rng.choice(80, n, replace=False).tolist())
        if trial % 7 == 0:
            candidates = [int(candidates[0])] * n  # the same offer at every position
        user = np.zeros(256, dtype=np.float32)
        user[:139] = rng.random(139) * (rng.random(139) < 0.5)
        positions = column[:n] if trial % 2 else np.arange(n, dtype=np.float32) / 64
        order, scores, ctrs = provider.rank_indexed(user, table, candidates, positions)
        e_order, e_scores, e_ctrs = _numpy_path(provider, user, table, candidates, positions, monkeypatch)
        # the same tanh (numpy's): the scores within float32 summation error, the CTRs — whose (1 + tanh) / 2
        # amplifies tanh's last bit near a CTR of 0 — within the replay corpus's 1.5e-5
        bad = [(a, b) for a, b in zip(scores, e_scores, strict=True) if not _close(a, b)]
        assert not bad, f"trial {trial}, n={n}: {bad[:3]}"
        assert all(math.isclose(a, b, rel_tol=1.5e-5, abs_tol=1e-6) for a, b in zip(ctrs, e_ctrs, strict=True))
        assert order == sorted(range(n), key=lambda i: -scores[i])  # stable: ties in candidate order
        # the numpy path's ranking, but for candidates whose scores tie within that tolerance
        assert order == e_order or all(_close(e_scores[i], e_scores[j]) for i, j in zip(order, e_order, strict=True))
        # and against layer 2 in float64 (the kernel no further from it than the float32 BLAS path)
        z = _float64_forward(provider, user, table, candidates, positions)
        top = float(SCORE_MAX)
        assert all(_close(a, max(min(math.tanh(b), top), -top)) for a, b in zip(scores, z[:, 0], strict=True))


@pytest.mark.parametrize("hidden", [128, 49])
def test_the_avx2_loops_give_the_bits_of_the_c_loops(hidden):
    provider = CpuProvider(random_weights(7, hidden=hidden))
    rng = np.random.default_rng(7)
    table = rng.random((80, 64), dtype=np.float32)
    table.setflags(write=False)
    try:
        for _ in range(100):
            n = int(rng.integers(1, 65))
            candidates = rng.integers(0, 80, n).tolist()
            user = np.zeros(256, dtype=np.float32)
            user[:139] = rng.normal(0, 1, 139) * (rng.random(139) < 0.5)
            positions = rng.random(n, dtype=np.float32)
            kernel.use_avx2(False)
            plain = provider.rank_indexed(user, table, candidates, positions)
            kernel.use_avx2(True)
            assert provider.rank_indexed(user, table, candidates, positions) == plain
    finally:
        kernel.use_avx2(True)


def test_the_kernels_tanh_is_numpys_bit_for_bit():
    """``rank`` calls numpy's float32 tanh loop directly (no ufunc dispatch): the same bits as np.tanh."""
    x = np.random.default_rng(21).uniform(-12, 12, 200_000).astype(np.float32)
    x[:6] = [0.0, -0.0, np.inf, -np.inf, 1e-30, np.nan]
    y = x.copy()
    kernel.tanh32(y)
    assert np.array_equal(y.view(np.int32), np.tanh(x).view(np.int32))


def test_a_unit_exactly_at_its_threshold_does_not_fire():
    """The seeded CTR ladder: unit j fires when the scaled CTR exceeds (j + 0.5) / 32; a CTR exactly on a
    step gives the same score as the numpy path (no unit flips at its threshold)."""
    weights = CoLaNetWeights.seeded(seed=5)
    provider = CpuProvider(weights)
    table = np.zeros((33, 64), dtype=np.float32)
    table[:, 50] = (np.arange(33) + 0.5) / 32  # every row exactly on a threshold
    table.setflags(write=False)
    user = np.zeros(256, dtype=np.float32)
    positions = np.zeros(33, dtype=np.float32)
    compiled = provider.rank_indexed(user, table, list(range(33)), positions)
    with pytest.MonkeyPatch.context() as m:
        m.setattr(providers, "_colanet", None)
        expected = provider.rank_indexed(user, table, list(range(33)), positions)
    assert compiled[0] == expected[0]
    assert all(_close(a, b) for a, b in zip(compiled[1], expected[1], strict=True))


def test_the_ranking_is_stable_on_ties():
    out = np.array([[0.5, 0.0], [0.7, 0.0], [0.5, 0.0], [0.7, 0.0], [-2.0, -3.0]], dtype=np.float32)
    order, scores, ctrs = kernel.ranked(out, 5)
    assert order == [1, 3, 0, 2, 4]
    score, ctr = providers.heads(out.copy())  # clipped: -2 to -(1 - 2**-24), a CTR of -1 to 1e-6
    assert scores == score.tolist() and ctrs == ctr.tolist()
    assert scores[4] == -float(np.nextafter(np.float32(1), np.float32(0))) and ctrs[4] == float(np.float32(1e-6))


def test_kernel_refuses_what_numpy_would_refuse():
    provider = CpuProvider(random_weights(1))
    table = np.zeros((4, 64), dtype=np.float32)
    table.setflags(write=False)
    user = np.zeros(256, dtype=np.float32)
    positions = np.zeros(2, dtype=np.float32)
    with pytest.raises(IndexError):
        provider.rank_indexed(user, table, [0, 4], positions)
    with pytest.raises(IndexError):
        provider.rank_indexed(user, table, [-1, 0], positions)
    with pytest.raises(ValueError):
        provider.rank_indexed(user[:139], table, [0, 1], positions)
    with pytest.raises(ValueError):
        provider.rank_indexed(user, table, [0, 1], positions[:1])
    with pytest.raises(ValueError):
        kernel.layers(table, [0], np.zeros(1, np.float64), np.zeros(128, np.float32), user,
                      np.zeros((139, 128), np.float32), np.zeros(128, np.float32), np.zeros((2, 128), np.float32),
                      np.zeros(2, np.float32), np.zeros((1, 2), np.float32))
    assert provider.rank_indexed(user, table, [], positions[:0]) == ([], [], [])


async def test_the_replay_corpus_gives_the_same_outcomes_with_and_without_the_kernel(tmp_path, monkeypatch):
    """Machine-independent: the two paths against each other, as test_replay.py compares the compiled
    path with the saved corpus (bids and prices to the cent, the model's outputs within 1.5e-5)."""
    from tests.bidding.replay import World, load_corpus, same

    corpus = load_corpus()
    world = World(tmp_path / "models")
    compiled = [await world.outcome(row["request"].encode()) for row in corpus]
    monkeypatch.setattr(providers, "_colanet", None)
    differ = []
    for row, outcome in zip(corpus, compiled, strict=True):
        again = await world.outcome(row["request"].encode())
        if same(outcome, again):
            differ.append(json.loads(row["request"])["id"])
    assert not differ, f"{len(differ)} requests differ without the kernel: {differ[:5]}"
    assert sum(1 for o in compiled if o.get("response")) > 2000
