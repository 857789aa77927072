"""What every campaigns service shares: the row lock, role and state checks, the transition with its
audit row, the approval-rule choice, vote voiding and the after-commit snapshot refresh."""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime
from datetime import timezone as dt_timezone
from decimal import Decimal
from typing import Any

import structlog
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django_fsm import can_proceed
from prometheus_client import Counter

from apps.core.exceptions import Conflict, Forbidden, NotFound, ServiceError
from apps.core.roles import Role, user_has_role

from .. import selectors
from ..models import ApprovalVote, Campaign, CampaignEdit, CampaignStatus, CampaignTransition, EditSource

log = structlog.get_logger("apps.campaigns.services")

TRANSITIONS = Counter("campaign_transitions_total", "Campaign lifecycle transitions", ["action"])
VOTES = Counter("campaign_votes_total", "Approval votes cast", ["decision"])
VOTES_VOIDED = Counter("campaign_votes_voided_total", "Approval votes voided by an edit in review")

S = CampaignStatus

ACTION_LABELS = {
    "submit": "submit", "approve": "approve", "reject": "reject", "revise": "revise",
    "request_changes": "request changes on", "schedule": "schedule", "go_live": "put live",
    "pause": "pause", "resume": "resume", "complete": "complete", "archive": "archive",
}


# --- helpers -------------------------------------------------------------------------------------

def _offer_snapshot_refresh() -> None:
    """Tell the bidder to rebuild its live-offer snapshot (``apps.bidding.services.offer_snapshot_refresh``)."""
    # Imported when called: apps.bidding.services imports this package at module level.
    from apps.bidding.services import offer_snapshot_refresh

    offer_snapshot_refresh()


def _refresh_bidding_after_commit() -> None:
    transaction.on_commit(_offer_snapshot_refresh)


#: transitions the integrations slice acts on (an approval task on submit; the decision pushed back)
INTEGRATION_ACTIONS = frozenset({"submit", "approve", "reject", "request_changes"})


def _notify_integrations_after_commit(campaign: Campaign, action: str) -> None:
    """After commit, let apps.integrations queue its work (Asana/Jira tasks). ``robust``: a broker
    hiccup is logged, never turned into an error of a transition that already committed."""
    from apps.integrations.selectors import integrations_want_lifecycle

    campaign_id, review_round = campaign.pk, campaign.review_round
    if not integrations_want_lifecycle(campaign_id=campaign_id, action=action, review_round=review_round):
        return  # off unless configured: no connection, no callback

    def notify() -> None:
        # Imported when called: apps.integrations.services imports this package at module level.
        from apps.integrations.services import campaign_lifecycle_notify

        campaign_lifecycle_notify(campaign_id=campaign_id, action=action, review_round=review_round)

    transaction.on_commit(notify, robust=True)


def _lock(campaign_id: int) -> Campaign:
    try:
        return Campaign.objects.select_for_update().get(pk=campaign_id)
    except (Campaign.DoesNotExist, ValueError, TypeError):
        raise NotFound(f"Campaign {campaign_id} does not exist.") from None


def _require_role(actor: AbstractBaseUser | None, role: str, doing: str) -> None:
    if actor is None or not getattr(actor, "is_authenticated", False):
        raise Forbidden(f"Only a signed-in {role} can {doing}.")
    if not user_has_role(actor, role):
        raise Forbidden(f"Only users with the {role} role can {doing}.")


def _require_marketer_or_system(actor: AbstractBaseUser | None, doing: str) -> None:
    if actor is not None:
        _require_role(actor, Role.MARKETER, doing)


def _allowed_sources(action: str) -> list[str]:
    return [str(state) for state in getattr(Campaign, action)._django_fsm.transitions]


def _audit(campaign: Campaign, *, action: str, from_status: str, to_status: str, actor: AbstractBaseUser | None = None,
           reason: str = "") -> None:
    CampaignTransition.objects.create(
        campaign=campaign, action=action, from_status=from_status, to_status=to_status, actor=actor, reason=reason
    )


def _json_safe(value: Any) -> Any:
    """A field value as the audit row stores it: decimals as strings (exact), times as ISO 8601 UTC."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(dt_timezone.utc).isoformat()
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _record_edit(campaign: Campaign, *, action: str, actor: AbstractBaseUser | None, source: str,
                 old: Mapping[str, Any], new: Mapping[str, Any], offer_id: int | None = None) -> CampaignEdit:
    """Write the ``CampaignEdit`` audit row of an edit (docs/RULES.md §3 "Audit"), in the caller's
    transaction: ``{field: {"old": ..., "new": ...}}`` for every field in ``old`` or ``new``."""
    if source not in EditSource.values:
        raise ValueError(f"unknown edit source {source!r}; one of {EditSource.values}")
    changes = {name: {"old": _json_safe(old.get(name)), "new": _json_safe(new.get(name))}
               for name in sorted({*old, *new})}
    return CampaignEdit.objects.create(campaign=campaign, offer_id=offer_id, action=action, source=source,
                                       actor=actor if getattr(actor, "pk", None) else None, changes=changes)


def _transition(campaign: Campaign, action: str, *, actor: AbstractBaseUser | None, reason: str = "",
                extra_fields: Iterable[str] = ()) -> Campaign:
    """Apply the FSM transition ``action`` on a locked campaign, save it and write the audit row."""
    from_status = campaign.status
    _require_state(campaign, action)
    getattr(campaign, action)()
    campaign.save(update_fields=["status", "updated_at", *extra_fields])
    _audit(campaign, action=action, from_status=from_status, to_status=campaign.status, actor=actor, reason=reason)
    TRANSITIONS.labels(action).inc()
    log.info("campaign_transition", campaign_id=campaign.pk, action=action, from_status=str(from_status),
             to_status=str(campaign.status), actor_id=getattr(actor, "pk", None), reason=reason or None)
    if S.LIVE in (from_status, campaign.status):
        _refresh_bidding_after_commit()
    if action in INTEGRATION_ACTIONS:
        _notify_integrations_after_commit(campaign, action)
    return campaign


def _require_state(campaign: Campaign, action: str) -> None:
    """Refuse early (before other checks) when the state does not allow ``action``."""
    if not can_proceed(getattr(campaign, action)):
        allowed = ", ".join(CampaignStatus(s).label.lower() for s in _allowed_sources(action))
        raise Conflict(
            f"Cannot {ACTION_LABELS[action]} campaign {campaign.pk}: it is "
            f"{campaign.get_status_display().lower()}; this is only possible from {allowed}.",
            field="status",
        )


def _required_reason(reason: str | None, what: str) -> str:
    reason = (reason or "").strip()
    if not reason:
        raise ServiceError(f"A reason is required to {what}.", field="reason", code="required")
    return reason



def _apply_rule(campaign: Campaign) -> None:
    rule = selectors.approval_rule_for(budget=campaign.budget, channels=campaign.channels)
    campaign.approval_rule = rule
    # A campaign always needs at least one approval, even if an admin deactivated every rule.
    campaign.required_approvals = rule.min_approvals if rule else 1


def _void_votes(campaign: Campaign, *, actor: AbstractBaseUser | None, what: str) -> int:
    """An edit while in review: votes so far no longer count (docs/RULES.md §3). Returns how many."""
    voided = ApprovalVote.objects.filter(campaign=campaign, review_round=campaign.review_round, voided=False).update(
        voided=True
    )
    if voided:
        campaign.review_round += 1  # the caller holds the campaign's row lock
        campaign.save(update_fields=["review_round", "updated_at"])
        _audit(campaign, action="votes_voided", from_status=campaign.status, to_status=campaign.status, actor=actor,
               reason=f"{voided} vote(s) voided: {what} changed while in review")
        VOTES_VOIDED.inc(voided)
        log.info("campaign_votes_voided", campaign_id=campaign.pk, voided=voided, what=what,
                 review_round=campaign.review_round)
        # A new round needs every approval again: the approvers hear of it (once per round).
        from .collaboration import notify_awaiting_decision  # collaboration imports this module

        notify_awaiting_decision(campaign_id=campaign.pk)
    return voided


