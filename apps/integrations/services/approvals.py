"""Approvals in Asana and Jira: one task/issue per submission, a status sync that casts mapped votes
through the campaigns approval services, and decisions made in the platform pushed back.

Exactly once per submission, even when the task runs twice or is retried: the ``ExternalTask`` row
(unique per connection, campaign, review round) is claimed in one transaction, the vendor is called
outside it, and the answer recorded in a third (the send claim of omnichannel). An attempt that may
have reached the vendor without an answer (a timeout, a dropped connection, a worker killed mid-call)
leaves ``maybe_created``; the next attempt first looks for the item by its marker (a Jira label, a
line in the Asana notes) and adopts it instead of creating a second one.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import structlog
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.campaigns import selectors as campaign_selectors
from apps.campaigns import services as campaign_services
from apps.core.exceptions import ServiceError
from apps.core.outbound import OutboundError

from ..adaptors import ConnectionProblem, adaptor_for, plain_words
from ..adaptors.tasking import DECISIONS, ApprovalItem, ExternalRef, TaskAdaptor
from ..models import TASK_KINDS, Connection, ExternalTask, ExternalTaskState
from .connections import connection_config

log = structlog.get_logger("apps.integrations")

#: a claim younger than this is another attempt under way (the client's 3 attempts fit well inside)
CLAIM_LEASE = timedelta(seconds=120)
IN_REVIEW = "in_review"


class AttemptInProgress(Exception):
    """Another attempt holds the claim: retry later."""


def _adaptor(connection: Connection) -> TaskAdaptor:
    adaptor = adaptor_for(connection_config(connection))
    assert isinstance(adaptor, TaskAdaptor)
    return adaptor


def task_connection_ids() -> list[int]:
    return list(Connection.objects.filter(enabled=True, kind__in=TASK_KINDS).values_list("pk", flat=True))


def _item(task: ExternalTask) -> ApprovalItem:
    campaign = campaign_selectors.campaign_get(campaign_id=task.campaign_id)
    path = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
    return ApprovalItem(
        campaign_id=campaign.pk, review_round=task.review_round, name=campaign.name, advertiser=campaign.advertiser,
        budget=f"{campaign.budget:.2f}", currency=campaign.currency, channels=tuple(campaign.channels),
        required_approvals=campaign.required_approvals,
        rule=campaign.approval_rule.name if campaign.approval_rule else "default rule",
        admin_url=f"{settings.PUBLIC_BASE_URL.rstrip('/')}{path}", marker=task.marker)


def _claim(*, connection_id: int, campaign_id: int, review_round: int) -> tuple[ExternalTask, bool] | None:
    """Lock (creating) the row; None when there is nothing to do. Returns (task, look first)."""
    with transaction.atomic():
        task, _ = ExternalTask.objects.select_for_update().get_or_create(
            connection_id=connection_id, campaign_id=campaign_id, review_round=review_round)
        if task.state in (ExternalTaskState.CREATED, ExternalTaskState.FAILED, ExternalTaskState.SKIPPED):
            return None
        campaign = campaign_selectors.campaign_get_or_none(campaign_id=campaign_id)
        if campaign is None or campaign.status != IN_REVIEW or campaign.review_round != review_round:
            task.state, task.open, task.note = ExternalTaskState.SKIPPED, False, "no longer in review when the task ran"
            task.save(update_fields=["state", "open", "note", "updated_at"])
            return None
        now = timezone.now()
        if task.claimed_at is not None and now - task.claimed_at < CLAIM_LEASE:
            raise AttemptInProgress(f"external task {task.pk} is being created by another attempt")
        look_first = task.maybe_created or task.claimed_at is not None  # a dead attempt may have made it
        task.claimed_at, task.maybe_created = now, True
        task.attempts += 1
        task.save(update_fields=["claimed_at", "maybe_created", "attempts", "updated_at"])
        return task, look_first


def _release(task_id: int, **fields) -> None:
    with transaction.atomic():
        task = ExternalTask.objects.select_for_update().get(pk=task_id)
        for name, value in {"claimed_at": None, **fields}.items():
            setattr(task, name, value)
        task.save()


def approval_task_create(*, connection_id: int, campaign_id: int, review_round: int) -> ExternalTask | None:
    """Make the Asana task / Jira issue of one submission, at most once. Raises ``OutboundError`` /
    ``ConnectionProblem`` with ``retryable`` for the Celery task to retry; a permanent refusal is
    recorded on the row (state failed, shown in the admin) and raised too."""
    claimed = _claim(connection_id=connection_id, campaign_id=campaign_id, review_round=review_round)
    if claimed is None:
        return None
    task, look_first = claimed
    try:
        adaptor = _adaptor(task.connection)
        ref = adaptor.find_task(marker=task.marker, since=task.created_at - timedelta(minutes=5)) if look_first else None
        adopted = ref is not None
        if ref is None:
            ref = adaptor.create_task(_item(task))
    except OutboundError as exc:
        # 4xx: the vendor refused it, nothing was made; timeouts, network errors and 5xx may have made it.
        maybe = exc.kind in ("timeout", "network") or (exc.status_code or 0) >= 500
        problem = plain_words(exc, task.connection.get_kind_display())
        _release(task.pk, maybe_created=maybe or look_first, note=problem.message[:500],
                 **({} if exc.retryable else {"state": ExternalTaskState.FAILED, "open": False}))
        raise
    except ConnectionProblem as exc:
        _release(task.pk, maybe_created=False, note=exc.message[:500],
                 **({} if exc.retryable else {"state": ExternalTaskState.FAILED, "open": False}))
        raise
    _release(task.pk, state=ExternalTaskState.CREATED, maybe_created=False, external_id=ref.id, external_key=ref.key,
             url=ref.url, note="adopted the item an earlier attempt made" if adopted else "")
    log.info("integration_task_created", connection_id=connection_id, campaign_id=campaign_id,
             review_round=review_round, external_id=ref.id, external_key=ref.key, adopted=adopted)
    return ExternalTask.objects.get(pk=task.pk)


def campaign_lifecycle_notify(*, campaign_id: int, action: str, review_round: int) -> None:
    """Called by apps.campaigns after a transition commits: queue the integration work it causes."""
    from .. import tasks

    if action == "submit":
        for connection_id in task_connection_ids():
            tasks.create_approval_task.delay(connection_id, campaign_id, review_round)
    elif action in ("approve", "reject", "request_changes"):
        if ExternalTask.objects.filter(campaign_id=campaign_id, review_round=review_round,
                                       state=ExternalTaskState.CREATED).exists():
            tasks.push_approval_decision.delay(campaign_id, review_round, action)


# --- status sync ---------------------------------------------------------------------------------

@dataclass
class SyncSummary:
    polled: int = 0
    votes_cast: int = 0
    errors: int = 0


def _platform_user(connection: Connection, external_user: str):
    user_map = (connection.options or {}).get("user_map") or {}
    username = user_map.get(external_user) or user_map.get(external_user.lower())
    if not username:
        return None
    return get_user_model().objects.filter(username=username, is_active=True).first()


def _cast(task: ExternalTask, decision: str, state, label: str) -> str:
    """Cast the mapped vote through the same service as the admin button; returns the note."""
    user = _platform_user(task.connection, state.actor) if state.actor else None
    if user is None:
        return f"{label}: {state.status!r} by {state.actor or 'someone'} is not a mapped approver; no vote cast"
    try:
        if decision == "approve":
            campaign_services.campaign_approve(campaign_id=task.campaign_id, actor=user,
                                               reason=f"approved in {label}")
        else:
            reason = state.last_comment.strip() or f"Rejected in {label}"
            campaign_services.campaign_reject(campaign_id=task.campaign_id, actor=user, reason=reason)
    except ServiceError as exc:
        return f"{label}: {decision} by {user.get_username()} refused: {exc.message}"
    return f"{label}: {decision} cast for {user.get_username()}"


def approval_sync_one(*, task_id: int) -> bool:
    """Poll one item; cast a vote when its status maps to a decision. Returns whether one was cast."""
    task = ExternalTask.objects.select_related("connection").get(pk=task_id)
    campaign = campaign_selectors.campaign_get_or_none(campaign_id=task.campaign_id)
    if campaign is None or campaign.status != IN_REVIEW or campaign.review_round != task.review_round:
        ExternalTask.objects.filter(pk=task.pk).update(open=False, note="campaign no longer in this review round")
        return False
    ref = ExternalRef(id=task.external_id, key=task.external_key, url=task.url)
    state = _adaptor(task.connection).fetch_state(ref)
    label = task.external_key or f"{task.connection.get_kind_display()} task {task.external_id}"
    changes: dict = {}
    if state.status != task.external_status:
        changes.update(external_status=state.status[:100], external_status_at=timezone.now())
    status_map = (task.connection.options or {}).get("status_map") or {}
    decision = state.decision(status_map)
    cast = False
    if decision in DECISIONS and task.decision_cast != f"{decision}:{state.status}"[:120]:
        note = _cast(task, decision, state, label)
        changes.update(note=note[:500])
        if "cast for" in note or "refused" in note:
            changes["decision_cast"] = f"{decision}:{state.status}"[:120]
        cast = "cast for" in note
        log.info("integration_status_mapped", task_id=task.pk, campaign_id=task.campaign_id, decision=decision,
                 external_status=state.status, actor=state.actor, note=note)
    elif decision is None and state.status != task.external_status:
        changes.update(note=f"{label}: status {state.status!r} is not in the connection's status_map; no vote cast"[:500])
    if changes:
        ExternalTask.objects.filter(pk=task.pk).update(**changes, updated_at=timezone.now())
    return cast


def approval_status_sync() -> SyncSummary:
    """Beat: poll every open item of an enabled task connection."""
    summary = SyncSummary()
    ids = ExternalTask.objects.filter(open=True, state=ExternalTaskState.CREATED, connection__enabled=True,
                                      connection__kind__in=TASK_KINDS).values_list("pk", flat=True)
    for task_id in list(ids):
        summary.polled += 1
        try:
            summary.votes_cast += approval_sync_one(task_id=task_id)
        except (OutboundError, ConnectionProblem, KeyError, TypeError, ValueError) as exc:
            summary.errors += 1
            ExternalTask.objects.filter(pk=task_id).update(note=f"status sync: {exc}"[:500])
            log.warning("integration_status_sync_failed", task_id=task_id, error=str(exc))
    return summary


# --- decisions made in the platform ---------------------------------------------------------------

def approval_decision_push(*, campaign_id: int, review_round: int, action: str) -> int:
    """Complete / transition this submission's items after the platform decided; returns how many."""
    done = 0
    tasks = ExternalTask.objects.select_related("connection").filter(
        campaign_id=campaign_id, review_round=review_round, state=ExternalTaskState.CREATED, decision_pushed="")
    for task in tasks:
        ref = ExternalRef(id=task.external_id, key=task.external_key, url=task.url)
        words = {"approve": "approved", "reject": "rejected", "request_changes": "sent back for changes"}[action]
        adaptor = _adaptor(task.connection)
        status_map = (task.connection.options or {}).get("status_map") or {}
        if action in DECISIONS and adaptor.fetch_state(ref).decision(status_map) == action:
            what = "already decided there"  # the vote came from this item: nothing to push
        else:
            what = adaptor.push_decision(ref, decision=action, note=f"Campaign Express: the campaign was {words}.")
        ExternalTask.objects.filter(pk=task.pk).update(decision_pushed=action, open=False, note=what[:500],
                                                       updated_at=timezone.now())
        done += 1
    return done
