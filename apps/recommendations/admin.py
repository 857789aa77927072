"""Recommendations admin: the catalogue (search, filters, audited availability switches), catalogue
imports (upload, progress, refused rows to download), the audit trail, and the model builds (when,
how long, from how much; "rebuild now").

Staff roles view; Marketers (and Admins) write, through ``apps.recommendations.services``.
"""
from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import path, reverse
from django.utils.html import format_html

from apps.core.admin_mixins import ReadOnlyAdminMixin, ViewerAdminMixin
from apps.core.exceptions import ServiceError
from apps.core.roles import Role, user_has_role

from . import services
from .models import CatalogAudit, CatalogImport, CatalogItem, ModelBuild


def _can_write(request) -> bool:
    return user_has_role(request.user, Role.MARKETER)


class _RecsAdmin(ViewerAdminMixin, admin.ModelAdmin):
    def can_view(self, request) -> bool:
        return user_has_role(request.user, Role.MARKETER, Role.APPROVER)


@admin.register(CatalogItem)
class CatalogItemAdmin(ReadOnlyAdminMixin, _RecsAdmin):
    list_display = ["item_id", "name", "category", "price", "available", "created_at", "updated_at"]
    list_filter = ["available", "category", "created_at"]
    search_fields = ["item_id", "name", "category", "tags"]
    date_hierarchy = "created_at"
    actions = ["make_available", "make_unavailable"]

    def _switch(self, request, queryset, available: bool):
        try:
            changed = services.catalog_items_set_available(item_ids=list(queryset.values_list("item_id", flat=True)),
                                                           available=available, actor=request.user)
        except ServiceError as exc:
            self.message_user(request, exc.message, messages.ERROR)
            return
        self.message_user(request, f"{changed} item(s) now {'available' if available else 'unavailable'}.")

    @admin.action(description="Make available")
    def make_available(self, request, queryset):
        self._switch(request, queryset, True)

    @admin.action(description="Make unavailable (never recommended)")
    def make_unavailable(self, request, queryset):
        self._switch(request, queryset, False)

    def get_actions(self, request):
        return super().get_actions(request) if _can_write(request) else {}


class ImportUploadForm(forms.ModelForm):
    file = forms.FileField(help_text="JSON lines (.jsonl) or CSV (.csv: item_id,name[,category,tags,attributes,"
                                     "price,available,created_at]; tags separated by |, attributes as JSON)")

    class Meta:
        model = CatalogImport
        fields: list[str] = []


@admin.register(CatalogImport)
class CatalogImportAdmin(_RecsAdmin):
    list_display = ["id", "filename", "format", "status", "progress", "created", "updated", "refused",
                    "refused_download", "created_by", "created_at"]
    list_filter = ["status", "format"]
    search_fields = ["filename"]
    list_select_related = ["created_by"]
    readonly_fields = ["filename", "format", "status", "total_rows", "processed_rows", "created", "updated",
                       "refused", "refused_download", "error", "created_by", "created_at", "started_at",
                       "finished_at"]

    def has_add_permission(self, request) -> bool:
        return _can_write(request)

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            return ImportUploadForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_fields(self, request, obj=None):
        return ["file"] if obj is None else self.readonly_fields

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.readonly_fields

    def save_model(self, request, obj, form, change):
        upload = form.cleaned_data["file"]
        try:
            imp = services.catalog_import_create(filename=upload.name, data=upload.read(), actor=request.user)
        except ServiceError as exc:
            raise PermissionDenied(exc.message) from exc
        from django.conf import settings

        if imp.total_rows <= settings.RECS_IMPORT_INLINE_MAX_ROWS:
            imp = services.catalog_import_run(import_id=imp.pk)
        else:
            from .tasks import run_catalog_import

            transaction.on_commit(lambda: run_catalog_import.delay(imp.pk))
        obj.pk = imp.pk
        obj.refresh_from_db()

    @admin.display(description="progress")
    def progress(self, obj):
        return f"{obj.processed_rows}/{obj.total_rows} ({obj.percent} %)"

    @admin.display(description="refused rows")
    def refused_download(self, obj):
        if not obj.refused:
            return "—"
        return format_html('<a href="{}">download CSV ({})</a>',
                           reverse("admin:recommendations_catalogimport_refused", args=[obj.pk]), obj.refused)

    def get_urls(self):
        return [path("<int:import_id>/refused.csv", self.admin_site.admin_view(self.refused_view),
                     name="recommendations_catalogimport_refused"), *super().get_urls()]

    def refused_view(self, request, import_id: int):
        if not self.can_view(request):
            raise PermissionDenied
        imp = get_object_or_404(CatalogImport, pk=import_id)
        response = HttpResponse(services.catalog_import_refused_csv(imp=imp), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="catalog-import-{imp.pk}-refused.csv"'
        return response


@admin.register(CatalogAudit)
class CatalogAuditAdmin(ReadOnlyAdminMixin, _RecsAdmin):
    list_display = ["at", "item_id", "action", "changes", "source", "actor"]
    list_filter = ["action", "at"]
    search_fields = ["item_id", "source"]
    list_select_related = ["actor"]


@admin.register(ModelBuild)
class ModelBuildAdmin(ReadOnlyAdminMixin, _RecsAdmin):
    list_display = ["version", "status", "started_at", "rebuild_time", "interactions", "users", "items", "cf_method",
                    "auto_weight", "size_mb"]
    list_filter = ["status", "cf_method"]
    search_fields = ["version"]
    actions = ["rebuild_now"]

    @admin.display(description="rebuild time", ordering="duration_seconds")
    def rebuild_time(self, obj):
        return "—" if obj.duration_seconds is None else f"{obj.duration_seconds:.1f} s"

    @admin.display(description="size", ordering="size_bytes")
    def size_mb(self, obj):
        return f"{obj.size_bytes / 1e6:.1f} MB"

    @admin.action(description="Rebuild the models now (in the background)")
    def rebuild_now(self, request, queryset):
        from .tasks import rebuild_recommendations

        rebuild_recommendations.delay()
        self.message_user(request, "Rebuild queued; it appears here when it starts.")

    def get_actions(self, request):
        return super().get_actions(request) if _can_write(request) else {}
