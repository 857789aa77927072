from django.contrib import admin

from apps.core.admin_mixins import ReadOnlyAdminMixin

from .models import SpendFlush


@admin.register(SpendFlush)
class SpendFlushAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Read-only: rows are written by the spend flush, never by hand."""

    list_display = ("created_at", "campaign_id", "amount_dollars", "batch_id")
    list_filter = ("created_at",)
    search_fields = ("batch_id", "campaign_id")
    date_hierarchy = "created_at"

    @admin.display(description="amount (USD)")
    def amount_dollars(self, obj: SpendFlush) -> str:
        return f"{obj.amount_micros / 1_000_000:.6f}"