"""The decision pages of the admin: posteriors with their intervals and the OfferFit/Thompson share,
the decision log, evaluation runs beside the policy in service; read-only; staff roles only."""
from __future__ import annotations

import html
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from apps.rl import services
from apps.rl.models import Decision, EvaluationRun, Posterior
from tests.factories import make_user
from tests.support.admin import changelist

pytestmark = pytest.mark.django_db


@pytest.fixture
def marketer_admin():
    client = Client()
    client.force_login(make_user("Marketer", username="marketer"))
    return client


def test_posteriors_show_mean_interval_trials_and_the_source_share(marketer_admin):
    Posterior.objects.create(offer_id="41", campaign_id="7", segment="email:gold", successes=8, failures=2)
    services.rl_decide(user_id="u-1", channel="email", context={"tier": "gold"}, candidates=["41", "42"])
    page = marketer_admin.get("/admin/rl/posterior/")
    changelist(page, expect_rows=True)
    text = html.unescape(page.content.decode())
    assert "decisions served: thompson 100.0%" in text
    assert "0.7500" in text  # Beta(9, 3) mean
    assert "[0.4822, 0.9398]" in text  # its central 95 % interval
    assert ">10<" in text  # trials


def test_decision_log_and_evaluations_are_listed(marketer_admin):
    d = services.rl_decide(user_id="u-2", channel="web", context={"tier": "green"}, candidates=["a", "b"])
    changelist(marketer_admin.get("/admin/rl/decision/", {"source": "thompson"}), expect_rows=True)
    assert marketer_admin.get(f"/admin/rl/decision/{Decision.objects.get(decision_id=d.decision_id).pk}/change/"
                              ).status_code == 200
    now = timezone.now()
    EvaluationRun.objects.create(policy="uniform", start=now - timedelta(days=7), end=now, decisions=20,
                                 logged_value=0.45, estimates=[
                                     {"estimator": "ips", "value": 0.5, "low": 0.3, "high": 0.7, "n": 20},
                                     {"estimator": "snips", "value": 0.48, "low": 0.31, "high": 0.65, "n": 20},
                                     {"estimator": "dr", "value": None, "low": None, "high": None, "n": 0}])
    page = marketer_admin.get("/admin/rl/evaluationrun/")
    changelist(page, expect_rows=True)
    text = html.unescape(page.content.decode())
    assert "0.5000 [0.3000, 0.7000]" in text and "0.4500" in text


def test_an_offerfit_on_run_shows_beside_the_others_with_what_it_left_out(marketer_admin):
    now = timezone.now()
    estimates = [{"estimator": e, "value": 0.31, "low": 0.2, "high": 0.42, "n": 99} for e in ("ips", "snips", "dr")]
    EvaluationRun.objects.create(policy="thompson:1,1", start=now - timedelta(days=7), end=now, decisions=100,
                                 logged_value=0.3, estimates=estimates)
    EvaluationRun.objects.create(policy="offerfit-on", start=now - timedelta(days=7), end=now, decisions=99,
                                 logged_value=0.3, estimates=estimates, excluded=1,
                                 details={"offerfit_logged": 40, "offerfit_logged_partial": 0, "ranked": 59,
                                          "unranked": {"timeout": 1}})
    page = marketer_admin.get("/admin/rl/evaluationrun/")
    changelist(page, expect_rows=True)
    text = html.unescape(page.content.decode())
    assert "offerfit-on" in text and "thompson:1,1" in text and "1 (timeout 1)" in text
    assert text.count("0.3100 [0.2000, 0.4200]") == 6


def test_read_only_and_staff_only(marketer_admin):
    assert marketer_admin.get("/admin/rl/posterior/add/").status_code == 403
    nobody = Client()
    nobody.force_login(make_user(username="nobody"))
    assert nobody.get("/admin/rl/decision/").status_code in (302, 403)


def test_the_share_counts_each_source(marketer_admin):
    now = timezone.now()
    for i, source in enumerate(["offerfit", "thompson", "thompson", "thompson"]):
        Decision.objects.create(decision_id=f"00000000-0000-0000-0000-00000000000{i}", user_id=f"u-{i}", channel="web",
                                tier="green", segment="web:green", offer_id="a", propensity=0.5, source=source,
                                candidates=["a", "b"], created_at=now, expires_at=now + timedelta(days=1))
    text = html.unescape(marketer_admin.get("/admin/rl/decision/").content.decode())
    assert "served: offerfit 25.0%, thompson 75.0%" in text
