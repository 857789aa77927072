"""The lifecycle transitions of docs/RULES.md §3 and the approval votes; the beat sweeps that put
campaigns live and complete them."""
from __future__ import annotations

from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.core.exceptions import Conflict, Forbidden, ServiceError
from apps.core.roles import Role

from .. import selectors
from ..models import ApprovalVote, Campaign, VoteDecision
from ..validation import schedule_has_ended, schedule_has_started
from .collaboration import notify_awaiting_decision, notify_decided
from .common import (
    VOTES,
    _apply_rule,
    _audit,
    _lock,
    _require_marketer_or_system,
    _require_role,
    _require_state,
    _required_reason,
    _transition,
    log,
)


def _lock_for(campaign_id: int, action: str, *, actor: AbstractBaseUser | None, doing: str, role: str = Role.MARKETER,
              system_may: bool = False) -> Campaign:
    """The campaign, locked, once its state allows ``action`` (checked first, docs/RULES.md §3) and
    ``actor`` has ``role`` (``system_may``: or is None, i.e. beat) to do it."""
    campaign = _lock(campaign_id)
    _require_state(campaign, action)
    if system_may:
        _require_marketer_or_system(actor, doing)
    else:
        _require_role(actor, role, doing)
    return campaign


@transaction.atomic
def campaign_submit(*, campaign_id: int, actor: AbstractBaseUser | None, reason: str = "") -> Campaign:
    """draft → in_review. Picks the strictest matching approval rule and opens a new review round."""
    campaign = _lock_for(campaign_id, "submit", actor=actor, doing="submit campaigns")
    if not campaign.offers.exists():
        raise ServiceError("Add at least one offer before submitting.", field="offers")
    if schedule_has_ended(end_at=campaign.end_at, now=timezone.now()):
        raise ServiceError("end_at has passed; move it before submitting.", field="end_at")
    _apply_rule(campaign)
    campaign.review_round += 1
    campaign.submitted_by = actor
    campaign.submitted_at = timezone.now()
    rule_name = campaign.approval_rule.name if campaign.approval_rule else "no rule matched"
    reason = reason.strip() or f"needs {campaign.required_approvals} approval(s): {rule_name}"
    _transition(campaign, "submit", actor=actor, reason=reason, extra_fields=[
        "approval_rule", "required_approvals", "review_round", "submitted_by", "submitted_at",
    ])
    notify_awaiting_decision(campaign_id=campaign.pk)
    return campaign


def _check_vote(campaign: Campaign, actor: AbstractBaseUser | None, action: str) -> None:
    _require_state(campaign, action)
    _require_role(actor, Role.APPROVER, "decide on campaigns")
    if actor.pk in (campaign.submitted_by_id, campaign.created_by_id):
        raise Forbidden("You cannot approve or reject your own submission.", code="self_approval")
    if selectors.campaign_has_vote_from(campaign=campaign, user=actor):
        raise Conflict("You have already voted on this campaign in this review round.", code="already_voted")


def _record_vote(campaign: Campaign, actor: AbstractBaseUser | None, decision: str, reason: str) -> ApprovalVote:
    try:
        with transaction.atomic():
            vote = ApprovalVote.objects.create(
                campaign=campaign, approver=actor, review_round=campaign.review_round, decision=decision, reason=reason
            )
    except IntegrityError:
        raise Conflict("You have already voted on this campaign in this review round.", code="already_voted") from None
    _audit(campaign, action=f"vote_{decision}", from_status=campaign.status, to_status=campaign.status, actor=actor,
           reason=reason)
    VOTES.labels(decision).inc()
    log.info("campaign_vote", campaign_id=campaign.pk, decision=str(decision), approver_id=actor.pk,
             review_round=campaign.review_round)
    return vote


@transaction.atomic
def campaign_approve(*, campaign_id: int, actor: AbstractBaseUser | None, reason: str = "") -> Campaign:
    """Cast an approval. The campaign moves to approved once the approvals of the current review
    round reach ``required_approvals``. Approvers only; not on one's own submission; one vote each."""
    campaign = _lock(campaign_id)
    _check_vote(campaign, actor, "approve")
    _record_vote(campaign, actor, VoteDecision.APPROVE, reason.strip())
    approvals = selectors.campaign_approval_count(campaign=campaign)
    if approvals >= campaign.required_approvals:
        rule_name = campaign.approval_rule.name if campaign.approval_rule else "default"
        _transition(campaign, "approve", actor=actor,
                    reason=f"{approvals} of {campaign.required_approvals} approval(s) ({rule_name})")
        notify_decided(campaign_id=campaign.pk, decision="approved", actor=actor, reason=reason.strip())
    return campaign


@transaction.atomic
def campaign_reject(*, campaign_id: int, actor: AbstractBaseUser | None, reason: str) -> Campaign:
    """in_review → rejected. A reason is required; any one rejection rejects."""
    reason = _required_reason(reason, "reject a campaign")
    campaign = _lock(campaign_id)
    _check_vote(campaign, actor, "reject")
    _record_vote(campaign, actor, VoteDecision.REJECT, reason)
    _transition(campaign, "reject", actor=actor, reason=reason)
    notify_decided(campaign_id=campaign.pk, decision="rejected", actor=actor, reason=reason)
    return campaign


@transaction.atomic
def campaign_request_changes(*, campaign_id: int, actor: AbstractBaseUser | None, reason: str) -> Campaign:
    """in_review → draft, back to the marketer with a note of what to change (required)."""
    reason = _required_reason(reason, "request changes")
    campaign = _lock_for(campaign_id, "request_changes", actor=actor, role=Role.APPROVER, doing="request changes")
    if actor.pk in (campaign.submitted_by_id, campaign.created_by_id):
        raise Forbidden("You cannot review your own submission.", code="self_approval")
    _transition(campaign, "request_changes", actor=actor, reason=reason)
    notify_decided(campaign_id=campaign.pk, decision="sent back for changes", actor=actor, reason=reason)
    return campaign


@transaction.atomic
def campaign_revise(*, campaign_id: int, actor: AbstractBaseUser | None, reason: str = "") -> Campaign:
    """rejected → draft, so the marketer can edit and submit again."""
    campaign = _lock_for(campaign_id, "revise", actor=actor, doing="revise campaigns")
    return _transition(campaign, "revise", actor=actor, reason=reason.strip())


@transaction.atomic
def campaign_schedule(*, campaign_id: int, actor: AbstractBaseUser | None, reason: str = "") -> Campaign:
    """approved → scheduled; the start time must be in the future (beat puts it live then)."""
    campaign = _lock_for(campaign_id, "schedule", actor=actor, doing="schedule campaigns")
    if schedule_has_started(start_at=campaign.start_at, now=timezone.now()):
        raise ServiceError("start_at has already passed: put the campaign live instead of scheduling it.",
                           field="start_at")
    return _transition(campaign, "schedule", actor=actor,
                       reason=reason.strip() or f"starts {campaign.start_at:%Y-%m-%d %H:%M} UTC")


@transaction.atomic
def campaign_go_live(*, campaign_id: int, actor: AbstractBaseUser | None = None, reason: str = "") -> Campaign:
    """scheduled → live when the start time has come (beat, ``actor=None``); approved → live when it
    already has (a marketer). Refused before the start, after the end, or with no budget left."""
    campaign = _lock_for(campaign_id, "go_live", actor=actor, doing="put campaigns live", system_may=True)
    now = timezone.now()
    if not schedule_has_started(start_at=campaign.start_at, now=now):
        raise ServiceError("start_at is still in the future: schedule the campaign instead.", field="start_at")
    if schedule_has_ended(end_at=campaign.end_at, now=now):
        raise ServiceError("end_at has passed; move it before going live.", field="end_at")
    if campaign.spent >= campaign.budget:
        raise ServiceError("The budget is spent; raise it before going live.", field="budget")
    return _transition(campaign, "go_live", actor=actor,
                       reason=reason.strip() or ("start time reached" if actor is None else ""))


@transaction.atomic
def campaign_pause(*, campaign_id: int, actor: AbstractBaseUser | None, reason: str = "") -> Campaign:
    """live → paused (stops bidding)."""
    campaign = _lock_for(campaign_id, "pause", actor=actor, doing="pause campaigns")
    return _transition(campaign, "pause", actor=actor, reason=reason.strip())


@transaction.atomic
def campaign_resume(*, campaign_id: int, actor: AbstractBaseUser | None, reason: str = "") -> Campaign:
    """paused → live. If the end time passed or the budget ran out meanwhile, the campaign is
    completed at once (a second audit row) rather than left paused for ever."""
    campaign = _lock_for(campaign_id, "resume", actor=actor, doing="resume campaigns")
    _transition(campaign, "resume", actor=actor, reason=reason.strip())
    if schedule_has_ended(end_at=campaign.end_at, now=timezone.now()):
        _transition(campaign, "complete", actor=actor, reason="end time reached")
    elif campaign.spent >= campaign.budget:
        _transition(campaign, "complete", actor=actor, reason="budget spent")
    return campaign


@transaction.atomic
def campaign_complete(*, campaign_id: int, actor: AbstractBaseUser | None = None, reason: str) -> Campaign:
    """live → completed: by beat (``actor=None``) at the end time or when the budget is spent, or by a
    marketer ending it early. A reason is required."""
    reason = _required_reason(reason, "complete a campaign")
    campaign = _lock_for(campaign_id, "complete", actor=actor, doing="complete campaigns", system_may=True)
    return _transition(campaign, "complete", actor=actor, reason=reason)


@transaction.atomic
def campaign_archive(*, campaign_id: int, actor: AbstractBaseUser | None, reason: str = "") -> Campaign:
    """completed → archived."""
    campaign = _lock_for(campaign_id, "archive", actor=actor, doing="archive campaigns")
    return _transition(campaign, "archive", actor=actor, reason=reason.strip())



def campaign_go_live_due(*, now: datetime | None = None) -> list[int]:
    """Put live every scheduled campaign whose start time has come; returns their ids.

    Each campaign is its own transaction: one refusal (changed meanwhile) does not stop the rest."""
    done: list[int] = []
    for campaign_id in selectors.campaign_ids_due_to_go_live(now=now):
        try:
            campaign_go_live(campaign_id=campaign_id, actor=None)
        except ServiceError as exc:
            log.info("campaign_go_live_skipped", campaign_id=campaign_id, detail=exc.message)
            continue
        done.append(campaign_id)
    return done


def campaign_complete_due(*, now: datetime | None = None) -> list[int]:
    """Complete every live campaign past its end time or out of budget; returns their ids."""
    done: list[int] = []
    for campaign_id, reason in selectors.campaign_ids_due_to_complete(now=now):
        try:
            campaign_complete(campaign_id=campaign_id, actor=None, reason=reason)
        except ServiceError as exc:
            log.info("campaign_complete_skipped", campaign_id=campaign_id, detail=exc.message)
            continue
        done.append(campaign_id)
    return done


