"""``evaluate_policy --policy offerfit-on`` against the local Personalizer: OfferFit's logged
distribution where it served, a deferred (never activated) rank for every other round, the IPS /
SNIPS / DR a hand computation gives, a clear refusal when OfferFit is off, and rounds it cannot rank
left out and counted — or the run refused past the allowed share."""
from __future__ import annotations

import io
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.analytics import testing
from apps.rl import evaluation, offerfit, services
from apps.rl.models import Decision, EvaluationRun
from apps.rl.services import evaluation as evaluation_service
from tests.rl.conftest import fresh_range_start
from tests.rl.personalizer import Personalizer
from tests.support.http_server import LocalHTTPServer

CANDIDATES = ["x", "y", "z"]


def by_daypart(context, actions):
    """Mornings favour the first action (0.6), evenings the last (0.5); the rest share what is left."""
    k = len(actions)
    favourite, p = (0, 0.6) if context.get("daypart") == "am" else (k - 1, 0.5)
    return [p if i == favourite else (1 - p) / (k - 1) for i in range(k)]


def reward_of(n: int, offer_id: str) -> float:
    return 1.0 if offer_id == "x" or n % 4 == 0 else 0.0


@pytest.fixture
def personalizer(settings):
    fake = Personalizer(by_daypart)
    with LocalHTTPServer(handler=fake) as srv:
        settings.OFFERFIT_API_URL = srv.url
        settings.OFFERFIT_API_KEY = "test-subscription-key"
        settings.OFFERFIT_TIMEOUT_MS = 2000  # the decisions' budget: generous on a shared VM
        settings.OFFERFIT_EVAL_TIMEOUT_MS = 5000
        settings.OFFERFIT_EVAL_CONCURRENCY = 3
        settings.OFFERFIT_BREAKER_FAILURES = 3
        settings.OFFERFIT_BREAKER_RESET_SECONDS = 60
        fake.server = srv
        yield fake


def decide(n: int, *, channel: str = "web"):
    context = {"tier": "gold", "daypart": "am" if n % 2 == 0 else "pm", "n": n}
    d = services.rl_decide(user_id=f"u-of-{n}", channel=channel, context=context, candidates=CANDIDATES)
    services.rl_reward(decision_id=d.decision_id, value=reward_of(n, d.offer_id))
    return d


def make_log(settings, fake, *, offerfit_served: int, fallbacks: int, off: int):
    start = fresh_range_start()
    n = 0
    for _ in range(offerfit_served):
        assert decide(n).source == "offerfit"
        n += 1
    for _ in range(fallbacks):
        fake.server.script(500, {"error": {"code": "InternalServerError", "message": "boom"}})
        d = decide(n)
        assert (d.source, d.fallback_reason) == ("thompson", "error")
        n += 1
    url, settings.OFFERFIT_API_URL = settings.OFFERFIT_API_URL, ""
    for _ in range(off):
        d = decide(n)
        assert (d.source, d.fallback_reason) == ("thompson", "off")
        n += 1
    services.rl_decide(user_id="u-open", channel="web", context={"tier": "gold"}, candidates=CANDIDATES)  # open
    settings.OFFERFIT_API_URL = url
    testing.flush_and_consume()
    return start, timezone.now() + timedelta(seconds=5)


def by_hand(decisions, excluded_n=()):
    """IPS, SNIPS and DR of offerfit-on over the closed decisions: weight 1 where OfferFit served,
    by_daypart's probability of the logged offer over the propensity elsewhere; every round lies in
    the first batch, so q̂ is the pooled prior (0 + 1) / (0 + 2) = 0.5 for every arm."""
    r, w = [], []
    for d in decisions:
        if d.context["n"] in excluded_n:
            continue
        r.append(1.0 if d.status == "success" else 0.0)
        if d.source == "offerfit":
            w.append(1.0)
        else:
            w.append(by_daypart(d.context, CANDIDATES)[CANDIDATES.index(d.offer_id)] / d.propensity)
    r, w = np.array(r), np.array(w)
    return (r * w).mean(), (r * w).sum() / w.sum(), (0.5 + w * (r - 0.5)).mean(), r.mean()


def closed_decisions(start):
    return list(Decision.objects.filter(created_at__gte=start).exclude(status="open").order_by("created_at", "id"))


def run_command(*args) -> str:
    out = io.StringIO()
    call_command("evaluate_policy", "--policy", "offerfit-on", "--no-progress", *args, stdout=out)
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_offerfit_on_reads_its_logged_distribution_and_ranks_the_rest_deferred(settings, personalizer,
                                                                                clickhouse_db):
    start, end = make_log(settings, personalizer, offerfit_served=4, fallbacks=1, off=5)
    decisions = closed_decisions(start)
    assert len(decisions) == 10
    assert Decision.objects.filter(source="offerfit", decision_id=decisions[0].decision_id,
                                   probabilities=[0.6, 0.2, 0.2]).exists()  # the whole ranking was logged
    before = len(personalizer.server.requests)
    decision_events = set(personalizer.events)

    text = run_command("--since", start.isoformat(), "--until", end.isoformat())

    asked = personalizer.server.requests[before:]
    assert [r.path for r in asked] == [offerfit.RANK_PATH] * 6  # only the 6 Thompson rounds; no activate, no reward
    bodies = [r.json() for r in asked]
    assert all(b["deferActivation"] is True for b in bodies)
    event_ids = [b["eventId"] for b in bodies]
    assert len(set(event_ids)) == 6 and all(e.startswith("eval-") for e in event_ids)
    assert not set(event_ids) & ({str(d.decision_id) for d in decisions} | decision_events)
    thompson = [d for d in decisions if d.source == "thompson"]
    assert sorted(b["contextFeatures"][0]["n"] for b in bodies) == sorted(d.context["n"] for d in thompson)
    assert all(b["contextFeatures"][0] == {**d.context, "channel": "web", "tier": "gold"}
               for b in bodies for d in thompson if d.context["n"] == b["contextFeatures"][0]["n"])
    assert all([a["id"] for a in b["actions"]] == CANDIDATES for b in bodies)
    assert not personalizer.activations and not {e for e, _ in personalizer.rewards} & set(event_ids)
    assert not set(personalizer.trained) & set(event_ids)

    run = EvaluationRun.objects.get(policy="offerfit-on")
    ips, snips, dr, served = by_hand(decisions)
    assert [e["estimator"] for e in run.estimates] == ["ips", "snips", "dr"]
    assert [e["value"] for e in run.estimates] == pytest.approx([ips, snips, dr], rel=1e-9)
    assert run.logged_value == pytest.approx(served)
    assert (run.decisions, run.excluded) == (10, 0)
    assert run.details == {"offerfit_logged": 4, "offerfit_logged_partial": 0, "ranked": 6, "unranked": {}}
    assert "offerfit-on: 10 closed decisions" in text and "ranked 6 deferred; excluded 0" in text
    assert f"{ips:.4f}" in text


@pytest.mark.django_db(transaction=True)
def test_a_round_offerfit_cannot_rank_is_left_out_and_counted(settings, personalizer, clickhouse_db):
    start, end = make_log(settings, personalizer, offerfit_served=0, fallbacks=0, off=10)
    before = len(personalizer.server.requests)
    personalizer.server.script(201, b"<html>not a ranking</html>")  # the first evaluation call's answer

    text = run_command("--since", start.isoformat(), "--until", end.isoformat(), "--max-unranked", "0.1")

    garbage = personalizer.server.requests[before].json()["contextFeatures"][0]["n"]
    run = EvaluationRun.objects.get(policy="offerfit-on")
    assert (run.decisions, run.excluded) == (9, 1)
    assert run.details["unranked"] == {"bad_answer": 1} and run.details["ranked"] == 9
    ips, snips, dr, served = by_hand(closed_decisions(start), excluded_n={garbage})
    assert [e["value"] for e in run.estimates] == pytest.approx([ips, snips, dr], rel=1e-9)
    assert run.logged_value == pytest.approx(served)  # the policy in service on the same 9 rounds
    assert "excluded 1 it could not rank (bad_answer 1)" in text


@pytest.mark.django_db(transaction=True)
def test_more_unranked_rounds_than_allowed_refuse_the_run(settings, personalizer, clickhouse_db):
    start, end = make_log(settings, personalizer, offerfit_served=0, fallbacks=0, off=10)
    before = len(personalizer.server.requests)
    personalizer.server.script(500, {"error": {"code": "InternalServerError", "message": "down"}}, times=100)
    with pytest.raises(CommandError, match=r"OfferFit could not rank \d+ of the 10 rounds .*not evaluated"):
        run_command("--since", start.isoformat(), "--until", end.isoformat())  # default: 1 % → none may fail
    assert not EvaluationRun.objects.filter(policy="offerfit-on").exists()
    # 500s are retried (3 attempts) and open the breaker after 3: the run stops long before 10 × 3 calls
    assert len(personalizer.server.requests) - before < 30


@pytest.mark.django_db(transaction=True)
def test_offerfit_on_refuses_clearly_when_offerfit_is_not_configured(settings):
    settings.OFFERFIT_API_URL = ""
    with pytest.raises(CommandError, match="set OFFERFIT_API_URL and OFFERFIT_API_KEY"):
        run_command()
    assert not EvaluationRun.objects.exists()


def test_the_command_exits_non_zero_with_the_message_not_a_traceback():
    env = {**os.environ, "OFFERFIT_API_URL": "", "OFFERFIT_API_KEY": ""}
    done = subprocess.run([sys.executable, "manage.py", "evaluate_policy", "--policy", "offerfit-on", "--no-progress"],
                          cwd=Path(__file__).resolve().parents[2], env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode != 0
    assert "set OFFERFIT_API_URL and OFFERFIT_API_KEY" in done.stderr and "Traceback" not in done.stderr


def test_given_distributions_by_hand():
    """None: left out (but still teaches q̂); NaN but the logged action: DR's term is the IPS term."""
    R = evaluation.Round
    log = [R("s", ("a", "b"), "a", 1.0, 0.5), R("s", ("a", "b"), "b", 0.0, 0.25), R("s", ("a", "b"), "a", 1.0, 0.8),
           R("s", ("a", "b"), "b", 1.0, 0.5)]
    policy = evaluation.GivenDistributions("given", [np.array([0.9, 0.1]), None, np.array([0.8, np.nan]),
                                                     np.array([0.3, 0.7])])
    result = evaluation.evaluate(log, policy)
    ips, snips, dr = (e.value for e in result.estimates)
    w, r = np.array([0.9 / 0.5, 0.8 / 0.8, 0.7 / 0.5]), np.array([1.0, 1.0, 1.0])
    assert (result.rounds, result.excluded) == (3, 1)
    assert ips == pytest.approx((w * r).mean()) and snips == pytest.approx(1.0)
    # one batch: q̂ = 0.5 for both arms on rounds 0 and 3; round 2 uses q̂ = 0 (only π(a) known)
    assert dr == pytest.approx(((0.5 + w[0] * 0.5) + 1.0 + (0.5 + w[2] * 0.5)) / 3)
    with pytest.raises(ValueError, match="3 distributions for 4 rounds"):
        evaluation.evaluate(log, evaluation.GivenDistributions("short", policy.distributions[:3]))


def test_a_logged_offerfit_round_is_read_whole_or_as_its_propensity_alone():
    row = {"candidates": ["x", "y", "z"], "offer_id": "y", "propensity": 0.7, "probabilities": [0.15, 0.7, 0.15]}
    probs, whole = evaluation_service._logged_distribution(row)
    assert whole and probs.tolist() == [0.15, 0.7, 0.15]
    # logged before the whole ranking was kept: only the chosen offer's probability
    probs, whole = evaluation_service._logged_distribution({**row, "probabilities": [0.0, 0.7, 0.0]})
    assert not whole and probs[1] == 0.7 and np.isnan(probs[[0, 2]]).all()
    # misaligned with the candidates, or not giving the logged offer its propensity: the same
    for bad in ([0.7, 0.3], [0.3, 0.4, 0.3]):
        probs, whole = evaluation_service._logged_distribution({**row, "probabilities": bad})
        assert not whole and probs[1] == 0.7
