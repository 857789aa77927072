"""Suppression admin: the list with filters and search, audited remove / extend actions, a CSV
import page with progress and a summary, and the read-only audit trail.

Access follows the roles (apps.core.roles) rather than Django model permissions: staff roles view,
Marketer/Admin add, extend and import, only Admin removes. Entries are never edited or deleted
directly; every write goes through ``apps.suppression.services``.
"""
from __future__ import annotations

from urllib.parse import urlencode

import structlog
from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from apps.core.admin_mixins import ReadOnlyAdminMixin, ViewerAdminMixin, action_selection
from apps.core.exceptions import ServiceError
from apps.core.file_imports import ImportStatus
from apps.core.roles import Role, user_has_role

from . import services
from .identifiers import classify_and_normalise
from .models import SuppressionAudit, SuppressionEntry, SuppressionImport

log = structlog.get_logger(__name__)


def _can_view(request) -> bool:
    return user_has_role(request.user, Role.MARKETER, Role.APPROVER)


def _can_write(request) -> bool:
    return user_has_role(request.user, Role.MARKETER)


def _can_remove(request) -> bool:
    return user_has_role(request.user)


class _SuppressionAdmin(ViewerAdminMixin, admin.ModelAdmin):
    """Marketers and Approvers see the suppression admin (docs/RULES.md §4 "Who")."""

    def can_view(self, request) -> bool:
        return _can_view(request)


class StatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request, model_admin):
        return [("active", "Active"), ("expired", "Expired (awaiting purge)"), ("permanent", "Permanent"),
                ("expiring", "Active with an expiry")]

    def queryset(self, request, queryset):
        now = timezone.now()
        value = self.value()
        if value == "active":
            return queryset.active(now)
        if value == "expired":
            return queryset.expired(now)
        if value == "permanent":
            return queryset.filter(expires_at__isnull=True)
        if value == "expiring":
            return queryset.filter(expires_at__gt=now)
        return queryset


class SuppressionAddForm(forms.ModelForm):
    identifier = forms.CharField(max_length=320, strip=False,
                                 help_text="Email, phone number with country code (+1 415 555 0100), user id or device token")

    class Meta:
        model = SuppressionEntry
        fields = ["identifier", "channel", "reason", "expires_at", "source"]

    def clean_identifier(self):
        try:
            key, self.identifier_kind = classify_and_normalise(self.cleaned_data["identifier"])
        except ServiceError as exc:
            raise forms.ValidationError(exc.message) from None
        return key

    def clean(self):
        data = super().clean()
        if data.get("identifier") and data.get("channel"):
            try:
                services.check_kind_fits_channel(self.identifier_kind, data["channel"])
            except ServiceError as exc:
                self.add_error("identifier", exc.message)
        return data

    def clean_expires_at(self):
        value = self.cleaned_data.get("expires_at")
        try:
            return services.parse_expires_at(value)
        except ServiceError as exc:
            raise forms.ValidationError(exc.message) from None

    def validate_unique(self):
        # The service merges into an existing entry instead of refusing a duplicate.
        return


class RemoveForm(forms.Form):
    note = forms.CharField(max_length=500, widget=forms.TextInput(attrs={"size": 80}),
                           help_text="Why these people may be contacted again (kept in the audit trail)")


class ExtendForm(forms.Form):
    make_permanent = forms.BooleanField(required=False)
    until = forms.DateTimeField(required=False, help_text="New expiry (UTC), e.g. 2027-12-31 00:00")

    def clean(self):
        data = super().clean()
        if data.get("make_permanent") == bool(data.get("until")):
            raise forms.ValidationError("Either tick “make permanent” or give a new expiry date, not both.")
        return data


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with header identifier,channel,reason[,expires_at][,source] (UTF-8)")
    source = forms.CharField(required=False, max_length=200,
                             help_text='Recorded on every entry; default "csv:<file name>"')
    dry_run = forms.BooleanField(required=False, label="Check only (dry run)",
                                 help_text="Shows what the import would add, extend and skip; changes nothing")


@admin.register(SuppressionEntry)
class SuppressionEntryAdmin(_SuppressionAdmin):
    form = SuppressionAddForm
    list_display = ["identifier", "channel", "reason", "status_badge", "expires_at", "source", "created_by",
                    "created_at"]
    list_filter = [StatusFilter, "channel", "reason", "identifier_kind"]
    search_fields = ["identifier", "source"]
    date_hierarchy = "created_at"
    list_select_related = ["created_by"]
    list_per_page = 100
    actions = ["remove_selected", "extend_expiry"]
    readonly_fields = ["identifier", "identifier_kind", "channel", "reason", "source", "created_by", "created_at",
                       "updated_at", "expires_at", "history_link"]
    change_list_template = "admin/suppression/suppressionentry/change_list.html"

    # --- permissions by role ----------------------------------------------------------------
    def has_add_permission(self, request):
        return _can_write(request)

    def has_change_permission(self, request, obj=None):
        return False  # read-only: changes go through the actions (audited)

    def has_delete_permission(self, request, obj=None):
        return False  # removal only through "remove selected", which records who and why

    def has_remove_permission(self, request):
        return _can_remove(request)

    def has_extend_permission(self, request):
        return _can_write(request)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj is not None else []

    def get_fields(self, request, obj=None):
        if obj is None:
            return ["identifier", "channel", "reason", "expires_at", "source"]
        return self.readonly_fields

    # --- display ------------------------------------------------------------------------------
    @admin.display(description="status")
    def status_badge(self, obj):
        if obj.is_active():
            return "permanent" if obj.expires_at is None else "active"
        return "expired"

    @admin.display(description="history")
    def history_link(self, obj):
        url = reverse("admin:suppression_suppressionaudit_changelist") + "?" + urlencode({"identifier": obj.identifier})
        return format_html('<a href="{}">All changes for {}</a>', url, obj.identifier)

    def get_search_results(self, request, queryset, search_term):
        """Also match the normalised form, so "+1 (415) 555-0100" finds "+14155550100"."""
        results, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            try:
                key = classify_and_normalise(search_term)[0]
            except ServiceError:
                key = None
            if key:
                results = results | queryset.filter(identifier=key)
        return results, may_have_duplicates

    # --- add through the service ------------------------------------------------------------
    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        entry, outcome = services.suppression_add_with_outcome(
            identifier=data["identifier"], channel=data["channel"], reason=data["reason"],
            expires_at=data.get("expires_at"), source=data.get("source") or "admin", created_by=request.user,
        )
        obj.pk = entry.pk
        obj._state.adding = False
        obj.refresh_from_db()
        if outcome == "unchanged":
            messages.info(request, f"{entry} was already suppressed ({entry.reason}); the entry is unchanged.")
        elif outcome == "updated":
            messages.info(request, f"{entry} was already suppressed; its expiry was lengthened.")

    def log_addition(self, request, obj, message):
        return None  # the SuppressionAudit row is the record

    # --- actions -----------------------------------------------------------------------------
    @admin.action(description="Remove selected entries (un-suppress)…", permissions=["remove"])
    def remove_selected(self, request, queryset):
        form = RemoveForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            result = services.suppression_bulk_remove(
                entries=[{"identifier": e.identifier, "channel": e.channel} for e in queryset],
                removed_by=request.user, note=form.cleaned_data["note"], on_invalid="skip",
            )
            self.message_user(request, f"Removed {result.removed} entr{'y' if result.removed == 1 else 'ies'}.",
                              messages.SUCCESS)
            return None
        return self._action_page(request, queryset, form, "remove_selected", "Remove suppression entries",
                                 "admin/suppression/suppressionentry/remove_confirm.html")

    @admin.action(description="Extend expiry of selected entries…", permissions=["extend"])
    def extend_expiry(self, request, queryset):
        form = ExtendForm(request.POST if "apply" in request.POST else None)
        if "apply" in request.POST and form.is_valid():
            until = None if form.cleaned_data["make_permanent"] else form.cleaned_data["until"]
            try:
                changed = services.suppression_extend(entry_ids=list(queryset.values_list("pk", flat=True)),
                                                      expires_at=until, actor=request.user)
            except ServiceError as exc:
                form.add_error("until", exc.message)
            else:
                unchanged = queryset.count() - changed
                text = f"Extended {changed} entr{'y' if changed == 1 else 'ies'}."
                if unchanged:
                    text += f" {unchanged} already lasted at least that long and were left as they were."
                self.message_user(request, text, messages.SUCCESS)
                return None
        return self._action_page(request, queryset, form, "extend_expiry", "Extend expiry",
                                 "admin/suppression/suppressionentry/extend_form.html")

    def _action_page(self, request, queryset, form, action, title, template):
        context = {
            **self.admin_site.each_context(request),
            **action_selection(request, queryset),
            "title": title,
            "opts": self.model._meta,
            "form": form,
            "action": action,
        }
        return TemplateResponse(request, template, context)

    # --- CSV import ----------------------------------------------------------------------------
    def get_urls(self):
        wrap = self.admin_site.admin_view
        return [
            path("import/", wrap(self.import_view), name="suppression_import"),
            path("import/template.csv", wrap(self.import_template_view), name="suppression_import_template"),
            path("import/<int:import_id>/skipped.csv", wrap(self.import_errors_view),
                 name="suppression_import_errors"),
            path("import/<int:import_id>/", wrap(self.import_status_view), name="suppression_import_status"),
            path("import/<int:import_id>/progress", wrap(self.import_progress_view),
                 name="suppression_import_progress"),
            path("import/<int:import_id>/run", wrap(self.import_run_view), name="suppression_import_run"),
        ] + super().get_urls()

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "can_import": _can_write(request)}
        return super().changelist_view(request, extra_context=extra_context)

    def import_view(self, request):
        if not _can_write(request):
            raise DjangoPermissionDenied
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            if upload.size > settings.SUPPRESSION_IMPORT_MAX_BYTES:
                form.add_error("file", f"The file is larger than {settings.SUPPRESSION_IMPORT_MAX_BYTES // 2**20} MB; split it.")
            elif form.cleaned_data.get("dry_run"):
                try:
                    check = services.suppression_import_check(data=upload.read(), created_by=request.user)
                except ServiceError as exc:
                    form.add_error("file", exc.message)
                else:
                    return self._dry_run_page(request, form, upload.name, check)
            else:
                try:
                    imp = services.suppression_import_create(
                        filename=upload.name, data=upload.read(), created_by=request.user,
                        source=form.cleaned_data.get("source") or "",
                    )
                except ServiceError as exc:
                    form.add_error("file", exc.message)
                else:
                    return self._start_import(request, imp)
        context = {
            **self.admin_site.each_context(request),
            "title": "Import suppression entries from CSV",
            "opts": self.model._meta,
            "form": form,
            "inline_max_rows": settings.SUPPRESSION_IMPORT_INLINE_MAX_ROWS,
        }
        return TemplateResponse(request, "admin/suppression/import_form.html", context)

    def _dry_run_page(self, request, form, filename, check):
        context = {
            **self.admin_site.each_context(request),
            "title": f"Dry run of {filename}", "opts": self.model._meta, "form": ImportForm(),
            "check": check, "filename": filename, "shown_rows": check.skipped_rows[:200],
            "errors_csv": services.suppression_import_errors_csv(check.skipped_rows),
            "inline_max_rows": settings.SUPPRESSION_IMPORT_INLINE_MAX_ROWS,
        }
        return TemplateResponse(request, "admin/suppression/import_form.html", context)

    def import_template_view(self, request):
        if not _can_view(request):
            raise DjangoPermissionDenied
        response = HttpResponse(services.CSV_TEMPLATE, content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = 'attachment; filename="suppression-import-template.csv"'
        return response

    def import_errors_view(self, request, import_id):
        imp = self._get_import(request, import_id)
        response = HttpResponse(services.suppression_import_errors_csv(imp.skipped_rows),
                                content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="import-{imp.pk}-skipped-rows.csv"'
        return response

    def _start_import(self, request, imp):
        status_url = reverse("admin:suppression_import_status", args=[imp.pk])
        if imp.total_rows <= settings.SUPPRESSION_IMPORT_INLINE_MAX_ROWS:
            services.suppression_import_run(import_id=imp.pk)
            return HttpResponseRedirect(status_url)
        from .tasks import run_suppression_import

        def enqueue():
            try:
                run_suppression_import.delay(imp.pk)
            except Exception as exc:  # noqa: BLE001 - broker down (any error): the page offers to run it here
                log.error("suppression_import_enqueue_failed", import_id=imp.pk, error=str(exc))

        transaction.on_commit(enqueue)
        return HttpResponseRedirect(status_url)

    def _get_import(self, request, import_id) -> SuppressionImport:
        if not _can_view(request):
            raise DjangoPermissionDenied
        return get_object_or_404(SuppressionImport, pk=import_id)

    def import_status_view(self, request, import_id):
        imp = self._get_import(request, import_id)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Import of {imp.filename}",
            "opts": self.model._meta,
            "imp": imp,
            "finished": imp.status in (ImportStatus.DONE, ImportStatus.FAILED),
            "skipped_rows": imp.skipped_rows,
            "more_skipped": max(0, imp.skipped - len(imp.skipped_rows)),
            "progress_url": reverse("admin:suppression_import_progress", args=[imp.pk]),
            "run_url": reverse("admin:suppression_import_run", args=[imp.pk]),
            "errors_url": reverse("admin:suppression_import_errors", args=[imp.pk]),
            "can_run": _can_write(request),
        }
        return TemplateResponse(request, "admin/suppression/import_status.html", context)

    def import_progress_view(self, request, import_id):
        imp = self._get_import(request, import_id)
        return JsonResponse({
            "id": imp.pk, "status": imp.status, "total_rows": imp.total_rows, "processed_rows": imp.processed_rows,
            "percent": imp.percent, "added": imp.added, "updated": imp.updated, "skipped": imp.skipped,
            "finished": imp.status in (ImportStatus.DONE, ImportStatus.FAILED), "error": imp.error,
        })

    def import_run_view(self, request, import_id):
        """Process a queued import in this request (for when no Celery worker picks it up)."""
        if request.method != "POST":
            raise Http404
        if not _can_write(request):
            raise DjangoPermissionDenied
        imp = get_object_or_404(SuppressionImport, pk=import_id)
        services.suppression_import_run(import_id=imp.pk)
        return HttpResponseRedirect(reverse("admin:suppression_import_status", args=[imp.pk]))


@admin.register(SuppressionAudit)
class SuppressionAuditAdmin(ReadOnlyAdminMixin, _SuppressionAdmin):
    list_display = ["at", "action", "identifier", "channel", "reason", "expires_at", "actor", "note", "source"]
    list_filter = ["action", "channel", "reason"]
    search_fields = ["identifier", "note", "source"]
    date_hierarchy = "at"
    list_select_related = ["actor"]


@admin.register(SuppressionImport)
class SuppressionImportAdmin(ReadOnlyAdminMixin, _SuppressionAdmin):
    list_display = ["id", "filename", "status", "total_rows", "processed_rows", "added", "updated", "skipped",
                    "created_by", "created_at", "summary_link"]
    list_filter = ["status"]
    search_fields = ["filename", "source"]
    exclude = ["content"]
    list_select_related = ["created_by"]

    @admin.display(description="summary")
    def summary_link(self, obj):
        return format_html('<a href="{}">progress / summary</a>',
                           reverse("admin:suppression_import_status", args=[obj.pk]))

