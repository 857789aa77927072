"""The back office's navigation grouped by role (issue 19), not by Django app.

A marketer's or an approver's groups come first — Campaigns (with the overview, the calendar and
the performance dashboard), Campaign history, Messaging, Loyalty, Audience — and the engineering
internals (ingest plumbing, send ledgers, webhook batches, suppression audit, spend flushes, bid
model versions, decision posteriors, operations latency) and access control sit in groups only an
Admin (or superuser) sees. Permissions are unchanged: a group lists only what Django's own app list
already allowed this user, so hiding is never the only guard. Models no group names land in
"Other". ``install(site)`` replaces ``site.get_app_list`` for the index and the sidebar; an app's
own index page (``/admin/<app>/``) keeps Django's list.
"""
from __future__ import annotations

from django.urls import NoReverseMatch, reverse

from apps.core.roles import user_has_role

# (group title, slug, admin only, [(app label, model name) | ("link", url name, title, needs model)])
NAV_GROUPS: list[tuple[str, str, bool, list[tuple[str, ...]]]] = [
    ("Campaigns", "nav-campaigns", False, [
        ("campaigns", "campaign"),
        ("link", "admin:campaigns_campaign_overview", "Overview across campaigns", "campaigns.campaign"),
        ("link", "admin:campaigns_campaign_calendar", "Calendar", "campaigns.campaign"),
        ("link", "admin:campaigns_campaign_inbox", "Approval inbox", "campaigns.campaign"),
        ("analytics", "dashboard"),
        ("campaigns", "approvalrule"),
    ]),
    ("Campaign history", "nav-history", False, [
        ("campaigns", "campaigntransition"), ("campaigns", "campaignedit"), ("campaigns", "campaigncomment"),
        ("campaigns", "notification"),
    ]),
    ("Messaging", "nav-messaging", False, [
        ("omnichannel", "contact"), ("omnichannel", "triggerrule"), ("omnichannel", "activation"),
        ("omnichannel", "inboxmessage"), ("omnichannel", "emailstats"), ("omnichannel", "interaction"),
    ]),
    ("Loyalty", "nav-loyalty", False, [
        ("loyalty", "loyaltyaccount"), ("loyalty", "promotion"), ("loyalty", "channelbonus"), ("loyalty", "ledgerentry"),
        ("loyalty", "rewardsignal"),
    ]),
    ("Audience", "nav-audience", False, [("suppression", "suppressionentry"), ("suppression", "suppressionimport")]),
    ("Operations and engineering", "nav-engineering", True, [
        ("link", "admin:analytics_dashboard_operations", "Operations: bid latency", "analytics.dashboard"),
        ("bidding", "spendflush"), ("training", "modelversion"), ("training", "modelversionaudit"),
        ("rl", "decision"), ("rl", "posterior"), ("rl", "evaluationrun"),
        ("omnichannel", "ingestsource"), ("omnichannel", "ingestevent"), ("omnichannel", "sendledger"),
        ("omnichannel", "emailevent"), ("omnichannel", "sendgridbatch"), ("suppression", "suppressionaudit"),
        ("core", "outboundcall"),
    ]),
    ("Access and security", "nav-access", True, [
        ("auth", "user"), ("auth", "group"), ("authtoken", "tokenproxy"), ("otp_totp", "totpdevice"),
        ("core", "authaudit"), ("axes", "accessattempt"), ("axes", "accesslog"), ("axes", "accessfailurelog"),
    ]),
]


def grouped_app_list(django_list: list[dict], *, is_admin: bool) -> list[dict]:
    """Django's (already permission-filtered) app list regrouped into ``NAV_GROUPS``."""
    models = {}
    for app in django_list:
        for model in app["models"]:
            models[(app["app_label"], model["object_name"].lower())] = model
    used: set[tuple[str, str]] = set()
    groups = []
    for title, slug, admin_only, entries in NAV_GROUPS:
        items = []
        for entry in entries:
            if entry[0] == "link":
                _, url_name, label, needs = entry
                if tuple(needs.split(".")) not in models:
                    continue
                try:
                    url = reverse(url_name)
                except NoReverseMatch:
                    continue
                items.append({"name": label, "object_name": url_name.rsplit(":", 1)[-1], "admin_url": url,
                              "add_url": None, "view_only": True, "perms": {"view": True}})
            elif entry in models:
                items.append(models[entry])
                used.add((entry[0], entry[1]))
        if items and (is_admin or not admin_only):
            groups.append({"name": title, "app_label": slug, "app_url": items[0]["admin_url"],
                           "has_module_perms": True, "models": items})
    rest = [model for key, model in models.items() if key not in used and not _engineering_only(key, is_admin)]
    if rest:
        groups.append({"name": "Other", "app_label": "nav-other", "app_url": rest[0]["admin_url"],
                       "has_module_perms": True, "models": rest})
    return groups


def _engineering_only(key: tuple[str, str], is_admin: bool) -> bool:
    """A model listed in an admin-only group stays hidden from others (not moved to "Other")."""
    if is_admin:
        return False
    return any(key in entries for _, _, admin_only, entries in NAV_GROUPS if admin_only)


def install(site) -> None:
    original = site.get_app_list

    def get_app_list(request, app_label=None):
        django_list = original(request, app_label)
        if app_label is not None:
            return django_list
        return grouped_app_list(django_list, is_admin=user_has_role(request.user))

    site.get_app_list = get_app_list
