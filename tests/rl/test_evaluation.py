"""Policy evaluation on a hand-made log, and ``manage.py evaluate_policy`` on the real decision log."""
from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.analytics import testing
from apps.rl import evaluation, services
from apps.rl.models import EvaluationRun
from tests.rl.conftest import fresh_range_start

R = evaluation.Round


def test_uniform_on_a_uniform_log_estimates_the_logged_mean():
    log = [R("s", ("a", "b"), a, r, 0.5) for a, r in [("a", 1), ("b", 0), ("a", 1), ("b", 1), ("a", 0)]]
    result = evaluation.evaluate(log, evaluation.Uniform())
    ips, snips, dr = result.estimates
    assert result.logged_value == pytest.approx(0.6)
    assert (ips.value, snips.value) == (pytest.approx(0.6), pytest.approx(0.6))
    # DR by hand: the 5 rounds fit in one batch (100), so q̂ stays the prior mean 0.5 for both arms
    assert dr.value == pytest.approx(0.5 + sum(0.5 / 0.5 * (r.reward - 0.5) for r in log) / 5)


def test_greedy_policy_is_credited_only_on_the_rounds_it_would_have_played():
    # after the first batch, "a" has the best posterior mean; epsilon 0 → plays "a" with probability 1
    log = [R("s", ("a", "b"), "a", 1.0, 0.5), R("s", ("a", "b"), "b", 0.0, 0.5),
           R("s", ("a", "b"), "a", 1.0, 0.5), R("s", ("a", "b"), "b", 1.0, 0.5)]
    result = evaluation.evaluate(log, evaluation.EpsilonGreedy(0.0), batch=2)
    # round 0-1: no counts, tie → 0.5 each; rounds 2-3: a has 1/1, b 0/1 → a with probability 1
    # IPS terms: 1·0.5/0.5, 0, 1·1/0.5, 1·0/0.5 → (1 + 0 + 2 + 0) / 4
    assert result.estimates[0].value == pytest.approx(0.75)


def test_policy_specs():
    assert evaluation.policy_from_spec("thompson:2,3").name == "thompson:2,3"
    assert evaluation.policy_from_spec("epsilon-greedy:0.2").name == "epsilon-greedy:0.2"
    with pytest.raises(ValueError, match="unknown policy"):
        evaluation.policy_from_spec("random-forest")
    with pytest.raises(ValueError, match="bad policy"):
        evaluation.policy_from_spec("thompson:0,1")


@pytest.mark.django_db(transaction=True)
def test_evaluate_policy_command_on_the_logged_decisions(clickhouse_db):
    start = fresh_range_start()  # the other tests' decisions stay in ClickHouse
    for i in range(20):
        d = services.rl_decide(user_id=f"u-ev-{i}", channel="web", context={"tier": "green"}, candidates=["x", "y"])
        services.rl_reward(decision_id=d.decision_id, value=1.0 if d.offer_id == "x" else 0.0)
    services.rl_decide(user_id="u-open", channel="web", context={"tier": "green"}, candidates=["x", "y"])  # open
    testing.flush_and_consume()
    out = io.StringIO()
    call_command("evaluate_policy", "--policy", "uniform", "--policy", "thompson", "--policy", "offerfit-off",
                 "--since", start.isoformat(), "--until", (timezone.now() + timedelta(seconds=5)).isoformat(), stdout=out)
    text = out.getvalue()
    assert "uniform: 20 closed decisions" in text and "thompson:1,1: 20 closed decisions" in text
    assert "evaluated 3 policies" in text and EvaluationRun.objects.filter(policy="thompson:1,1").count() == 2
    run = EvaluationRun.objects.get(policy="uniform")
    assert [e["estimator"] for e in run.estimates] == ["ips", "snips", "dr"]
    # uniform's IPS: Σ 0.5·1[x]/p over 20 rounds / 20 — every x round earns 1
    assert run.estimates[0]["value"] == pytest.approx(
        sum(0.5 / p for p in _x_propensities(start)) / 20, rel=1e-9)


def _x_propensities(start):
    from apps.rl.models import Decision

    return [d.propensity for d in Decision.objects.filter(created_at__gte=start, offer_id="x", status="success")]


def test_evaluate_policy_refuses_bad_input():
    with pytest.raises(CommandError, match="unknown policy"):
        call_command("evaluate_policy", "--policy", "oracle")
    with pytest.raises(CommandError, match="--since must be an ISO date"):
        call_command("evaluate_policy", "--policy", "uniform", "--since", "yesterday")


def test_thompson_with_an_empirical_bayes_prior_is_a_policy():
    policy = evaluation.policy_from_spec("thompson:eb")
    assert policy.name == "thompson:eb"
    log = [R("s", ("a", "b"), a, r, 0.5) for a, r in [("a", 1), ("b", 0)] * 100]
    result = evaluation.evaluate(log, policy, batch=50)
    assert [e.estimator for e in result.estimates] == ["ips", "snips", "dr"]
    assert result.estimates[0].value > 0.5  # "a" always pays: the fitted prior still lets it win
