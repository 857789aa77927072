"""Activations (docs/RULES.md §5): a message for one user on the first channel of the cascade that can
reach them, recorded in the send ledger and queued after commit."""
from __future__ import annotations

import structlog
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from prometheus_client import Counter

from apps.campaigns import selectors as campaign_selectors
from apps.core.exceptions import NotFound, ServiceError, Unprocessable
from apps.recommendations import selectors as recommendation_selectors

from .. import cascade
from ..models import (
    Activation,
    ActivationStatus,
    ActivationTransition,
    Channel,
    Contact,
    EmailStats,
    IngestEvent,
    SendLedger,
)
from ._common import _after_commit, _emit
from .contacts import _clean_user_id
from .sends import send_enqueue

log = structlog.get_logger(__name__)

ACTIVATIONS = Counter("omnichannel_activations_total", "Activations created, by chosen channel",
                      ["channel", "trigger_kind"])


def _decided_offer(*, user_id: str, channel: str, campaign) -> tuple:
    """The offer a decision chose for ``user_id`` on ``channel`` (among ``campaign``'s offers when
    given, else the channel's live offers), and the decision's id."""
    from apps.rl import services as rl

    candidates = None
    if campaign is not None:
        candidates = [str(o.pk) for o in campaign_selectors.offer_list(campaign_id=campaign.pk)][:50]
        if not candidates:
            raise ServiceError(f"campaign {campaign.pk} has no offers to decide among", field="campaign_id")
    try:
        decision = rl.rl_decide(user_id=user_id, channel=channel, context={"surface": "activation"},
                                candidates=candidates)
    except Unprocessable:  # no live offer on the channel: nothing to decide among
        raise ServiceError(f"title is required (or give an offer_id to use the offer's name): no live offer runs "
                           f"on channel {channel!r} to decide among", field="title", code="required") from None
    offer = campaign_selectors.offer_get_or_none(offer_id=int(decision.offer_id))
    if offer is None:
        raise NotFound(f"offer {decision.offer_id} chosen by decision {decision.decision_id} no longer exists",
                       field="offer_id")
    return offer, decision.decision_id


def activation_create(*, user_id: str, title: str = "", body: str = "", url: str = "", data: dict | None = None,
                      campaign_id: int | None = None, offer_id: int | None = None, channels: list[str] | None = None,
                      trigger: str = "api", ingest_event: IngestEvent | None = None,
                      actor: AbstractBaseUser | None = None, recommend: str = "") -> Activation:
    """Create an activation for ``user_id``: pick the channel by the cascade, record the send in the
    ledger and queue it (after commit). When no channel can reach the user the activation is stored
    as ``skipped`` with the cascade's reasons, and nothing is queued.

    ``channels`` limits the cascade to those channels; a campaign limits it to its own channels.
    Title and URL default to the offer's name and landing page. With neither an offer nor a title,
    the offer is a decision (``apps.rl``, docs/RULES.md §8) for the user on the chosen channel, among
    the campaign's offers or the channel's live offers; its id is kept in ``data["decision_id"]`` and
    the email clicks and loyalty signals for that offer close it.
    Title and URL default to the offer's name and landing page.

    ``recommend`` (a recommendation strategy, e.g. ``"auto"``) offers the best catalogue item for
    this user instead of a fixed offer: the title defaults to the item's name, the body to its
    reason, and ``data`` carries ``item_id``, ``item_reason`` and ``recommend_strategy``.
    """
    user_id = _clean_user_id(user_id)
    if recommend:
        if offer_id is not None:
            raise ServiceError("give offer_id or recommend, not both: recommend picks the item", field="recommend")
        picked = recommendation_selectors.best_item_for_user(user_id=user_id, strategy=recommend)
        if picked is None:
            raise Unprocessable(f"nothing to recommend to {user_id} with strategy {recommend!r}", field="recommend")
        item, scored = picked
        data = {**(data or {}), "item_id": item.item_id, "item_reason": scored.reason, "recommend_strategy": recommend}
        title = title or item.name
        body = body or f"{item.name}: {scored.reason}"
    campaign = offer = None
    if offer_id is not None:
        offer = campaign_selectors.offer_get_or_none(offer_id=offer_id)
        if offer is None:
            raise NotFound(f"offer {offer_id} does not exist", field="offer_id")
        if campaign_id is not None and offer.campaign_id != campaign_id:
            raise ServiceError(f"offer {offer_id} does not belong to campaign {campaign_id}", field="offer_id")
        campaign = offer.campaign
    elif campaign_id is not None:
        campaign = campaign_selectors.campaign_get_or_none(campaign_id=campaign_id)
        if campaign is None:
            raise NotFound(f"campaign {campaign_id} does not exist", field="campaign_id")
    decide = offer is None and not (title or "").strip()
    if not decide:
        title = (title or (offer.name if offer else "")).strip()
        body = (body or "").strip() or title
        url = url or (offer.landing_url if offer else "")
        if not title:
            raise ServiceError("title is required (or give an offer_id to use the offer's name)", field="title",
                               code="required")
    allowed: set[str] | None = None
    allowed_reason = ""
    if channels:
        unknown = [c for c in channels if c not in Channel.values]
        if unknown:
            raise ServiceError(f"unknown channel(s) {', '.join(unknown)}; one of {', '.join(Channel.values)}",
                               field="channels")
        allowed, allowed_reason = set(channels), "not in the requested channels"
    if campaign is not None and campaign.channels:
        campaign_channels = set(campaign.channels)
        allowed = campaign_channels if allowed is None else allowed & campaign_channels
        allowed_reason = f"not a channel of campaign {campaign.pk} or of the request"

    now = timezone.now()
    contact = Contact.objects.filter(user_id=user_id).first()
    result = cascade.cascade_choose(user_id=user_id, contact=contact, now=now, allowed=allowed,
                                    allowed_reason=allowed_reason)
    choice = result.choice
    data = dict(data or {})
    if decide:
        if choice is None:
            title = body = "(no reachable channel: no offer decided)"
        else:
            offer, decision_id = _decided_offer(user_id=user_id, channel=str(choice.channel), campaign=campaign)
            campaign = offer.campaign
            title, url = offer.name, url or offer.landing_url
            body = (body or "").strip() or title
            data["decision_id"] = decision_id
    with transaction.atomic():
        activation = Activation.objects.create(
            user_id=user_id, campaign=campaign, offer=offer, trigger=trigger, ingest_event=ingest_event,
            channel=choice.channel if choice else "",
            status=ActivationStatus.QUEUED if choice else ActivationStatus.SKIPPED,
            reason="" if choice else result.reason[:300], title=title[:200], body=body, url=url,
            data=data, cascade=result.trail, created_by=actor if getattr(actor, "pk", None) else None,
        )
        ActivationTransition.objects.create(activation=activation, to_status=activation.status,
                                            reason=activation.reason, source="ingest" if ingest_event else "api")
        ACTIVATIONS.labels(choice.channel if choice else "none", "ingest" if ingest_event else "api").inc()
        ids = {"activation_id": activation.pk, "user_id": user_id, "campaign_id": getattr(campaign, "pk", None),
               "offer_id": getattr(offer, "pk", None)}
        if choice is None:
            _after_commit(lambda: _emit("activation_failed", reason="no_reachable_channel", **ids))
            log.info("activation_skipped", activation_id=activation.pk, reason=activation.reason)
            return activation
        send = SendLedger.objects.create(activation=activation, user_id=user_id, channel=choice.channel,
                                         provider=choice.provider, recipient=choice.recipient, next_attempt_at=now)
        if choice.channel == Channel.EMAIL:
            EmailStats.objects.create(activation=activation)
        send_id = send.pk
        _after_commit(lambda: _emit("activation_queued", channel=choice.channel, **ids))
        _after_commit(lambda: send_enqueue(send_id=send_id))
    log.info("activation_queued", activation_id=activation.pk, channel=choice.channel, provider=choice.provider)
    return activation
