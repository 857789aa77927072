"""Decisions and their rewards against the real Postgres and Redis."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.core.exceptions import NotFound, ServiceError
from apps.rl import posteriors, services
from apps.rl.models import Decision, Posterior
from tests.support.threads import run_together

pytestmark = pytest.mark.django_db(transaction=True)

CANDIDATES = ["o-1", "o-2", "o-3"]


def decide(user="u-1", **kw):
    kw.setdefault("candidates", CANDIDATES)
    return services.rl_decide(user_id=user, channel=kw.pop("channel", "email"), context=kw.pop("context", {"tier": "gold"}), **kw)


def posterior(offer_id, segment="email:gold"):
    p = Posterior.objects.filter(offer_id=offer_id, segment=segment).first()
    return (p.successes, p.failures) if p else (0, 0)


def test_decision_is_thompson_with_a_propensity_and_open():
    result = decide()
    assert result.source == "thompson" and result.fallback_reason == "off"
    assert result.offer_id in CANDIDATES and 0 < result.propensity <= 1
    assert result.segment == "email:gold"
    assert sum(result.probabilities.values()) == pytest.approx(1.0)
    row = Decision.objects.get(decision_id=result.decision_id)
    assert row.status == "open" and row.candidates == CANDIDATES and row.propensity == result.propensity


def test_first_reward_closes_once_and_counts_once():
    result = decide()
    first = services.rl_reward(decision_id=result.decision_id, value=2.0)
    assert (first.applied, first.status) == (True, "success")
    again = services.rl_reward(decision_id=result.decision_id, value=-1.0)
    assert (again.applied, again.status, again.reason, again.reward_value) == (False, "success", "already_closed", 2.0)
    assert posterior(result.offer_id) == (1, 0)


def test_zero_or_negative_reward_is_a_failure_and_raw_value_kept():
    result = decide()
    services.rl_reward(decision_id=result.decision_id, value=-0.1)
    row = Decision.objects.get(decision_id=result.decision_id)
    assert (row.status, row.reward_value, row.reward_source) == ("failure", -0.1, "api")
    assert posterior(result.offer_id) == (0, 1)


def test_late_reward_after_the_wait_time_changes_nothing():
    result = decide()
    Decision.objects.filter(decision_id=result.decision_id).update(expires_at=timezone.now() - timedelta(seconds=1))
    late = services.rl_reward(decision_id=result.decision_id, value=1.0)
    assert (late.applied, late.status, late.reason) == (False, "open", "wait_time_passed")
    assert posterior(result.offer_id) == (0, 0)
    assert services.rl_expire_due() == 1
    assert posterior(result.offer_id) == (0, 1)
    after = services.rl_reward(decision_id=result.decision_id, value=1.0)
    assert (after.applied, after.status) == (False, "failure")
    assert posterior(result.offer_id) == (0, 1)
    assert services.rl_expire_due() == 0


def test_fifty_concurrent_rewards_on_one_arm_are_exact():
    decisions = [decide(user=f"u-{i}", candidates=["only"]) for i in range(50)]
    results = run_together([lambda d=d, i=i: services.rl_reward(decision_id=d.decision_id, value=1.0 if i % 5 else 0.0)
                            for i, d in enumerate(decisions)])
    assert all(r.applied for r in results)
    assert posterior("only") == (40, 10)
    # the Redis copy holds the final counts too (the Lua script keeps the one with more trials)
    s, f = posteriors.posterior_counts(segment="email:gold", offer_ids=["only"])
    assert (s[0], f[0]) == (40, 10)


def test_fifty_concurrent_replays_of_one_reward_count_once():
    d = decide()
    results = run_together([lambda: services.rl_reward(decision_id=d.decision_id, value=1.0) for _ in range(50)])
    assert sum(r.applied for r in results) == 1
    assert posterior(d.offer_id) == (1, 0)


def test_feedback_closes_the_latest_open_decision_once():
    older = decide(candidates=["o-9"])
    newer = decide(candidates=["o-9"])
    closed = services.rl_feedback_record(user_id="u-1", offer_id="o-9", value=2.0, source="loyalty", ref="reward_signal:e1")
    assert closed == newer.decision_id
    assert services.rl_feedback_record(user_id="u-1", offer_id="o-9", value=2.0, source="loyalty",
                                       ref="reward_signal:e1") is None  # replayed event
    assert Decision.objects.get(decision_id=older.decision_id).status == "open"
    assert posterior("o-9") == (1, 0)


def test_posteriors_steer_the_choice():
    Posterior.objects.create(offer_id="good", segment="email:gold", successes=500, failures=10)
    Posterior.objects.create(offer_id="bad", segment="email:gold", successes=10, failures=500)
    result = decide(candidates=["bad", "good"])
    assert result.offer_id == "good" and result.propensity == 1.0


def test_bad_input_is_named():
    with pytest.raises(ServiceError, match="channel"):
        decide(channel="carrier-pigeon")
    with pytest.raises(ServiceError, match="must not repeat"):
        decide(candidates=["a", "a"])
    with pytest.raises(ServiceError, match="At most 50"):
        decide(candidates=[str(i) for i in range(51)])
    with pytest.raises(ServiceError, match="Unknown tier"):
        decide(context={"tier": "platinum"})
    with pytest.raises(NotFound):
        services.rl_reward(decision_id="00000000-0000-0000-0000-000000000000", value=1)
    d = decide()
    with pytest.raises(ServiceError, match="finite"):
        services.rl_reward(decision_id=d.decision_id, value=float("nan"))
    assert not Decision.objects.filter(status__in=["success", "failure"]).exists()


def test_default_candidates_are_the_live_offers_running_on_the_channel():
    from tests.omnichannel.helpers import make_offer

    web, web_offer = make_offer(channels=("web",), name="Web offer")
    _, email_offer = make_offer(channels=("email",), name="Email offer")
    type(web).objects.filter(pk__in=[web.pk, email_offer.campaign_id]).update(status="live")
    result = services.rl_decide(user_id="u-live", channel="web", context={"tier": "green"})
    assert (result.candidates, result.offer_id, result.campaign_id) == ([str(web_offer.pk)], str(web_offer.pk), str(web.pk))


def test_redis_down_falls_back_to_postgres_and_still_closes_exactly(settings):
    from tests.support.ports import free_port

    Posterior.objects.create(offer_id="good", segment="email:gold", successes=500, failures=10)
    Posterior.objects.create(offer_id="bad", segment="email:gold", successes=10, failures=500)
    settings.REDIS_URL = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    result = decide(candidates=["bad", "good"])
    assert result.offer_id == "good"
    assert services.rl_reward(decision_id=result.decision_id, value=1.0).applied
    assert posterior("good") == (501, 10)
