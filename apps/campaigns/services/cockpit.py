"""The campaign list's writes (issue 19): clone a campaign, bulk pause / resume / archive through the
lifecycle services with nothing half-done, and each user's saved views of the list."""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import Conflict, ServiceError
from apps.core.roles import Role

from ..models import Campaign, SavedView
from ..validation import CAMPAIGN_FIELDS, OFFER_FIELDS
from .campaigns import campaign_create
from .common import _require_role, log
from .lifecycle import campaign_archive, campaign_pause, campaign_resume
from .offers import offer_create

BULK_ACTIONS: dict[str, Callable[..., Campaign]] = {
    "pause": campaign_pause,
    "resume": campaign_resume,
    "archive": campaign_archive,
}


@dataclass(frozen=True)
class Refusal:
    campaign_id: int
    name: str
    message: str


class BulkRefused(Conflict):
    """A bulk action some campaigns refused: nothing was changed; ``refusals`` lists each one."""

    def __init__(self, action: str, refusals: list[Refusal]):
        self.refusals = refusals
        super().__init__(f"Nothing was changed: {len(refusals)} campaign(s) cannot {action}.", field="campaigns")


def campaign_bulk_transition(*, campaign_ids: Iterable[int], action: str, actor: AbstractBaseUser | None,
                             reason: str = "") -> list[Campaign]:
    """Apply ``action`` (pause, resume, archive) to every campaign through its lifecycle service, all or
    nothing: if any campaign refuses, every change is rolled back and ``BulkRefused`` lists each
    refusal (in id order). Locks are taken in id order, so two bulk actions cannot deadlock."""
    if action not in BULK_ACTIONS:
        raise ServiceError(f"Unknown bulk action {action!r}; use one of {', '.join(BULK_ACTIONS)}.", field="action")
    ids = sorted({int(i) for i in campaign_ids})
    if not ids:
        raise ServiceError("Select at least one campaign.", field="campaigns")
    names = dict(Campaign.objects.filter(pk__in=ids).values_list("pk", "name"))
    refusals = [Refusal(i, f"#{i}", "does not exist") for i in ids if i not in names]
    done: list[Campaign] = []
    with transaction.atomic():
        for campaign_id in ids:
            if campaign_id not in names:
                continue
            try:
                with transaction.atomic():  # a refusal undoes only its own savepoint here...
                    done.append(BULK_ACTIONS[action](campaign_id=campaign_id, actor=actor, reason=reason))
            except ServiceError as exc:
                refusals.append(Refusal(campaign_id, names[campaign_id], exc.message))
        if refusals:  # ...and then the whole batch, so nothing is half-done
            refusals.sort(key=lambda r: r.campaign_id)
            raise BulkRefused(action, refusals)
    log.info("campaign_bulk_transition", action=action, campaign_ids=ids, actor_id=getattr(actor, "pk", None))
    return done


@transaction.atomic
def campaign_clone(*, campaign_id: int, actor: AbstractBaseUser | None) -> Campaign:
    """A new draft with the campaign's settings and copies of its offers, named "Copy of …". A window
    that has already started moves to start tomorrow, keeping its length (a draft cannot start in the
    past once submitted). Spend, votes and history are not copied."""
    _require_role(actor, Role.MARKETER, "clone campaigns")
    source = Campaign.objects.prefetch_related("offers").get(pk=campaign_id)
    fields = {name: getattr(source, name) for name in CAMPAIGN_FIELDS}
    fields["name"] = f"Copy of {source.name}"[:200]
    now = timezone.now()
    if source.start_at <= now:
        length = source.end_at - source.start_at
        start = (now + timedelta(days=1)).replace(second=0, microsecond=0)
        fields.update(start_at=start, end_at=start + length)
    clone = campaign_create(actor=actor, **fields)
    for offer in source.offers.all():
        offer_create(campaign_id=clone.pk, actor=actor, **{name: getattr(offer, name) for name in OFFER_FIELDS})
    log.info("campaign_cloned", campaign_id=clone.pk, source_id=source.pk, actor_id=getattr(actor, "pk", None))
    return clone


def saved_view_save(*, user: Any, name: str, query: str) -> SavedView:
    """Save (or overwrite, by name) one of ``user``'s views of the campaign list: its query string."""
    name = (name or "").strip()
    if not name:
        raise ServiceError("Give the view a name.", field="name")
    if len(name) > 80:
        raise ServiceError("A view's name may be at most 80 characters.", field="name")
    query = (query or "").lstrip("?")[:2000]
    view, _ = SavedView.objects.update_or_create(user=user, name=name, defaults={"query": query})
    return view


def saved_view_delete(*, user: Any, view_id: int) -> int:
    """Delete one of ``user``'s own saved views (another user's is never touched). Rows deleted."""
    deleted, _ = SavedView.objects.filter(user=user, pk=view_id).delete()
    return deleted
