"""Beta-Bernoulli Thompson sampling over one decision's candidates (Django-free, measured by bench/).

One matrix of exact Beta draws (numpy ``Generator.beta``), ``draws`` rows by K arms, does both jobs:
row 0 is the Thompson sample the choice is made from (one draw per arm, argmax), and the share of
rows whose argmax is the chosen arm estimates its propensity P(arm is the argmax) — the logged
probability that off-policy evaluation divides by. The chosen arm wins row 0, so the estimate is at
least ``1 / draws`` and never 0. bench/bandit_eval.py measured it: 50 candidates × 256 draws, p99
well under the 5 ms budget (see bench/README.md).
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

DEFAULT_DRAWS = 256

_local = threading.local()


def generator() -> np.random.Generator:
    """This thread's generator (a Generator is not thread-safe), seeded from the OS once."""
    rng = getattr(_local, "rng", None)
    if rng is None:
        rng = _local.rng = np.random.default_rng(int.from_bytes(os.urandom(8), "little"))
    return rng


@dataclass(frozen=True, slots=True)
class Choice:
    index: int
    propensity: float
    #: Every arm's estimated probability of being chosen (sums to 1).
    probabilities: np.ndarray


def choose(successes: np.ndarray, failures: np.ndarray, *, prior_alpha: float = 1.0, prior_beta: float = 1.0,
           draws: int = DEFAULT_DRAWS, rng: np.random.Generator | None = None) -> Choice:
    """Pick one arm by Thompson sampling from Beta(prior_alpha + s, prior_beta + f) posteriors and
    estimate every arm's selection probability from ``draws`` joint draws (row 0 decides)."""
    k = len(successes)
    if k == 0:
        raise ValueError("Thompson sampling needs at least one candidate")
    if prior_alpha <= 0 or prior_beta <= 0:
        raise ValueError("Beta prior parameters must be > 0")
    rng = rng or generator()
    alpha = np.asarray(successes, dtype=np.float64) + prior_alpha
    beta = np.asarray(failures, dtype=np.float64) + prior_beta
    if k == 1:
        return Choice(0, 1.0, np.ones(1))
    theta = rng.beta(alpha, beta, size=(max(1, draws), k))
    winners = theta.argmax(axis=1)
    counts = np.bincount(winners, minlength=k)
    index = int(winners[0])
    probabilities = counts / counts.sum()
    return Choice(index, float(probabilities[index]), probabilities)


class PropensityTable:
    """Every arm's selection probability, cached per posterior version (the exact counts of the
    candidates, in order, and the prior): while no candidate's posterior changes, a decision costs one
    Beta draw per arm and a lookup instead of ``draws`` rows. Bounded; emptied when full."""

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._tables: dict[bytes, np.ndarray] = {}
        self.hits = self.misses = self.floored = 0

    def choose(self, successes: np.ndarray, failures: np.ndarray, *, prior_alpha: float = 1.0,
               prior_beta: float = 1.0, draws: int = DEFAULT_DRAWS, rng: np.random.Generator | None = None) -> Choice:
        s = np.asarray(successes, dtype=np.float64)
        f = np.asarray(failures, dtype=np.float64)
        key = s.tobytes() + f.tobytes() + np.array([prior_alpha, prior_beta, draws], dtype=np.float64).tobytes()
        table = self._tables.get(key)
        if table is None:
            self.misses += 1
            fresh = choose(s, f, prior_alpha=prior_alpha, prior_beta=prior_beta, draws=draws, rng=rng)
            if len(self._tables) >= self.max_entries:
                self._tables.clear()
            self._tables[key] = fresh.probabilities
            return fresh
        self.hits += 1
        index = choose_one(s, f, prior_alpha=prior_alpha, prior_beta=prior_beta, rng=rng)
        propensity = float(table[index])
        if propensity == 0.0:
            # the table's draws never saw this arm win: its probability is below their resolution
            self.floored += 1
            propensity = 0.5 / max(1, draws)
        return Choice(index, propensity, table)


def choose_one(successes: np.ndarray, failures: np.ndarray, *, prior_alpha: float = 1.0, prior_beta: float = 1.0,
               rng: np.random.Generator | None = None) -> int:
    """One Thompson draw per arm, no propensity (the simulations' inner loop)."""
    rng = rng or generator()
    theta = rng.beta(np.asarray(successes, dtype=np.float64) + prior_alpha,
                     np.asarray(failures, dtype=np.float64) + prior_beta)
    return int(theta.argmax())


def choose_many(successes: np.ndarray, failures: np.ndarray, n: int, *, prior_alpha: float = 1.0,
                prior_beta: float = 1.0, rng: np.random.Generator | None = None) -> np.ndarray:
    """``n`` independent Thompson choices from the same posteriors (one batch between updates)."""
    rng = rng or generator()
    theta = rng.beta(np.asarray(successes, dtype=np.float64) + prior_alpha,
                     np.asarray(failures, dtype=np.float64) + prior_beta, size=(n, len(successes)))
    return theta.argmax(axis=1)


def beta_interval(successes: float, failures: float, *, prior_alpha: float = 1.0, prior_beta: float = 1.0,
                  level: float = 0.95) -> tuple[float, float, float]:
    """Posterior mean and central ``level`` credible interval of Beta(prior + s, prior + f)."""
    from scipy.stats import beta as beta_dist

    a, b = successes + prior_alpha, failures + prior_beta
    tail = (1 - level) / 2
    low, high = beta_dist.ppf([tail, 1 - tail], a, b)
    return a / (a + b), float(low), float(high)
