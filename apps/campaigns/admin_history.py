"""The campaigns admin's audit trail, read-only: votes, transitions and edits (old → new values), as
inlines on a campaign's page and as lists of their own. The services write these rows; nobody edits
them here."""
from __future__ import annotations

from django.contrib import admin
from django.utils.html import format_html_join

from apps.core.admin_mixins import ReadOnlyAdminMixin, ReadOnlyTabularInline

from .models import ApprovalVote, CampaignComment, CampaignEdit, CampaignTransition, Notification


class _ReadOnlyInline(ReadOnlyTabularInline):
    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("campaigns.view_campaign")


class ApprovalVoteInline(_ReadOnlyInline):
    model = ApprovalVote
    verbose_name_plural = "Votes"
    fields = readonly_fields = ("approver", "decision", "reason", "review_round", "voided", "created_at")
    ordering = ("-review_round", "created_at")


class CampaignTransitionInline(_ReadOnlyInline):
    model = CampaignTransition
    verbose_name_plural = "History (audit trail)"
    fields = readonly_fields = ("created_at", "action", "from_status", "to_status", "actor", "reason")


def _value(value) -> str:
    if value is None:
        return "—"
    if isinstance(value, list):
        return ", ".join(str(item) for item in value) or "(none)"
    text = str(value)
    return text if len(text) <= 120 else f"{text[:117]}…"


def edit_diff(edit: CampaignEdit):
    """``field: old → new``, one line per changed field."""
    return format_html_join(
        "", '<div><b>{}</b>: <span style="color:#c82333">{}</span> → <span style="color:#1e7e34">{}</span></div>',
        ((name, _value(change["old"]), _value(change["new"])) for name, change in sorted(edit.changes.items())),
    )


class CampaignEditInline(_ReadOnlyInline):
    model = CampaignEdit
    verbose_name_plural = "Edits (old → new values)"
    fields = readonly_fields = ("created_at", "action", "offer_id", "actor", "source", "diff")
    ordering = ("-created_at", "-id")

    @admin.display(description="Changes")
    def diff(self, edit: CampaignEdit):
        return edit_diff(edit)

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm("campaigns.view_campaignedit")


@admin.register(CampaignTransition)
class CampaignTransitionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail across campaigns (read-only)."""

    list_display = ("created_at", "campaign", "action", "from_status", "to_status", "actor", "reason")
    list_filter = ("action", "to_status")
    search_fields = ("campaign__name", "actor__username", "reason")
    list_select_related = ("campaign", "actor")
    date_hierarchy = "created_at"


@admin.register(CampaignEdit)
class CampaignEditAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every edit across campaigns with its old and new values (read-only; the services write them)."""

    list_display = ("created_at", "campaign", "action", "offer_id", "actor", "source", "diff")
    list_filter = ("action", "source", ("actor", admin.RelatedOnlyFieldListFilter))
    search_fields = ("campaign__name", "actor__username")
    list_select_related = ("campaign", "actor")
    date_hierarchy = "created_at"
    fields = readonly_fields = ("created_at", "campaign", "action", "offer_id", "actor", "source", "diff")

    @admin.display(description="Changes")
    def diff(self, edit: CampaignEdit):
        return edit_diff(edit)

@admin.register(CampaignComment)
class CampaignCommentAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every campaign's discussion (read-only; comments are posted on the campaign pages)."""

    list_display = ("created_at", "campaign", "author", "body")
    list_filter = (("author", admin.RelatedOnlyFieldListFilter),)
    search_fields = ("campaign__name", "author__username", "body")
    list_select_related = ("campaign", "author")
    date_hierarchy = "created_at"


@admin.register(Notification)
class NotificationAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Every staff notification and its email's fate (read-only; each user reads their own under
    "Notifications" in the header)."""

    list_display = ("created_at", "recipient", "kind", "campaign", "review_round", "email_status", "read_at")
    list_filter = ("kind", "email_status")
    search_fields = ("campaign__name", "recipient__username", "message")
    list_select_related = ("campaign", "recipient")
    date_hierarchy = "created_at"
