"""Admin pages of the analytics slice, registered on the shared admin site (nothing replaced):

* ``/admin/analytics/dashboard/`` — campaign picker, date range and granularity; charts of spend,
  bids vs wins, CTR / win rate and latency percentiles, plus the figures table. Drawn from
  ClickHouse (``selectors.campaign_report``), never from scanning Postgres.
* ``/admin/analytics/dashboard/live/`` — bids per second and latency, pushed every second over the
  websocket ``/ws/analytics/live/`` (``apps.analytics.consumers``).

Charts use Chart.js vendored in ``static/vendor/chartjs`` (no CDN needed).
Visible to staff holding the Marketer or Approver role (or Admin / superuser).
"""
from __future__ import annotations

import datetime as dt

from django.contrib import admin
from django.template.response import TemplateResponse
from django.urls import path

from apps.analytics import selectors
from apps.analytics.models import Dashboard
from apps.core import clickhouse as ch
from apps.core.admin_mixins import ReadOnlyAdminMixin, ViewerAdminMixin
from apps.core.exceptions import NotFound, ServiceError
from apps.core.roles import Role, user_has_role

UTC = dt.timezone.utc


def _can_view(request) -> bool:
    return request.user.is_active and request.user.is_staff and user_has_role(request.user, Role.MARKETER, Role.APPROVER)


def _campaign_choices() -> list[tuple[str, str]]:
    """Campaigns from Postgres (names) plus any campaign id that only ClickHouse knows."""
    from apps.campaigns import selectors as campaign_selectors

    choices = [(str(c.pk), f"#{c.pk} {c.name}") for c in campaign_selectors.campaign_list()[:300]]
    known = {value for value, _ in choices}
    try:
        extra = [cid for cid in selectors.campaign_ids_with_events(days=90) if cid.isdigit() and cid not in known]
    except ch.ClickHouseError:
        extra = []
    return choices + [(cid, f"#{cid} (no longer in Postgres)") for cid in extra]


@admin.register(Dashboard)
class DashboardAdmin(ViewerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    def can_view(self, request) -> bool:
        return _can_view(request)

    def get_urls(self):
        live = path("live/", self.admin_site.admin_view(self.live_view), name="analytics_dashboard_live")
        return [live, *super().get_urls()]

    def _context(self, request, title: str) -> dict:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title}

    def changelist_view(self, request, extra_context=None):
        """The dashboard itself (replaces the list of a model that has no rows)."""
        if not _can_view(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        context = self._context(request, "Campaign performance")
        params = request.GET
        campaigns = _campaign_choices()
        # With nothing picked yet, show the newest campaign: a picture beats an empty form.
        campaign_id = (params.get("campaign") or "").strip() or (campaigns[0][0] if campaigns else "")
        context.update(
            campaigns=campaigns,
            campaign_id=campaign_id,
            granularity=params.get("granularity") or "hour",
            from_value=params.get("from") or "",
            to_value=params.get("to") or "",
            report=None,
            error=None,
        )
        if campaign_id:
            try:
                if not campaign_id.isdigit():
                    raise ServiceError("Pick a campaign.", field="campaign")
                start, end, granularity = selectors.report_range(
                    start=params.get("from"), end=params.get("to"), granularity=params.get("granularity")
                )
                report = selectors.campaign_report(campaign_id=campaign_id, start=start, end=end, granularity=granularity)
                totals = report["totals"]
                context.update(
                    report=report,
                    granularity=granularity,
                    chart_data=_chart_data(report),
                    totals_pct={k: None if totals[k] is None else 100 * totals[k] for k in ("ctr", "win_rate")},
                )
                if not context["from_value"]:
                    context["from_value"] = start.strftime("%Y-%m-%dT%H:%M")
                if not context["to_value"]:
                    context["to_value"] = end.strftime("%Y-%m-%dT%H:%M")
            except (ServiceError, NotFound) as exc:
                context["error"] = f"{exc.field + ': ' if exc.field else ''}{exc.message}"
            except ch.ClickHouseError as exc:
                context["error"] = f"ClickHouse is not reachable right now ({type(exc).__name__}); try again shortly."
        return TemplateResponse(request, "admin/analytics/dashboard.html", context)

    def live_view(self, request):
        """Bids per second and latency, live over a websocket."""
        if not _can_view(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        return TemplateResponse(request, "admin/analytics/live.html", self._context(request, "Live bidding"))


def _chart_data(report: dict) -> dict:
    series = report["buckets"]
    fmt = "%m-%d %H:%M" if report["granularity"] == "hour" else "%Y-%m-%d"
    labels = [dt.datetime.fromisoformat(b["bucket"].replace("Z", "+00:00")).strftime(fmt) for b in series]
    return {
        "labels": labels,
        "spend": [b["spend"] for b in series],
        "bids": [b["bids"] for b in series],
        "wins": [b["wins"] for b in series],
        "requests": [b["requests"] for b in series],
        "ctr": [None if b["ctr"] is None else round(100 * b["ctr"], 3) for b in series],
        "win_rate": [None if b["win_rate"] is None else round(100 * b["win_rate"], 3) for b in series],
        "p50": [b["latency_p50_us"] for b in series],
        "p95": [b["latency_p95_us"] for b in series],
        "p99": [b["latency_p99_us"] for b in series],
    }
