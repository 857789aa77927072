"""Reads of the campaigns slice. Other apps use these (and ``services``), never the models directly."""
from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from django.db.models import (
    CharField,
    Count,
    Exists,
    F,
    IntegerField,
    JSONField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.utils import timezone

from apps.core.exceptions import NotFound
from apps.core.roles import Role, user_has_role

from .models import (
    ApprovalRule,
    ApprovalVote,
    Campaign,
    CampaignComment,
    CampaignEdit,
    CampaignStatus,
    CampaignTransition,
    Notification,
    Offer,
    VoteDecision,
)
from .validation import schedule_ended_q, schedule_has_ended, schedule_has_started, schedule_running_q


def campaign_get(*, campaign_id: int) -> Campaign:
    """The campaign, or ``NotFound`` (a 404 through the API)."""
    try:
        return Campaign.objects.select_related("approval_rule", "created_by", "submitted_by").get(pk=campaign_id)
    except (Campaign.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Campaign {campaign_id} does not exist.") from None


def campaign_get_or_none(*, campaign_id: int) -> Campaign | None:
    """The campaign, or None when there is none with this id (for callers that word their own refusal)."""
    return Campaign.objects.filter(pk=campaign_id).first()


def campaign_list(*, status: str | None = None, channel: str | None = None, advertiser: str | None = None,
                  search: str | None = None) -> QuerySet[Campaign]:
    """Campaigns, newest first, optionally filtered (``channel`` matches any of the campaign's channels)."""
    qs = Campaign.objects.select_related("approval_rule").prefetch_related("offers")
    if status:
        qs = qs.filter(status=status)
    if channel:
        qs = qs.filter(channels__contains=[channel])
    if advertiser:
        qs = qs.filter(advertiser__iexact=advertiser)
    if search:
        qs = qs.filter(Q(name__icontains=search) | Q(advertiser__icontains=search))
    return qs


def campaign_list_biddable(*, now: datetime | None = None) -> QuerySet[Campaign]:
    """Live campaigns inside ``[start_at, end_at)`` with budget left, offers prefetched.

    This is what the bidder's offer snapshot is built from (docs/RULES.md §1 step 4)."""
    now = now or timezone.now()
    return (
        Campaign.objects.filter(schedule_running_q(now=now), status=CampaignStatus.LIVE, spent__lt=F("budget"))
        .prefetch_related("offers")
        .order_by("id")
    )


def campaign_list_awaiting_decision(*, user) -> QuerySet[Campaign]:
    """Campaigns in review this user may still decide on: not their own, no vote from them this round."""
    if not user_has_role(user, Role.APPROVER):
        return Campaign.objects.none()
    voted = ApprovalVote.objects.filter(
        campaign=OuterRef("pk"), approver=user, review_round=OuterRef("review_round"), voided=False
    )
    return (
        Campaign.objects.filter(status=CampaignStatus.IN_REVIEW)
        .exclude(submitted_by=user)
        .exclude(created_by=user)
        .exclude(Exists(voted))
        .order_by("submitted_at", "id")
    )


def campaign_ids_due_to_go_live(*, now: datetime | None = None) -> list[int]:
    """Scheduled campaigns whose start time has come (and whose end has not passed)."""
    now = now or timezone.now()
    return list(
        Campaign.objects.filter(schedule_running_q(now=now), status=CampaignStatus.SCHEDULED)
        .order_by("start_at", "id")
        .values_list("id", flat=True)
    )


def campaign_ids_due_to_complete(*, now: datetime | None = None) -> list[tuple[int, str]]:
    """Live campaigns past their end time or out of budget, with the reason for completing each."""
    now = now or timezone.now()
    rows = (
        Campaign.objects.filter(status=CampaignStatus.LIVE)
        .filter(schedule_ended_q(now=now) | Q(spent__gte=F("budget")))
        .order_by("end_at", "id")
        .values_list("id", "end_at")
    )
    return [(campaign_id, "end time reached" if schedule_has_ended(end_at=end_at, now=now) else "budget spent")
            for campaign_id, end_at in rows]


def approval_rule_for(*, budget: Decimal, channels: Iterable[str]) -> ApprovalRule | None:
    """The strictest active rule matching these attributes (docs/RULES.md §3), or None if none matches.

    A rule matches when every condition it sets holds: budget above its threshold, and at least one
    of its channels in use. A rule without conditions (Standard) matches every campaign. Strictest
    = most approvals; on a tie the rule with more conditions (more specific) wins."""
    channels = set(channels or ())
    matching = []
    for rule in ApprovalRule.objects.filter(is_active=True):
        if rule.budget_threshold is not None and not budget > rule.budget_threshold:
            continue
        if rule.channels and not channels.intersection(rule.channels):
            continue
        specificity = int(rule.budget_threshold is not None) + int(bool(rule.channels))
        matching.append(((rule.min_approvals, specificity, -rule.pk), rule))
    if not matching:
        return None
    return max(matching, key=lambda item: item[0])[1]


def campaign_approval_count(*, campaign: Campaign) -> int:
    """Approvals that count: this review round, not voided."""
    return ApprovalVote.objects.filter(
        campaign=campaign, review_round=campaign.review_round, voided=False, decision=VoteDecision.APPROVE
    ).count()


def campaign_has_vote_from(*, campaign: Campaign, user) -> bool:
    return ApprovalVote.objects.filter(
        campaign=campaign, approver=user, review_round=campaign.review_round, voided=False
    ).exists()


# Which actions a role may take, by state. Services enforce the same rules; this only decides which
# buttons to show.
MARKETER_ACTIONS = {
    CampaignStatus.DRAFT: ["submit"],
    CampaignStatus.REJECTED: ["revise"],
    CampaignStatus.APPROVED: ["schedule", "go_live"],
    CampaignStatus.LIVE: ["pause", "complete"],
    CampaignStatus.PAUSED: ["resume"],
    CampaignStatus.COMPLETED: ["archive"],
}
APPROVER_ACTIONS = {CampaignStatus.IN_REVIEW: ["approve", "reject", "request_changes"]}


def campaign_available_actions(*, campaign: Campaign, user) -> list[str]:
    """The actions ``user`` may take on ``campaign`` now (buttons in the admin)."""
    actions: list[str] = []
    now = timezone.now()
    if user_has_role(user, Role.MARKETER):
        for action in MARKETER_ACTIONS.get(campaign.status, []):
            started = schedule_has_started(start_at=campaign.start_at, now=now)
            if action == "schedule" and started:
                continue
            if action == "go_live" and not started:
                continue
            actions.append(action)
    if user_has_role(user, Role.APPROVER) and campaign.status in APPROVER_ACTIONS:
        own = user.pk in (campaign.submitted_by_id, campaign.created_by_id)
        if not own and not campaign_has_vote_from(campaign=campaign, user=user):
            actions.extend(APPROVER_ACTIONS[campaign.status])
    return actions


def campaign_history(*, campaign_id: int) -> QuerySet[CampaignTransition]:
    """The audit trail, newest first."""
    return CampaignTransition.objects.filter(campaign_id=campaign_id).select_related("actor")


def campaign_edits(*, campaign_id: int) -> QuerySet[CampaignEdit]:
    """The campaign's edits (old and new values), newest first."""
    return CampaignEdit.objects.filter(campaign_id=campaign_id).select_related("actor")


# The columns of one history entry, in the order both halves of the UNION select them.
HISTORY_COLUMNS = ("kind", "id", "action", "created_at", "actor", "from_status", "to_status", "reason", "offer_id",
                   "source", "changes")


def _history_columns(**columns) -> dict:
    return {f"h_{name}": columns[name] for name in HISTORY_COLUMNS}


def campaign_history_entries(*, campaign_id: int) -> QuerySet:
    """Every transition and every edit of the campaign as one list, newest first: dicts with the keys of
    ``HISTORY_COLUMNS`` prefixed ``h_`` (one UNION query, so it pages in the database)."""
    text, number, json = CharField(), IntegerField(), JSONField()
    transitions = CampaignTransition.objects.filter(campaign_id=campaign_id).annotate(**_history_columns(
        kind=Value("transition", output_field=text), id=F("id"), action=F("action"), created_at=F("created_at"),
        actor=F("actor__username"), from_status=F("from_status"), to_status=F("to_status"), reason=F("reason"),
        offer_id=Value(None, output_field=number), source=Value(None, output_field=text),
        changes=Value(None, output_field=json),
    )).values(*(f"h_{name}" for name in HISTORY_COLUMNS))
    edits = CampaignEdit.objects.filter(campaign_id=campaign_id).annotate(**_history_columns(
        kind=Value("edit", output_field=text), id=F("id"), action=F("action"), created_at=F("created_at"),
        actor=F("actor__username"), from_status=Value(None, output_field=text),
        to_status=Value(None, output_field=text), reason=Value("", output_field=text), offer_id=F("offer_id"),
        source=F("source"), changes=F("changes"),
    )).values(*(f"h_{name}" for name in HISTORY_COLUMNS))
    return transitions.order_by().union(edits.order_by(), all=True).order_by("-h_created_at", "-h_kind", "-h_id")


def campaign_votes(*, campaign_id: int) -> QuerySet[ApprovalVote]:
    return ApprovalVote.objects.filter(campaign_id=campaign_id).select_related("approver")


def offer_list(*, campaign_id: int) -> QuerySet[Offer]:
    return Offer.objects.filter(campaign_id=campaign_id)


def offer_list_by_ids(*, offer_ids: Iterable[int]) -> QuerySet[Offer]:
    """The offers among ``offer_ids`` that exist (any campaign, any state)."""
    return Offer.objects.filter(pk__in=list(offer_ids))


def offer_get_or_none(*, offer_id: int) -> Offer | None:
    """The offer with its campaign (one query), or None when there is none with this id."""
    return Offer.objects.select_related("campaign").filter(pk=offer_id).first()


def offer_get(*, campaign_id: int, offer_id: int) -> Offer:
    try:
        return Offer.objects.get(pk=offer_id, campaign_id=campaign_id)
    except (Offer.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Offer {offer_id} does not exist in campaign {campaign_id}.") from None


def campaign_counts_by_status() -> dict[str, int]:
    """``{status: count}`` for dashboards and the seed summary."""
    return dict(Campaign.objects.values_list("status").annotate(n=Count("id")).order_by())


def offer_creative_blocked(offer: Offer, *, now: datetime | None = None) -> str:
    """Why the offer's DAM asset may not be served now ("" when it may)."""
    if offer.creative_blocked_reason:
        return offer.creative_blocked_reason
    if offer.creative_valid_until is not None and offer.creative_valid_until <= (now or timezone.now()):
        return f"asset expired {offer.creative_valid_until:%Y-%m-%d %H:%M} UTC"
    return ""


def offer_ids_with_dam_assets() -> list[tuple[int, int | None, str]]:
    """(offer id, connection id, asset id) of every offer whose creative came from a DAM, for the validity sync."""
    return list(Offer.objects.exclude(creative_source="").order_by("id")
                .values_list("id", "creative_connection_id", "creative_asset_id"))
DECISION_ACTIONS = ("approve", "reject", "request_changes")


def campaign_latest_decision(*, campaign_id: int) -> CampaignTransition | None:
    """The last approve / reject / request-changes transition (who decided, when, why), or None."""
    return (CampaignTransition.objects.filter(campaign_id=campaign_id, action__in=DECISION_ACTIONS)
            .select_related("actor").first())


def campaign_round_votes(*, campaign: Campaign) -> QuerySet[ApprovalVote]:
    """The votes that count now: this review round, not voided, oldest first."""
    return ApprovalVote.objects.filter(campaign=campaign, review_round=campaign.review_round, voided=False) \
        .select_related("approver").order_by("created_at")


def campaign_last_rejection_reason(*, campaign_id: int) -> str:
    """The reason of the most recent reject vote (a reject transition carries it too)."""
    vote = ApprovalVote.objects.filter(campaign_id=campaign_id, decision=VoteDecision.REJECT).order_by("-created_at").first()
    return vote.reason if vote else ""


def campaign_comments(*, campaign_id: int) -> QuerySet[CampaignComment]:
    """The campaign's discussion, oldest first."""
    return CampaignComment.objects.filter(campaign_id=campaign_id).select_related("author")


def campaign_inbox(*, user) -> QuerySet[Campaign]:
    """The approval inbox: campaigns awaiting ``user``'s decision (in review, current submission, not
    submitted or created by them, no vote of theirs this round), oldest submission first, with the
    rule and the approvals so far."""
    approvals = (ApprovalVote.objects.filter(campaign=OuterRef("pk"), review_round=OuterRef("review_round"),
                                             voided=False, decision=VoteDecision.APPROVE)
                 .order_by().values("campaign").annotate(n=Count("id")).values("n"))
    return (campaign_list_awaiting_decision(user=user).select_related("approval_rule", "submitted_by")
            .annotate(approvals_so_far=Coalesce(Subquery(approvals), 0)))


def campaign_inbox_next(*, user, after_id: int | None = None) -> Campaign | None:
    """The oldest campaign still awaiting ``user`` (skipping ``after_id``), or None when the inbox is empty."""
    qs = campaign_list_awaiting_decision(user=user)
    if after_id is not None:
        qs = qs.exclude(pk=after_id)
    return qs.first()


def notification_list(*, user, unread_only: bool = False) -> QuerySet[Notification]:
    qs = Notification.objects.filter(recipient=user).select_related("campaign")
    return qs.filter(read_at__isnull=True) if unread_only else qs


def notification_unread_count(*, user) -> int:
    if not getattr(user, "is_authenticated", False):
        return 0
    return Notification.objects.filter(recipient=user, read_at__isnull=True).count()


def campaign_status_by_id(*, campaign_ids: Iterable[int]) -> dict[int, str]:
    """``{campaign id: status}`` for the ids that exist (others are left out)."""
    return dict(Campaign.objects.filter(pk__in=list(campaign_ids)).values_list("pk", "status"))
