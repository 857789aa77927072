"""manage.py seed_demo: users, campaigns in every state, live campaigns that can bid, idempotency,
and the call into every other app's demo.seed()."""
from __future__ import annotations

import io
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import authenticate
from django.core.management import CommandError, call_command

from apps.campaigns import selectors
from apps.campaigns.management.commands import seed_demo
from apps.campaigns.models import Campaign, CampaignTransition
from apps.core.roles import Role, user_has_role

pytestmark = pytest.mark.django_db


def run(*args) -> str:
    out = io.StringIO()
    call_command("seed_demo", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_seeds_users_and_campaigns_in_every_state_idempotently():
    first = run("--only-campaigns")
    assert "seed_demo: 4 users, 11 new campaign(s)" in first
    counts = selectors.campaign_counts_by_status()
    assert counts == {"draft": 1, "in_review": 2, "rejected": 1, "scheduled": 1, "live": 4, "paused": 1,
                      "completed": 1}
    transitions = CampaignTransition.objects.count()

    second = run("--only-campaigns")
    assert "seed_demo: 4 users, 0 new campaign(s)" in second
    assert selectors.campaign_counts_by_status() == counts
    assert CampaignTransition.objects.count() == transitions

    for username, role in (("marketer", Role.MARKETER), ("approver", Role.APPROVER), ("approver2", Role.APPROVER)):
        user = authenticate(username=username, password=f"{username.rstrip('2')}-demo")
        assert user is not None and user.is_staff and user_has_role(user, role)
    admin = authenticate(username="admin", password="admin-demo")
    assert admin.is_superuser
    assert "marketer   password marketer-demo" in second


def test_live_campaigns_bid_on_common_banner_sizes_for_us_traffic():
    run("--only-campaigns")
    live = list(selectors.campaign_list_biddable())
    assert len(live) == 4
    for campaign in live:
        assert campaign.target_countries in (["USA"], [])  # alpha-3, as OpenRTB geo.country; [] = anywhere
        assert campaign.target_device_types == []  # site and app, every device
        assert campaign.budget >= 7500 and campaign.spent == 0
        sizes = {(o.width, o.height) for o in campaign.offers.all()}
        assert sizes == {(300, 250), (320, 50), (728, 90)}
        for offer in campaign.offers.all():
            assert offer.creative_markup.startswith("<a href=\"https://")
            assert f"width:{offer.width}px;height:{offer.height}px" in offer.creative_markup
    assert len({c.advertiser for c in live}) == 4
    assert len({o.category for c in live for o in c.offers.all()}) == 4
    high_budget = Campaign.objects.get(name__startswith="Nimbus")
    assert high_budget.required_approvals == 2 and high_budget.status == "live"


def test_passwords_come_from_settings(settings):
    settings.DEMO_MARKETER_PASSWORD = "a much longer secret"
    out = run("--only-campaigns")
    assert authenticate(username="marketer", password="a much longer secret") is not None
    assert authenticate(username="marketer", password="marketer-demo") is None
    assert "(from env)" in out


def test_refuses_default_passwords_in_production(monkeypatch):
    monkeypatch.setattr(seed_demo.env, "IS_PRODUCTION", True)
    with pytest.raises(CommandError, match="DEMO_ADMIN_PASSWORD"):
        run("--only-campaigns")
    assert not Campaign.objects.exists()


def test_names_every_app_with_a_demo_module_in_installed_apps_order():
    root = Path(__file__).resolve().parents[2]
    on_disk = {f"apps.{p.parent.name}.demo" for p in root.glob("apps/*/demo.py") if p.parent.name != "campaigns"}
    names = [module.__name__ for module in seed_demo.demo_modules()]
    assert set(names) == on_disk
    installed = [name for name in settings.INSTALLED_APPS if f"{name}.demo" in on_disk]
    assert names == [f"{name}.demo" for name in installed]


def test_calls_each_apps_seed_and_fails_loudly_when_one_breaks(monkeypatch):
    calls: list[str] = []
    modules = seed_demo.demo_modules()
    for module in modules:
        monkeypatch.setattr(module, "seed", lambda name=module.__name__: calls.append(name))
    broken = modules[1]

    def fail() -> None:
        raise RuntimeError("demo store unavailable")

    monkeypatch.setattr(broken, "seed", fail)
    with pytest.raises(CommandError, match=f"demo seed failed for: {broken.__name__}$"):
        run()
    # The failure did not stop the apps after it.
    assert calls == [m.__name__ for m in modules if m is not broken]

    monkeypatch.setattr(broken, "seed", lambda: calls.append(broken.__name__))
    calls.clear()
    assert "0 app seed failure(s)" in run()
    assert calls == [m.__name__ for m in modules]
