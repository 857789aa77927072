"""Off-policy estimators over a log of (action, reward, propensity) — Django-free.

The formulas are obp 0.4.1's (``obp/ope/estimators.py``), per round:

* IPS (``InverseProbabilityWeighting``): ``r · w`` with ``w = π_e(a|x) / p`` — V̂ is their mean.
* SNIPS (``SelfNormalizedInverseProbabilityWeighting``): ``r · w / mean(w)``.
* DR (``DoublyRobust``): ``Σ_a π_e(a|x) q̂(x, a) + w · (r − q̂(x, a_logged))``.

Intervals are 95 % normal intervals on the per-round terms (for SNIPS by the delta method, the
ratio of two means), so they are exact arithmetic on the log, with no resampling; the bench puts
them next to obp's bootstrap intervals on the same data.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Estimate:
    estimator: str
    value: float
    low: float
    high: float
    n: int

    def as_json(self) -> dict:
        return asdict(self)


def _normal(name: str, terms: np.ndarray) -> Estimate:
    n = len(terms)
    if n == 0:
        return Estimate(name, math.nan, math.nan, math.nan, 0)
    mean = float(terms.mean())
    half = Z95 * float(terms.std(ddof=1)) / math.sqrt(n) if n > 1 else math.inf
    return Estimate(name, mean, mean - half, mean + half, n)


def _check(reward: np.ndarray, pscore: np.ndarray, target: np.ndarray) -> None:
    if not (len(reward) == len(pscore) == len(target)):
        raise ValueError("reward, pscore and the target probabilities must have one entry per round")
    if len(pscore) and (np.any(pscore <= 0) or np.any(pscore > 1)):
        raise ValueError("propensities must be in (0, 1]")


def ips(reward, pscore, target) -> Estimate:
    """``target[i]`` = π_e(logged action of round i | x_i)."""
    reward, pscore, target = (np.asarray(v, dtype=np.float64) for v in (reward, pscore, target))
    _check(reward, pscore, target)
    return _normal("ips", reward * target / pscore)


def snips(reward, pscore, target) -> Estimate:
    reward, pscore, target = (np.asarray(v, dtype=np.float64) for v in (reward, pscore, target))
    _check(reward, pscore, target)
    n = len(reward)
    w = target / pscore
    if n == 0 or w.sum() == 0:
        return Estimate("snips", math.nan, math.nan, math.nan, n)
    rw = reward * w
    value = float(rw.mean() / w.mean())
    if n < 2:
        return Estimate("snips", value, -math.inf, math.inf, n)
    # delta method for mean(rw) / mean(w): the influence of round i is (rw_i - V w_i) / mean(w)
    influence = (rw - value * w) / w.mean()
    half = Z95 * float(influence.std(ddof=1)) / math.sqrt(n)
    return Estimate("snips", value, value - half, value + half, n)


def dr(reward, pscore, target, q_logged, q_expected) -> Estimate:
    """``q_logged[i]`` = q̂(x_i, logged action); ``q_expected[i]`` = Σ_a π_e(a|x_i) q̂(x_i, a)."""
    reward, pscore, target, q_logged, q_expected = (
        np.asarray(v, dtype=np.float64) for v in (reward, pscore, target, q_logged, q_expected))
    _check(reward, pscore, target)
    return _normal("dr", q_expected + target / pscore * (reward - q_logged))
