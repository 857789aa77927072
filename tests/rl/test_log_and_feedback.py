"""The ClickHouse decision log, and feedback without a decision id (loyalty reward signals, email
clicks) closing decisions through the real analytics pipeline."""
from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from apps.analytics import selectors as analytics
from apps.analytics import testing
from apps.analytics.emitter import emit
from apps.loyalty import services as loyalty
from apps.rl import services
from apps.rl.models import Decision, Posterior

pytestmark = pytest.mark.django_db(transaction=True)


def log_rows(decision_ids):
    now = timezone.now()
    rows = analytics.rl_decision_log(start=now - timedelta(hours=1), end=now + timedelta(hours=1), closed_only=False)
    return {r["decision_id"]: r for r in rows if r["decision_id"] in decision_ids}


def test_every_decision_is_logged_with_context_candidates_choice_propensity_then_its_outcome(clickhouse_db):
    d = services.rl_decide(user_id="u-log", channel="web", context={"tier": "reserve", "daypart": "evening"},
                           candidates=["a", "b", "c"])
    testing.flush_and_consume()
    row = log_rows({d.decision_id})[d.decision_id]
    assert (row["status"], row["version"], row["offer_id"], row["candidates"]) == ("open", 0, d.offer_id, ["a", "b", "c"])
    assert row["propensity"] == pytest.approx(d.propensity)
    assert row["segment"] == "web:reserve" and '"daypart":"evening"' in row["context"]
    assert sum(row["probabilities"]) == pytest.approx(1.0)

    services.rl_reward(decision_id=d.decision_id, value=2.0)
    testing.flush_and_consume()
    row = log_rows({d.decision_id})[d.decision_id]
    assert (row["status"], row["version"], row["reward"]) == ("success", 1, 2.0)
    assert row["propensity"] == pytest.approx(d.propensity)


def test_loyalty_reward_signals_and_email_clicks_close_the_latest_open_decision(clickhouse_db):
    redeemed = services.rl_decide(user_id="u-fb", channel="app", context={"tier": "green"}, candidates=["offer-7"])
    clicked = services.rl_decide(user_id="u-fb", channel="email", context={"tier": "green"}, candidates=["offer-8"])
    untouched = services.rl_decide(user_id="u-other", channel="email", context={"tier": "green"}, candidates=["offer-8"])
    loyalty.loyalty_reward_signal(user_id="u-fb", offer_id="offer-7", signal_type="redeemed")
    emit("email_click", user_id="u-fb", offer_id="offer-8", channel="email")  # what the SendGrid webhook emits
    testing.flush_and_consume()

    assert services.rl_feedback_poll() == 2
    rows = {str(d.decision_id): d for d in Decision.objects.all()}
    assert (rows[redeemed.decision_id].status, rows[redeemed.decision_id].reward_value,
            rows[redeemed.decision_id].reward_source) == ("success", 2.0, "loyalty")
    assert (rows[clicked.decision_id].status, rows[clicked.decision_id].reward_source) == ("success", "email")
    assert rows[untouched.decision_id].status == "open"
    # the next poll re-reads the overlap: the same events close nothing more
    assert services.rl_feedback_poll() == 0
    assert Posterior.objects.get(offer_id="offer-7", segment="app:green").successes == 1
    assert Posterior.objects.get(offer_id="offer-8", segment="email:green").successes == 1


def test_an_ignored_signal_closes_as_failure(clickhouse_db):
    d = services.rl_decide(user_id="u-ign", channel="app", context={"tier": "gold"}, candidates=["offer-9"])
    loyalty.loyalty_reward_signal(user_id="u-ign", offer_id="offer-9", signal_type="ignored")
    testing.flush_and_consume()
    assert services.rl_feedback_poll() == 1
    row = Decision.objects.get(decision_id=d.decision_id)
    assert (row.status, row.reward_value) == ("failure", -0.1)
