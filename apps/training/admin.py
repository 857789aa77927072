"""Bid model versions in the admin: every version file of the registry with its metrics, and a
"Roll back to this version" action.

The list mirrors the model directory (``services.model_versions_sync`` runs each time it is opened):
version, last publication, feature layout, data window, the CTR head's log loss and AUC (each ± the
half-width of its bootstrap 95 % interval) on the time holdout, the champion/challenger decision, and which
version is in service. Rows are read-only. Staff holding Marketer, Approver or Admin see it; only
Admin rolls back (``services.model_rollback``, audited in ``ModelVersionAudit``).
"""
from __future__ import annotations

import json

from django.contrib import admin, messages
from django.utils.html import format_html

from apps.core.admin_mixins import ReadOnlyAdminMixin, ViewerAdminMixin
from apps.core.exceptions import ServiceError
from apps.core.roles import Role, user_has_role
from apps.training import services
from apps.training.models import ModelVersion, ModelVersionAudit


def _can_view(request) -> bool:
    return user_has_role(request.user, Role.MARKETER, Role.APPROVER)


def _can_roll_back(request) -> bool:
    return user_has_role(request.user)


class InServiceFilter(admin.SimpleListFilter):
    title = "in service"
    parameter_name = "in_service"

    def lookups(self, request, model_admin):
        return (("yes", "In service"), ("no", "Not in service"), ("gone", "File removed"))

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(in_service=True)
        if self.value() == "no":
            return queryset.filter(in_service=False, present=True)
        if self.value() == "gone":
            return queryset.filter(present=False)
        return queryset


def _with_interval(value: float | None, half_width: float | None, *, digits: int) -> str:
    """A metric as shown in the list: ``0.73130 ± 0.00700``, the value alone without an interval, or —."""
    if value is None:
        return "—"
    if half_width is None:
        return f"{value:.{digits}f}"
    return f"{value:.{digits}f} ± {half_width:.{digits}f}"


@admin.register(ModelVersion)
class ModelVersionAdmin(ViewerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("version", "published_at", "layout_version", "data_window", "log_loss_shown", "auc_shown",
                    "decision_shown", "in_service_shown")
    list_filter = (InServiceFilter, "decision", "layout_version", "loadable")
    search_fields = ("version", "decision_reason", "champion_version")
    date_hierarchy = "published_at"
    actions = ["roll_back"]
    fieldsets = (
        (None, {"fields": ("version", "in_service", "present", "published_at", "layout_version", "loadable",
                           "load_error")}),
        ("Training", {"fields": ("trained_at", "data_since", "data_until", "holdout_rows", "holdout_clicks")}),
        ("Time holdout (CTR head)", {"fields": ("log_loss", "log_loss_half_width", "auc", "auc_half_width",
                                                "champion_version", "champion_log_loss", "champion_auc",
                                                "decision", "decision_reason")}),
        ("File", {"fields": ("file_size", "metadata_shown", "synced_at")}),
    )
    readonly_fields = [f.name for f in ModelVersion._meta.fields] + ["metadata_shown"]

    def can_view(self, request) -> bool:
        return _can_view(request)

    def has_rollback_permission(self, request) -> bool:
        return _can_roll_back(request)

    def changelist_view(self, request, extra_context=None):
        try:
            services.model_versions_sync()
        except OSError as exc:  # an unreadable model directory: show what was last seen, and say so
            self.message_user(request, f"The model directory could not be read ({exc}); the list may be stale.",
                              messages.WARNING)
        return super().changelist_view(request, extra_context)

    @admin.display(description="data window")
    def data_window(self, obj: ModelVersion) -> str:
        if obj.data_since is None or obj.data_until is None:
            return "—"
        return f"{obj.data_since:%Y-%m-%d %H:%M} – {obj.data_until:%Y-%m-%d %H:%M} UTC"

    @admin.display(description="log loss (± 95 %)", ordering="log_loss")
    def log_loss_shown(self, obj: ModelVersion) -> str:
        return _with_interval(obj.log_loss, obj.log_loss_half_width, digits=5)

    @admin.display(description="AUC (± 95 %)", ordering="auc")
    def auc_shown(self, obj: ModelVersion) -> str:
        return _with_interval(obj.auc, obj.auc_half_width, digits=4)

    @admin.display(description="decision", ordering="decision")
    def decision_shown(self, obj: ModelVersion):
        if not obj.decision:
            return "—"
        return format_html('<span title="{}">{}</span>', obj.decision_reason, obj.decision)

    @admin.display(description="in service?", boolean=True, ordering="in_service")
    def in_service_shown(self, obj: ModelVersion) -> bool | None:
        if not obj.present:
            return None  # the file was removed
        return obj.in_service

    @admin.display(description="metadata")
    def metadata_shown(self, obj: ModelVersion):
        if not obj.metadata:
            return "—"
        return format_html("<pre>{}</pre>", json.dumps(obj.metadata, indent=2, sort_keys=True))

    @admin.action(description="Roll back to this version", permissions=["rollback"])
    def roll_back(self, request, queryset):
        chosen = list(queryset[:2])
        if len(chosen) != 1:
            self.message_user(request, "Select exactly one version to roll back to.", messages.ERROR)
            return None
        target = chosen[0]
        try:
            audit = services.model_rollback(version=target.version, actor=request.user, reason="admin action")
        except ServiceError as exc:
            self.message_user(request, f"Not rolled back: {exc.message}", messages.ERROR)
            return None
        self.message_user(request, f"Rolled back to {audit.to_version} (was {audit.from_version or 'none'}); "
                                   f"every bidder hot-reloads it now.", messages.SUCCESS)
        return None


@admin.register(ModelVersionAudit)
class ModelVersionAuditAdmin(ViewerAdminMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ("created_at", "action", "from_version", "to_version", "actor", "reason")
    list_filter = ("action",)
    search_fields = ("from_version", "to_version", "actor__username", "reason")
    date_hierarchy = "created_at"
    readonly_fields = [f.name for f in ModelVersionAudit._meta.fields]

    def can_view(self, request) -> bool:
        return _can_view(request)
