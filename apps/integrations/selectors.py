"""Reads of the integrations slice for other slices (the campaign admin) and the admin."""
from __future__ import annotations

from .models import TASK_KINDS, Connection, ExternalTask, ExternalTaskState


def external_tasks_for_campaign(*, campaign_id: int) -> list[ExternalTask]:
    """The approval tasks/issues of a campaign, newest round first, with their connection."""
    return list(ExternalTask.objects.select_related("connection").filter(campaign_id=campaign_id)
                .order_by("-review_round", "connection__name"))


def integrations_want_lifecycle(*, campaign_id: int, action: str, review_round: int) -> bool:
    """Whether a campaign transition has integration work: a submission with an enabled Asana/Jira
    connection, a decision on a submission that has an item. One indexed query; none configured, none done."""
    if action == "submit":
        return Connection.objects.filter(enabled=True, kind__in=TASK_KINDS).exists()
    return ExternalTask.objects.filter(campaign_id=campaign_id, review_round=review_round,
                                       state=ExternalTaskState.CREATED).exists()


def campaign_report_for_export(*, campaign_id: int, start: str | None, end: str | None,
                               granularity: str | None) -> dict:
    """The report API's figures (``apps.analytics.selectors.campaign_report``) with the campaign's name;
    NotFound for an unknown campaign, Unavailable when ClickHouse is down (as the JSON report)."""
    from apps.analytics import selectors as analytics
    from apps.campaigns import selectors as campaigns
    from apps.core import clickhouse as ch
    from apps.core import outages
    from apps.core.exceptions import Unavailable

    start_at, end_at, grain = analytics.report_range(start=start, end=end, granularity=granularity)
    campaign = campaigns.campaign_get(campaign_id=campaign_id)
    try:
        report = analytics.campaign_report(campaign_id=campaign.pk, start=start_at, end=end_at, granularity=grain)
    except ch.ClickHouseError as exc:
        raise outages.as_unavailable(exc) or Unavailable("Analytics store unavailable, try again shortly.") from None
    report["campaign_name"] = campaign.name
    return report
