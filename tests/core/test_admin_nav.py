"""The admin's navigation grouped by role (apps.core.admin_nav): a marketer's groups, no internals;
an Admin also sees operations and access control. Django's permissions still decide what is listed."""
from __future__ import annotations

import pytest

from apps.core.roles import Role
from tests import factories

pytestmark = pytest.mark.django_db


def _groups(client, user) -> dict[str, list[str]]:
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 200
    return {app["name"]: [str(m["name"]) for m in app["models"]] for app in response.context["app_list"]}


def test_a_marketer_sees_marketing_groups_and_no_internals(client):
    groups = _groups(client, factories.make_user(Role.MARKETER))
    assert list(groups)[0] == "Campaigns"
    assert {"Overview across campaigns", "Calendar", "Approval inbox"} <= set(groups["Campaigns"])
    assert "Operations and engineering" not in groups and "Access and security" not in groups
    listed = {name.lower() for names in groups.values() for name in names}
    for internal in ("bid model versions", "posteriors", "suppression audit records", "send ledgers",
                     "sendgrid webhook batches", "spend flushs"):
        assert internal not in listed, internal
    html = client.get("/admin/").content.decode()
    assert "/admin/campaigns/campaign/overview/" in html and "/admin/campaigns/campaign/calendar/" in html


def test_an_admin_also_sees_operations_and_access(client):
    groups = _groups(client, factories.make_user(Role.ADMIN))
    assert "Operations and engineering" in groups and "Access and security" in groups
    assert "Operations: bid latency" in groups["Operations and engineering"]
    assert list(groups)[0] == "Campaigns"


def test_an_app_index_page_keeps_djangos_list(client):
    client.force_login(factories.make_user(Role.ADMIN))
    response = client.get("/admin/campaigns/")
    assert response.status_code == 200 and response.context["app_list"][0]["app_label"] == "campaigns"
