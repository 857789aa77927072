"""Rows the services write are read-only in every slice's admin (apps.core.admin_mixins), even for a superuser."""
from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.test import RequestFactory

from apps.bidding.models import SpendFlush
from apps.campaigns.models import CampaignEdit, CampaignTransition
from apps.core.models import AuthAudit
from apps.loyalty.models import LedgerEntry
from apps.omnichannel.models import Activation, IngestEvent, SendLedger
from apps.suppression.models import SuppressionAudit, SuppressionImport

READ_ONLY = [SpendFlush, CampaignEdit, CampaignTransition, AuthAudit, LedgerEntry, Activation, IngestEvent,
             SendLedger, SuppressionAudit, SuppressionImport]


@pytest.mark.django_db
@pytest.mark.parametrize("model", READ_ONLY, ids=lambda m: m.__name__)
def test_service_written_rows_cannot_be_added_changed_or_deleted_in_the_admin(model):
    request = RequestFactory().get("/admin/")
    request.user = get_user_model().objects.create_superuser("root", "root@example.com", "x")
    model_admin = admin.site._registry[model]
    assert model_admin.has_view_permission(request)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    for inline in model_admin.get_inline_instances(request):
        assert not inline.has_add_permission(request, None)
        assert not inline.has_change_permission(request)
        assert not inline.has_delete_permission(request)
