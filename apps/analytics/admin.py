"""Admin pages of the analytics slice, registered on the shared admin site (nothing replaced):

* ``/admin/analytics/dashboard/`` — a marketer's campaign page: picker (opens on a live campaign with
  data), date range and granularity; charts of spend, bids vs wins and CTR / win rate (percent), the
  figures table (one date format, every rate in percent), platform-wide figures labelled as such,
  sampled request counts scaled and marked as estimates, the campaign's spend to date (the one
  number: Redis, with when Postgres last caught up), CSV export (``?export=csv``) and links to the
  campaign and the overview. Drawn from ClickHouse (``selectors.campaign_report``).
* ``/admin/analytics/dashboard/operations/`` — the engineering figures of the same report: bid
  latency percentiles (µs) per bucket; Admins only.
* ``/admin/analytics/dashboard/live/`` — bids per second and latency, pushed every second over the
  websocket ``/ws/analytics/live/`` (``apps.analytics.consumers``).

Charts use Chart.js vendored in ``static/vendor/chartjs`` (no CDN needed).
Visible to staff holding the Marketer or Approver role (or Admin / superuser).
"""
from __future__ import annotations

import csv
import datetime as dt

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpResponse
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


def _can_operate(request) -> bool:
    return request.user.is_active and request.user.is_staff and user_has_role(request.user)  # Admin / superuser


DATE_FORMAT = "%Y-%m-%d %H:%M"  # the one date format of the dashboard (UTC)


def _default_campaign(campaigns: list[tuple[str, str]]) -> str:
    """A live campaign with data in the last 30 days, else any campaign with data, else the newest."""
    from apps.campaigns import selectors as campaign_selectors

    try:
        with_data = [int(cid) for cid in selectors.campaign_ids_with_events(days=30) if cid.isdigit()]
    except ch.ClickHouseError:
        with_data = []
    statuses = campaign_selectors.campaign_status_by_id(campaign_ids=with_data)
    known = [cid for cid in with_data if cid in statuses]  # by amount of data, most first
    for cid in known:
        if statuses[cid] == "live":
            return str(cid)
    return str(known[0]) if known else (campaigns[0][0] if campaigns else "")


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
        ops = path("operations/", self.admin_site.admin_view(self.operations_view), name="analytics_dashboard_operations")
        return [live, ops, *super().get_urls()]

    def _context(self, request, title: str) -> dict:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title}

    def changelist_view(self, request, extra_context=None):
        """The dashboard itself (replaces the list of a model that has no rows)."""
        if not _can_view(request):
            raise PermissionDenied
        context = self._report_context(request, "Campaign performance")
        if request.GET.get("export") == "csv" and context.get("report"):
            return _report_csv(context["report"])
        return TemplateResponse(request, "admin/analytics/dashboard.html", context)

    def operations_view(self, request):
        """Engineering figures (bid latency) of the same report, off the marketer's page."""
        if not _can_operate(request):
            raise PermissionDenied
        context = self._report_context(request, "Operations: bid latency")
        if context.get("report"):
            context["latency_chart"] = _chart_data(context["report"])
        return TemplateResponse(request, "admin/analytics/operations.html", context)

    def _report_context(self, request, title: str) -> dict:
        context = self._context(request, title)
        params = request.GET
        campaigns = _campaign_choices()
        # With nothing picked yet, open on a live campaign with data: a picture beats an empty form.
        campaign_id = (params.get("campaign") or "").strip() or _default_campaign(campaigns)
        context.update(
            campaigns=campaigns,
            campaign_id=campaign_id,
            campaign=None,
            granularity=params.get("granularity") or "hour",
            from_value=params.get("from") or "",
            to_value=params.get("to") or "",
            report=None,
            error=None,
            back_to_overview=params.get("back") == "overview",
            can_operate=_can_operate(request),
        )
        if not campaign_id:
            return context
        try:
            if not campaign_id.isdigit():
                raise ServiceError("Pick a campaign.", field="campaign")
            start, end, granularity = selectors.report_range(
                start=params.get("from"), end=params.get("to"), granularity=params.get("granularity")
            )
            report = selectors.campaign_report(campaign_id=campaign_id, start=start, end=end, granularity=granularity)
            from apps.campaigns import selectors as campaign_selectors

            campaign = campaign_selectors.campaign_get_or_none(campaign_id=int(campaign_id))
            totals = report["totals"]
            context.update(
                report=report,
                campaign=campaign,
                spend_to_date=selectors.spend_to_date(campaign=campaign) if campaign else None,
                requests_estimate=selectors.sampled_requests_estimate(start=start, end=end),
                granularity=granularity,
                chart_data=_chart_data(report),
                rows=_rows(report),
                range_label=f"{start:{DATE_FORMAT}} – {end:{DATE_FORMAT}} UTC",
                totals_pct={k: _pct(totals[k]) for k in ("ctr", "win_rate")},
            )
            if not context["from_value"]:
                context["from_value"] = start.strftime("%Y-%m-%dT%H:%M")
            if not context["to_value"]:
                context["to_value"] = end.strftime("%Y-%m-%dT%H:%M")
        except (ServiceError, NotFound) as exc:
            context["error"] = f"{exc.field + ': ' if exc.field else ''}{exc.message}"
        except ch.ClickHouseError as exc:
            context["error"] = f"ClickHouse is not reachable right now ({type(exc).__name__}); try again shortly."
        return context

    def live_view(self, request):
        """Bids per second and latency, live over a websocket."""
        if not _can_view(request):
            raise PermissionDenied
        return TemplateResponse(request, "admin/analytics/live.html", self._context(request, "Live bidding"))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.2f} %"


def _label(bucket: str) -> str:
    return dt.datetime.fromisoformat(bucket.replace("Z", "+00:00")).strftime(DATE_FORMAT)


def _rows(report: dict) -> list[dict]:
    return [{**b, "label": _label(b["bucket"]), "ctr_pct": _pct(b["ctr"]), "win_rate_pct": _pct(b["win_rate"])}
            for b in report["buckets"]]


CSV_COLUMNS = ("bucket", "requests", "bids", "wins", "spend", "clicks", "ctr", "win_rate")


def _report_csv(report: dict) -> HttpResponse:
    """The report's buckets as CSV (rates as fractions, as the API returns them)."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = (f'attachment; filename="campaign-{report["campaign_id"]}-'
                                       f'{report["granularity"]}.csv"')
    writer = csv.writer(response)
    writer.writerow(CSV_COLUMNS)
    for b in report["buckets"]:
        writer.writerow(["" if b[c] is None else b[c] for c in CSV_COLUMNS])
    return response


def _chart_data(report: dict) -> dict:
    series = report["buckets"]
    labels = [_label(b["bucket"]) for b in series]
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
