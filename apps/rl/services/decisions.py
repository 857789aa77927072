"""``rl_decide``: choose one offer among candidates — OfferFit when it answers in budget, else
Thompson sampling over the (offer, channel × tier) Beta posteriors — and log the choice with its
propensity (Postgres row to close it by, ClickHouse decision log for off-policy evaluation)."""
from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

import orjson
import structlog
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone
from prometheus_client import Counter, Histogram

from apps.core.channels import Channel
from apps.core.exceptions import ServiceError, Unprocessable
from apps.rl import offerfit, posteriors, thompson
from apps.rl.models import Decision, DecisionSource

from .log import log_decision

log = structlog.get_logger("apps.rl.services")
_tables = thompson.PropensityTable()

TIERS = ("green", "gold", "reserve")
MAX_CANDIDATES = 50  # Personalizer's limit on actions per rank call
ID_MAX = 64

DECISIONS = Counter("rl_decisions_total", "Decisions made", ["source"])
FALLBACKS = Counter("rl_offerfit_fallbacks_total", "Decisions Thompson answered although OfferFit is configured", ["reason"])
DECIDE_SECONDS = Histogram("rl_decide_seconds", "Time to choose (posteriors read, draws, propensity)",
                           buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.05, 0.1))


@dataclass(frozen=True)
class DecisionResult:
    decision_id: str
    offer_id: str
    campaign_id: str | None
    propensity: float
    source: str
    segment: str
    tier: str
    candidates: list[str]
    expires_at: str
    fallback_reason: str = ""
    probabilities: dict[str, float] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


def _clean_candidates(candidates: Any) -> list[str]:
    if not isinstance(candidates, list) or not candidates:
        raise ServiceError("candidates must be a non-empty list of offer ids.", field="candidates")
    if len(candidates) > MAX_CANDIDATES:
        raise ServiceError(f"At most {MAX_CANDIDATES} candidates per decision, got {len(candidates)}.", field="candidates")
    out: list[str] = []
    for i, c in enumerate(candidates):
        if isinstance(c, bool) or not isinstance(c, (str, int)) or not str(c).strip() or len(str(c).strip()) > ID_MAX:
            raise ServiceError(f"candidates[{i}] must be an offer id (a string of 1..{ID_MAX} characters).",
                               field="candidates")
        out.append(str(c).strip())
    if len(set(out)) != len(out):
        raise ServiceError("candidates must not repeat an offer id.", field="candidates")
    return out


def _live_offers(channel: str) -> list[tuple[str, str, list[dict[str, Any]]]]:
    """``[(offer id, campaign id, features)]`` of the live campaigns running on ``channel``."""
    from apps.campaigns import selectors as campaigns

    found: list[tuple[str, str, list[dict[str, Any]]]] = []
    for campaign in campaigns.campaign_list_biddable():
        if channel in campaign.channels or Channel.ALL in campaign.channels:
            found.extend((str(o.pk), str(campaign.pk), _offer_features(o)) for o in campaign.offers.all())
    return found[:MAX_CANDIDATES]


def _offer_features(offer) -> list[dict[str, Any]]:
    return [{"campaign_id": str(offer.campaign_id), "category": offer.category, "format": offer.format,
             "max_bid_cpm": float(offer.max_bid_cpm), "observed_ctr": float(offer.observed_ctr)}]


def rl_sync_catalog() -> int:
    """Push every live offer to OfferFit as an action with its features; returns how many (0 when off)."""
    from apps.campaigns import selectors as campaigns

    if not offerfit.is_configured():
        return 0
    actions = [{"id": str(o.pk), "features": _offer_features(o)}
               for campaign in campaigns.campaign_list_biddable() for o in campaign.offers.all()]
    return offerfit.sync_catalog(actions=actions)


def _tier_for(user_id: str, context: dict[str, Any]) -> str:
    tier = context.get("tier")
    if tier is not None:
        if tier not in TIERS:
            raise ServiceError(f"Unknown tier {tier!r}; choose one of: {', '.join(TIERS)}.", field="context.tier")
        return str(tier)
    from apps.loyalty import selectors as loyalty

    account = loyalty.loyalty_account_find(user_id=user_id)
    return str(account.tier) if account else "green"


def rl_decide(*, user_id: str, channel: str, context: dict[str, Any] | None = None,
              candidates: list[Any] | None = None) -> DecisionResult:
    """Choose an offer for ``user_id`` on ``channel``. ``candidates`` defaults to the live offers for
    the channel. OfferFit answers when configured, in budget and sane; otherwise Thompson sampling,
    never an error to the caller. The decision stays open until its first reward or its wait time."""
    if not isinstance(user_id, str) or not user_id.strip() or len(user_id.strip()) > 128:
        raise ServiceError("user_id is required (at most 128 characters).", field="user_id")
    user_id = user_id.strip()
    if not isinstance(channel, str) or channel not in Channel.values or channel == Channel.ALL:
        raise ServiceError(f"Unknown channel {channel!r}.", field="channel")
    channel = str(channel)  # a TextChoices member (the cascade's) as its plain value
    context = dict(context or {})
    if candidates is None:
        live = _live_offers(channel)
        if not live:
            raise Unprocessable(f"No live offers run on channel {channel!r}; pass candidates.", field="candidates")
        offer_ids = [o for o, _, _ in live]
        campaigns = {o: c for o, c, _ in live}
        features = {o: f for o, _, f in live}
    else:
        offer_ids = _clean_candidates(candidates)
        campaigns, features = {}, {}
    tier = _tier_for(user_id, context)
    segment = posteriors.segment_of(channel=channel, tier=tier)
    decision_id = uuid.uuid4()
    started = time.perf_counter()

    source, fallback_reason, event_id = DecisionSource.THOMPSON, "", ""
    probabilities: dict[str, float] = {}
    try:
        ranking = offerfit.rank(event_id=str(decision_id), context={**context, "channel": channel, "tier": tier},
                                candidates=[{"id": o, "features": features.get(o)} for o in offer_ids])
        if ranking.offer_id not in offer_ids:
            raise offerfit.Fallback("bad_answer", f"offer {ranking.offer_id!r} is not a candidate")
        chosen, propensity, event_id = ranking.offer_id, ranking.propensity, ranking.event_id
        source = DecisionSource.OFFERFIT
        probabilities = {chosen: propensity}
    except offerfit.Fallback as fallback:
        fallback_reason = fallback.reason
        if fallback.reason != "off":
            FALLBACKS.labels(fallback.reason).inc()
            log.info("rl_offerfit_fallback", reason=fallback.reason, error=str(fallback))
        successes, failures = posteriors.posterior_counts(segment=segment, offer_ids=offer_ids)
        choice = _tables.choose(successes, failures, prior_alpha=settings.RL_PRIOR_ALPHA,
                                 prior_beta=settings.RL_PRIOR_BETA, draws=settings.RL_PROPENSITY_DRAWS)
        chosen, propensity = offer_ids[choice.index], choice.propensity
        probabilities = {o: float(p) for o, p in zip(offer_ids, choice.probabilities, strict=True) if p > 0}
    DECIDE_SECONDS.observe(time.perf_counter() - started)

    now = timezone.now()
    decision = Decision(
        decision_id=decision_id, user_id=user_id, channel=channel, tier=tier, segment=segment, offer_id=chosen,
        campaign_id=campaigns.get(chosen, ""), propensity=propensity, source=source, offerfit_event_id=event_id,
        fallback_reason=fallback_reason, candidates=offer_ids,
        probabilities=[probabilities.get(o, 0.0) for o in offer_ids], context=orjson.loads(orjson.dumps(context)),
        created_at=now, expires_at=now + timedelta(seconds=settings.RL_REWARD_WAIT_SECONDS),
    )
    with transaction.atomic():
        # The decision row is a log entry, not a balance: committing it without waiting for the WAL
        # flush halves the median insert (measured in bench/decision_latency.py). A crash can lose the
        # last ~200 ms of open decisions (their rewards then answer 404); posterior updates stay durable.
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")
        decision.save(force_insert=True)
        transaction.on_commit(lambda: log_decision(decision))
    DECISIONS.labels(source).inc()
    return DecisionResult(
        decision_id=str(decision_id), offer_id=chosen, campaign_id=decision.campaign_id or None, propensity=propensity,
        source=str(source), segment=segment, tier=tier, candidates=offer_ids,
        expires_at=decision.expires_at.isoformat(), fallback_reason=fallback_reason, probabilities=probabilities,
    )
