import numpy as np
import pytest

from apps.inference.features import N_FEATURES, N_USER
from apps.inference.model import CoLaNetWeights


def random_weights(seed: int, hidden: int = 128, version: str = "rand") -> CoLaNetWeights:
    """Fully random weights (every input column live, per-unit thresholds), unlike the structured seed."""
    rng = np.random.default_rng(seed)
    return CoLaNetWeights(
        W1=rng.normal(0, 0.2, (N_FEATURES, hidden)),
        b1=rng.normal(0, 0.3, hidden),
        theta=rng.normal(0, 0.3, hidden),
        W2=rng.normal(0, 0.3, (hidden, 2)),
        b2=rng.normal(0, 0.3, 2),
        version=version,
    )


def random_request(rng: np.random.Generator, n: int):
    user = np.zeros(N_FEATURES, dtype=np.float32)
    user[:N_USER] = rng.normal(0, 1, N_USER)
    offers = rng.normal(0, 1, (n, 64)).astype(np.float32)
    positions = (np.arange(n) / 64).astype(np.float32)
    return user, offers, positions


@pytest.fixture
def rng():
    return np.random.default_rng(12345)
