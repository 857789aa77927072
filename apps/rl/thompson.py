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
    Beta draw per arm and a lookup instead of ``draws`` rows.

    When a version is new, the ``draws × K`` matrix behind it is not drawn afresh: the matrix of the
    same candidate list (``arms``) is kept with the counts it was drawn from, and only the columns of
    the arms whose counts changed are redrawn (a reward changes one arm: ``draws`` Beta draws instead
    of ``draws × K``). Each column is an exact sample of its arm's current posterior, independent of
    the others, so the shares are the same estimate as a fresh matrix's; what is shared between two
    versions is only the sampling error of the arms that did not change. Both caches are bounded
    (emptied when full); a lock keeps two threads from refreshing one matrix at once."""

    def __init__(self, max_entries: int = 4096, max_matrices: int = 128):
        self.max_entries = max_entries
        self.max_matrices = max_matrices
        self._tables: dict[bytes, np.ndarray] = {}
        self._matrices: dict[tuple, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._lock = threading.Lock()
        self.hits = self.misses = self.floored = 0
        #: columns drawn for new versions: K per fresh matrix, one per changed arm otherwise
        self.columns_drawn = 0

    def _probabilities(self, s: np.ndarray, f: np.ndarray, arms: tuple | None, prior_alpha: float,
                       prior_beta: float, draws: int, rng: np.random.Generator) -> np.ndarray:
        alpha, beta = s + prior_alpha, f + prior_beta
        matrix_key = (arms, prior_alpha, prior_beta, draws) if arms is not None else None
        kept = self._matrices.get(matrix_key) if matrix_key is not None else None
        if kept is not None and kept[2].shape == (draws, len(s)):
            old_s, old_f, theta = kept
            changed = np.flatnonzero((old_s != s) | (old_f != f))
            if len(changed):
                theta[:, changed] = rng.beta(alpha[changed], beta[changed], size=(draws, len(changed)))
                self.columns_drawn += len(changed)
        else:
            theta = rng.beta(alpha, beta, size=(draws, len(s)))
            self.columns_drawn += len(s)
        if matrix_key is not None:
            if kept is None and len(self._matrices) >= self.max_matrices:
                self._matrices.clear()
            self._matrices[matrix_key] = (s.copy(), f.copy(), theta)
        return np.bincount(theta.argmax(axis=1), minlength=len(s)) / draws

    def choose(self, successes: np.ndarray, failures: np.ndarray, *, arms: tuple | None = None,
               prior_alpha: float = 1.0, prior_beta: float = 1.0, draws: int = DEFAULT_DRAWS,
               rng: np.random.Generator | None = None) -> Choice:
        """One Thompson choice (one fresh draw per arm) and its propensity from the version's table.
        ``arms`` (the candidates' ids, in order) lets a new version reuse the draws of unchanged arms."""
        s = np.asarray(successes, dtype=np.float64)
        f = np.asarray(failures, dtype=np.float64)
        if len(s) == 0:
            raise ValueError("Thompson sampling needs at least one candidate")
        if prior_alpha <= 0 or prior_beta <= 0:
            raise ValueError("Beta prior parameters must be > 0")
        if len(s) == 1:
            return Choice(0, 1.0, np.ones(1))
        rng = rng or generator()
        draws = max(1, draws)
        key = s.tobytes() + f.tobytes() + np.array([prior_alpha, prior_beta, draws], dtype=np.float64).tobytes()
        if arms is not None:
            key += repr(arms).encode()
        table = self._tables.get(key)
        if table is None:
            self.misses += 1
            with self._lock:
                table = self._probabilities(s, f, arms, prior_alpha, prior_beta, draws, rng)
            if len(self._tables) >= self.max_entries:
                self._tables.clear()
            self._tables[key] = table
        else:
            self.hits += 1
        index = choose_one(s, f, prior_alpha=prior_alpha, prior_beta=prior_beta, rng=rng)
        propensity = float(table[index])
        if propensity == 0.0:
            # the table's draws never saw this arm win: its probability is below their resolution
            self.floored += 1
            propensity = 0.5 / draws
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


def empirical_bayes_prior(successes: np.ndarray, failures: np.ndarray, *, min_trials: float = 100.0,
                          max_strength: float | None = 1000.0) -> tuple[float, float]:
    """A Beta(α, β) prior fitted to the pooled counts of a set of arms (empirical Bayes, "Thompson with
    other priors" of issue 18): the mean is the pooled rate, the strength α + β comes from how much
    more the arms' rates spread than binomial noise alone would make them — the method of moments of
    the beta-binomial with unequal trials (Kleinman 1973): with N trials over the K tried arms,
    S = Σ nᵢ (p̂ᵢ − m)², the intraclass correlation ρ = 1 / (α + β + 1) solves
    E[S] = m (1 − m) [(K − 1) + ρ (N − Σ nᵢ² / N)]. ρ is kept within [1 / (max_strength + 1), 1 / 3]
    (strength 2..max_strength): while the counts show no spread yet, the moments alone would put every
    arm at the pooled rate with an unbounded weight. ``max_strength=None`` caps it instead at the
    trials of an average arm (N / K over all the arms given), so the prior never weighs more than an
    arm's own data (bench/README.md reports both). The pooled rate
    is smoothed, (Σ s + ½) / (N + 1), so it is never 0. Fewer than ``min_trials`` trials, or fewer
    than two tried arms: Beta(1, 1)."""
    s = np.asarray(successes, dtype=np.float64)
    n = s + np.asarray(failures, dtype=np.float64)
    tried = n > 0
    total = float(n.sum())
    if total < min_trials or int(tried.sum()) < 2:
        return 1.0, 1.0
    if max_strength is None:
        max_strength = max(2.0, total / len(n))
    s, n = s[tried], n[tried]
    m = (float(s.sum()) + 0.5) / (total + 1.0)
    spread = float((n * (s / n - m) ** 2).sum())
    denominator = total - float((n ** 2).sum()) / total
    low, high = 1.0 / (max_strength + 1.0), 1.0 / 3.0
    rho = (spread / (m * (1.0 - m)) - (len(n) - 1)) / denominator if denominator > 0 else low
    rho = min(max(rho, low), high)
    strength = 1.0 / rho - 1.0
    return m * strength, (1.0 - m) * strength


def beta_interval(successes: float, failures: float, *, prior_alpha: float = 1.0, prior_beta: float = 1.0,
                  level: float = 0.95) -> tuple[float, float, float]:
    """Posterior mean and central ``level`` credible interval of Beta(prior + s, prior + f)."""
    from scipy.stats import beta as beta_dist

    a, b = successes + prior_alpha, failures + prior_beta
    tail = (1 - level) / 2
    low, high = beta_dist.ppf([tail, 1 - tail], a, b)
    return a / (a + b), float(low), float(high)
