"""Back office for campaigns: marketers edit campaigns with their offers inline and submit them;
approvers find what awaits their decision and approve or reject it; everyone sees the state, the
votes and the audit trail.

Every save and every button goes through ``apps.campaigns.services`` — the admin never writes a
campaign, an offer or a vote itself — so role, state and self-approval checks hold for a crafted
POST as much as for the buttons. The status is never a form field. Around this module:
``admin_forms`` (the forms, errors in plain words), ``admin_page`` (the page's header: status,
decision, rule and votes; one readable history), ``admin_inbox`` (the approval inbox, approve / reject
& next, comments, notifications), ``admin_wizard`` (guided creation) and ``admin_history`` (the
read-only audit lists).
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from django.db.models import Count, OuterRef, Subquery
from django.db.models.functions import Coalesce
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe

from apps.core.exceptions import ServiceError
from apps.core.roles import Role, user_has_role

from . import admin_inbox, admin_wizard, selectors, services
from .admin_cockpit import CockpitMixin, FlightFilter, OwnerFilter
from .admin_forms import ApprovalRuleForm, CampaignAdminForm, OfferAdminForm
from .admin_history import CampaignEditAdmin, CampaignTransitionAdmin  # noqa: F401  (registers the audit lists)
from .admin_page import campaign_header, history_lines, plain_message
from .models import (
    ApprovalRule,
    ApprovalVote,
    Campaign,
    CampaignStatus,
    Channel,
    EditSource,
    Offer,
    VoteDecision,
)

ACTION_LABELS = {
    "submit": "Submit for approval",
    "approve": "Approve",
    "reject": "Reject…",
    "request_changes": "Request changes…",
    "revise": "Revise (back to draft)",
    "schedule": "Schedule",
    "go_live": "Go live now",
    "pause": "Pause",
    "resume": "Resume",
    "complete": "Complete now…",
    "archive": "Archive",
}
ACTION_SERVICES = {
    "submit": services.campaign_submit,
    "approve": services.campaign_approve,
    "reject": services.campaign_reject,
    "request_changes": services.campaign_request_changes,
    "revise": services.campaign_revise,
    "schedule": services.campaign_schedule,
    "go_live": services.campaign_go_live,
    "pause": services.campaign_pause,
    "resume": services.campaign_resume,
    "complete": services.campaign_complete,
    "archive": services.campaign_archive,
}
REASON_REQUIRED = {"reject", "request_changes", "complete"}
STATUS_COLOURS = {
    CampaignStatus.DRAFT: "#6c757d", CampaignStatus.IN_REVIEW: "#b8860b", CampaignStatus.APPROVED: "#1e7e34",
    CampaignStatus.REJECTED: "#c82333", CampaignStatus.SCHEDULED: "#17a2b8", CampaignStatus.LIVE: "#28a745",
    CampaignStatus.PAUSED: "#fd7e14", CampaignStatus.COMPLETED: "#343a40", CampaignStatus.ARCHIVED: "#adb5bd",
}


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 4, "cols": 60}), required=True, strip=True,
                             help_text="Kept in the audit trail and shown to the marketer.")


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(required=False, strip=True)


# --- inlines -------------------------------------------------------------------------------------

class OfferInline(admin.StackedInline):
    model = Offer
    form = OfferAdminForm
    extra = 0
    fields = ("name", ("width", "height", "format"), "creative_markup", "landing_url", ("advertiser_domain", "category"),
              ("max_bid_cpm", "priority", "observed_ctr"), "creative_preview", "creative_library")
    readonly_fields = ("creative_preview", "creative_library")

    @admin.display(description="Creative library")
    def creative_library(self, offer: Offer):
        """The DAM asset behind the creative (and whether it may bid), and the search panel."""
        if not offer or not offer.pk:
            return "Save the offer, then search the creative library."
        link = format_html('<a href="{}">Search the creative library…</a>',
                           reverse("admin:integrations_creative_search", args=[offer.pk]))
        if not offer.creative_source:
            return link
        blocked = selectors.offer_creative_blocked(offer)
        state = format_html('<strong style="color:#c33">not bidding: {}</strong>', blocked) if blocked else "valid"
        return format_html("{} asset {} ({}, valid until {}): {} · {}", offer.creative_source, offer.creative_asset_id,
                           offer.creative_mime or "?", offer.creative_valid_until or "no expiry", state, link)

    @admin.display(description="Preview")
    def creative_preview(self, offer: Offer):
        if not offer or not offer.pk or offer.format != "banner":
            return "—"
        # Sandboxed: markup from a marketer must not run in the admin's origin.
        return format_html(
            '<iframe sandbox scrolling="no" srcdoc="{}" width="{}" height="{}" style="border:1px solid #ccc">'
            "</iframe>",
            f'<body style="margin:0">{offer.creative_markup}</body>', offer.width, offer.height,
        )

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "landing_url":
            kwargs["assume_scheme"] = "https"  # a bare "shop.example.com" becomes https://…
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_extra(self, request, obj=None, **kwargs):
        return 1 if obj is None or obj.status == CampaignStatus.DRAFT else 0

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None:
            editable = services.offer_editable_fields(status=obj.status)
            readonly += [f for f in services.OFFER_FIELDS if f not in editable]
        return readonly

    def has_add_permission(self, request, obj=None):
        if obj is not None and obj.status not in services.OFFER_SET_EDITABLE_STATES:
            return False
        return super().has_add_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        # Removing a creative is part of editing a campaign before approval.
        if obj is not None and obj.status not in services.OFFER_SET_EDITABLE_STATES:
            return False
        return request.user.has_perm("campaigns.change_offer")


# --- list filters --------------------------------------------------------------------------------

class AwaitingMyDecisionFilter(admin.SimpleListFilter):
    title = "my decision"
    parameter_name = "awaiting"

    def lookups(self, request, model_admin):
        if user_has_role(request.user, Role.APPROVER):
            return [("me", "Awaiting my decision")]
        return []

    def queryset(self, request, queryset):
        if self.value() == "me":
            return queryset.filter(pk__in=selectors.campaign_list_awaiting_decision(user=request.user).values("pk"))
        return queryset


class ChannelFilter(admin.SimpleListFilter):
    title = "channel"
    parameter_name = "channel"

    def lookups(self, request, model_admin):
        return Channel.choices

    def queryset(self, request, queryset):
        if self.value():
            return queryset.filter(channels__contains=[self.value()])
        return queryset


# --- campaigns -----------------------------------------------------------------------------------

@admin.register(Campaign)
class CampaignAdmin(CockpitMixin, admin.ModelAdmin):
    form = CampaignAdminForm
    change_form_template = "admin/campaigns/campaign/change_form.html"
    # Votes, transitions and edits are shown once, readable, in the header and history (admin_page).
    inlines = [OfferInline]
    # The cockpit (admin_cockpit): every column a marketer needs at 1440 px, no scrolling.
    list_display = CockpitMixin.COCKPIT_COLUMNS
    list_display_links = ("name_cell",)
    list_filter = (AwaitingMyDecisionFilter, "status", ("created_by", OwnerFilter), ChannelFilter,
                   FlightFilter, "advertiser")
    search_fields = ("name", "advertiser", "offers__name", "offers__advertiser_domain")
    list_select_related = ("approval_rule", "created_by")
    actions = ["submit_selected", "pause_selected", "resume_selected", "archive_selected", "export_selected_csv"]
    fieldsets = (
        (None, {"fields": ("name", "advertiser", "status_badge")}),
        ("Budget and dates", {"fields": (("budget", "currency"), "spent", "channels", ("start_at", "end_at"))}),
        ("Audience", {"fields": ("target_countries", "target_device_types", "target_segments",
                                 ("max_impressions_per_hour", "max_impressions_per_day"))}),
        ("Approval", {"fields": ("approval_rule", "required_approvals", "review_round", "created_by", "submitted_by",
                                 "submitted_at", "external_items")}),
        ("Reports", {"fields": ("report_download",)}),
    )
    BASE_READONLY = ("status_badge", "spent", "approval_rule", "required_approvals", "review_round", "created_by",
                     "submitted_by", "submitted_at", "external_items", "report_download")

    # list columns
    @admin.display(description="Status", ordering="status")
    def status_badge(self, campaign: Campaign):
        return format_html(
            '<span class="campaign-status" data-status="{}" style="color:#fff;background:{};padding:2px 8px;'
            'border-radius:8px;white-space:nowrap">{}</span>',
            campaign.status, STATUS_COLOURS.get(campaign.status, "#666"), campaign.get_status_display(),
        )

    @admin.display(description="Asana / Jira")
    def external_items(self, campaign: Campaign):
        """The approval task/issue of each submission, its link and the status seen there."""
        from apps.integrations.selectors import external_tasks_for_campaign

        if campaign.pk is None:
            return "—"
        items = external_tasks_for_campaign(campaign_id=campaign.pk)
        if not items:
            return "—"
        return format_html_join(mark_safe("<br>"), '{} round {}: <a href="{}" target="_blank" rel="noopener">{}</a> {} {}', (
            (item.connection.get_kind_display(), item.review_round, item.url or "#",
             item.external_key or item.external_id or item.get_state_display(),
             f"— {item.external_status}" if item.external_status else "", f"({item.note})" if item.note else "")
            for item in items))

    @admin.display(description="Excel report")
    def report_download(self, campaign: Campaign):
        if campaign.pk is None:
            return "—"
        url = reverse("report-campaign-xlsx", args=[campaign.pk])
        return format_html('<a href="{}">Last 24 hours by hour</a> · <a href="{}?granularity=day">last 30 days by day</a>'
                           " (.xlsx)", url, url)

    @admin.display(description="Channels")
    def channel_list(self, campaign: Campaign):
        return ", ".join(Channel(c).label for c in campaign.channels)

    @admin.display(description="Approvals")
    def approvals(self, campaign: Campaign):
        if campaign.status != CampaignStatus.IN_REVIEW:
            return "—"
        return f"{campaign.approvals_so_far} of {campaign.required_approvals}"

    def get_queryset(self, request):
        # The approvals column without a query per row: approvals of the current round, not voided.
        # A subquery, so joins added by search or filters cannot multiply the count.
        approvals = (
            ApprovalVote.objects.filter(campaign=OuterRef("pk"), review_round=OuterRef("review_round"), voided=False,
                                        decision=VoteDecision.APPROVE)
            .order_by().values("campaign").annotate(n=Count("id")).values("n")
        )
        return super().get_queryset(request).annotate(approvals_so_far=Coalesce(Subquery(approvals), 0))

    # permissions and fields
    def get_readonly_fields(self, request, obj=None):
        readonly = list(self.BASE_READONLY)
        if obj is not None:
            editable = services.campaign_editable_fields(status=obj.status)
            readonly += [f for f in services.CAMPAIGN_FIELDS if f not in editable]
        return readonly

    def has_delete_permission(self, request, obj=None):
        # Only drafts may disappear; anything submitted keeps its audit trail.
        if obj is not None and obj.status != CampaignStatus.DRAFT:
            return False
        return super().has_delete_permission(request, obj)

    # saving goes through the services
    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except ServiceError as exc:
            # The whole save was rolled back (the admin wraps it in a transaction).
            self.message_user(request, f"Nothing was saved: {plain_message(exc.message)}", messages.ERROR)
            return HttpResponseRedirect(request.get_full_path())

    def save_model(self, request, obj, form, change):
        if change:
            changes = {f: form.cleaned_data[f] for f in form.changed_data if f in services.CAMPAIGN_FIELDS}
            if changes:
                services.campaign_update(campaign_id=obj.pk, actor=request.user, source=EditSource.ADMIN, **changes)
            return
        fields = {f: form.cleaned_data[f] for f in services.CAMPAIGN_FIELDS if f in form.cleaned_data}
        created = services.campaign_create(actor=request.user, **fields)
        # The admin goes on with ``obj`` (inlines, log entry, redirect): make it the saved row.
        obj.pk = created.pk
        obj.created_by_id = created.created_by_id
        obj.created_at, obj.updated_at = created.created_at, created.updated_at
        obj._state.adding = False
        obj._state.db = created._state.db

    def save_related(self, request, form, formsets, change):
        for formset in formsets:
            self._save_formset(request, form.instance, formset)

    def _save_formset(self, request, campaign: Campaign, formset) -> None:
        formset.new_objects, formset.changed_objects, formset.deleted_objects = [], [], []
        if formset.model is not Offer:
            return  # votes, history and edits are read-only
        for offer_form in formset.forms:
            offer = offer_form.instance
            if formset.can_delete and formset._should_delete_form(offer_form):
                if offer.pk:
                    services.offer_delete(offer_id=offer.pk, actor=request.user, source=EditSource.ADMIN)
                    formset.deleted_objects.append(offer)
                continue
            if not offer_form.has_changed():
                continue
            if offer.pk is None:
                values = {f: offer_form.cleaned_data[f] for f in services.OFFER_FIELDS if f in offer_form.cleaned_data}
                formset.new_objects.append(
                    services.offer_create(campaign_id=campaign.pk, actor=request.user, source=EditSource.ADMIN,
                                          **values))
            else:
                changes = {f: offer_form.cleaned_data[f] for f in offer_form.changed_data if f in services.OFFER_FIELDS}
                if changes:
                    services.offer_update(offer_id=offer.pk, actor=request.user, source=EditSource.ADMIN, **changes)
                    formset.changed_objects.append((offer, list(changes)))

    # lifecycle buttons
    def get_urls(self):
        urls = super().get_urls()
        custom = [
            path("<path:object_id>/action/<str:action>/", self.admin_site.admin_view(self.action_view),
                 name="campaigns_campaign_action"),
            path("inbox/", self.admin_site.admin_view(lambda r: admin_inbox.inbox_view(self, r)),
                 name="campaigns_campaign_inbox"),
            path("inbox/<int:object_id>/", self.admin_site.admin_view(lambda r, object_id: admin_inbox.review_view(
                self, r, object_id)), name="campaigns_campaign_review"),
            path("<int:object_id>/comment/", self.admin_site.admin_view(lambda r, object_id: admin_inbox.comment_view(
                self, r, object_id)), name="campaigns_campaign_comment"),
            path("notifications/", self.admin_site.admin_view(lambda r: admin_inbox.notifications_view(self, r)),
                 name="campaigns_campaign_notifications"),
            path("new/", self.admin_site.admin_view(lambda r: admin_wizard.guided_create_view(self, r)),
                 name="campaigns_campaign_guided"),
        ]
        return custom + self.cockpit_urls() + urls

    def change_view(self, request, object_id, form_url="", extra_context=None):
        campaign = self.get_object(request, object_id)
        extra_context = extra_context or {}
        if campaign is not None:
            if request.method == "GET":
                services.notification_mark_read_for_campaign(campaign_id=campaign.pk, actor=request.user)
            approvals = selectors.campaign_approval_count(campaign=campaign)
            extra_context["lifecycle"] = {
                "actions": [
                    {"name": name, "label": ACTION_LABELS[name], "needs_reason": name in REASON_REQUIRED}
                    for name in selectors.campaign_available_actions(campaign=campaign, user=request.user)
                ],
                "approvals": approvals,
                "votes_at_stake": campaign.status == CampaignStatus.IN_REVIEW and approvals > 0,
                "header": campaign_header(campaign=campaign),
                "history": history_lines(campaign_id=campaign.pk),
                "comments": list(selectors.campaign_comments(campaign_id=campaign.pk)),
                "in_inbox": user_has_role(request.user, Role.APPROVER),
            }
        return super().change_view(request, object_id, form_url, extra_context)

    def action_view(self, request, object_id, action):
        if action not in ACTION_SERVICES:
            raise Http404(f"No campaign action {action!r}")
        campaign = self.get_object(request, object_id)
        if campaign is None:
            raise Http404("No such campaign")
        if not self.has_view_permission(request, campaign):
            raise DjangoPermissionDenied
        change_url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
        needs_reason = action in REASON_REQUIRED
        if request.method == "GET" and needs_reason:
            form = ReasonForm()
        elif request.method == "POST":
            form = (ReasonForm if needs_reason else OptionalReasonForm)(request.POST)
            if form.is_valid():
                try:
                    with transaction.atomic():
                        ACTION_SERVICES[action](campaign_id=campaign.pk, actor=request.user,
                                                reason=form.cleaned_data["reason"])
                except ServiceError as exc:
                    self.message_user(request, plain_message(exc.message), messages.ERROR)
                else:
                    updated = selectors.campaign_get(campaign_id=campaign.pk)
                    self.message_user(request, f"{ACTION_LABELS[action].rstrip('…')}: “{updated.name}” is now "
                                               f"{updated.get_status_display().lower()}.", messages.SUCCESS)
                return HttpResponseRedirect(change_url)
            if not needs_reason:
                return HttpResponseRedirect(change_url)
        else:
            return HttpResponseNotAllowed(["POST"])
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": campaign,
            "title": f"{ACTION_LABELS[action].rstrip('…')}: {campaign.name}",
            "action": action,
            "action_label": ACTION_LABELS[action].rstrip("…"),
            "form": form,
            "change_url": change_url,
        }
        return render(request, "admin/campaigns/campaign/reason_form.html", context)

    # submit in bulk: one service call per campaign; refusals are reported, the rest go ahead (each
    # submission stands alone). Pause / resume / archive are all or nothing (admin_cockpit).
    def _bulk(self, request, queryset, action: str) -> None:
        done, refused = 0, []
        for campaign in queryset:
            try:
                ACTION_SERVICES[action](campaign_id=campaign.pk, actor=request.user, reason="")
                done += 1
            except ServiceError as exc:
                refused.append(f"{campaign.name}: {exc.message}")
        if done:
            self.message_user(request, f"{ACTION_LABELS[action]}: {done} campaign(s).", messages.SUCCESS)
        for message in refused:
            self.message_user(request, message, messages.WARNING)

    @admin.action(description="Submit selected campaigns for approval", permissions=["change"])
    def submit_selected(self, request, queryset):
        self._bulk(request, queryset, "submit")



@admin.register(ApprovalRule)
class ApprovalRuleAdmin(admin.ModelAdmin):
    form = ApprovalRuleForm
    list_display = ("name", "min_approvals", "budget_threshold", "channel_list", "is_active")
    list_filter = ("is_active",)
    search_fields = ("name",)

    @admin.display(description="Channels")
    def channel_list(self, rule: ApprovalRule):
        return ", ".join(Channel(c).label for c in rule.channels) or "any"
