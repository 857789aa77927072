"""The compiled scorer kernel (``apps.inference._colanet``, built by scripts/build_ext.py) gives the same
bits as the numpy path it replaces, on whatever BLAS this machine's numpy picked; the bid path gives the
same outcomes with and without it (the replay corpus through both)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from apps.inference import providers
from apps.inference.features import position_column
from apps.inference.model import CoLaNetWeights
from apps.inference.providers import CpuProvider

from .conftest import random_weights

kernel = pytest.importorskip("apps.inference._colanet", reason="run scripts/build_ext.py (scripts/setup.sh does)")


def _numpy_path(provider, user, table, candidates, positions, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(providers, "_colanet", None)
        return provider.rank_indexed(user, table, candidates, positions)


def test_the_provider_uses_the_kernel():
    assert providers._colanet is kernel


@pytest.mark.parametrize("weights", [CoLaNetWeights.seeded(seed=21), random_weights(3), random_weights(4, hidden=49)],
                         ids=["seeded", "random", "hidden-49"])
def test_rank_indexed_equals_the_numpy_path_bit_for_bit(weights, monkeypatch):
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
        compiled = provider.rank_indexed(user, table, candidates, positions)
        expected = _numpy_path(provider, user, table, candidates, positions, monkeypatch)
        assert compiled == expected, f"trial {trial}, n={n}"
        # and the numpy path is score_indexed, ranked
        score, ctr = provider.score_indexed(user, table, np.array(candidates, dtype=np.intp), positions)
        assert expected == (np.argsort(-score, kind="stable").tolist(), score.tolist(), ctr.tolist())


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
        kernel.spikes(table, [0], np.zeros(1, np.float64), np.zeros(128, np.float32), np.zeros(128, np.float32),
                      np.zeros((1, 128), np.float32))
    assert provider.rank_indexed(user, table, [], positions[:0]) == ([], [], [])


async def test_the_replay_corpus_gives_the_same_outcomes_with_and_without_the_kernel(tmp_path, monkeypatch):
    """Machine-independent: the two paths against each other (test_replay.py compares the compiled
    path with the saved corpus, which pins one BLAS's rounding)."""
    from tests.bidding.replay import World, load_corpus

    corpus = load_corpus()
    world = World(tmp_path / "models")
    compiled = [await world.outcome(row["request"].encode()) for row in corpus]
    monkeypatch.setattr(providers, "_colanet", None)
    differ = []
    for row, outcome in zip(corpus, compiled, strict=True):
        again = await world.outcome(row["request"].encode())
        if again != outcome:
            differ.append(json.loads(row["request"])["id"])
    assert not differ, f"{len(differ)} requests differ without the kernel: {differ[:5]}"
    assert sum(1 for o in compiled if o.get("response")) > 2000
