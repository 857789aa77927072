"""Reads of the integrations slice for other slices (the campaign admin) and the admin."""
from __future__ import annotations

from .models import ExternalTask


def external_tasks_for_campaign(*, campaign_id: int) -> list[ExternalTask]:
    """The approval tasks/issues of a campaign, newest round first, with their connection."""
    return list(ExternalTask.objects.select_related("connection").filter(campaign_id=campaign_id)
                .order_by("-review_round", "connection__name"))
