"""The campaign list as a cockpit (issue 19), mixed into ``CampaignAdmin``.

Columns that fit 1440 px: name (advertiser and channels under it), status, owner, flight dates,
budget, spent (the bidding slice's one number, with when Postgres last caught up), pacing (flagged
past ``CAMPAIGN_PACING_MARGIN_PCT``) and approvals. Filters by status, owner, channel and flight
dates; saved views per user; CSV export of exactly the filtered list; clone; bulk pause / resume /
archive all or nothing (``services.campaign_bulk_transition``: each refusal listed).

Exports: CSV and XLSX (the back office's Excel writer, ``apps.core.xlsx``), the same rows.
"""
from __future__ import annotations

import csv
import datetime as dt

from django.contrib import admin, messages
from django.db.models import Q
from django.http import HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.core.exceptions import ServiceError

from . import admin_overview, services
from .cockpit import fmt_date, fmt_datetime, pacing
from .models import Campaign, CampaignStatus, Channel, SavedView
from .services.cockpit import BulkRefused

PACED_STATES = {CampaignStatus.LIVE, CampaignStatus.PAUSED, CampaignStatus.COMPLETED}
FLAGGED_STATES = {CampaignStatus.LIVE, CampaignStatus.PAUSED}


class OwnerFilter(admin.RelatedOnlyFieldListFilter):
    """Campaigns by who created them (only users who own a campaign are offered)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.title = "owner"


class FlightFilter(admin.SimpleListFilter):
    """Campaigns whose flight overlaps a period: presets, or ``flight_from`` / ``flight_to`` dates."""

    title = "flight dates"
    parameter_name = "flight"
    template = "admin/campaigns/campaign/flight_filter.html"

    def __init__(self, request, params, model, model_admin):
        self.dates = {key: (params.pop(key, [""]) or [""])[-1] for key in ("flight_from", "flight_to")}
        self.other_params = [(k, v) for k, values in request.GET.lists() for v in values
                             if k not in ("flight", "flight_from", "flight_to", "p")]
        super().__init__(request, params, model, model_admin)

    def expected_parameters(self):
        return [self.parameter_name, "flight_from", "flight_to"]

    def has_output(self):
        return True

    def lookups(self, request, model_admin):
        return [("now", "Running now"), ("month", "This month"), ("next30", "Next 30 days"), ("last30", "Last 30 days")]

    def _period(self) -> tuple[dt.datetime | None, dt.datetime | None]:
        now = timezone.now()
        value = self.value()
        if value == "now":
            return now, now + dt.timedelta(microseconds=1)
        if value == "month":
            first = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
            return first, (first + dt.timedelta(days=32)).replace(day=1)
        if value == "next30":
            return now, now + dt.timedelta(days=30)
        if value == "last30":
            return now - dt.timedelta(days=30), now
        bounds = []
        for key, end in (("flight_from", False), ("flight_to", True)):
            raw = self.dates[key].strip()
            try:
                day = dt.date.fromisoformat(raw) if raw else None
            except ValueError:
                raise admin.options.IncorrectLookupParameters(f"{key} must be a date like 2027-03-01") from None
            bounds.append(None if day is None else dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
                          + dt.timedelta(days=1 if end else 0))
        return bounds[0], bounds[1]

    def queryset(self, request, queryset):
        start, end = self._period()
        condition = Q()
        if start is not None:
            condition &= Q(end_at__gt=start)
        if end is not None:
            condition &= Q(start_at__lt=end)
        return queryset.filter(condition)


class CockpitMixin(admin.ModelAdmin):
    """List columns, filters, export, clone, bulk and saved views of the campaign cockpit."""

    COCKPIT_COLUMNS = ("name_cell", "status_badge", "owner", "flight", "budget_cell", "spent_cell", "pacing_cell",
                       "approvals")

    # --- columns -------------------------------------------------------------------------------
    @admin.display(description="Campaign", ordering="name")
    def name_cell(self, campaign: Campaign):
        channels = ", ".join(Channel(c).label for c in campaign.channels)
        return format_html('<span class="cockpit-name">{}</span><br><small class="cockpit-sub">{} · {}</small>',
                           campaign.name, campaign.advertiser, channels or "no channel")

    @admin.display(description="Owner", ordering="created_by__username")
    def owner(self, campaign: Campaign):
        user = campaign.created_by
        return (user.get_full_name() or user.username) if user else "—"

    @admin.display(description="Flight (UTC)", ordering="start_at")
    def flight(self, campaign: Campaign):
        return format_html('<span class="cockpit-flight">{} → {}</span>', fmt_date(campaign.start_at),
                           fmt_date(campaign.end_at))

    @admin.display(description="Budget", ordering="budget")
    def budget_cell(self, campaign: Campaign):
        return f"{campaign.budget:,.2f} {campaign.currency}"

    def _spend(self, campaign: Campaign):
        figures = getattr(self, "_spend_figures", {})
        return figures.get(campaign.pk)

    @admin.display(description="Spent", ordering="spent")
    def spent_cell(self, campaign: Campaign):
        figure = self._spend(campaign)
        if figure is None:
            return format_html('<span class="cockpit-spent" data-spent="{}">{}</span>', f"{campaign.spent:.6f}",
                               f"{campaign.spent:,.2f}")
        note = "" if figure.in_sync else f"Postgres {figure.recorded:,.2f}, reconciled {fmt_datetime(figure.reconciled_at)}"
        return format_html('<span class="cockpit-spent" data-spent="{}" title="{}">{}{}</span>', f"{figure.spent:.6f}", note,
                           f"{figure.spent:,.2f}", "*" if note else "")

    @admin.display(description="Pacing")
    def pacing_cell(self, campaign: Campaign):
        if campaign.status not in PACED_STATES:
            return "—"
        figure = self._spend(campaign)
        spent = figure.spent if figure is not None else campaign.spent
        pace = pacing(budget=campaign.budget, spent=spent, start_at=campaign.start_at, end_at=campaign.end_at)
        flag = pace.flag if campaign.status in FLAGGED_STATES else ""
        symbol = {"over": " ▲ over", "under": " ▼ under"}.get(flag, "")
        return format_html('<span class="cockpit-pacing" data-flag="{}" title="{}">{}/{} %{}</span>', flag,
                           pace.label(), f"{100 * pace.budget_share:.0f}", f"{100 * pace.flight_share:.0f}", symbol)

    # --- the list page -------------------------------------------------------------------------
    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        extra_context["saved_views"] = list(SavedView.objects.filter(user=request.user))
        extra_context["current_query"] = request.GET.urlencode()
        response = super().changelist_view(request, extra_context)
        return response

    def get_changelist_instance(self, request):
        cl = super().get_changelist_instance(request)
        from apps.bidding.selectors import campaign_spend

        self._spend_figures = campaign_spend(campaigns=cl.result_list)
        return cl

    def cockpit_urls(self):
        view = self.admin_site.admin_view
        return [
            path("export.csv", view(self.export_csv_view), name="campaigns_campaign_export_csv"),
            path("export.xlsx", view(self.export_xlsx_view), name="campaigns_campaign_export_xlsx"),
            path("views/save/", view(self.saved_view_save_view), name="campaigns_campaign_view_save"),
            path("views/<int:view_id>/delete/", view(self.saved_view_delete_view), name="campaigns_campaign_view_delete"),
            path("<int:object_id>/clone/", view(self.clone_view), name="campaigns_campaign_clone"),
            path("overview/", view(lambda r: admin_overview.overview_view(self, r)), name="campaigns_campaign_overview"),
            path("calendar/", view(lambda r: admin_overview.calendar_view(self, r)), name="campaigns_campaign_calendar"),
        ]

    # --- export --------------------------------------------------------------------------------
    EXPORT_HEADER = ("id", "name", "advertiser", "status", "owner", "channels", "start_at", "end_at", "budget",
                     "currency", "spent", "spent_recorded", "reconciled_at", "budget_pct", "flight_pct", "pacing_flag",
                     "approvals")

    def _export_rows(self, request) -> list[list]:
        """The list as filtered (same query string), every matching row, one list per campaign."""
        if not self.has_view_permission(request):
            from django.core.exceptions import PermissionDenied

            raise PermissionDenied
        cl = super().get_changelist_instance(request)
        from apps.bidding.selectors import campaign_spend

        rows = list(cl.queryset.select_related("created_by"))
        figures = campaign_spend(campaigns=rows)
        out = []
        for c in rows:
            figure = figures[c.pk]
            pace = pacing(budget=c.budget, spent=figure.spent, start_at=c.start_at, end_at=c.end_at)
            out.append([
                c.pk, c.name, c.advertiser, c.status, self.owner(c), " ".join(c.channels), c.start_at.isoformat(),
                c.end_at.isoformat(), f"{c.budget:.2f}", c.currency, f"{figure.spent:.6f}", f"{figure.recorded:.6f}",
                figure.reconciled_at.isoformat() if figure.reconciled_at else "",
                f"{100 * pace.budget_share:.1f}", f"{100 * pace.flight_share:.1f}",
                pace.flag if c.status in FLAGGED_STATES else "",
                f"{c.approvals_so_far}/{c.required_approvals}" if c.status == CampaignStatus.IN_REVIEW else "",
            ])
        return out

    def export_csv_view(self, request):
        rows = self._export_rows(request)
        response = HttpResponse(content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="campaigns-{timezone.now():%Y%m%d-%H%M}.csv"'
        writer = csv.writer(response)
        writer.writerow(self.EXPORT_HEADER)
        writer.writerows(rows)
        return response

    def export_xlsx_view(self, request):
        """The same rows as the CSV, through the back office's Excel writer (apps.core.xlsx)."""
        import io

        from apps.core.xlsx import Column, Sheet, write_xlsx

        rows = self._export_rows(request)
        buffer = io.BytesIO()
        write_xlsx(buffer, [Sheet("Campaigns", [Column(name) for name in self.EXPORT_HEADER], rows)])
        response = HttpResponse(buffer.getvalue(),
                                content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
        response["Content-Disposition"] = f'attachment; filename="campaigns-{timezone.now():%Y%m%d-%H%M}.xlsx"'
        return response

    # --- saved views ---------------------------------------------------------------------------
    def _list_url(self, query: str = "") -> str:
        url = reverse("admin:campaigns_campaign_changelist")
        return f"{url}?{query}" if query else url

    def saved_view_save_view(self, request):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        query = request.POST.get("query", "")
        try:
            view = services.saved_view_save(user=request.user, name=request.POST.get("name", ""), query=query)
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(self._list_url(query))
        self.message_user(request, f"Saved the view “{view.name}”.", messages.SUCCESS)
        return HttpResponseRedirect(self._list_url(view.query))

    def saved_view_delete_view(self, request, view_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        services.saved_view_delete(user=request.user, view_id=view_id)
        return HttpResponseRedirect(self._list_url())

    # --- clone ---------------------------------------------------------------------------------
    def clone_view(self, request, object_id: int):
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        try:
            clone = services.campaign_clone(campaign_id=object_id, actor=request.user)
        except Campaign.DoesNotExist:
            from django.http import Http404

            raise Http404("No such campaign") from None
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[object_id]))
        self.message_user(request, f"Cloned into the draft “{clone.name}”: check its dates and submit it.",
                          messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[clone.pk]))

    # --- bulk: all or nothing ------------------------------------------------------------------
    def _bulk_all_or_nothing(self, request, queryset, action: str, label: str) -> None:
        try:
            done = services.campaign_bulk_transition(campaign_ids=queryset.values_list("pk", flat=True),
                                                     action=action, actor=request.user)
        except BulkRefused as exc:
            self.message_user(request, exc.message, messages.ERROR)
            for refusal in exc.refusals:
                self.message_user(request, f"{refusal.name}: {refusal.message}", messages.WARNING)
            return
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"{label}: {len(done)} campaign(s).", messages.SUCCESS)

    @admin.action(description="Pause selected live campaigns (all or none)", permissions=["change"])
    def pause_selected(self, request, queryset):
        self._bulk_all_or_nothing(request, queryset, "pause", "Paused")

    @admin.action(description="Resume selected paused campaigns (all or none)", permissions=["change"])
    def resume_selected(self, request, queryset):
        self._bulk_all_or_nothing(request, queryset, "resume", "Resumed")

    @admin.action(description="Archive selected completed campaigns (all or none)", permissions=["change"])
    def archive_selected(self, request, queryset):
        self._bulk_all_or_nothing(request, queryset, "archive", "Archived")

    @admin.action(description="Export selected as CSV", permissions=["view"])
    def export_selected_csv(self, request, queryset):
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return HttpResponseRedirect(f"{reverse('admin:campaigns_campaign_export_csv')}?id__in={ids}")
