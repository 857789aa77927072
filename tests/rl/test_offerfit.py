"""The OfferFit client against a local server speaking the Personalizer v1.0 rank/reward shape: its
answers are used; its 500s, timeouts, garbage and an open breaker switch to Thompson, never an error."""
from __future__ import annotations

import pytest

from apps.rl import offerfit, services
from apps.rl.models import Decision
from tests.rl.personalizer import Personalizer
from tests.support.http_server import LocalHTTPServer

pytestmark = pytest.mark.django_db(transaction=True)

KEY = "test-subscription-key"
CANDIDATES = ["o-1", "o-2", "o-3"]


@pytest.fixture
def server(settings):
    with LocalHTTPServer(handler=Personalizer()) as srv:  # the second action with probability 0.7
        settings.OFFERFIT_API_URL = srv.url
        settings.OFFERFIT_API_KEY = KEY
        # generous: these tests are about the answers, and the VM is shared (the budget has its own test)
        settings.OFFERFIT_TIMEOUT_MS = 2000
        settings.OFFERFIT_BREAKER_FAILURES = 3
        settings.OFFERFIT_BREAKER_RESET_SECONDS = 60
        yield srv


def decide():
    return services.rl_decide(user_id="u-of", channel="app", context={"tier": "gold", "daypart": "am"},
                              candidates=CANDIDATES)


def test_offerfit_answers_in_the_rank_shape_and_gets_the_reward(server):
    result = decide()
    assert (result.source, result.offer_id, result.propensity, result.fallback_reason) == ("offerfit", "o-2", 0.7, "")
    rank = server.requests[0]
    assert rank.header(offerfit.KEY_HEADER) == KEY
    body = rank.json()
    assert body["eventId"] == result.decision_id and body["deferActivation"] is False
    assert [a["id"] for a in body["actions"]] == CANDIDATES
    assert body["contextFeatures"] == [{"tier": "gold", "daypart": "am", "channel": "app"}]
    # the whole ranking is logged, aligned with the candidates (offerfit-on evaluation reads it back)
    assert Decision.objects.get(decision_id=result.decision_id).probabilities == pytest.approx([0.15, 0.7, 0.15])
    assert result.probabilities == pytest.approx({"o-1": 0.15, "o-2": 0.7, "o-3": 0.15})

    services.rl_reward(decision_id=result.decision_id, value=2.0)  # redeemed: +2 → clip(2 / 2) = 1
    reward = server.requests[1]
    assert reward.path == f"/personalizer/v1.0/events/{result.decision_id}/reward"
    assert reward.json() == {"value": 1.0}
    assert offerfit.reward_value(-0.1) == pytest.approx(-0.05) and offerfit.reward_value(5) == 1.0


@pytest.mark.parametrize("status, body, reason", [
    (500, {"error": {"code": "InternalServerError", "message": "boom"}}, "error"),
    (201, b"<html>not json</html>", "bad_answer"),
    (201, {"ranking": [{"id": "elsewhere", "probability": 1}], "eventId": "e", "rewardActionId": "elsewhere"},
     "bad_answer"),
    (201, {"ranking": [{"id": "o-1", "probability": 0}], "eventId": "e", "rewardActionId": "o-1"}, "bad_answer"),
    (201, ["a", "list"], "bad_answer"),
])
def test_failures_and_garbage_switch_to_thompson(server, status, body, reason):
    server.script(status, body)
    result = decide()
    assert (result.source, result.fallback_reason) == ("thompson", reason)
    assert result.offer_id in CANDIDATES and 0 < result.propensity <= 1
    assert Decision.objects.get(decision_id=result.decision_id).source == "thompson"


def test_a_slow_answer_is_dropped_at_the_budget(server, settings):
    settings.OFFERFIT_TIMEOUT_MS = 50
    server.hold()
    try:
        result = decide()
    finally:
        server.release()
    assert (result.source, result.fallback_reason) == ("thompson", "timeout")


def test_the_breaker_opens_after_repeated_failures_and_stops_calling(server):
    server.script(500, {"error": {"code": "InternalServerError", "message": "down"}}, times=3)
    reasons = [decide().fallback_reason for _ in range(3)]
    assert reasons == ["error", "error", "error"]
    calls = len(server.requests)
    after = decide()
    assert (after.source, after.fallback_reason) == ("thompson", "breaker_open")
    assert len(server.requests) == calls  # nothing sent while open


def test_off_unless_configured(settings):
    settings.OFFERFIT_API_URL = ""
    result = decide()
    assert (result.source, result.fallback_reason) == ("thompson", "off")


def test_sync_catalog_pushes_actions(server):
    assert offerfit.sync_catalog(actions=[{"id": "o-1", "features": [{"category": "IAB1"}]}]) == 1
    assert server.requests[-1].path == offerfit.CATALOG_PATH
    assert server.requests[-1].json() == {"actions": [{"id": "o-1", "features": [{"category": "IAB1"}]}]}
