"""Decisions judged on data nobody here wrote: the Open Bandit Dataset sample (issue 18).

Data: the OBD sample shipped in the ``obp==0.4.1`` wheel (``pip install --no-deps obp==0.4.1``;
requirements/bench.txt), read in place from site-packages: ``obd/random/{all,men,women}/*.csv``,
10,000 rounds each logged by the uniform-random policy (ZOZOTOWN fashion recommendations, 3
positions, 80 / 34 / 46 items, 38 / 46 / 46 clicks). Nothing is copied. obp's own loader
(``OpenBanditDataset``) calls ``DataFrame.drop(col, 1)``, which pandas 2 refuses, so the CSVs are read
here the way it reads them: action = ``item_id``, position = dense rank of ``position`` − 1,
reward = ``click``, pscore = ``propensity_score``.

1. **Estimators against obp's.** For uniform, ε-greedy (0.1) and our Thompson policy (Beta(1,1), batched
   updates every 500 rounds, run per position over all items by ``apps.rl.evaluation.round_terms``),
   our IPS / SNIPS / DR (``apps.rl.estimators``) and obp's ``InverseProbabilityWeighting``,
   ``SelfNormalizedInverseProbabilityWeighting`` and ``DoublyRobust`` get the same rounds, the same
   ``action_dist`` and the same reward model; the table prints both values, their difference, our 95 %
   normal interval and obp's bootstrap interval. obp's estimator module is imported from the wheel
   unchanged; only the package ``obp.ope``'s ``__init__`` is not run, because it imports the plotting
   module ``meta`` (matplotlib, seaborn) that the estimators do not use.
2. **Simulation.** For each campaign of the sample (``random/all``, ``men``, ``women``: 80 / 34 / 46
   arms), arms whose click rates are that file's per-item click rates; 10⁵ decisions with batched
   updates (every 100 decisions), 20 seeds; cumulative expected regret against the oracle arm, mean
   and 95 % t-interval over the seeds, for ours (Beta(1,1), ``apps.rl.thompson.choose_many``),
   ε-greedy (ε = 0.1), UCB1 and mabwiser's ``LearningPolicy.ThompsonSampling``; also ours with an
   empirical-Bayes prior refitted from the pooled counts at every batch
   (``apps.rl.thompson.empirical_bayes_prior``, strength capped at 1,000 or at an average arm's
   trials: ``ours-eb``, ``ours-eb-capped``), ours with the arms' true mean rate as the prior (a
   reference: no policy knows it), what Beta(1,1) spends on the arms that never click against
   ln(T·p*) / KL(0‖p*), and a 10⁶-decision run with 5 seeds on the first campaign.
3. **Decision latency in process** (``apps.rl.thompson.choose``): 50 candidates, the choice and its
   propensity from 256 joint draws; p50 / p99 over 20,000 decisions; and how far the propensity
   estimate is from the exact one (200,000 draws) at 256 and 1,024 draws; the cached table, and
   a new version every decision (one arm changed: ``PropensityTable`` redraws that column only).

    .venv/bin/python bench/bandit_eval.py [--seeds 20] [--decisions 100000] [--skip-mabwiser]
"""
from __future__ import annotations

import argparse
import importlib.util
import math
import os
import pathlib
import sys
import time

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from apps.rl import estimators, evaluation, thompson  # noqa: E402  (Django-free modules)


def obd_dir() -> pathlib.Path:
    import obp

    return pathlib.Path(obp.__file__).parent / "dataset" / "obd"


def load(campaign: str) -> dict:
    import pandas as pd
    from scipy.stats import rankdata

    frame = pd.read_csv(obd_dir() / "random" / campaign / f"{campaign}.csv", index_col=0)
    items = pd.read_csv(obd_dir() / "random" / campaign / "item_context.csv", index_col=0)
    return {
        "action": frame["item_id"].to_numpy(dtype=int),
        "position": (rankdata(frame["position"].to_numpy(), "dense") - 1).astype(int),
        "reward": frame["click"].to_numpy(dtype=float),
        "pscore": frame["propensity_score"].to_numpy(dtype=float),
        "n_actions": int(items.shape[0]),
    }


def obp_estimators():
    """obp 0.4.1's estimator classes, from the wheel, without running ``obp/ope/__init__.py``."""
    import obp

    root = pathlib.Path(obp.__file__).parent / "ope"
    if "obp.ope" not in sys.modules:
        spec = importlib.util.spec_from_file_location("obp.ope", root / "__init__.py",
                                                      submodule_search_locations=[str(root)])
        sys.modules["obp.ope"] = importlib.util.module_from_spec(spec)
    from obp.ope.estimators import (
        DoublyRobust,
        InverseProbabilityWeighting,
        SelfNormalizedInverseProbabilityWeighting,
    )

    return InverseProbabilityWeighting(), SelfNormalizedInverseProbabilityWeighting(), DoublyRobust()


def fmt(e: estimators.Estimate) -> str:
    return f"{e.value:.5f} [{e.low:.5f}, {e.high:.5f}]"


def ope_section(bootstrap: int) -> list[dict]:
    ipw, snipw, dr = obp_estimators()
    out = []
    print("\n## 1. OPE on the OBD uniform-random logs: ours vs obp 0.4.1 (same rounds, same action_dist)")
    print(f"{'campaign':<7} {'policy':<19} {'est':<5} {'ours':>9} {'obp':>9} {'|diff|':>8}  ours 95 % (normal)   "
          f"obp 95 % (bootstrap {bootstrap})")
    for campaign in ("all", "men", "women"):
        data = load(campaign)
        n, k = len(data["action"]), data["n_actions"]
        candidates = tuple(str(i) for i in range(k))
        rounds = [evaluation.Round(f"pos{p}", candidates, str(a), r, ps)
                  for a, p, r, ps in zip(data["action"], data["position"], data["reward"], data["pscore"], strict=True)]
        for policy in (evaluation.Uniform(), evaluation.EpsilonGreedy(0.1), evaluation.Thompson(1, 1, draws=2000)):
            terms = evaluation.round_terms(rounds, policy, batch=500, seed=7, keep=True)
            action_dist = np.zeros((n, k, 3))
            q_hat = np.zeros((n, k, 3))
            for t in range(n):
                action_dist[t, :, data["position"][t]] = terms.distributions[t]
                q_hat[t, :, data["position"][t]] = terms.q_values[t]
                # the other positions' columns are never read by the estimators; fill them consistently
                for other in range(3):
                    if other != data["position"][t]:
                        action_dist[t, :, other] = terms.distributions[t]
                        q_hat[t, :, other] = terms.q_values[t]
            ours = [estimators.ips(terms.reward, terms.pscore, terms.target),
                    estimators.snips(terms.reward, terms.pscore, terms.target),
                    estimators.dr(terms.reward, terms.pscore, terms.target, terms.q_logged, terms.q_expected)]
            kwargs = {"reward": data["reward"], "action": data["action"], "position": data["position"],
                      "pscore": data["pscore"], "action_dist": action_dist}
            theirs = [(ipw, kwargs), (snipw, kwargs), (dr, {**kwargs, "estimated_rewards_by_reg_model": q_hat})]
            for mine, (estimator, kw) in zip(ours, theirs, strict=True):
                value = float(estimator.estimate_policy_value(**kw))
                interval = estimator.estimate_interval(**kw, alpha=0.05, n_bootstrap_samples=bootstrap, random_state=1)
                low, high = interval["95.0% CI (lower)"], interval["95.0% CI (upper)"]
                diff = abs(value - mine.value)
                print(f"{campaign:<7} {policy.name:<19} {mine.estimator:<5} {mine.value:9.5f} {value:9.5f} {diff:8.1e}  "
                      f"[{mine.low:.5f}, {mine.high:.5f}]   [{low:.5f}, {high:.5f}]")
                out.append({"campaign": campaign, "policy": policy.name, "estimator": mine.estimator,
                            "ours": mine.value, "obp": value, "diff": diff})
    print(f"max |ours − obp| over {len(out)} estimates: {max(r['diff'] for r in out):.2e}")
    return out


# --- 2. regret simulation ----------------------------------------------------------------------------

def click_rates(campaign: str = "all") -> np.ndarray:
    data = load(campaign)
    k = data["n_actions"]
    clicks = np.bincount(data["action"], weights=data["reward"], minlength=k)
    shown = np.bincount(data["action"], minlength=k)
    return clicks / np.maximum(shown, 1)


POLICIES = ("ours", "epsilon-greedy", "ucb1", "mabwiser", "ours-eb", "ours-eb-capped", "ours-informed-prior")


def simulate(policy: str, rates: np.ndarray, *, decisions: int, batch: int, seed: int,
             prior: tuple[float, float] = (1.0, 1.0)) -> tuple[float, np.ndarray]:
    """Cumulative expected regret of one run, and each arm's pulls."""
    rng = np.random.default_rng(seed)
    k = len(rates)
    best = rates.max()
    s, n = np.zeros(k), np.zeros(k)
    regret = 0.0
    mab = None
    if policy == "mabwiser":
        from mabwiser.mab import MAB, LearningPolicy

        mab = MAB(arms=list(range(k)), learning_policy=LearningPolicy.ThompsonSampling(), seed=seed)
    done = 0
    while done < decisions:
        size = min(batch, decisions - done)
        if policy == "ours":
            arms = thompson.choose_many(s, n - s, size, rng=rng)
        elif policy in ("ours-eb", "ours-eb-capped"):  # the prior refitted from the pooled counts at every batch
            alpha, beta = thompson.empirical_bayes_prior(s, n - s, max_strength=None if policy == "ours-eb-capped" else 1000.0)
            arms = thompson.choose_many(s, n - s, size, prior_alpha=alpha, prior_beta=beta, rng=rng)
        elif policy == "ours-informed-prior":
            alpha, beta = prior
            arms = thompson.choose_many(s, n - s, size, prior_alpha=alpha, prior_beta=beta, rng=rng)
        elif policy == "epsilon-greedy":
            mean = np.where(n > 0, s / np.maximum(n, 1), 0.0)
            top = np.flatnonzero(mean == mean.max())
            arms = rng.choice(top, size=size)
            explore = rng.random(size) < 0.1
            arms[explore] = rng.integers(0, k, size=int(explore.sum()))
        elif policy == "ucb1":
            untried = np.flatnonzero(n == 0)
            first = untried[:size]
            total = max(n.sum(), 1.0)
            index = np.where(n > 0, s / np.maximum(n, 1) + np.sqrt(2 * math.log(total) / np.maximum(n, 1)), np.inf)
            arms = np.concatenate([first, np.full(size - len(first), int(np.argmax(index)))]).astype(int)
        elif policy == "mabwiser":
            assert mab is not None
            if done == 0:
                arms = rng.integers(0, k, size=size)  # mabwiser predicts only after a fit; Beta(1,1) = uniform
            else:
                arms = np.asarray(mab.predict(contexts=np.zeros((size, 1))), dtype=int)
        else:
            raise ValueError(policy)
        clicks = (rng.random(size) < rates[arms]).astype(float)
        np.add.at(s, arms, clicks)
        np.add.at(n, arms, 1.0)
        if mab is not None:
            (mab.fit if done == 0 else mab.partial_fit)(decisions=arms, rewards=clicks)
        regret += float((best - rates[arms]).sum())
        done += size
    return regret, n


def _interval(runs: np.ndarray) -> tuple[float, float, float]:
    from scipy.stats import t as student_t

    seeds = len(runs)
    half = student_t.ppf(0.975, seeds - 1) * runs.std(ddof=1) / math.sqrt(seeds) if seeds > 1 else math.inf
    return float(runs.mean()), float(runs.mean() - half), float(runs.mean() + half)


def kl_bernoulli(p: float, q: float) -> float:
    out = 0.0
    if p > 0:
        out += p * math.log(p / q)
    if p < 1:
        out += (1 - p) * math.log((1 - p) / (1 - q))
    return out


def regret_section(seeds: int, decisions: int, batch: int, skip_mabwiser: bool, long_horizon: int,
                   campaigns: list[str], policies: list[str]) -> dict:
    print(f"\n## 2. Regret over {decisions:,} decisions, batched updates every {batch}, {seeds} seeds")
    results: dict = {}
    for campaign in campaigns:
        rates = click_rates(campaign)
        pooled = float(rates.mean())
        informed = (100 * pooled, 100 * (1 - pooled))
        best = float(rates.max())
        zero = rates == 0
        print(f"\n### random/{campaign}: {len(rates)} arms, click rates max {best:.4f}, mean {pooled:.4f}, "
              f"{int((~zero).sum())} above 0, {int(zero.sum())} at 0")
        found = results[campaign] = {}
        pulls: dict[str, np.ndarray] = {}
        for policy in policies:
            if policy == "mabwiser" and skip_mabwiser:
                continue
            started = time.perf_counter()
            runs = [simulate(policy, rates, decisions=decisions, batch=batch, seed=1000 + i, prior=informed)
                    for i in range(seeds)]
            found[policy] = _interval(np.array([r for r, _ in runs]))
            pulls[policy] = np.mean([n for _, n in runs], axis=0)
            mean, low, high = found[policy]
            print(f"{policy:<20} regret {mean:9.1f}  95 % [{low:9.1f}, {high:9.1f}]  ({time.perf_counter() - started:.1f} s)")
        if "ours-informed-prior" in found:
            print(f"(ours-informed-prior: Beta({informed[0]:.2f}, {informed[1]:.2f}), the arms' true mean rate with the "
                  f"weight of 100 trials — knowledge no policy has: a reference, not a result)")
        if "ours" not in found:
            continue
        ours = found["ours"]
        for other in ("epsilon-greedy", "ucb1"):
            if other in found:
                o = found[other]
                print(f"ours / {other}: {ours[0] / o[0]:.3f} (target ≤ 0.5; intervals overlap: {ours[2] >= o[1] and o[2] >= ours[1]})")
        if "mabwiser" in found:
            m = found["mabwiser"]
            print(f"ours mean within mabwiser's interval: {m[1] <= ours[0] <= m[2]}; mabwiser mean within ours: "
                  f"{ours[1] <= m[0] <= ours[2]}")
        for variant in ("ours-eb", "ours-eb-capped", "ours-informed-prior"):
            if variant in found and "epsilon-greedy" in found:
                eb, o = found[variant], found["epsilon-greedy"]
                print(f"{variant} / epsilon-greedy: {eb[0] / o[0]:.3f} (intervals overlap: {eb[2] >= o[1] and o[2] >= eb[1]})")
        # Why Beta(1,1) cannot reach half of ε-greedy here: what its never-clicking arms alone cost.
        if zero.any():
            kl = kl_bernoulli(0.0, best)
            need = math.log(decisions * best) / kl
            spent = float(pulls["ours"][zero].mean())
            cost = float(((best - rates[zero]) * pulls["ours"][zero]).sum())
            print(f"Beta(1,1) and the {int(zero.sum())} arms at 0: each pulled {spent:.0f} times on average "
                  f"(ln(T·p*) / KL(0‖p*) = {need:.0f}; Lai–Robbins ln T / KL = {math.log(decisions) / kl:.0f}); "
                  f"their regret alone {cost:.1f}" + (f" vs half of ε-greedy's {found['epsilon-greedy'][0] / 2:.1f}"
                                                     if "epsilon-greedy" in found else ""))
    if long_horizon:
        rates = click_rates(campaigns[0])
        print(f"\nlonger horizon, random/{campaigns[0]}: {long_horizon:,} decisions, 5 seeds (ε-greedy's exploration "
              f"cost grows linearly)")
        for policy in ("ours", "epsilon-greedy", "ucb1", "ours-eb", "ours-eb-capped"):
            runs = np.array([simulate(policy, rates, decisions=long_horizon, batch=batch, seed=2000 + i)[0]
                             for i in range(5)])
            mean, low, high = _interval(runs)
            print(f"{policy:<20} regret {mean:9.1f}  95 % [{low:9.1f}, {high:9.1f}]", flush=True)
    return results


# --- 3. decision latency -----------------------------------------------------------------------------

def _percentiles(call, calls: int) -> tuple[float, float, float]:
    for _ in range(500):
        call()
    times = np.empty(calls)
    for i in range(calls):
        started = time.perf_counter_ns()
        call()
        times[i] = time.perf_counter_ns() - started
    p50, p99, worst = np.percentile(times, [50, 99, 100]) / 1000
    return float(p50), float(p99), float(worst)


def latency_section(calls: int) -> None:
    rng = np.random.default_rng(3)
    k = 50
    s = rng.integers(0, 200, size=k).astype(float)
    f = s + rng.integers(0, 5000, size=k)
    print(f"\n## 3. Decision latency in process: {k} candidates, choice + propensity (apps.rl.thompson)")
    exact = thompson.choose(s, f, draws=200_000, rng=np.random.default_rng(9)).probabilities
    for draws in (256, 1024):
        p50, p99, worst = _percentiles(lambda d=draws: thompson.choose(s, f, draws=d), calls)
        errors = [np.abs(thompson.choose(s, f, draws=draws, rng=np.random.default_rng(100 + j)).probabilities - exact).max()
                  for j in range(50)]
        print(f"fresh draws {draws:>5} (table miss): p50 {p50:7.1f} µs  p99 {p99:7.1f} µs  max {worst:8.1f} µs   "
              f"propensity error vs 200k draws: mean max-abs {np.mean(errors):.4f}")
    table = thompson.PropensityTable()
    p50, p99, worst = _percentiles(lambda: table.choose(s, f, draws=256), calls)
    print(f"cached table, 256 draws (hit: one draw per arm + lookup): p50 {p50:7.1f} µs  p99 {p99:7.1f} µs  "
          f"max {worst:8.1f} µs  (hits {table.hits}, misses {table.misses}, floored {table.floored})")
    refresh = thompson.PropensityTable()
    running = f.copy()
    arms = tuple(str(i) for i in range(k))

    def one_arm_changed() -> None:  # a reward on one arm before every decision: a new version each time
        running[int(rng.integers(0, k))] += 1
        refresh.choose(s, running, arms=arms, draws=256)

    p50, p99, worst = _percentiles(one_arm_changed, calls)
    print(f"one arm changed before each, 256 draws (miss: that arm's column redrawn): p50 {p50:7.1f} µs  "
          f"p99 {p99:7.1f} µs  max {worst:8.1f} µs  (misses {refresh.misses}, columns drawn {refresh.columns_drawn})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--bootstrap", type=int, default=1000, help="obp's bootstrap resamples for its intervals")
    parser.add_argument("--latency-calls", type=int, default=20_000)
    parser.add_argument("--skip-mabwiser", action="store_true")
    parser.add_argument("--long-horizon", type=int, default=1_000_000, help="decisions of the 5-seed long run (0: skip)")
    parser.add_argument("--only", choices=["ope", "regret", "latency"])
    parser.add_argument("--campaigns", default="all,men,women", help="OBD random campaigns whose rates the arms take")
    parser.add_argument("--policies", default=",".join(POLICIES), help=f"comma-separated, of: {', '.join(POLICIES)}")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    if args.only in (None, "ope"):
        ope_section(args.bootstrap)
    if args.only in (None, "regret"):
        regret_section(args.seeds, args.decisions, args.batch, args.skip_mabwiser, args.long_horizon,
                       args.campaigns.split(","), args.policies.split(","))
    if args.only in (None, "latency"):
        latency_section(args.latency_calls)


if __name__ == "__main__":
    main()
