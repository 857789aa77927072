"""Admin pages of the loyalty slice and the "adjust stars" action / loyalty_adjust service."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group

from apps.core.exceptions import Forbidden, ServiceError
from apps.loyalty import selectors, services
from apps.loyalty.models import LedgerEntry, LoyaltyAccount
from tests.support.admin import changelist

CHANGELIST = "/admin/loyalty/loyaltyaccount/"


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def marketer_web(client, db):
    user = get_user_model().objects.create_user(username="mark", is_staff=True)
    user.groups.add(Group.objects.get(name="Marketer"))
    client.force_login(user)
    return client


@pytest.fixture
def members(db):
    services.loyalty_earn(user_id="m-1", amount_cents=20_000, channel="app", transaction_id="t1")
    services.loyalty_earn(user_id="m-2", amount_cents=5_000, channel="web", transaction_id="t2")
    services.loyalty_redeem(user_id="m-1", redemption_tier="discount", idempotency_key="k1")
    return LoyaltyAccount.objects.order_by("user_id")


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["loyaltyaccount", "ledgerentry", "promotion", "channelbonus", "rewardsignal"])
def test_changelists_render(admin_client_, members, path):
    cl = changelist(admin_client_.get(f"/admin/loyalty/{path}/"))
    assert cl.result_count == cl.model._default_manager.count()  # every row, none hidden
    assert cl.model._meta.model_name == path


@pytest.mark.django_db
def test_account_list_filters_and_search(admin_client_, members):
    page = admin_client_.get(CHANGELIST + "?q=m-2").content.decode()
    assert "m-2" in page and ">m-1<" not in page
    page = admin_client_.get(CHANGELIST + "?tier__exact=green").content.decode()
    assert "m-1" in page and "m-2" in page


@pytest.mark.django_db
def test_account_page_shows_recent_ledger_read_only(admin_client_, members):
    account = members.get(user_id="m-1")
    page = admin_client_.get(f"{CHANGELIST}{account.pk}/change/").content.decode()
    assert "Recent ledger" in page and "discount" in page and "-60" in page
    assert 'name="ledger-0-stars"' not in page  # rows are shown, not editable
    assert f'href="/admin/loyalty/ledgerentry/?account__id__exact={account.pk}"' in page  # link to the full history
    history = changelist(admin_client_.get(f"/admin/loyalty/ledgerentry/?account__id__exact={account.pk}"), expect_rows=True)
    assert {entry.account_id for entry in history.result_list} == {account.pk}
    assert history.result_count == LedgerEntry.objects.filter(account=account).count()
    # Saving member details keeps the totals (read-only in the form) and the ledger untouched.
    response = admin_client_.post(f"{CHANGELIST}{account.pk}/change/", {
        "birthday": "1990-05-01", "preferred_channel": "web",
        "ledger-TOTAL_FORMS": "2", "ledger-INITIAL_FORMS": "2", "ledger-MIN_NUM_FORMS": "0", "ledger-MAX_NUM_FORMS": "0",
        "ledger-0-id": str(LedgerEntry.objects.filter(account=account).order_by("-id")[0].pk), "ledger-0-account": str(account.pk),
        "ledger-1-id": str(LedgerEntry.objects.filter(account=account).order_by("-id")[1].pk), "ledger-1-account": str(account.pk),
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    account.refresh_from_db()
    assert (account.preferred_channel, str(account.birthday), account.balance) == ("web", "1990-05-01", 140)


@pytest.mark.django_db
def test_ledger_admin_is_read_only(admin_client_, members):
    entry = LedgerEntry.objects.first()
    assert admin_client_.get("/admin/loyalty/ledgerentry/add/").status_code == 403
    page = admin_client_.get(f"/admin/loyalty/ledgerentry/{entry.pk}/change/").content.decode()
    assert 'name="stars"' not in page
    redeems = changelist(admin_client_.get("/admin/loyalty/ledgerentry/?kind__exact=redeem"), expect_rows=True)
    assert {entry.kind for entry in redeems.result_list} == {"redeem"}
    assert redeems.result_count == LedgerEntry.objects.filter(kind="redeem").count()


@pytest.mark.django_db
def test_adjust_action_asks_then_adjusts_once(admin_client_, members):
    ids = [str(a.pk) for a in members]
    form = admin_client_.post(CHANGELIST, {"action": "adjust_stars", "_selected_action": ids})
    assert form.status_code == 200 and b"Adjust stars" in form.content
    assert "admin/action_form.html" in [t.name for t in form.templates]  # one page for every asking action
    assert re.search(r"<li>m-1 — Green, [0-9]+ stars</li>", form.content.decode())
    assert 'name="action" value="adjust_stars"' in form.content.decode()
    request_key = re.search(r'name="request_key" value="([0-9a-f]+)"', form.content.decode()).group(1)
    submit = {"action": "adjust_stars", "_selected_action": ids, "apply": "1", "stars": "-50",
              "reason": "Goodwill correction", "request_key": request_key}
    assert admin_client_.post(CHANGELIST, submit).status_code == 302
    assert admin_client_.post(CHANGELIST, submit).status_code == 302  # the same form sent twice
    assert dict(LoyaltyAccount.objects.values_list("user_id", "balance")) == {"m-1": 90, "m-2": 0}
    entries = LedgerEntry.objects.filter(kind="adjust").order_by("account__user_id")
    assert [(e.account.user_id, e.stars, e.reason, e.actor.username) for e in entries] == [
        ("m-1", -50, "Goodwill correction", "root"), ("m-2", -50, "Goodwill correction", "root")]


@pytest.mark.django_db
def test_adjust_action_reports_a_refusal_per_account(admin_client_, members):
    ids = [str(a.pk) for a in members]
    response = admin_client_.post(CHANGELIST, {"action": "adjust_stars", "_selected_action": ids, "apply": "1",
                                               "stars": "-100", "reason": "x", "request_key": "abc"}, follow=True)
    page = response.content.decode()
    assert "Account m-2: Insufficient stars: need 100, have 50" in page
    assert "Adjusted 1 account(s) by -100 stars." in page
    assert dict(LoyaltyAccount.objects.values_list("user_id", "balance")) == {"m-1": 40, "m-2": 50}


@pytest.mark.django_db
def test_marketer_can_view_but_not_adjust(marketer_web, members):
    page = marketer_web.get(CHANGELIST)
    assert page.status_code == 200 and b"adjust_stars" not in page.content
    assert marketer_web.get("/admin/loyalty/promotion/add/").status_code == 200
    ids = [str(a.pk) for a in members]
    marketer_web.post(CHANGELIST, {"action": "adjust_stars", "_selected_action": ids, "apply": "1", "stars": "500",
                                   "reason": "x", "request_key": "k"})
    assert not LedgerEntry.objects.filter(kind="adjust").exists()


@pytest.mark.django_db
def test_adjust_service_rules(members, admin_user):
    marketer = get_user_model().objects.create_user(username="m2")
    marketer.groups.add(Group.objects.get(name="Marketer"))
    with pytest.raises(Forbidden):
        services.loyalty_adjust(user_id="m-1", stars=10, reason="nope", actor=marketer)
    for kwargs, field in (({"stars": 0}, "stars"), ({"stars": True}, "stars"), ({"stars": 10**7}, "stars"),
                          ({"reason": " "}, "reason"), ({"stars": -1000}, "stars")):
        with pytest.raises(ServiceError) as exc:
            services.loyalty_adjust(**{"user_id": "m-1", "stars": 10, "reason": "r", **kwargs})
        assert exc.value.field == field
    result = services.loyalty_adjust(user_id="m-1", stars=25, reason="Birthday gift", actor=admin_user)
    account = LoyaltyAccount.objects.get(user_id="m-1")
    # Only the spendable balance: qualifying and lifetime stars record purchases.
    assert (result.new_balance, account.balance, account.qualifying_stars, account.lifetime_stars) == (165, 165, 200, 200)
    assert selectors.loyalty_ledger_sum(user_id="m-1") == 165


@pytest.mark.django_db
def test_adjust_with_select_all_carries_select_across_not_every_id(admin_client_, members):
    """"Select all" goes on as select_across (one id), so any number of accounts fits the form-field limit."""
    form = admin_client_.post(CHANGELIST, {"action": "adjust_stars", "select_across": "1", "index": "0",
                                           "_selected_action": [str(members[0].pk)]})
    page = form.content.decode()
    assert "Adjust the spendable balance of 2 account(s)" in page
    assert page.count('name="_selected_action"') == 1 and 'name="select_across" value="1"' in page
    request_key = re.search(r'name="request_key" value="([0-9a-f]+)"', page).group(1)
    response = admin_client_.post(CHANGELIST, {
        "action": "adjust_stars", "select_across": "1", "_selected_action": [str(members[0].pk)], "apply": "1",
        "stars": "5", "reason": "Outage apology", "request_key": request_key})
    assert response.status_code == 302
    assert dict(LoyaltyAccount.objects.values_list("user_id", "balance")) == {"m-1": 145, "m-2": 55}
