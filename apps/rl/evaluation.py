"""Off-policy evaluation of candidate policies on a decision log (Django-free; used by
``manage.py evaluate_policy`` and bench/bandit_eval.py).

A log is a time-ordered sequence of rounds: segment, candidates, logged action, reward (1 success /
0 failure, as the posteriors count it) and the logged propensity. A policy is judged as it would
have run: its state at round t is the Beta counts of the rounds before t (refreshed every ``batch``
rounds — batched updates, as a service would refresh its posteriors), and its probability of every
candidate at round t gives IPS, SNIPS and DR. The reward model q̂ of DR is each arm's rate on the same
counts shrunk towards the candidates' pooled rate with weight ``Q_PSEUDO_TRIALS`` (a Beta(1,1) mean
would put an untried arm at 0.5, far off click rates of a few per thousand).

Policies (``policy_from_spec``): ``uniform``; ``epsilon-greedy[:ε]`` (ε/K each, the rest on the best
empirical rate, ties shared); ``thompson[:α,β]`` (probability of being the argmax of one Beta draw
per arm, estimated from ``draws`` joint draws — what the service logs); ``thompson:eb`` (the same
with an empirical-Bayes prior fitted to the candidates' pooled counts at each batch).

``GivenDistributions`` is a policy known only by its distribution at each logged round — an outside
ranker's (``offerfit-on``: OfferFit's logged distribution where it served, its deferred ranking
elsewhere; ``apps/rl/services/evaluation.py``). A round given ``None`` could not be ranked: it is left
out of the estimates (counted in ``Evaluation.excluded``) but still teaches q̂, as it happened. A
distribution with NaN entries knows only the logged action's probability (an OfferFit decision
logged before the whole ranking was kept): DR uses q̂ = 0 on that round — its term becomes the IPS
term, still unbiased since DR is for any q̂ — because Σ_a π(a|x) q̂(x, a) cannot be formed.
"""
from __future__ import annotations

import abc
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from apps.rl import estimators, thompson

Q_PSEUDO_TRIALS = 10.0


def reward_model(successes: np.ndarray, failures: np.ndarray) -> np.ndarray:
    """q̂ per arm: its rate shrunk towards the pooled rate of all the arms."""
    trials = successes + failures
    pooled = (successes.sum() + 1) / (trials.sum() + 2)
    return (successes + Q_PSEUDO_TRIALS * pooled) / (trials + Q_PSEUDO_TRIALS)


@dataclass(frozen=True)
class Round:
    segment: str
    candidates: tuple[str, ...]
    action: str
    reward: float
    pscore: float


class Policy(abc.ABC):
    name = "policy"

    @abc.abstractmethod
    def distribution(self, successes: np.ndarray, failures: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        ...


class Uniform(Policy):
    name = "uniform"

    def distribution(self, successes, failures, rng):
        return np.full(len(successes), 1.0 / len(successes))


class EpsilonGreedy(Policy):
    def __init__(self, epsilon: float = 0.1):
        if not 0 <= epsilon <= 1:
            raise ValueError("epsilon must be in [0, 1]")
        self.epsilon = epsilon
        self.name = f"epsilon-greedy:{epsilon:g}"

    def distribution(self, successes, failures, rng):
        k = len(successes)
        trials = successes + failures
        mean = np.where(trials > 0, successes / np.maximum(trials, 1), 0.0)  # the empirical rate; untried 0
        best = mean == mean.max()
        return self.epsilon / k + (1 - self.epsilon) * best / best.sum()


class Thompson(Policy):
    def __init__(self, alpha: float = 1.0, beta: float = 1.0, draws: int = 2000):
        if alpha <= 0 or beta <= 0:
            raise ValueError("Thompson priors must be > 0")
        self.alpha, self.beta, self.draws = alpha, beta, draws
        self.name = f"thompson:{alpha:g},{beta:g}"

    def distribution(self, successes, failures, rng):
        k = len(successes)
        if k == 1:
            return np.ones(1)
        theta = rng.beta(successes + self.alpha, failures + self.beta, size=(self.draws, k))
        return np.bincount(theta.argmax(axis=1), minlength=k) / self.draws


class ThompsonEmpiricalBayes(Thompson):
    """Thompson sampling whose Beta prior is fitted to the candidates' pooled counts at each batch
    (``thompson.empirical_bayes_prior``) instead of a fixed one."""

    def __init__(self, draws: int = 2000):
        super().__init__(1.0, 1.0, draws)
        self.name = "thompson:eb"

    def distribution(self, successes, failures, rng):
        self.alpha, self.beta = thompson.empirical_bayes_prior(successes, failures)
        return super().distribution(successes, failures, rng)


class GivenDistributions(Policy):
    """A policy given as its distribution over each round's candidates (same order), round by round."""

    def __init__(self, name: str, distributions: Sequence[np.ndarray | None]):
        self.name = name
        self.distributions = list(distributions)

    def distribution(self, successes, failures, rng):
        raise TypeError(f"{self.name} is known only at the logged rounds (round_terms reads them)")


def policy_from_spec(spec: str) -> Policy:
    """``uniform`` | ``epsilon-greedy[:0.1]`` | ``thompson[:1,1]`` | ``thompson:eb`` → a policy;
    ValueError names the problem."""
    name, _, args = spec.strip().partition(":")
    try:
        if name == "uniform" and not args:
            return Uniform()
        if name == "epsilon-greedy":
            return EpsilonGreedy(float(args) if args else 0.1)
        if name == "thompson":
            if not args:
                return Thompson()
            if args == "eb":
                return ThompsonEmpiricalBayes()
            alpha, beta = (float(v) for v in args.split(","))
            return Thompson(alpha, beta)
    except ValueError as exc:
        raise ValueError(f"bad policy {spec!r}: {exc}") from exc
    raise ValueError(f"unknown policy {spec!r}; use uniform, epsilon-greedy[:ε], thompson[:α,β], thompson:eb, "
                     "offerfit-off or offerfit-on")


@dataclass(frozen=True)
class Evaluation:
    policy: str
    rounds: int
    logged_value: float
    estimates: list[estimators.Estimate]
    excluded: int = 0  # rounds the policy has no distribution for (GivenDistributions' None)


@dataclass(frozen=True)
class Terms:
    """Per round: the logged reward and propensity, the target probability of the logged action, q̂ of
    the logged action and Σ_a π(a|x) q̂(x, a); with ``keep=True`` also every candidate's π and q̂.
    A round a ``GivenDistributions`` policy has no distribution for has NaN target and q̂ terms."""
    reward: np.ndarray
    pscore: np.ndarray
    target: np.ndarray
    q_logged: np.ndarray
    q_expected: np.ndarray
    distributions: list[np.ndarray] | None = None
    q_values: list[np.ndarray] | None = None


def round_terms(rounds: Sequence[Round], policy: Policy, *, batch: int = 100, seed: int = 0,
                keep: bool = False) -> Terms:
    """Run ``policy`` over the time-ordered ``rounds`` as it would have learnt from them."""
    rng = np.random.default_rng(seed)
    live: dict[tuple[str, str], list[float]] = defaultdict(lambda: [0.0, 0.0])
    frozen: dict[tuple[str, str], tuple[float, float]] = {}
    cache: dict[tuple[str, tuple[str, ...]], tuple[np.ndarray, np.ndarray, dict[str, int]]] = {}
    n = len(rounds)
    reward, pscore, target = np.zeros(n), np.zeros(n), np.zeros(n)
    q_logged, q_expected = np.zeros(n), np.zeros(n)
    dists: list[np.ndarray] = []
    qs: list[np.ndarray] = []
    given = policy.distributions if isinstance(policy, GivenDistributions) else None
    if given is not None and len(given) != n:
        raise ValueError(f"{policy.name}: {len(given)} distributions for {n} rounds")
    for t, r in enumerate(rounds):
        if t % batch == 0:  # batched update: the policy sees the counts as of this batch's start
            frozen = {key: (v[0], v[1]) for key, v in live.items()}
            cache.clear()
        key = (r.segment, r.candidates)
        if key not in cache:
            counts = [frozen.get((r.segment, c), (0.0, 0.0)) for c in r.candidates]
            s = np.array([c[0] for c in counts])
            f = np.array([c[1] for c in counts])
            probs = policy.distribution(s, f, rng) if given is None else np.empty(0)
            cache[key] = (probs, reward_model(s, f), {c: i for i, c in enumerate(r.candidates)})
        probs, q, index = cache[key]
        i = index[r.action]
        reward[t], pscore[t] = r.reward, r.pscore
        if given is not None:
            given_t = given[t]
            probs = given_t if given_t is not None else np.full(len(r.candidates), np.nan)
            if len(probs) != len(r.candidates):
                raise ValueError(f"{policy.name}: round {t} has {len(r.candidates)} candidates, "
                                 f"{len(probs)} probabilities")
        target[t] = probs[i]
        if given is not None and given[t] is not None and bool(np.isnan(probs).any()):
            q_logged[t], q_expected[t] = 0.0, 0.0  # only π(logged action) known: DR's term is the IPS term
        else:
            q_logged[t], q_expected[t] = q[i], float(probs @ q)
        if keep:
            dists.append(probs)
            qs.append(q)
        live[(r.segment, r.action)][0 if r.reward > 0 else 1] += 1
    return Terms(reward, pscore, target, q_logged, q_expected, dists if keep else None, qs if keep else None)


def evaluate(rounds: Sequence[Round], policy: Policy, *, batch: int = 100, seed: int = 0) -> Evaluation:
    """IPS, SNIPS and DR of ``policy`` on ``rounds`` (time-ordered), with 95 % intervals."""
    t = round_terms(rounds, policy, batch=batch, seed=seed)
    kept = ~np.isnan(t.target)  # the rounds the policy has a distribution for (all, but for GivenDistributions)
    reward, pscore, target = t.reward[kept], t.pscore[kept], t.target[kept]
    n = int(kept.sum())
    return Evaluation(
        policy=policy.name, rounds=n, logged_value=float(reward.mean()) if n else float("nan"),
        estimates=[estimators.ips(reward, pscore, target), estimators.snips(reward, pscore, target),
                   estimators.dr(reward, pscore, target, t.q_logged[kept], t.q_expected[kept])],
        excluded=len(rounds) - n,
    )
