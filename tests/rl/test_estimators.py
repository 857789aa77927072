"""IPS, SNIPS and DR on a small hand-made log: values worked out by hand."""
import math

import pytest

from apps.rl import estimators

# 4 rounds: rewards, logged propensities, and the target policy's probability of the logged action.
REWARD = [1.0, 0.0, 1.0, 0.0]
PSCORE = [0.5, 0.5, 0.25, 0.25]
TARGET = [1.0, 0.0, 1.0, 1.0]


def test_ips():
    # terms: 1·1/0.5 = 2, 0, 1·1/0.25 = 4, 0 → mean 1.5
    est = estimators.ips(REWARD, PSCORE, TARGET)
    assert est.value == pytest.approx(1.5)
    sd = math.sqrt(((2 - 1.5) ** 2 + 1.5 ** 2 + 2.5 ** 2 + 1.5 ** 2) / 3)
    assert est.high - est.value == pytest.approx(1.959963984540054 * sd / 2)
    assert est.n == 4


def test_snips():
    # weights 2, 0, 4, 4 (sum 10); weighted rewards 2, 0, 4, 0 (sum 6) → 0.6
    assert estimators.snips(REWARD, PSCORE, TARGET).value == pytest.approx(0.6)


def test_dr_with_a_constant_model():
    # q̂ = 0.5 everywhere: terms 0.5·π(x) mass (1 per round) + w(r − 0.5): 0.5+1, 0.5+0, 0.5+2, 0.5−2
    est = estimators.dr(REWARD, PSCORE, TARGET, q_logged=[0.5] * 4, q_expected=[0.5] * 4)
    assert est.value == pytest.approx((1.5 + 0.5 + 2.5 - 1.5) / 4)


def test_uniform_target_on_uniform_logs_gives_the_mean_reward():
    est = estimators.snips([1, 0, 0, 1, 1], [0.2] * 5, [0.2] * 5)
    assert est.value == pytest.approx(0.6)


def test_bad_propensities_refused():
    with pytest.raises(ValueError, match="propensities"):
        estimators.ips([1.0], [0.0], [1.0])
